// Backward of the elementwise activations (src/kernels/unary.ts):
// dx = dy · f'(x). The wasm kernel is assembly/unary-grad.ts; at the kinks it
// takes the derivative PyTorch does (relu: 0 at 0; clip: 1 at its bounds).
import { AttnroundError } from "../errors.ts";
import { wasm } from "../wasm.ts";
import { checkIntegers, type FloatArray } from "./planes.ts";
import { type ActivationConstants, activationConstants } from "./unary.ts";

export type UnaryGradOp = "relu" | "leakyRelu" | "clip" | "sigmoid" | "hardSigmoid" | "hardSwish";

const opCodes: Record<UnaryGradOp, number> = {
  relu: 0,
  leakyRelu: 1,
  clip: 2,
  sigmoid: 3,
  hardSigmoid: 4,
  hardSwish: 5,
};

export interface UnaryGradParams extends ActivationConstants {
  op: UnaryGradOp;
  length: number;
}

function opCode(p: UnaryGradParams): number {
  if (!Object.hasOwn(opCodes, p.op)) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `unaryGrad: unknown op "${p.op}"; expected one of ${Object.keys(opCodes).join(", ")}`,
    );
  }
  return opCodes[p.op];
}

/**
 * dx = dy · op'(x) over `length` floats (byte addresses in wasm memory); y, the
 * forward output, is read by sigmoid only (pass x for the others). dx may be dy.
 */
export function unaryGrad(p: UnaryGradParams, x: number, y: number, dy: number, dx: number): void {
  const code = opCode(p);
  checkIntegers("unaryGrad", p, ["length"], 0);
  const [a, b] = activationConstants(p);
  wasm().unaryGrad(code, x, y, dy, dx, p.length, a, b);
}

const derivatives: Record<UnaryGradOp, (x: number, y: number, a: number, b: number) => number> = {
  relu: (x) => (x > 0 ? 1 : 0),
  leakyRelu: (x, _y, a) => (x < 0 ? a : 1),
  clip: (x, _y, a, b) => (x >= a && x <= b ? 1 : 0),
  sigmoid: (_x, y) => y * (1 - y),
  hardSigmoid: (x, _y, a, b) => (a * x + b > 0 && a * x + b < 1 ? a : 0),
  hardSwish: (x) => (x <= -3 ? 0 : x >= 3 ? 1 : x / 3 + 0.5),
};

/** Plain reference: same contract as unaryGrad, on typed arrays. */
export function unaryGradReference(
  p: UnaryGradParams,
  x: FloatArray,
  y: FloatArray,
  dy: FloatArray,
  dx: FloatArray,
): void {
  opCode(p);
  const [a, b] = activationConstants(p);
  const f = derivatives[p.op];
  for (let i = 0; i < p.length; i++) dx[i] = f(x[i], y[i], a, b) === 0 ? 0 : dy[i] * f(x[i], y[i], a, b);
}
