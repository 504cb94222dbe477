// Backward of the broadcasting arithmetic and the activations against float64 finite differences.
import { init } from "../mod.ts";
import { broadcastPair } from "../src/kernels/binary.ts";
import { Tensor } from "../src/tensor.ts";
import { awayFromZero, checkGradient, type Input, uniform } from "./grad-helpers.ts";

const f64 = (v: Input) => v as Float64Array;

/** numpy broadcasting in float64. */
function broadcast2(
  fn: (a: number, b: number) => number,
  aShape: readonly number[],
  bShape: readonly number[],
): (inputs: Input[]) => Float64Array[] {
  const out = broadcastPair(aShape, bShape);
  const size = out.reduce((x, d) => x * d, 1);
  const offset = (shape: readonly number[], index: number[]) => {
    let o = 0;
    for (let i = 0; i < shape.length; i++) {
      const axis = out.length - shape.length + i;
      o = o * shape[i] + (shape[i] === 1 ? 0 : index[axis]);
    }
    return o;
  };
  return ([a, b]) => {
    const y = new Float64Array(size), index = new Array<number>(out.length).fill(0);
    for (let i = 0; i < size; i++) {
      y[i] = fn(f64(a)[offset(aShape, index)], f64(b)[offset(bShape, index)]);
      for (let axis = out.length - 1; axis >= 0; axis--) {
        if (++index[axis] < out[axis]) break;
        index[axis] = 0;
      }
    }
    return [y];
  };
}

const ops: Record<string, (a: number, b: number) => number> = {
  Add: (a, b) => a + b,
  Sub: (a, b) => a - b,
  Mul: (a, b) => a * b,
  Div: (a, b) => a / b,
};

const shapePairs: [number[], number[]][] = [
  [[2, 3, 4], [2, 3, 4]],
  [[2, 3, 4, 5], [1, 3, 1, 1]],
  [[1, 3, 1, 1], [2, 3, 4, 5]],
  [[3, 1, 5], [4, 1]],
  [[2, 3, 4], [4]],
  [[2, 3, 4], []],
  [[], [3, 2]],
  [[1, 5], [3, 1]],
  [[2, 1, 3, 1, 2], [1, 4, 1, 5, 1]],
];

Deno.test("Add, Sub, Mul, Div gradients with numpy broadcasting", async () => {
  await init();
  let seed = 1;
  for (const [op, fn] of Object.entries(ops)) {
    for (const [aShape, bShape] of shapePairs) {
      // Divisors stay away from 0.
      const b = op === "Div" ? awayFromZero(bShape, seed + 1, 0.5) : uniform(bShape, seed + 1);
      checkGradient({
        name: `${op} [${aShape}] and [${bShape}]`,
        op,
        inputs: [uniform(aShape, seed), b],
        reference: broadcast2(fn, aShape, bShape),
      }, seed);
      seed += 2;
    }
  }
});

Deno.test("Mul and Div of a tensor by itself: both gradients", async () => {
  await init();
  const x = awayFromZero([3, 4], 5, 0.5);
  for (const [op, fn] of [["Mul", ops.Mul], ["Div", ops.Div]] as const) {
    checkGradient({
      name: `${op} x, x`,
      op,
      inputs: [x, x],
      reference: broadcast2(fn, [3, 4], [3, 4]),
    }, 9);
  }
});

function unaryCase(
  name: string,
  op: string,
  x: Tensor,
  fn: (v: number) => number,
  attributes: Record<string, number> = {},
  opset = 17,
): void {
  checkGradient({
    name,
    op,
    attributes,
    opset,
    inputs: [x],
    reference: ([v]) => [f64(v).map(fn)],
  }, 1);
}

const hardSigmoid = (v: number, a: number, b: number) => Math.max(0, Math.min(1, a * v + b));

Deno.test("Relu, LeakyRelu, Sigmoid, HardSigmoid, HardSwish gradients", async () => {
  await init();
  const shape = [2, 3, 5, 7];
  unaryCase("Relu", "Relu", awayFromZero(shape, 1), (v) => Math.max(v, 0));
  unaryCase("Relu, odd length", "Relu", awayFromZero([3, 7], 2), (v) => Math.max(v, 0));
  unaryCase("LeakyRelu default", "LeakyRelu", awayFromZero(shape, 3), (v) => (v < 0 ? 0.01 * v : v));
  unaryCase("LeakyRelu 0.2", "LeakyRelu", awayFromZero([5, 3], 4), (v) => (v < 0 ? 0.2 * v : v), {
    alpha: 0.2,
  });
  unaryCase("Sigmoid", "Sigmoid", uniform(shape, 5, -6, 6), (v) => 1 / (1 + Math.exp(-v)));
  unaryCase("HardSigmoid default", "HardSigmoid", uniform(shape, 6, -4, 4), (v) => hardSigmoid(v, 0.2, 0.5));
  unaryCase(
    "HardSigmoid 0.3, 0.4",
    "HardSigmoid",
    uniform([3, 11], 7, -4, 4),
    (v) => hardSigmoid(v, 0.3, 0.4),
    { alpha: 0.3, beta: 0.4 },
  );
  unaryCase("HardSwish", "HardSwish", uniform(shape, 8, -5, 5), (v) => v * hardSigmoid(v, 1 / 6, 0.5));
});

const clip = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);

Deno.test("Clip gradient: bounds as attributes (opset 6) and as inputs, also trained (opset 13)", async () => {
  await init();
  const x = uniform([2, 3, 4, 5], 11, -2, 2);
  unaryCase("Clip attributes", "Clip", x, (v) => clip(v, -0.7, 1.2), { min: -0.7, max: 1.2 }, 6);
  unaryCase("Clip without bounds", "Clip", x, (v) => v, {}, 13);
  const scalar = (v: number) => new Tensor(new Float32Array([v]), []);
  checkGradient({
    name: "Clip min, max inputs",
    op: "Clip",
    opset: 13,
    inputs: [x, scalar(-0.55), scalar(0.85)],
    reference: ([v, lo, hi]) => [f64(v).map((e) => clip(e, f64(lo)[0], f64(hi)[0]))],
  }, 2);
  checkGradient({
    name: "Clip max input only",
    op: "Clip",
    opset: 13,
    inputs: [x, undefined, scalar(0.3)],
    reference: ([v, , hi]) => [f64(v).map((e) => clip(e, -Infinity, f64(hi)[0]))],
  }, 3);
  checkGradient({
    name: "Clip with fixed bounds",
    op: "Clip",
    opset: 13,
    inputs: [x, scalar(-1), scalar(1)],
    fixed: [1, 2],
    reference: ([v]) => [f64(v).map((e) => clip(e, -1, 1))],
  }, 4);
});
