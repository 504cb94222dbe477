import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { erfReference, unary, type UnaryOp, unaryReference } from "../src/kernels/unary.ts";
import { randomFloats } from "./helpers.ts";
import { fenced } from "./kernels-helpers.ts";

const ops: UnaryOp[] = [
  "relu",
  "leakyRelu",
  "clip",
  "sigmoid",
  "hardSigmoid",
  "hardSwish",
  "sqrt",
  "exp",
  "tanh",
  "erf",
  "neg",
  "abs",
  "reciprocal",
];
// Ops whose float32 result is the correctly rounded float64 one: these must match bit for bit.
const exact = new Set<UnaryOp>(["relu", "clip", "sqrt", "neg", "abs", "reciprocal"]);
const FLT_MIN = 1.1754943508222875e-38;

/** Runs op in wasm and in the reference; returns both. */
function runBoth(op: UnaryOp, xs: Float32Array, extra: object = {}) {
  const p = { op, length: xs.length, ...extra };
  const expected = new Float32Array(xs.length);
  unaryReference(p, xs, expected);
  const x = fenced(xs.length, xs), y = fenced(xs.length);
  unary(p, x.ptr, y.ptr);
  const actual = y.read();
  assert.deepEqual(x.read(), xs, `${op}: input changed`);
  x.release("x"), y.release("y");
  return { actual, expected };
}

/**
 * Same NaN-ness, same infinities, else within 1e-6 relative (absolute below the
 * normal range; hardSigmoid's alpha·x + beta cancels near its kink, so 1e-7 there).
 */
function assertAccurate(op: UnaryOp, xs: Float32Array, actual: Float32Array, expected: Float32Array) {
  for (let i = 0; i < xs.length; i++) {
    const a = actual[i], e = expected[i];
    const what = `${op}(${xs[i]}) = ${a}, expected ${e}`;
    if (Number.isNaN(e) || Number.isNaN(a)) assert.ok(Number.isNaN(a) && Number.isNaN(e), what);
    else if (exact.has(op) || !Number.isFinite(e)) assert.ok(Object.is(a, e) || a === e, what);
    else assert.ok(Math.abs(a - e) <= 1e-6 * Math.abs(e) + (op === "hardSigmoid" ? 1e-7 : FLT_MIN), what);
  }
}

const specials = new Float32Array([
  NaN,
  Infinity,
  -Infinity,
  0,
  -0,
  1e-45,
  -1e-45,
  1e-40,
  FLT_MIN,
  1e-30,
  -1e-7,
  0.5,
  -0.625,
  0.625,
  1,
  -1,
  3,
  -3,
  6,
  9.1,
  -9.1,
  20,
  -20,
  44,
  88.7,
  88.73,
  -87.3,
  -88,
  -103,
  -104,
  -105,
  1e10,
  -1e10,
  3.4e38,
  -3.4e38,
]);

Deno.test("unary ops match the reference on random values, specials and every tail length", async () => {
  await init();
  let seed = 1;
  for (const op of ops) {
    const wide = randomFloats(1000, seed++).map((v) => v * 12);
    for (const xs of [wide, specials]) {
      const { actual, expected } = runBoth(op, xs);
      assertAccurate(op, xs, actual, expected);
    }
    for (let len = 0; len <= 9; len++) {
      const xs = randomFloats(len, seed++).map((v) => v * 4);
      const { actual, expected } = runBoth(op, xs);
      assertAccurate(op, xs, actual, expected);
    }
  }
});

Deno.test("exp, sigmoid, tanh and erf stay within 1e-6 relative of Math.* on dense sweeps", async () => {
  await init();
  const sweeps: [UnaryOp, number, number][] = [
    ["exp", -103, 88.7],
    ["exp", -1, 1],
    ["sigmoid", -100, 100],
    ["sigmoid", -4, 4],
    ["tanh", -10, 10],
    ["tanh", -0.7, 0.7],
    ["tanh", -1e-4, 1e-4],
    ["erf", -5, 5],
    ["erf", -1e-3, 1e-3],
  ];
  for (const [op, lo, hi] of sweeps) {
    const n = 200_003;
    const xs = new Float32Array(n);
    for (let i = 0; i < n; i++) xs[i] = lo + ((hi - lo) * i) / (n - 1);
    const { actual, expected } = runBoth(op, xs);
    assertAccurate(op, xs, actual, expected);
  }
});

Deno.test("unary ops run in place (x === y)", async () => {
  await init();
  let seed = 50;
  for (const op of ops) {
    const xs = randomFloats(37, seed++).map((v) => v * 5);
    const expected = new Float32Array(37);
    unaryReference({ op, length: 37 }, xs, expected);
    const x = fenced(37, xs);
    unary({ op, length: 37 }, x.ptr, x.ptr);
    assertAccurate(op, xs, x.read(), expected);
    x.release("x");
  }
});

Deno.test("leakyRelu, clip and hardSigmoid take their constants (defaults as ONNX)", async () => {
  await init();
  const xs = new Float32Array([-4, -1, -0.25, 0, 0.25, 1, 4, NaN]);
  const cases: [UnaryOp, object, number[]][] = [
    ["leakyRelu", {}, [-0.04, -0.01, -0.0025, 0, 0.25, 1, 4, NaN]],
    ["leakyRelu", { alpha: 0.5 }, [-2, -0.5, -0.125, 0, 0.25, 1, 4, NaN]],
    ["clip", { min: -1, max: 0.5 }, [-1, -1, -0.25, 0, 0.25, 0.5, 0.5, NaN]],
    ["clip", { min: 0 }, [0, 0, 0, 0, 0.25, 1, 4, NaN]],
    ["hardSigmoid", {}, [0, 0.3, 0.45, 0.5, 0.55, 0.7, 1, NaN]],
    ["hardSigmoid", { alpha: 0.5, beta: 0.25 }, [0, 0, 0.125, 0.25, 0.375, 0.75, 1, NaN]],
    ["hardSwish", {}, [-0, -1 / 3, -0.25 * (0.5 - 0.25 / 6), 0, 0.25 * (0.5 + 0.25 / 6), 2 / 3, 4, NaN]],
  ];
  for (const [op, extra, want] of cases) {
    const { actual } = runBoth(op, xs, extra);
    for (let i = 0; i < xs.length; i++) {
      const ok = Number.isNaN(want[i]) ? Number.isNaN(actual[i]) : Math.abs(actual[i] - want[i]) <= 1e-6;
      assert.ok(ok, `${op} ${JSON.stringify(extra)} at ${xs[i]}: ${actual[i]}, expected ${want[i]}`);
    }
  }
});

Deno.test("erfReference agrees with tabulated values", () => {
  // Abramowitz & Stegun table 7.1 and erf(x) → ±1.
  const table: [number, number][] = [
    [0, 0],
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [1.5, 0.9661051464753108],
    [2, 0.9953222650189527],
    [2.5, 0.9995930479825550],
    [3, 0.9999779095030014],
    [4, 0.9999999845827421],
  ];
  for (const [x, want] of table) {
    assert.ok(Math.abs(erfReference(x) - want) <= 1e-15, `erf(${x}) = ${erfReference(x)}`);
    assert.ok(Math.abs(erfReference(-x) + want) <= 1e-15, `erf(${-x})`);
  }
  assert.equal(erfReference(Infinity), 1);
  assert.ok(Number.isNaN(erfReference(NaN)));
});

Deno.test("unary rejects an unknown op", async () => {
  await init();
  assert.throws(() => unary({ op: "gelu" as UnaryOp, length: 1 }, 0, 0), { code: "INVALID_ARGUMENT" });
  assert.throws(() => unary({ op: "toString" as UnaryOp, length: 1 }, 0, 0), { code: "INVALID_ARGUMENT" });
});
