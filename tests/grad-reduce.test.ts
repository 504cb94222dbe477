// Backward of the reductions and GlobalMaxPool against float64 finite differences.
import { init } from "../mod.ts";
import { Tensor } from "../src/tensor.ts";
import { awayFromZero, checkGradient, type Input, int64, uniform } from "./grad-helpers.ts";

interface Reducer {
  init: number;
  step: (acc: number, v: number) => number;
  finish: (acc: number, count: number) => number;
}

const reducers: Record<string, Reducer> = {
  ReduceSum: { init: 0, step: (a, v) => a + v, finish: (a) => a },
  ReduceMean: { init: 0, step: (a, v) => a + v, finish: (a, n) => a / n },
  ReduceMax: { init: -Infinity, step: Math.max, finish: (a) => a },
  ReduceMin: { init: Infinity, step: Math.min, finish: (a) => a },
  ReduceProd: { init: 1, step: (a, v) => a * v, finish: (a) => a },
  ReduceSumSquare: { init: 0, step: (a, v) => a + v * v, finish: (a) => a },
  ReduceL1: { init: 0, step: (a, v) => a + Math.abs(v), finish: (a) => a },
  ReduceL2: { init: 0, step: (a, v) => a + v * v, finish: (a) => Math.sqrt(a) },
};

/** The reduction over `axes` (all when empty) in float64, output in row-major order of the kept axes. */
function reference(r: Reducer, shape: number[], axes: number[]): (inputs: Input[]) => Float64Array[] {
  const rank = shape.length;
  const reduced = new Set((axes.length ? axes : shape.map((_, i) => i)).map((a) => (a + rank) % rank));
  const kept = shape.map((d, i) => (reduced.has(i) ? 1 : d));
  const slots = kept.reduce((a, b) => a * b, 1), count = shape.reduce((a, b) => a * b, 1) / slots;
  return ([x]) => {
    const acc = new Float64Array(slots).fill(r.init), xd = x as Float64Array;
    const index = new Array<number>(rank).fill(0);
    for (let i = 0; i < xd.length; i++) {
      let slot = 0;
      for (let d = 0; d < rank; d++) slot = slot * kept[d] + (reduced.has(d) ? 0 : index[d]);
      acc[slot] = r.step(acc[slot], xd[i]);
      for (let d = rank - 1; d >= 0; d--) {
        if (++index[d] < shape[d]) break;
        index[d] = 0;
      }
    }
    return [acc.map((a) => r.finish(a, count))];
  };
}

function reduceCase(
  op: string,
  shape: number[],
  axes: number[],
  opset: number,
  keepdims: number,
  seed: number,
) {
  const axesAsInput = opset >= (op === "ReduceSum" ? 13 : 18);
  const attributes: Record<string, number | number[]> = { keepdims };
  const inputs: (Tensor | undefined)[] = [
    op === "ReduceL1" || op === "ReduceProd" ? awayFromZero(shape, seed, 0.2) : uniform(shape, seed),
  ];
  if (axesAsInput) {
    if (axes.length) inputs.push(int64(axes));
  } else if (axes.length) attributes.axes = axes;
  checkGradient({
    name: `${op} [${shape}] axes [${axes}] keepdims ${keepdims} (opset ${opset})`,
    op,
    opset,
    attributes,
    inputs,
    reference: reference(reducers[op], shape, axes),
  }, seed);
}

Deno.test("reductions: axes as attribute and as input, negative axes, keepdims, all axes", async () => {
  await init();
  let seed = 1;
  for (const op of Object.keys(reducers)) {
    reduceCase(op, [2, 3, 4], [-1], 13, 1, seed++);
    reduceCase(op, [2, 3, 4], [0, 2], 13, 0, seed++);
    reduceCase(op, [2, 3, 4], [1], 18, 1, seed++);
    reduceCase(op, [3, 2, 2, 3], [-3, -1], 18, 0, seed++);
    reduceCase(op, [3, 5], [], 18, 1, seed++);
    reduceCase(op, [4, 3], [], 11, 0, seed++);
  }
});

Deno.test("ReduceMean with noop_with_empty_axes passes the gradient through; ReduceProd with a zero", async () => {
  await init();
  checkGradient({
    name: "ReduceMean noop",
    op: "ReduceMean",
    opset: 18,
    attributes: { noop_with_empty_axes: 1 },
    inputs: [uniform([2, 3], 1)],
    reference: ([x]) => [Float64Array.from(x as Float64Array)],
  });
  // One zero in the reduced slot: only its own derivative survives.
  const x = awayFromZero([2, 4], 2, 0.3);
  (x.data as Float32Array)[5] = 0;
  checkGradient({
    name: "ReduceProd with a zero",
    op: "ReduceProd",
    opset: 13,
    attributes: { axes: [1], keepdims: 0 },
    inputs: [x],
    reference: reference(reducers.ReduceProd, [2, 4], [1]),
  });
});

Deno.test("GlobalMaxPool gradient", async () => {
  await init();
  checkGradient({
    name: "GlobalMaxPool [2, 3, 4, 5]",
    op: "GlobalMaxPool",
    inputs: [uniform([2, 3, 4, 5], 3)],
    reference: reference(reducers.ReduceMax, [2, 3, 4, 5], [2, 3]),
  });
});
