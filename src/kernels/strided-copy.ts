// Strided copy of float32 boxes in wasm memory, the data movement behind the
// gradients of Transpose, Slice, Pad, Concat and Split. The wasm kernel is
// assembly/strided-copy.ts; planStridedCopy merges dimensions that both sides
// step through contiguously, so a copy of whole rows runs as one SIMD loop.
import { AttnroundError } from "../errors.ts";
import { wasm } from "../wasm.ts";
import type { FloatArray } from "./planes.ts";

export interface StridedCopyParams {
  /** Extent of the box. */
  shape: readonly number[];
  /** Element strides of the source and destination along each axis (may be negative or 0). */
  srcStrides: readonly number[];
  dstStrides: readonly number[];
  /** Element offsets of the box's first element. */
  srcOffset?: number;
  dstOffset?: number;
}

interface CopyPlan {
  dims: number[];
  src: number[];
  dst: number[];
}

const MAX_RANK = 6;

export function planStridedCopy(p: StridedCopyParams): CopyPlan {
  const dims: number[] = [], src: number[] = [], dst: number[] = [];
  for (let i = 0; i < p.shape.length; i++) {
    const n = p.shape[i];
    if (n === 0) return { dims: [0, 1, 1, 1, 1, 1], src: [0, 0, 0, 0, 0, 0], dst: [0, 0, 0, 0, 0, 0] };
    if (n === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && src[last] === p.srcStrides[i] * n && dst[last] === p.dstStrides[i] * n) {
      dims[last] *= n;
      src[last] = p.srcStrides[i];
      dst[last] = p.dstStrides[i];
    } else {
      dims.push(n);
      src.push(p.srcStrides[i]);
      dst.push(p.dstStrides[i]);
    }
  }
  if (dims.length > MAX_RANK) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `stridedCopy: a box of shape [${p.shape}] needs ${dims.length} loop dimensions; at most ${MAX_RANK} are supported`,
    );
  }
  while (dims.length < MAX_RANK) {
    dims.unshift(1);
    src.unshift(0);
    dst.unshift(0);
  }
  return { dims, src, dst };
}

/** Copies the box from `src` to `dst` (byte addresses of element 0 of each tensor). */
export function stridedCopy(p: StridedCopyParams, src: number, dst: number): void {
  const plan = planStridedCopy(p);
  const [n0, n1, n2, n3, n4, n5] = plan.dims;
  if (n0 === 0) return;
  const [s0, s1, s2, s3, s4, s5] = plan.src;
  const [d0, d1, d2, d3, d4, d5] = plan.dst;
  const from = src + (p.srcOffset ?? 0) * 4, to = dst + (p.dstOffset ?? 0) * 4;
  wasm().stridedCopy(from, to, n0, n1, n2, n3, n4, n5, s0, s1, s2, s3, s4, s5, d0, d1, d2, d3, d4, d5);
}

/** Plain reference: same contract as stridedCopy, on typed arrays. */
export function stridedCopyReference(p: StridedCopyParams, src: FloatArray, dst: FloatArray): void {
  const rank = p.shape.length;
  const size = p.shape.reduce((a, b) => a * b, 1);
  const index = new Array<number>(rank).fill(0);
  for (let i = 0; i < size; i++) {
    let s = p.srcOffset ?? 0, d = p.dstOffset ?? 0;
    for (let k = 0; k < rank; k++) {
      s += index[k] * p.srcStrides[k];
      d += index[k] * p.dstStrides[k];
    }
    dst[d] = src[s];
    for (let k = rank - 1; k >= 0; k--) {
      if (++index[k] < p.shape[k]) break;
      index[k] = 0;
    }
  }
}
