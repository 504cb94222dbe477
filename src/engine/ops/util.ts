// Helpers shared by the TypeScript op implementations.
import { AttnroundError } from "../../errors.ts";
import type { Node } from "../../graph/ir.ts";
import { type Value, WasmValue } from "../value.ts";

export function opError(node: Node, message: string): AttnroundError {
  return new AttnroundError("INVALID_MODEL", `node "${node.name}" (${node.opType}): ${message}`);
}

/** A valid model that uses something the engine does not implement. */
export function opUnsupported(node: Node, message: string): AttnroundError {
  return new AttnroundError("UNSUPPORTED_MODEL", `node "${node.name}" (${node.opType}): ${message}`);
}

export function required(node: Node, inputs: (Value | undefined)[], index: number): Value {
  const v = inputs[index];
  if (!v) throw opError(node, `input ${index} is required`);
  return v;
}

/** A required float32 input, which lives in wasm memory. */
export function wasmInput(node: Node, inputs: (Value | undefined)[], index: number): WasmValue {
  const v = required(node, inputs, index);
  if (!(v instanceof WasmValue)) throw opError(node, `input ${index} must be float32 (got ${v.dtype})`);
  return v;
}

/** Reads an integer tensor (shape arguments, axes, …) as plain numbers. */
export function toNumbers(v: Value): number[] {
  return Array.from(v.data as ArrayLike<number | bigint>, (x) => Number(x));
}

export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function normalizeAxis(node: Node, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw opError(node, `axis ${axis} is out of range for rank ${rank}`);
  return a;
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

/** numpy-style broadcast of several shapes. */
export function broadcastShapes(node: Node, shapes: (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const j = rank - s.length + i;
      const d = s[i];
      if (d === out[j] || d === 1) continue;
      if (out[j] === 1) out[j] = d;
      else throw opError(node, `shapes ${shapes.map((x) => `[${x}]`).join(" and ")} do not broadcast`);
    }
  }
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
