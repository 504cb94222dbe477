import assert from "node:assert/strict";
import { init, Tensor } from "../mod.ts";
import { gemmAt, gemmReference, type GemmShape, matmul } from "../src/kernels/gemm.ts";
import { alloc, allocF32, f32, free } from "../src/wasm.ts";
import { randomFloats, worstRelativeError } from "./helpers.ts";

const awkward = [1, 3, 7, 17, 64, 129, 255];

function runBoth(s: GemmShape, seed: number) {
  const rowsA = s.transA ? s.k : s.m;
  const rowsB = s.transB ? s.n : s.k;
  const a = randomFloats(rowsA * s.lda, seed);
  const b = randomFloats(rowsB * s.ldb, seed + 1);
  const c0 = randomFloats(s.m * s.ldc, seed + 2);
  const expected = c0.slice();
  gemmReference(s, a, b, expected);
  const pa = allocF32(a), pb = allocF32(b), pc = allocF32(c0);
  gemmAt(s, pa, pb, pc);
  const actual = f32(pc, c0.length).slice();
  free(pa), free(pb), free(pc);
  return { actual, expected, c0 };
}

for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]]) {
  Deno.test(`gemm transA=${transA} transB=${transB} matches the reference on awkward shapes`, async () => {
    await init();
    let seed = 1;
    for (const m of awkward) {
      for (const n of awkward) {
        for (const k of awkward) {
          const s: GemmShape = {
            transA,
            transB,
            m,
            n,
            k,
            lda: transA ? m : k,
            ldb: transB ? k : n,
            ldc: n,
            accumulate: false,
          };
          const { actual, expected } = runBoth(s, seed++);
          const { worst, at } = worstRelativeError(actual, expected, 1e-4, 1e-5 * Math.sqrt(k));
          assert.ok(
            worst <= 1,
            `m=${m} n=${n} k=${k}: element ${at} is ${actual[at]}, expected ${expected[at]}`,
          );
        }
      }
    }
  });
}

Deno.test("gemm with padded leading dimensions accumulates into C and leaves the padding alone", async () => {
  await init();
  for (const [m, n, k] of [[5, 9, 300], [130, 17, 3], [1, 1030, 2]]) {
    const s: GemmShape = {
      transA: false,
      transB: false,
      m,
      n,
      k,
      lda: k + 3,
      ldb: n + 5,
      ldc: n + 2,
      accumulate: true,
    };
    const { actual, expected, c0 } = runBoth(s, m * 7 + n);
    const { worst, at } = worstRelativeError(actual, expected, 1e-4, 1e-4);
    assert.ok(worst <= 1, `m=${m} n=${n} k=${k}: element ${at} is ${actual[at]}, expected ${expected[at]}`);
    for (let i = 0; i < m; i++) {
      for (let j = n; j < n + 2; j++) assert.equal(actual[i * s.ldc + j], c0[i * s.ldc + j]);
    }
  }
});

Deno.test("gemm with k = 0 writes zeros, or leaves C as it was when accumulating", async () => {
  await init();
  const c = alloc(12 * 4);
  f32(c, 12).fill(7);
  gemmAt(
    { transA: false, transB: false, m: 3, n: 4, k: 0, lda: 1, ldb: 4, ldc: 4, accumulate: true },
    0,
    0,
    c,
  );
  assert.deepEqual([...f32(c, 12)], new Array(12).fill(7));
  gemmAt(
    { transA: false, transB: false, m: 3, n: 4, k: 0, lda: 1, ldb: 4, ldc: 4, accumulate: false },
    0,
    0,
    c,
  );
  assert.deepEqual([...f32(c, 12)], new Array(12).fill(0));
  free(c);
});

Deno.test("matmul checks shapes and survives memory growth", async () => {
  await init();
  const a = new Tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
  const b = new Tensor(new Float32Array([1, 0, 0, 1, 1, 1]), [3, 2]);
  assert.deepEqual([...matmul(a, b).data], [4, 5, 10, 11]);
  assert.deepEqual([...matmul(a, a, { transB: true }).data], [14, 32, 32, 77]);
  assert.throws(() => matmul(a, a), { name: "AttnroundError", code: "SHAPE_MISMATCH" });
  // 64 MiB operands force the wasm memory to grow between calls.
  const big = new Tensor(new Float32Array(4096 * 4096).fill(0.5), [4096, 4096]);
  const col = new Tensor(new Float32Array(4096).fill(2), [4096, 1]);
  const out = matmul(big, col);
  assert.equal(out.data[0], 4096);
  assert.equal(out.data[4095], 4096);
  assert.deepEqual([...matmul(a, b).data], [4, 5, 10, 11]);
});
