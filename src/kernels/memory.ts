// Wasm memory as the stages above the engine and the kernels see it: float32
// buffers with an owner, who frees them with dispose(), instead of bare
// addresses and alloc/free pairs. The address is there to hand to a kernel
// or to a WasmValue, nothing else.
import { alloc, f32, free, wasm } from "../wasm.ts";

export class WasmBuffer {
  /** Byte address in wasm memory, for the kernels. */
  readonly ptr: number;
  private disposed = false;

  /** `length` float32 values in wasm memory, zeroed. */
  constructor(readonly length: number) {
    this.ptr = alloc(Math.max(length, 1) * 4);
    this.f32().fill(0);
  }

  /** A buffer holding a copy of `data`. */
  static from(data: Float32Array): WasmBuffer {
    const buffer = new WasmBuffer(data.length);
    buffer.f32().set(data);
    return buffer;
  }

  /** A view of the values: valid until the next allocation in wasm memory. */
  f32(): Float32Array {
    return f32(this.ptr, this.length);
  }

  /** A copy of the values, outside wasm memory. */
  read(): Float32Array {
    return this.f32().slice();
  }

  /** Overwrites the values from the start with `data`. */
  write(data: Float32Array): void {
    this.f32().set(data);
  }

  /** Frees the memory; safe to call more than once. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    free(this.ptr);
  }
}

/** Bytes of wasm memory: its high-water mark, since wasm memory never shrinks. */
export function wasmHeapBytes(): number {
  return wasm().memory.buffer.byteLength;
}

/** Throws NOT_INITIALIZED, with advice, unless init() has completed. */
export function requireKernels(): void {
  wasm();
}
