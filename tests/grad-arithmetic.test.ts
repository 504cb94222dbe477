// Backward of Pow, Mod, Max, Min, Sum, Mean, Where and Cast against float64 finite differences.
import { init } from "../mod.ts";
import { Tensor } from "../src/tensor.ts";
import { awayFromZero, checkGradient, type Input, uniform } from "./grad-helpers.ts";

/** A reference input's elements: float64 for float inputs, the tensor's own data for the others. */
const valuesOf = (v: Input) => (v instanceof Tensor ? v.data : v!) as ArrayLike<number | bigint>;

/** numpy broadcasting of any number of operands in float64: y[i] = fn(the operands' elements at i). */
function broadcastN(
  fn: (values: number[]) => number,
  shapes: (readonly number[])[],
): (inputs: Input[]) => Float64Array[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    s.forEach((d, i) => (out[rank - s.length + i] = Math.max(out[rank - s.length + i], d)));
  }
  const size = out.reduce((a, d) => a * d, 1);
  const offset = (shape: readonly number[], index: number[]) => {
    let o = 0;
    shape.forEach((d, i) => (o = o * d + (d === 1 ? 0 : index[rank - shape.length + i])));
    return o;
  };
  return (inputs) => {
    const y = new Float64Array(size), index = new Array<number>(rank).fill(0);
    for (let i = 0; i < size; i++) {
      y[i] = fn(inputs.map((v, k) => Number(valuesOf(v)[offset(shapes[k], index)])));
      for (let d = rank - 1; d >= 0; d--) {
        if (++index[d] < out[d]) break;
        index[d] = 0;
      }
    }
    return [y];
  };
}

Deno.test("Pow gradient: base and exponent, broadcast, a constant integer exponent", async () => {
  await init();
  const pairs: [number[], number[]][] = [[[2, 3, 4], [2, 3, 4]], [[2, 3, 4], []], [[3, 1], [1, 4]], [
    [4],
    [2, 3, 4],
  ]];
  pairs.forEach(([aShape, bShape], i) => {
    checkGradient({
      name: `Pow [${aShape}] ^ [${bShape}]`,
      op: "Pow",
      inputs: [uniform(aShape, 2 * i + 1, 0.2, 2), uniform(bShape, 2 * i + 2, -2, 3)],
      reference: broadcastN(([a, b]) => a ** b, [aShape, bShape]),
    }, i + 1);
  });
  // LayerNorm written out squares (x − mean) with a constant exponent 2, negative bases included.
  checkGradient({
    name: "Pow x ^ 2, exponent fixed",
    op: "Pow",
    inputs: [uniform([3, 5], 9, -2, 2), new Tensor(new Float32Array([2]), [])],
    fixed: [1],
    reference: broadcastN(([a]) => a * a, [[3, 5], []]),
  }, 9);
  checkGradient({
    name: "Pow x ^ 3 with an int64 exponent",
    op: "Pow",
    inputs: [uniform([2, 4], 10, -2, 2), new Tensor(new BigInt64Array([3n]), [])],
    reference: broadcastN(([a, b]) => a ** b, [[2, 4], []]),
  }, 10);
});

Deno.test("Mod gradient: fmod and floored, broadcast", async () => {
  await init();
  for (const fmod of [0, 1]) {
    checkGradient({
      name: `Mod fmod ${fmod}`,
      op: "Mod",
      attributes: { fmod },
      // a/b stays away from integers, where the quotient jumps.
      inputs: [uniform([3, 4], 1 + fmod, -3, 3), awayFromZero([4], 3, 0.7)],
      reference: broadcastN(([a, b]) => {
        const q = fmod ? Math.trunc(a / b) : Math.floor(a / b);
        return a - b * q;
      }, [[3, 4], [4]]),
    }, 1 + fmod);
  }
});

Deno.test("Max, Min, Sum, Mean gradients: one to three inputs with broadcasting", async () => {
  await init();
  const shapeSets = [[[2, 3, 4]], [[2, 3, 4], [2, 3, 4]], [[2, 3, 4], [3, 1], [4]], [[1, 5], [3, 1]]];
  const ops: Record<string, (v: number[]) => number> = {
    Max: (v) => Math.max(...v),
    Min: (v) => Math.min(...v),
    Sum: (v) => v.reduce((a, b) => a + b, 0),
    Mean: (v) => v.reduce((a, b) => a + b, 0) / v.length,
  };
  let seed = 1;
  for (const [op, fn] of Object.entries(ops)) {
    for (const shapes of shapeSets) {
      checkGradient({
        name: `${op} of ${shapes.map((s) => `[${s}]`).join(", ")}`,
        op,
        // Distinct random values: no ties within the finite-difference step.
        inputs: shapes.map((s) => uniform(s, seed++)),
        reference: broadcastN(fn, shapes),
      }, seed);
    }
  }
});

Deno.test("Where gradient: the condition splits dy between x and y, all broadcast", async () => {
  await init();
  const cases: [number[], number[], number[]][] = [
    [[2, 3, 4], [2, 3, 4], [2, 3, 4]],
    [[3, 1], [2, 3, 4], []],
    [[4], [3, 1], [2, 1, 4]],
  ];
  cases.forEach(([cShape, xShape, yShape], i) => {
    const c = awayFromZero(cShape, 40 + i);
    const condition = new Tensor(
      Uint8Array.from(c.data as Float32Array, (v) => (v > 0 ? 1 : 0)),
      cShape,
      "bool",
    );
    checkGradient({
      name: `Where [${cShape}] ? [${xShape}] : [${yShape}]`,
      op: "Where",
      inputs: [condition, uniform(xShape, 2 * i + 1), uniform(yShape, 2 * i + 2)],
      reference: broadcastN(([cv, x, y]) => (cv ? x : y), [cShape, xShape, yShape]),
    }, i + 1);
  });
});

Deno.test("Cast and CastLike float to float pass the gradient through", async () => {
  await init();
  const x = uniform([3, 4], 1);
  const copy = ([v]: Input[]) => [Float64Array.from(v as Float64Array)];
  checkGradient({ name: "Cast to float", op: "Cast", attributes: { to: 1 }, inputs: [x], reference: copy });
  checkGradient({
    // The template's values do not move the output: its gradient is zero.
    name: "CastLike float",
    op: "CastLike",
    inputs: [x, new Tensor(new Float32Array(1), [1])],
    reference: copy,
  });
});
