// Batched matrix product with numpy matmul semantics (ONNX MatMul), float32,
// on the wasm GEMM (src/kernels/gemm.ts): 1-D operands gain and then lose a unit
// dimension, leading dimensions broadcast. When only `a` has leading
// dimensions (activations times a weight matrix, the common case) they fold
// into one GEMM with batch·M rows; otherwise one GEMM runs per output matrix.
// No workspace: the GEMM's packing buffers are its own.
import { AttnroundError } from "../errors.ts";
import { gemmAt } from "./gemm.ts";
import { broadcastPair } from "./binary.ts";
import type { FloatArray } from "./planes.ts";

export interface MatmulParams {
  aShape: readonly number[];
  bShape: readonly number[];
}

interface Plan {
  m: number;
  n: number;
  k: number;
  /** Broadcast leading dimensions of the output. */
  batch: number[];
  aBatch: number[];
  bBatch: number[];
  out: number[];
}

function plan(p: MatmulParams): Plan {
  const { aShape, bShape } = p;
  if (aShape.length === 0 || bShape.length === 0) {
    throw new AttnroundError("INVALID_ARGUMENT", "matmul: operands must have at least one dimension");
  }
  const a2 = aShape.length === 1 ? [1, aShape[0]] : [...aShape];
  const b2 = bShape.length === 1 ? [bShape[0], 1] : [...bShape];
  const m = a2[a2.length - 2], k = a2[a2.length - 1];
  const kb = b2[b2.length - 2], n = b2[b2.length - 1];
  if (k !== kb) {
    throw new AttnroundError(
      "SHAPE_MISMATCH",
      `matmul: inner dimensions differ (${k} vs ${kb}) for shapes [${aShape}] and [${bShape}]`,
    );
  }
  const aBatch = a2.slice(0, -2), bBatch = b2.slice(0, -2);
  const batch = broadcastPair(aBatch, bBatch);
  const out = [...batch];
  if (aShape.length > 1) out.push(m);
  if (bShape.length > 1) out.push(n);
  return { m, n, k, batch, aBatch, bBatch, out };
}

/** The output shape of a matmul of these shapes (numpy rules). */
export function matmulOutputShape(p: MatmulParams): number[] {
  return plan(p).out;
}

/** Offset (in matrices) of batch index `index` into an operand with leading dims `dims`, broadcast. */
function batchOffset(index: number[], dims: number[]): number {
  let o = 0;
  for (let i = 0; i < dims.length; i++) {
    const axis = index.length - dims.length + i;
    o = o * dims[i] + (dims[i] === 1 ? 0 : index[axis]);
  }
  return o;
}

/** y = a @ b on tensors in wasm memory (byte addresses); y must not overlap a or b. */
export function matmul(p: MatmulParams, a: number, b: number, y: number): void {
  const { m, n, k, batch, aBatch, bBatch } = plan(p);
  const count = batch.reduce((s, d) => s * d, 1);
  if (count * m * n === 0) return;
  const shape = { transA: false, transB: false, n, k, lda: k, ldb: n, ldc: n, accumulate: false };
  if (bBatch.every((d) => d === 1)) {
    // b is one matrix: a's matrices are contiguous, so they form one tall GEMM.
    gemmAt({ ...shape, m: count * m }, a, b, y);
    return;
  }
  const index = new Array<number>(batch.length).fill(0);
  const gemm = { ...shape, m };
  for (let i = 0; i < count; i++) {
    const ao = batchOffset(index, aBatch) * m * k, bo = batchOffset(index, bBatch) * k * n;
    gemmAt(gemm, a + ao * 4, b + bo * 4, y + i * m * n * 4);
    for (let axis = batch.length - 1; axis >= 0; axis--) {
      if (++index[axis] < batch[axis]) break;
      index[axis] = 0;
    }
  }
}

/** Plain reference: same contract as matmul, on typed arrays, accumulating in float64. */
export function matmulReference(p: MatmulParams, a: FloatArray, b: FloatArray, y: FloatArray): void {
  const { m, n, k, batch, aBatch, bBatch } = plan(p);
  const count = batch.reduce((s, d) => s * d, 1);
  const index = new Array<number>(batch.length).fill(0);
  for (let i = 0; i < count; i++) {
    const ao = batchOffset(index, aBatch) * m * k, bo = batchOffset(index, bBatch) * k * n;
    for (let r = 0; r < m; r++) {
      for (let c = 0; c < n; c++) {
        let sum = 0;
        for (let q = 0; q < k; q++) sum += a[ao + r * k + q] * b[bo + q * n + c];
        y[(i * m + r) * n + c] = sum;
      }
    }
    for (let axis = batch.length - 1; axis >= 0; axis--) {
      if (++index[axis] < batch[axis]) break;
      index[axis] = 0;
    }
  }
}
