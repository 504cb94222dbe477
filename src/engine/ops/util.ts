// Helpers shared by the TypeScript op implementations.
import type { Node } from "../../graph/ir.ts";
import { broadcastShape, stridesOf } from "../../layout.ts";
import { opError } from "../registry.ts";
import type { TensorData } from "../../tensor.ts";
import type { Value } from "../value.ts";

/** Reads an integer tensor (shape arguments, axes, …) as plain numbers. */
export function toNumbers(v: Value): number[] {
  return Array.from(v.data as ArrayLike<number | bigint>, (x) => Number(x));
}

export function normalizeAxis(node: Node, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw opError(node, `axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** numpy-style broadcast of several shapes; the node is invalid if they do not broadcast. */
export function broadcastShapes(node: Node, shapes: (readonly number[])[]): number[] {
  const out = broadcastShape(shapes);
  if (!out) throw opError(node, `shapes ${shapes.map((x) => `[${x}]`).join(" and ")} do not broadcast`);
  return out;
}

/** For every output element, the flat index into an input of `shape` broadcast to `outShape`. */
export function broadcastIndex(shape: readonly number[], outShape: readonly number[]): Int32Array {
  const size = outShape.reduce((a, b) => a * b, 1);
  const rank = outShape.length;
  const inStrides = stridesOf(shape);
  const strides = outShape.map((_, i) => {
    const j = i - (rank - shape.length);
    return j < 0 || shape[j] === 1 ? 0 : inStrides[j];
  });
  const index = new Int32Array(size);
  const counter = new Array<number>(rank).fill(0);
  let offset = 0;
  for (let i = 0; i < size; i++) {
    index[i] = offset;
    for (let d = rank - 1; d >= 0; d--) {
      counter[d]++;
      offset += strides[d];
      if (counter[d] < outShape[d]) break;
      offset -= strides[d] * counter[d];
      counter[d] = 0;
    }
  }
  return index;
}

/** Product of the dimensions. */
export const product = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

/** Writes numbers into any typed array; 64-bit integer arrays take them truncated, as bigints. */
export function setter(data: TensorData): (i: number, v: number) => void {
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    return (i, v) => (data[i] = BigInt(Math.trunc(v)));
  }
  return (i, v) => ((data as Float32Array)[i] = v);
}

/** Copies element `from` of one array to element `to` of another of the same type (bigints stay exact). */
export function copyElement(src: TensorData, from: number, dst: TensorData, to: number): void {
  (dst as Float32Array)[to] = (src as Float32Array)[from];
}

/** outer × len × inner view of a tensor around one axis. */
export function aroundAxis(shape: readonly number[], axis: number) {
  return { outer: product(shape.slice(0, axis)), len: shape[axis], inner: product(shape.slice(axis + 1)) };
}
