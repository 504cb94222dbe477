// Coding length (src/kernels/coding-length.ts): the wasm Gram + Cholesky
// log-determinant against eigenvalues of the Gram matrix found by a plain
// Jacobi rotation routine written here, closed forms, the identity
// det(I + c·WᵀW) = det(I + c·WWᵀ) on non-square matrices, and NaN/Inf inputs.
import assert from "node:assert/strict";
import { AttnroundError, init } from "../mod.ts";
import {
  codingLength,
  codingLengthReference,
  gramLogDet,
  gramLogDetReference,
} from "../src/kernels/coding-length.ts";
import { randomFloats } from "./helpers.ts";
import { fenced, randomInts } from "./kernels-helpers.ts";

/** Eigenvalues of the symmetric s × s matrix a (float64, row-major) by cyclic Jacobi rotations. */
function jacobiEigenvalues(input: Float64Array, s: number): Float64Array {
  const a = input.slice();
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0, diag = 0;
    for (let i = 0; i < s; i++) {
      diag += a[i * s + i] ** 2;
      for (let j = i + 1; j < s; j++) off += a[i * s + j] ** 2;
    }
    if (off <= 1e-30 * diag || off === 0) break;
    for (let p = 0; p < s; p++) {
      for (let q = p + 1; q < s; q++) {
        const apq = a[p * s + q];
        if (apq === 0) continue;
        // The rotation (c, t) that zeroes a[p][q].
        const theta = (a[q * s + q] - a[p * s + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), sn = t * c;
        for (let k = 0; k < s; k++) {
          const akp = a[k * s + p], akq = a[k * s + q];
          a[k * s + p] = c * akp - sn * akq;
          a[k * s + q] = sn * akp + c * akq;
        }
        for (let k = 0; k < s; k++) {
          const apk = a[p * s + k], aqk = a[q * s + k];
          a[p * s + k] = c * apk - sn * aqk;
          a[q * s + k] = sn * apk + c * aqk;
        }
      }
    }
  }
  return Float64Array.from({ length: s }, (_, i) => a[i * s + i]);
}

/** WᵀW [n × n] in float64 (always the n side, whichever is smaller). */
function gramColumns(w: Float32Array, m: number, n: number): Float64Array {
  const g = new Float64Array(n * n);
  for (let r = 0; r < m; r++) {
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) g[i * n + j] += w[r * n + i] * w[r * n + j];
  }
  return g;
}

/** log2 det(I + c·WᵀW) = Σ log2(1 + c·λ_i) over the eigenvalues of WᵀW. */
function logDetByEigenvalues(w: Float32Array, m: number, n: number, c: number): number {
  return jacobiEigenvalues(gramColumns(w, m, n), n).reduce((sum, l) => sum + Math.log2(1 + c * l), 0);
}

function transpose(w: Float32Array, m: number, n: number): Float32Array {
  const t = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = w[i * n + j];
  return t;
}

function wasmLogDet(w: Float32Array, m: number, n: number, c: number): number {
  const x = fenced(m * n, w);
  try {
    const v = gramLogDet(x.ptr, m, n, c);
    assert.deepEqual(x.read(), w, "the matrix is left as it was");
    return v;
  } finally {
    x.release("w");
  }
}

Deno.test("jacobiEigenvalues (the test's own check) finds the eigenvalues of a known matrix", () => {
  // Q·diag(1, 2, 5)·Qᵀ for a rotation Q in the (0, 2) plane.
  const c = Math.cos(0.7), s = Math.sin(0.7);
  const a = new Float64Array([
    c * c * 1 + s * s * 5,
    0,
    c * s * (5 - 1),
    0,
    2,
    0,
    c * s * (5 - 1),
    0,
    s * s + c * c * 5,
  ]);
  const eig = [...jacobiEigenvalues(a, 3)].sort((x, y) => x - y);
  eig.forEach((v, i) => assert.ok(Math.abs(v - [1, 2, 5][i]) < 1e-12, `eigenvalue ${v}`));
});

Deno.test("gramLogDet matches Σ log2(1 + c·λ) over Jacobi eigenvalues (random matrices up to 64×64)", async () => {
  await init();
  const rand = randomInts(5);
  for (let trial = 0; trial < 60; trial++) {
    const m = rand(1, 64), n = rand(1, 64);
    const w = randomFloats(m * n, 100 + trial).map((v, i) => v * (1 + (i % 7)));
    // c from tiny (near the linear regime) to large (log of large values).
    const c = 10 ** rand(-4, 3);
    const expected = logDetByEigenvalues(w, m, n, c);
    const tolerance = 1e-5 * expected + 1e-6 * Math.min(m, n);
    const actual = wasmLogDet(w, m, n, c);
    assert.ok(
      Math.abs(actual - expected) <= tolerance,
      `${m}×${n}, c ${c}: wasm ${actual}, eigenvalues ${expected}`,
    );
    const reference = gramLogDetReference(w, m, n, c);
    assert.ok(
      Math.abs(reference - expected) <= tolerance,
      `${m}×${n}, c ${c}: reference ${reference} vs ${expected}`,
    );
  }
});

Deno.test("det(I + c·WᵀW) = det(I + c·WWᵀ): W and Wᵀ give the same log det (non-square)", async () => {
  await init();
  for (const [m, n] of [[3, 17], [40, 9], [1, 64], [64, 5], [33, 31]]) {
    const w = randomFloats(m * n, m * 1000 + n);
    const wt = transpose(w, m, n);
    const c = 0.37;
    const a = wasmLogDet(w, m, n, c), b = wasmLogDet(wt, n, m, c);
    assert.ok(Math.abs(a - b) <= 1e-5 * a + 1e-6, `${m}×${n}: ${a} vs transposed ${b}`);
    // And both equal the log det over the larger side's Gram (the n × n one when m < n).
    const big = logDetByEigenvalues(w, m, n, c);
    assert.ok(Math.abs(a - big) <= 1e-5 * a + 1e-6, `${m}×${n}: ${a} vs det over ${n}×${n} ${big}`);
  }
});

Deno.test("closed forms: orthogonal rows, a zero matrix, rank one", async () => {
  await init();
  // Rows r_i = a_i·e_{π(i)} (distinct coordinates): WWᵀ = diag(a_i²), so
  // log2 det(I + c·G) = Σ log2(1 + c·a_i²).
  const m = 6, n = 20;
  const w = new Float32Array(m * n);
  const a = [0.5, -1.25, 2, 3.5, -0.125, 1];
  a.forEach((v, i) => (w[i * n + ((i * 7) % n)] = v));
  const c = 1.7;
  const expected = a.reduce((s, v) => s + Math.log2(1 + c * v * v), 0);
  assert.ok(Math.abs(wasmLogDet(w, m, n, c) - expected) < 1e-6 * expected);
  assert.ok(Math.abs(wasmLogDet(transpose(w, m, n), n, m, c) - expected) < 1e-6 * expected);
  // Orthonormal rows of a Hadamard matrix, scaled: every eigenvalue of WWᵀ is n·h², so
  // L = ((m + n) / 2) · m · log2(1 + (n / (ε² m))·n·h²).
  const size = 16, h = 0.375; // exact in float32
  const hadamard = new Float32Array(size * size);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      let bits = i & j, parity = 0;
      while (bits) (parity ^= bits & 1), (bits >>= 1);
      hadamard[i * size + j] = parity ? -h : h;
    }
  }
  const rows = 5, eps = 0.2;
  const sub = hadamard.slice(0, rows * size);
  const closed = ((rows + size) / 2) * rows * Math.log2(1 + (size / (eps * eps * rows)) * size * h * h);
  const l = codingLength(sub, rows, eps);
  assert.ok(Math.abs(l - closed) < 1e-5 * closed, `Hadamard rows: ${l} vs ${closed}`);
  assert.ok(Math.abs(codingLengthReference(sub, rows, eps) - closed) < 1e-9 * closed);
  // Zero matrix: det I = 1, L = 0. Rank one u·vᵀ: det = 1 + c·|u|²|v|².
  assert.equal(codingLength(new Float32Array(12), 3, 0.1), 0);
  const u = [1, -2, 0.5], v = [0.25, 1, -1, 3];
  const outer = new Float32Array(12).map((_, i) => u[Math.floor(i / 4)] * v[i % 4]);
  const u2 = u.reduce((s, x) => s + x * x, 0), v2 = v.reduce((s, x) => s + x * x, 0);
  assert.ok(Math.abs(wasmLogDet(outer, 3, 4, 0.8) - Math.log2(1 + 0.8 * u2 * v2)) < 1e-6);
});

Deno.test("the coding length grows with the information: more rank, smaller ε", async () => {
  await init();
  const m = 32, n = 48;
  const full = randomFloats(m * n, 9);
  // Rank 2: every row a combination of two directions.
  const d = randomFloats(2 * n, 10), coef = randomFloats(2 * m, 11);
  const low = new Float32Array(m * n).map((_, i) => {
    const r = Math.floor(i / n), j = i % n;
    return coef[2 * r] * d[j] + coef[2 * r + 1] * d[n + j];
  });
  const rms = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
  const eps = (x: Float32Array) => 0.1 * rms(x) * Math.sqrt(n);
  assert.ok(codingLength(low, m, eps(low)) < 0.5 * codingLength(full, m, eps(full)));
  assert.ok(codingLength(full, m, 0.05) > codingLength(full, m, 0.5));
});

Deno.test("NaN or ±Infinity in the matrix is an INVALID_DATA error naming the element, not NaN", async () => {
  await init();
  for (const [m, n] of [[5, 9], [9, 5]]) {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const w = randomFloats(m * n, 3);
      w[2 * n + 3] = bad;
      assert.throws(
        () => wasmLogDet(w, m, n, 1),
        (e) => e instanceof AttnroundError && e.code === "INVALID_DATA" && /row 2, column 3/.test(e.message),
      );
      assert.throws(
        () => codingLength(w, m, 0.1),
        (e) => e instanceof AttnroundError && e.code === "INVALID_DATA",
      );
      assert.throws(
        () => gramLogDetReference(w, m, n, 1),
        (e) => e instanceof AttnroundError && e.code === "INVALID_DATA",
      );
    }
  }
  // Finite values whose Gram matrix overflows float32 make I + c·G not positive definite: an error too.
  const huge = new Float32Array([3e19, 3e19, 3e19, -3e19]);
  assert.throws(
    () => wasmLogDet(huge, 2, 2, 1),
    (e) => e instanceof AttnroundError && e.code === "INVALID_DATA",
  );
  assert.throws(() => codingLength(randomFloats(6, 1), 4, 0.1), (e) => e instanceof AttnroundError);
  assert.throws(() => codingLength(randomFloats(6, 1), 2, 0), (e) => e instanceof AttnroundError);
});
