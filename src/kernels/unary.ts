// Elementwise unary ops, float32 (ONNX Relu, LeakyRelu, Clip, Sigmoid,
// HardSigmoid, HardSwish, Sqrt, Exp, Tanh, Erf, Neg, Abs, Reciprocal). The wasm
// kernel is assembly/unary.ts; unaryReference computes each op in float64 with
// Math.* (and erfReference, since JavaScript has no Math.erf) and rounds once.
import { AttnroundError } from "../errors.ts";
import { wasm } from "../wasm.ts";
import { checkIntegers, type FloatArray } from "./planes.ts";

export type UnaryOp =
  | "relu"
  | "leakyRelu"
  | "clip"
  | "sigmoid"
  | "hardSigmoid"
  | "hardSwish"
  | "sqrt"
  | "exp"
  | "tanh"
  | "erf"
  | "neg"
  | "abs"
  | "reciprocal";

const opCodes: Record<UnaryOp, number> = {
  relu: 0,
  leakyRelu: 1,
  clip: 2,
  sigmoid: 3,
  hardSigmoid: 4,
  hardSwish: 5,
  sqrt: 6,
  exp: 7,
  tanh: 8,
  erf: 9,
  neg: 10,
  abs: 11,
  reciprocal: 12,
};

/** An activation's constants, as ONNX names them (absent ones take ONNX's defaults). */
export interface ActivationConstants {
  /** leakyRelu slope (default 0.01); hardSigmoid slope (default 0.2). */
  alpha?: number;
  /** hardSigmoid offset (default 0.5). */
  beta?: number;
  /** clip bounds (default ∓Infinity). */
  min?: number;
  max?: number;
}

export interface UnaryParams extends ActivationConstants {
  op: UnaryOp;
  /** Number of elements. */
  length: number;
}

/** The two constants the wasm kernels (forward and backward) take for an op, ONNX defaults applied. */
export function activationConstants(p: ActivationConstants & { op: string }): [number, number] {
  switch (p.op) {
    case "leakyRelu":
      return [p.alpha ?? 0.01, 0];
    case "clip":
      return [p.min ?? -Infinity, p.max ?? Infinity];
    case "hardSigmoid":
      return [p.alpha ?? 0.2, p.beta ?? 0.5];
    case "hardSwish":
      return [1 / 6, 0.5];
    default:
      return [0, 0];
  }
}

function opCode(p: UnaryParams): number {
  const code = opCodes[p.op];
  if (code === undefined || !Object.hasOwn(opCodes, p.op)) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `unary: unknown op "${p.op}"; expected one of ${Object.keys(opCodes).join(", ")}`,
    );
  }
  return code;
}

/** y = op(x) over `length` floats at byte addresses x and y; x === y (in place) is fine. */
export function unary(p: UnaryParams, x: number, y: number): void {
  const code = opCode(p);
  checkIntegers("unary", p, ["length"], 0);
  const [a, b] = activationConstants(p);
  wasm().unary(code, x, y, p.length, a, b);
}

/** Plain reference: same contract as unary, on typed arrays (which may be the same array). */
export function unaryReference(p: UnaryParams, x: FloatArray, y: FloatArray): void {
  opCode(p);
  const [a, b] = activationConstants(p);
  const f = referenceOps[p.op];
  for (let i = 0; i < p.length; i++) y[i] = f(x[i], a, b);
}

const hardSigmoid = (v: number, a: number, b: number) => Math.max(0, Math.min(1, a * v + b));

const referenceOps: Record<UnaryOp, (v: number, a: number, b: number) => number> = {
  relu: (v) => Math.max(v, 0),
  leakyRelu: (v, a) => v < 0 ? a * v : v,
  clip: (v, a, b) => Math.min(Math.max(v, a), b),
  sigmoid: (v) => 1 / (1 + Math.exp(-v)),
  hardSigmoid,
  hardSwish: (v, a, b) => v * hardSigmoid(v, a, b),
  sqrt: Math.sqrt,
  exp: Math.exp,
  tanh: Math.tanh,
  erf: erfReference,
  neg: (v) => -v,
  abs: Math.abs,
  reciprocal: (v) => 1 / v,
};

/**
 * erf in float64, to ~1e-15 relative: the Maclaurin series below |x| = 2,
 * erfc's continued fraction (Lentz) above; ±1 beyond |x| = 6.
 */
export function erfReference(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax >= 6) return Math.sign(x);
  if (ax < 2) {
    // erf x = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1))
    let term = x, sum = x;
    const x2 = x * x;
    for (let n = 1; n < 80; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc x = e^(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
  const tiny = 1e-300;
  let f = ax, c = ax, d = 0;
  for (let k = 1; k < 300; k++) {
    const an = k / 2;
    d = ax + an * d;
    d = d === 0 ? 1 / tiny : 1 / d;
    c = ax + an / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}
