// Adam on the latent quantization variables (attention v, AdaRound α, LSQ
// steps); the wasm kernel is assembly/quant-adam.ts. Bias corrections are
// folded into two constants here, with β^t by repeated squaring (exact IEEE
// multiplications, unlike Math.pow, whose last bit is up to the engine), so
// that every runtime takes bit-identical steps.
import { AttnroundError } from "../errors.ts";
import { wasm } from "../wasm.ts";
import { checkIntegers } from "./planes.ts";

/** β^t for an integer t >= 0 by binary exponentiation. */
function powInt(base: number, t: number): number {
  let result = 1, b = base, e = t;
  while (e > 0) {
    if (e & 1) result *= b;
    b *= b;
    e = Math.floor(e / 2);
  }
  return result;
}

/** The float32 constants of step t (1-based), as the kernel takes them. */
export function adamConstants(lr: number, beta1: number, beta2: number, eps: number, step: number): number[] {
  const f = Math.fround;
  return [
    f(beta1),
    f(1 - beta1),
    f(beta2),
    f(1 - beta2),
    f(lr / (1 - powInt(beta1, step))),
    f(1 / Math.sqrt(1 - powInt(beta2, step))),
    f(eps),
  ];
}

/**
 * One Adam step (t = step, 1-based) in place over n float32 values at
 * param, with gradient grad and moments m, v (zero before step 1), as
 * torch.optim.Adam: m = β1·m + (1-β1)·g, v = β2·v + (1-β2)·g²,
 * param -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps).
 */
export function adamStep(
  param: number,
  grad: number,
  m: number,
  v: number,
  n: number,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
  step: number,
): void {
  checkIntegers("adamStep", { n, step }, ["n"], 0);
  checkIntegers("adamStep", { step }, ["step"], 1);
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1) || !(lr >= 0) || !(eps > 0)) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `adamStep: need 0 <= beta1, beta2 < 1, lr >= 0 and eps > 0; got beta1 ${beta1}, beta2 ${beta2}, lr ${lr}, eps ${eps}`,
    );
  }
  const [b1, c1, b2, c2, stepSize, bias2, e] = adamConstants(lr, beta1, beta2, eps, step);
  wasm().adamStep(param, grad, m, v, n, b1, c1, b2, c2, stepSize, bias2, e);
}

/** The same step on typed arrays in float32 arithmetic: bit-identical to adamStep. */
export function adamStepReference(
  param: Float32Array,
  grad: Float32Array,
  m: Float32Array,
  v: Float32Array,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
  step: number,
): void {
  const f = Math.fround;
  const [b1, c1, b2, c2, stepSize, bias2, e] = adamConstants(lr, beta1, beta2, eps, step);
  for (let i = 0; i < param.length; i++) {
    const g = grad[i];
    const mt = f(f(b1 * m[i]) + f(c1 * g));
    const vt = f(f(b2 * v[i]) + f(c2 * f(g * g)));
    const denom = f(f(f(Math.sqrt(vt)) * bias2) + e);
    param[i] = f(param[i] - f(f(stepSize * mt) / denom));
    m[i] = mt;
    v[i] = vt;
  }
}
