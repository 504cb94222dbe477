// Values flowing through the engine. float32 tensors live in wasm memory so
// that kernels work on them in place; every other dtype is a plain Tensor.
import type { DType, TensorData } from "../tensor.ts";
import { f32 } from "../wasm.ts";

export interface Value {
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** The elements. For wasm-resident values this is a fresh view: read it after allocating. */
  readonly data: TensorData;
}

/** A float32 tensor in wasm memory at byte address `ptr`. */
export class WasmValue implements Value {
  readonly dtype = "float32" as const;
  readonly size: number;

  constructor(readonly ptr: number, readonly shape: readonly number[]) {
    this.size = shape.reduce((a, b) => a * b, 1);
  }

  get data(): Float32Array {
    return f32(this.ptr, this.size);
  }
}

export function sizeOf(shape: readonly number[]): number {
  let size = 1;
  for (const d of shape) size *= d;
  return size;
}

export function isWasm(v: Value): v is WasmValue {
  return v instanceof WasmValue;
}

export type { TensorData };
