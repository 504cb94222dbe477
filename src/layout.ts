// Row-major layouts: strides, strided walks and axis permutations. Used by the
// engine's ops and by quantization, which keeps each weight in "rows" layout
// (its channel axis first) while the model stores it in its own layout.

export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/**
 * dst[i] = src[offset + Σ_d i_d·strides[d]] for every multi-index i of `shape`
 * (row-major): transposes, strided slices and broadcasts are all this walk.
 */
export function gatherStrided(
  src: ArrayLike<unknown>,
  dst: { [i: number]: unknown; length: number },
  shape: readonly number[],
  strides: readonly number[],
  offset = 0,
): void {
  const rank = shape.length;
  const counter = new Array<number>(rank).fill(0);
  for (let i = 0; i < dst.length; i++) {
    dst[i] = src[offset];
    for (let d = rank - 1; d >= 0; d--) {
      counter[d]++;
      offset += strides[d];
      if (counter[d] < shape[d]) break;
      offset -= strides[d] * counter[d];
      counter[d] = 0;
    }
  }
}

/** The numpy-style broadcast of several shapes, or undefined when they do not broadcast. */
export function broadcastShape(shapes: readonly (readonly number[])[]): number[] | undefined {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const j = rank - s.length + i;
      const d = s[i];
      if (d === out[j] || d === 1) continue;
      if (out[j] !== 1) return undefined;
      out[j] = d;
    }
  }
  return out;
}

/** Permutation that moves axis `axis` of a rank-`rank` tensor to the front. */
export function toRowsPerm(rank: number, axis: number): number[] {
  return [axis, ...[...Array(rank).keys()].filter((i) => i !== axis)];
}

/** The inverse permutation. */
export function inversePerm(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

/** Transpose of `data` (shape `shape`) by `perm` (output axis i = input axis perm[i]); always a copy. */
export function permute<T extends Float32Array | Int32Array>(
  data: T,
  shape: readonly number[],
  perm: readonly number[],
): T {
  if (perm.every((p, i) => p === i)) return data.slice() as T;
  const inStrides = stridesOf(shape);
  const out = new (data.constructor as new (n: number) => T)(data.length);
  gatherStrided(data, out, perm.map((p) => shape[p]), perm.map((p) => inStrides[p]));
  return out;
}

/** `data` of shape `shape` in rows layout: axis `axis` moved to the front. */
export function toRows<T extends Float32Array | Int32Array>(
  data: T,
  shape: readonly number[],
  axis: number,
): T {
  return permute(data, shape, toRowsPerm(shape.length, axis));
}

/** The inverse of toRows: rows-layout data back in the layout `shape` with its channels at `axis`. */
export function fromRows<T extends Float32Array | Int32Array>(
  rows: T,
  shape: readonly number[],
  axis: number,
): T {
  const perm = toRowsPerm(shape.length, axis);
  return permute(rows, perm.map((p) => shape[p]), inversePerm(perm));
}
