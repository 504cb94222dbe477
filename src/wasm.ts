// Loads the kernels' wasm module and gives the rest of the library a narrow
// view of it: the raw exports, one allocator, and typed-array views that are
// re-taken whenever memory has grown (growth detaches the old ArrayBuffer).
//
// No @assemblyscript/loader: every export takes and returns plain numbers and
// pointers, so instantiation plus an `abort` import is all a loader would do.
// The exports' signatures and names are generated from assembly/ by the build
// (build/attnround.exports.ts), so every call is checked against the kernels.
//
// Where the module comes from is the entry point's business, not this file's:
// mod.ts compiles the bytes embedded in build/attnround.wasm.ts (src/init.ts),
// mod.edge.ts hands over the module its runtime's bundler precompiled
// (src/init-edge.ts), and a caller may always pass one in.
import { kernelExportNames, type KernelExports } from "../build/attnround.exports.ts";
import { AttnroundError } from "./errors.ts";

export interface InitOptions {
  /** A precompiled module, for runtimes that forbid compiling wasm from bytes. */
  module?: WebAssembly.Module;
}

let kernels: KernelExports | undefined;
/** The compiled module the kernels were instantiated from: workers instantiate it too (src/engine/parallel). */
let kernelsModule: WebAssembly.Module | undefined;
/** Where small structs of arguments go (kernels/geometry.ts), allocated once at instantiation. */
let argsPtr = 0;
const ARGS_BYTES = 128;
let pending: Promise<void> | undefined;
let viewBuffer: ArrayBufferLike | undefined;
let viewF32: Float32Array = new Float32Array(0);
let viewU8: Uint8Array = new Uint8Array(0);
let viewI32: Int32Array = new Int32Array(0);

/**
 * Instantiates the wasm kernels from `options.module`, or else from the module
 * `fallback` gives (each entry point's own source). Safe to call more than once.
 */
export function initKernels(
  options: InitOptions,
  fallback: () => Promise<WebAssembly.Module>,
): Promise<void> {
  if (kernels) return Promise.resolve();
  pending ??= instantiate(options.module ?? fallback()).catch((cause) => {
    pending = undefined;
    if (cause instanceof AttnroundError) throw cause;
    throw new AttnroundError("WASM_INIT_FAILED", `could not instantiate the wasm kernels: ${cause}`, {
      cause,
    });
  });
  return pending;
}

async function instantiate(source: WebAssembly.Module | Promise<WebAssembly.Module>): Promise<void> {
  const module = await source;
  if (!(module instanceof WebAssembly.Module)) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `init({ module }) takes a WebAssembly.Module (build/attnround.wasm, compiled), got ${
        Object.prototype.toString.call(module)
      }`,
    );
  }
  const instance = await WebAssembly.instantiate(module, { env: { abort } });
  const exports = instance.exports as unknown as KernelExports;
  for (const name of kernelExportNames) {
    if (!(name in exports)) {
      throw new AttnroundError(
        "WASM_INIT_FAILED",
        `the wasm module lacks the export "${name}": pass the module built from this version's assembly/`,
      );
    }
  }
  kernels = exports;
  kernelsModule = module;
  argsPtr = exports.alloc(ARGS_BYTES);
}

/** The compiled wasm module in use; throws if init() has not completed. */
export function wasmModule(): WebAssembly.Module {
  wasm();
  return kernelsModule!;
}

// AssemblyScript calls this on a failed allocation or a trap it checks for.
function abort(messagePtr: number, filePtr: number, line: number, column: number): never {
  const message = readAscString(messagePtr);
  const file = readAscString(filePtr);
  throw new AttnroundError("WASM_ABORT", `wasm kernel aborted: ${message} (${file}:${line}:${column})`);
}

function readAscString(ptr: number): string {
  if (!kernels || ptr === 0) return "?";
  const bytes = new Uint32Array(kernels.memory.buffer, ptr - 4, 1)[0];
  return String.fromCharCode(...new Uint16Array(kernels.memory.buffer, ptr, bytes >>> 1));
}

/** The raw exports; throws if init() has not completed. */
export function wasm(): KernelExports {
  if (!kernels) throw new AttnroundError("NOT_INITIALIZED", "call `await init()` before using the library");
  return kernels;
}

let rawKernels: KernelExports | undefined;

/**
 * Profiling (bench/profile.ts): with a recorder, every kernel call through
 * wasm() is timed and reported by export name; without one, the raw exports
 * are back, so the normal path pays nothing. Calls made inside another
 * kernel's call are not seen (wasm calls wasm directly).
 */
export function timeKernelCalls(record?: (name: string, ms: number) => void): void {
  wasm();
  rawKernels ??= kernels!;
  if (!record) {
    kernels = rawKernels;
    return;
  }
  const raw = rawKernels as unknown as Record<string, unknown>;
  const timed: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value !== "function" || name === "alloc" || name === "free") {
      timed[name] = value;
      continue;
    }
    const call = value as (...args: number[]) => number;
    timed[name] = (...args: number[]) => {
      const t0 = performance.now();
      try {
        return call(...args);
      } finally {
        record(name, performance.now() - t0);
      }
    };
  }
  kernels = timed as unknown as KernelExports;
}

function refreshViews(): void {
  const buffer = wasm().memory.buffer;
  if (buffer !== viewBuffer) {
    viewBuffer = buffer;
    viewF32 = new Float32Array(buffer);
    viewU8 = new Uint8Array(buffer);
    viewI32 = new Int32Array(buffer);
  }
}

/** Float32 view of `length` floats at byte address `ptr`; valid until the next allocation. */
export function f32(ptr: number, length: number): Float32Array {
  refreshViews();
  return viewF32.subarray(ptr >>> 2, (ptr >>> 2) + length);
}

/** Byte view of `length` bytes at `ptr`; valid until the next allocation. */
export function u8(ptr: number, length: number): Uint8Array {
  refreshViews();
  return viewU8.subarray(ptr, ptr + length);
}

/** Int32 view of `length` ints at byte address `ptr`; valid until the next allocation. */
export function i32(ptr: number, length: number): Int32Array {
  refreshViews();
  return viewI32.subarray(ptr >>> 2, (ptr >>> 2) + length);
}

/**
 * The address of a block of `bytes` bytes (at most 128) for a kernel's
 * arguments, written just before the call. Allocated at instantiation:
 * passing arguments this way never allocates, so views stay valid across it.
 */
export function argBlock(bytes: number): number {
  if (bytes > ARGS_BYTES) {
    throw new AttnroundError("INVALID_ARGUMENT", `argBlock: ${bytes} bytes asked, ${ARGS_BYTES} available`);
  }
  wasm();
  return argsPtr;
}

/** Allocates `bytes` bytes (16-byte aligned) in wasm memory. */
export function alloc(bytes: number): number {
  // The export takes a u32: a larger (or fractional, or negative) size would wrap to another one.
  if (!(Number.isInteger(bytes) && bytes >= 0 && bytes < 2 ** 32)) {
    throw new AttnroundError("TOO_LARGE", `cannot allocate ${bytes} bytes in wasm memory (4 GiB at most)`);
  }
  return wasm().alloc(bytes);
}

export function free(ptr: number): void {
  wasm().free(ptr);
}

/** Copies `data` into a new wasm allocation and returns its address. */
export function allocF32(data: Float32Array): number {
  const ptr = alloc(data.length * 4);
  f32(ptr, data.length).set(data);
  return ptr;
}
