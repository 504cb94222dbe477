import assert from "node:assert/strict";
import { init } from "../mod.ts";
import {
  binary,
  type BinaryOp,
  type BinaryParams,
  binaryReference,
  broadcastPair,
  planBinary,
} from "../src/kernels/binary.ts";
import { randomFloats } from "./helpers.ts";
import { fenced, randomInts } from "./kernels-helpers.ts";

const ops: BinaryOp[] = ["add", "sub", "mul", "div", "pow", "max", "min"];
const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** pow needs positive bases to be interesting; the other ops take anything. */
function operand(op: BinaryOp, length: number, seed: number, which: "a" | "b"): Float32Array {
  const v = randomFloats(length, seed);
  if (op !== "pow") return v.map((x) => x * 3);
  return which === "a" ? v.map((x) => Math.abs(x) * 4 + 0.01) : v.map((x) => x * 3);
}

function check(p: BinaryParams, seed: number, inPlace: "" | "a" | "b" = "") {
  const as = operand(p.op, size(p.aShape), seed, "a"), bs = operand(p.op, size(p.bShape), seed + 1, "b");
  const n = size(p.outShape);
  const expected = new Float32Array(n);
  binaryReference(p, as, bs, expected);
  const a = fenced(as.length, as), b = fenced(bs.length, bs);
  const y = inPlace === "a" ? a : inPlace === "b" ? b : fenced(n);
  binary(p, a.ptr, b.ptr, y.ptr);
  const actual = y.read();
  if (inPlace !== "a") assert.deepEqual(a.read(), as, "a changed");
  if (inPlace !== "b") assert.deepEqual(b.read(), bs, "b changed");
  a.release("a"), b.release("b");
  if (!inPlace) y.release("y");
  const what = `${p.op} [${p.aShape}] [${p.bShape}]${inPlace ? ` in place (${inPlace})` : ""}`;
  for (let i = 0; i < n; i++) {
    const e = expected[i], g = actual[i];
    // All but pow are correctly rounded in both; pow is Math.pow beside a float64 port of musl's.
    const ok = Number.isNaN(e)
      ? Number.isNaN(g)
      : p.op === "pow"
      ? g === e || Math.abs(g - e) <= 1e-6 * Math.abs(e)
      : Object.is(g, e);
    assert.ok(ok, `${what}: element ${i} is ${g}, expected ${e}`);
  }
}

const shapePairs: [number[], number[]][] = [
  [[2, 3, 5, 7], [2, 3, 5, 7]],
  [[17], [17]],
  [[3], [3]],
  [[2, 5, 3, 3], []],
  [[], [2, 5, 3, 3]],
  [[1], [4, 9]],
  [[2, 17, 5, 3], [1, 17, 1, 1]],
  [[1, 17, 1, 1], [2, 17, 5, 3]],
  [[2, 6, 4, 4], [6, 1, 1]],
  [[5, 7], [7]],
  [[5, 7], [5, 1]],
  [[2, 1, 3], [1, 4, 1]],
  [[3, 1, 5, 1, 7, 1], [1, 2, 1, 4, 1, 3]],
  [[2, 3, 2, 3, 2, 3], [3, 1, 3, 1, 3]],
  [[1, 1, 1], [1]],
  [[4, 0, 3], [3]],
];

Deno.test("binary ops with numpy broadcasting match the reference exactly (pow to 1e-6)", async () => {
  await init();
  let seed = 1;
  for (const op of ops) {
    for (const [aShape, bShape] of shapePairs) {
      check({ op, aShape, bShape, outShape: broadcastPair(aShape, bShape) }, seed);
      seed += 2;
    }
  }
});

Deno.test("binary ops on random broadcast shapes up to 6 dimensions", async () => {
  await init();
  const r = randomInts(3);
  for (let i = 0; i < 200; i++) {
    const rank = r(0, 6);
    const out = Array.from({ length: rank }, () => r(1, 5));
    const drop = (s: number[]) => s.slice(r(0, s.length)).map((d) => (r(0, 2) === 0 ? 1 : d));
    const aShape = drop(out), bShape = drop(out);
    const op = ops[r(0, ops.length - 1)];
    check({ op, aShape, bShape, outShape: broadcastPair(aShape, bShape) }, 100 + 2 * i);
  }
});

Deno.test("binary runs in place over the operand with the output's shape", async () => {
  await init();
  let seed = 900;
  for (const op of ops) {
    check({ op, aShape: [2, 5, 3, 3], bShape: [2, 5, 3, 3], outShape: [2, 5, 3, 3] }, seed++, "a");
    check({ op, aShape: [2, 5, 3, 3], bShape: [5, 1, 1], outShape: [2, 5, 3, 3] }, seed++, "a");
    check({ op, aShape: [5, 1, 1], bShape: [2, 5, 3, 3], outShape: [2, 5, 3, 3] }, seed++, "b");
    check({ op, aShape: [13], bShape: [], outShape: [13] }, seed++, "a");
  }
});

Deno.test("binary plans merge contiguous dimensions and keep per-channel operands constant along H·W", () => {
  const perChannel = planBinary({
    op: "add",
    aShape: [8, 16, 7, 7],
    bShape: [1, 16, 1, 1],
    outShape: [8, 16, 7, 7],
  });
  assert.deepEqual(perChannel.dims, [1, 1, 1, 8, 16, 49]);
  assert.deepEqual(perChannel.aStrides, [0, 0, 0, 784, 49, 1]);
  assert.deepEqual(perChannel.bStrides, [0, 0, 0, 0, 1, 0]);
  const same = planBinary({ op: "mul", aShape: [2, 3, 4], bShape: [2, 3, 4], outShape: [2, 3, 4] });
  assert.deepEqual(same.dims, [1, 1, 1, 1, 1, 24]);
  const scalar = planBinary({ op: "div", aShape: [2, 3, 4], bShape: [1], outShape: [2, 3, 4] });
  assert.deepEqual([scalar.dims[5], scalar.aStrides[5], scalar.bStrides[5]], [24, 1, 0]);
});

Deno.test("pow: special cases as C and numpy, and the x², x¹, x⁻¹ shortcuts", async () => {
  await init();
  const xs = new Float32Array([1, 1, NaN, -1, -1, 0, -0, -8, 2, Infinity, -Infinity, 0.5, 3]);
  const es = new Float32Array([NaN, Infinity, 0, Infinity, -Infinity, -1, -1, 1 / 3, -1074, 0.5, 0.5, 2, -2]);
  const want = [1, 1, 1, 1, 1, Infinity, -Infinity, NaN, 0, Infinity, Infinity, 0.25, 1 / 9];
  const a = fenced(xs.length, xs), b = fenced(es.length, es), y = fenced(xs.length);
  const n = [xs.length];
  binary({ op: "pow", aShape: n, bShape: n, outShape: n }, a.ptr, b.ptr, y.ptr);
  const got = y.read();
  for (let i = 0; i < xs.length; i++) {
    const ok = Object.is(got[i], want[i]) || Math.abs(got[i] - want[i]) <= 1e-7 * Math.abs(want[i]);
    assert.ok(ok, `pow(${xs[i]}, ${es[i]}) = ${got[i]}, expected ${want[i]}`);
  }
  a.release("a"), b.release("b"), y.release("y");
  for (const e of [2, 1, -1, 0.5, 3]) {
    const bases = new Float32Array([-3, -0.5, -0, 0, 0.7, 1.5, 1e20, NaN, Infinity, -Infinity, 7]);
    const expected = bases.map((v) => Math.pow(v, e));
    const x = fenced(bases.length, bases), s = fenced(1, new Float32Array([e])), out = fenced(bases.length);
    binary(
      { op: "pow", aShape: [bases.length], bShape: [], outShape: [bases.length] },
      x.ptr,
      s.ptr,
      out.ptr,
    );
    const r = out.read();
    for (let i = 0; i < bases.length; i++) {
      const ok = Object.is(r[i], expected[i]) || Math.abs(r[i] - expected[i]) <= 1e-7 * Math.abs(expected[i]);
      assert.ok(ok, `pow(${bases[i]}, ${e}) = ${r[i]}, expected ${expected[i]}`);
    }
    x.release("x"), s.release("s"), out.release("out");
  }
});

Deno.test("binary max/min propagate NaN and order -0 below +0, like Math.max/min", async () => {
  await init();
  const xs = new Float32Array([NaN, 1, -0, 0, -Infinity]), ys = new Float32Array([2, NaN, 0, -0, 5]);
  for (const op of ["max", "min"] as const) {
    const a = fenced(5, xs), b = fenced(5, ys), y = fenced(5);
    binary({ op, aShape: [5], bShape: [5], outShape: [5] }, a.ptr, b.ptr, y.ptr);
    const want = [...xs].map((v, i) => Math[op](v, ys[i]));
    assert.deepEqual([...y.read()], want);
    a.release("a"), b.release("b"), y.release("y");
  }
});

Deno.test("binary rejects shapes that do not broadcast to the output", async () => {
  await init();
  assert.throws(() => planBinary({ op: "add", aShape: [3, 4], bShape: [5], outShape: [3, 4] }), {
    code: "SHAPE_MISMATCH",
  });
  assert.throws(() => planBinary({ op: "add", aShape: [3, 4], bShape: [4], outShape: [3, 5] }), {
    code: "SHAPE_MISMATCH",
  });
  assert.throws(() => planBinary({ op: "mod" as BinaryOp, aShape: [1], bShape: [1], outShape: [1] }), {
    code: "INVALID_ARGUMENT",
  });
  const seven = [2, 1, 2, 1, 2, 1, 2], other = [1, 2, 1, 2, 1, 2, 1];
  assert.throws(
    () => planBinary({ op: "add", aShape: seven, bShape: other, outShape: broadcastPair(seven, other) }),
    { code: "INVALID_ARGUMENT" },
  );
});
