// Matrix product C = op(A)·op(B) (+ C). The wasm SIMD kernel lives in
// assembly/gemm.ts; gemmReference is the plain loop the tests hold it to.
import { AttnroundError } from "../errors.ts";
import { Tensor } from "../tensor.ts";
import { alloc, allocF32, f32, free, wasm } from "../wasm.ts";
import type { FloatArray } from "./planes.ts";

export interface GemmShape {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  lda: number;
  ldb: number;
  ldc: number;
  accumulate: boolean;
}

/** Runs the wasm GEMM on operands already in wasm memory (byte addresses). */
export function gemmAt(s: GemmShape, a: number, b: number, c: number): void {
  wasm().gemm(+s.transA, +s.transB, s.m, s.n, s.k, a, s.lda, b, s.ldb, c, s.ldc, +s.accumulate);
}

/** Plain reference: same contract as gemmAt, on typed arrays, accumulating in float64. */
export function gemmReference(s: GemmShape, a: FloatArray, b: FloatArray, c: FloatArray): void {
  for (let i = 0; i < s.m; i++) {
    for (let j = 0; j < s.n; j++) {
      let sum = 0;
      for (let p = 0; p < s.k; p++) {
        const av = s.transA ? a[p * s.lda + i] : a[i * s.lda + p];
        const bv = s.transB ? b[j * s.ldb + p] : b[p * s.ldb + j];
        sum += av * bv;
      }
      c[i * s.ldc + j] = s.accumulate ? c[i * s.ldc + j] + sum : sum;
    }
  }
}

export interface MatmulOptions {
  /** Use the transpose of `a` (so `a` is K×M). */
  transA?: boolean;
  /** Use the transpose of `b` (so `b` is N×K). */
  transB?: boolean;
}

/** 2-D float32 matrix product on the wasm SIMD kernel. */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  if (a.dtype !== "float32" || b.dtype !== "float32" || a.shape.length !== 2 || b.shape.length !== 2) {
    throw new AttnroundError("INVALID_ARGUMENT", "matmul takes two 2-D float32 tensors");
  }
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const [m, k] = transA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
  const [kb, n] = transB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
  if (k !== kb) {
    throw new AttnroundError(
      "SHAPE_MISMATCH",
      `matmul: inner dimensions differ (${k} vs ${kb}) for shapes [${a.shape}] and [${b.shape}]`,
    );
  }
  const pa = allocF32(a.data as Float32Array);
  const pb = allocF32(b.data as Float32Array);
  const pc = alloc(m * n * 4);
  try {
    gemmAt(
      { transA, transB, m, n, k, lda: a.shape[1], ldb: b.shape[1], ldc: n, accumulate: false },
      pa,
      pb,
      pc,
    );
    return new Tensor(f32(pc, m * n).slice(), [m, n]);
  } finally {
    free(pc);
    free(pb);
    free(pa);
  }
}
