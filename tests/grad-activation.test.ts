// Backward of the elementwise functions (Tanh, Erf, Sqrt, Exp, …) and PRelu against float64 finite differences.
import { init } from "../mod.ts";
import { Tensor } from "../src/tensor.ts";
import { awayFromZero, checkGradient, type Input, uniform } from "./grad-helpers.ts";

const f64 = (v: Input) => v as Float64Array;

/** erf to float64 precision (Abramowitz–Stegun 7.1.26 is too coarse for finite differences): its Taylor series. */
function erf(x: number): number {
  if (Math.abs(x) > 5) return Math.sign(x);
  let sum = 0, term = x;
  for (let n = 0; n < 200; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

const shape = [2, 3, 4, 5];

/** t + by: away from a kink at `by`. */
const shifted = (t: Tensor, by: number) => new Tensor((t.data as Float32Array).map((v) => v + by), t.shape);
const SELU_ALPHA = 1.67326319217681884765625, SELU_GAMMA = 1.05070102214813232421875;

interface UnaryCase {
  op: string;
  fn: (x: number) => number;
  /** Inputs: away from kinks and outside the domain's edges. */
  x: Tensor;
  attributes?: Record<string, number>;
}

const cases: UnaryCase[] = [
  { op: "Tanh", fn: Math.tanh, x: uniform(shape, 1, -3, 3) },
  { op: "Erf", fn: erf, x: uniform(shape, 2, -2.5, 2.5) },
  { op: "Sqrt", fn: Math.sqrt, x: uniform(shape, 3, 0.1, 4) },
  { op: "Exp", fn: Math.exp, x: uniform(shape, 4, -3, 3) },
  { op: "Log", fn: Math.log, x: uniform(shape, 5, 0.1, 4) },
  { op: "Neg", fn: (x) => -x, x: uniform(shape, 6) },
  { op: "Abs", fn: Math.abs, x: awayFromZero(shape, 7) },
  { op: "Reciprocal", fn: (x) => 1 / x, x: awayFromZero(shape, 8, 0.3) },
  { op: "Sin", fn: Math.sin, x: uniform(shape, 9, -4, 4) },
  { op: "Cos", fn: Math.cos, x: uniform(shape, 10, -4, 4) },
  { op: "Tan", fn: Math.tan, x: uniform(shape, 11, -1.2, 1.2) },
  { op: "Asin", fn: Math.asin, x: uniform(shape, 12, -0.9, 0.9) },
  { op: "Acos", fn: Math.acos, x: uniform(shape, 13, -0.9, 0.9) },
  { op: "Atan", fn: Math.atan, x: uniform(shape, 14, -3, 3) },
  { op: "Sinh", fn: Math.sinh, x: uniform(shape, 15, -2, 2) },
  { op: "Cosh", fn: Math.cosh, x: uniform(shape, 16, -2, 2) },
  { op: "Asinh", fn: Math.asinh, x: uniform(shape, 17, -3, 3) },
  { op: "Acosh", fn: Math.acosh, x: uniform(shape, 18, 1.2, 4) },
  { op: "Atanh", fn: Math.atanh, x: uniform(shape, 19, -0.9, 0.9) },
  { op: "Softplus", fn: (x) => Math.log1p(Math.exp(x)), x: uniform(shape, 20, -5, 5) },
  { op: "Softsign", fn: (x) => x / (1 + Math.abs(x)), x: awayFromZero(shape, 21) },
  { op: "Elu", fn: (x) => (x < 0 ? Math.exp(x) - 1 : x), x: awayFromZero(shape, 22) },
  {
    op: "Elu",
    fn: (x) => (x < 0 ? 0.3 * (Math.exp(x) - 1) : x),
    x: awayFromZero(shape, 23),
    attributes: { alpha: 0.3 },
  },
  {
    op: "Selu",
    fn: (x) => SELU_GAMMA * (x > 0 ? x : SELU_ALPHA * (Math.exp(x) - 1)),
    x: awayFromZero(shape, 24),
  },
  {
    op: "Selu",
    fn: (x) => 1.5 * (x > 0 ? x : 2 * (Math.exp(x) - 1)),
    x: awayFromZero(shape, 25),
    attributes: { alpha: 2, gamma: 1.5 },
  },
  {
    op: "Celu",
    fn: (x) => Math.max(0, x) + Math.min(0, 0.7 * (Math.exp(x / 0.7) - 1)),
    x: awayFromZero(shape, 26),
    attributes: { alpha: 0.7 },
  },
  {
    op: "ThresholdedRelu",
    fn: (x) => (x > 0.4 ? x : 0),
    x: shifted(awayFromZero(shape, 27), 0.4),
    attributes: { alpha: 0.4 },
  },
  {
    op: "Shrink",
    fn: (x) => (x < -0.5 ? x + 0.2 : x > 0.5 ? x - 0.2 : 0),
    x: shifted(awayFromZero(shape, 28), 0.5),
    attributes: { bias: 0.2, lambd: 0.5 },
  },
];

Deno.test("elementwise functions: dx = dy · f'(x) against finite differences", async () => {
  await init();
  cases.forEach((c, i) => {
    checkGradient({
      name: `${c.op}${c.attributes ? ` ${JSON.stringify(c.attributes)}` : ""}`,
      op: c.op,
      attributes: c.attributes,
      inputs: [c.x],
      reference: ([x]) => [f64(x).map(c.fn)],
    }, i + 1);
  });
});

function preluCase(name: string, xShape: number[], slopeShape: number[], opset: number, seed: number): void {
  // Before opset 7 a 1-D slope of C values applies per channel (axis 1).
  const perChannel = opset < 7 && slopeShape.length === 1 && slopeShape[0] === xShape[1] &&
    xShape.length > 2;
  const strides = xShape.map((_, d) => xShape.slice(d + 1).reduce((a, b) => a * b, 1));
  const slopeAt = (flat: number) => {
    const index = xShape.map((dim, d) => Math.floor(flat / strides[d]) % dim);
    if (perChannel) return index[1];
    let o = 0;
    slopeShape.forEach((dim, j) => {
      o = o * dim + (dim === 1 ? 0 : index[xShape.length - slopeShape.length + j]);
    });
    return o;
  };
  checkGradient({
    name,
    op: "PRelu",
    opset,
    inputs: [awayFromZero(xShape, seed), uniform(slopeShape, seed + 1, 0.05, 0.5)],
    reference: ([x, s]) => [f64(x).map((v, i) => (v < 0 ? f64(s)[slopeAt(i)] * v : v))],
  }, seed);
}

Deno.test("PRelu gradient: per-channel and scalar slopes, the slope trained too", async () => {
  await init();
  preluCase("PRelu per-channel slope [3, 1, 1]", [2, 3, 4, 5], [3, 1, 1], 16, 1);
  preluCase("PRelu scalar slope", [2, 3, 4], [1], 16, 3);
  preluCase("PRelu slope over the last axis", [2, 3, 4], [4], 16, 5);
  preluCase("PRelu 1-D per-channel slope (opset 6)", [2, 3, 2, 2], [3], 6, 7);
});
