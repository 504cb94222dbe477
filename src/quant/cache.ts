// Cached block inputs and targets for the whole calibration set. They live in
// ordinary JS memory, outside the wasm heap, as float16 by default (half the
// bytes; rounding error 2^-11 relative, well below what 2–8-bit activations
// resolve) or float32 when exactness matters, and are copied into wasm memory
// one mini-batch at a time. The wasm heap therefore holds one block's working
// set, never the calibration set's activations.
//
// Storage is split into chunks (32 MiB by default) so that a large cache needs
// no single huge ArrayBuffer. float32 samples are kept as their bits
// (Uint32Array), so copies are memcpy and NaN payloads survive; float16 ones
// are converted with round-to-nearest-even on write and through a 65,536-entry
// table on gather.
import { AttnroundError } from "../errors.ts";
import { wasm } from "../wasm.ts";

export type CachePrecision = "float16" | "float32";

/**
 * Storage outside memory for caches larger than the memory budget allows: a
 * file of fixed-size records, which only the caller's runtime can open (the
 * command line gives one in its temporary folder; the library itself touches
 * no file system).
 */
export interface SpillStore {
  /** A new, empty file of `count` records of `recordBytes` bytes each; close() deletes it. */
  open(count: number, recordBytes: number): SpillFile;
}

export interface SpillFile {
  write(index: number, bytes: Uint8Array): void;
  /** Fills `into` with record `index`, as last written. */
  read(index: number, into: Uint8Array): void;
  close(): void;
}

export interface ActivationCacheOptions {
  precision: CachePrecision;
  /** Upper bound on one storage chunk, in bytes (a chunk holds at least one sample). */
  chunkBytes: number;
  /** Keep the samples in a file of this store instead of in memory. */
  spill?: SpillStore;
}

const defaults: Readonly<ActivationCacheOptions> = { precision: "float16", chunkBytes: 32 << 20 };

/** `length` float32 values at byte address `ptr` of wasm memory. */
export interface WasmSpan {
  ptr: number;
  length: number;
}

/** float32 bits → float16 bits, rounding to nearest, ties to even; NaN stays NaN (payload kept when it fits). */
export function halfFromFloatBits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs >= 0x47800000) {
    // ≥ 65536 (rounds to Inf), Inf or NaN.
    if (abs <= 0x7f800000) return sign | 0x7c00;
    return sign | 0x7c00 | ((abs >>> 13) & 0x3ff || 0x200);
  }
  if (abs >= 0x38800000) {
    // Normal half: rebias the exponent; adding 0xfff plus the kept lowest bit rounds ties to even
    // (a carry out of the mantissa bumps the exponent, up to Inf).
    return sign | ((abs + 0x0fff + ((abs >>> 13) & 1) - 0x38000000) >>> 13);
  }
  // Subnormal half (units of 2^-24) or zero: value = mantissa · 2^(e − 150).
  const e = abs >>> 23;
  if (e < 102) return sign; // below 2^-25: rounds to zero
  const mantissa = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - e; // 14 … 24
  let q = mantissa >>> shift;
  const rest = mantissa & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (q & 1) === 1)) q++;
  return sign | q;
}

/** float16 bits → float32 bits (exact). */
export function floatBitsFromHalf(h: number): number {
  const sign = (h & 0x8000) << 16;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return (sign | 0x7f800000 | (m << 13)) >>> 0;
  if (e !== 0) return (sign | ((e + 112) << 23) | (m << 13)) >>> 0;
  if (m === 0) return sign >>> 0;
  let shift = 0;
  let normalised = m;
  while ((normalised & 0x400) === 0) {
    normalised <<= 1;
    shift++;
  }
  return (sign | ((113 - shift) << 23) | ((normalised & 0x3ff) << 13)) >>> 0;
}

let halfTable: Uint32Array | undefined;

/** float32 bits of every float16 value, indexed by its bits. */
function halfToFloatTable(): Uint32Array {
  if (!halfTable) {
    halfTable = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = floatBitsFromHalf(h);
  }
  return halfTable;
}

// Kept monomorphic (one array type each) and unrolled: gather runs every iteration.
function expandHalves(src: Uint16Array, dst: Uint32Array, table: Uint32Array): void {
  const n = src.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    dst[i] = table[src[i]];
    dst[i + 1] = table[src[i + 1]];
    dst[i + 2] = table[src[i + 2]];
    dst[i + 3] = table[src[i + 3]];
  }
  for (; i < n; i++) dst[i] = table[src[i]];
}

function compressFloats(src: Uint32Array, dst: Uint16Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = halfFromFloatBits(src[i]);
}

function bad(message: string): never {
  throw new AttnroundError("INVALID_ARGUMENT", message);
}

/** A Uint32 view of wasm memory, after checking the span lies inside it. */
function wasmWords(ptr: number, length: number, what: string): Uint32Array {
  const buffer = wasm().memory.buffer;
  if (!Number.isInteger(ptr) || ptr < 0 || ptr % 4 !== 0 || ptr + length * 4 > buffer.byteLength) {
    bad(`${what}: ${length} floats at address ${ptr} are not a 4-aligned span of wasm memory`);
  }
  return new Uint32Array(buffer, ptr, length);
}

export class ActivationCache {
  readonly sampleShape: readonly number[];
  /** Floats per sample. */
  readonly sampleSize: number;
  /** Capacity in samples. */
  readonly count: number;
  readonly precision: CachePrecision;
  private chunks: (Uint16Array | Uint32Array)[];
  private readonly perChunk: number;
  /** With a spill store: the file, and one sample's staging in storage format. */
  private readonly file?: SpillFile;
  private readonly staging?: Uint16Array | Uint32Array;
  private filled = 0;
  private disposed = false;

  constructor(sampleShape: readonly number[], count: number, options: Partial<ActivationCacheOptions> = {}) {
    const { precision, chunkBytes, spill } = { ...defaults, ...options };
    if (!sampleShape.every((d) => Number.isInteger(d) && d > 0)) {
      bad(`ActivationCache: sample shape [${sampleShape}] must be positive integers`);
    }
    if (!Number.isInteger(count) || count < 0) bad(`ActivationCache: count ${count} must be a whole number`);
    if (precision !== "float16" && precision !== "float32") {
      bad(`ActivationCache: precision "${precision}" must be "float16" or "float32"`);
    }
    this.sampleShape = Object.freeze([...sampleShape]);
    this.sampleSize = sampleShape.reduce((a, b) => a * b, 1);
    this.count = count;
    this.precision = precision;
    const bytesPerSample = this.sampleSize * (precision === "float16" ? 2 : 4);
    this.perChunk = Math.max(1, Math.floor(chunkBytes / bytesPerSample));
    this.chunks = [];
    if (spill) {
      this.file = spill.open(count, bytesPerSample);
      this.staging = precision === "float16"
        ? new Uint16Array(this.sampleSize)
        : new Uint32Array(this.sampleSize);
      return;
    }
    for (let start = 0; start < count; start += this.perChunk) {
      const length = Math.min(this.perChunk, count - start) * this.sampleSize;
      this.chunks.push(precision === "float16" ? new Uint16Array(length) : new Uint32Array(length));
    }
  }

  /** Bytes of memory held (0 after dispose, and for a cache kept in a spill file). */
  get byteLength(): number {
    return this.chunks.reduce((sum, c) => sum + c.byteLength, 0);
  }

  /** One past the highest sample written so far. */
  get length(): number {
    return this.filled;
  }

  /**
   * Stores whole samples from `start` on: from a float32 array, or from wasm memory
   * (`{ ptr, length }`, a byte address and a count of floats), e.g. a forward pass's output.
   */
  write(start: number, batch: Float32Array | WasmSpan): void {
    this.check();
    const length = batch.length;
    const samples = length / this.sampleSize;
    if (!Number.isInteger(samples)) {
      bad(`ActivationCache.write: ${length} floats are not whole samples of [${this.sampleShape}]`);
    }
    if (!Number.isInteger(start) || start < 0 || start + samples > this.count) {
      bad(
        `ActivationCache.write: samples ${start}…${start + samples - 1} do not fit a cache of ${this.count}`,
      );
    }
    const source = batch instanceof Float32Array
      ? new Uint32Array(batch.buffer, batch.byteOffset, length)
      : wasmWords(batch.ptr, length, "ActivationCache.write");
    const size = this.sampleSize;
    for (let s = 0; s < samples; s++) {
      const index = start + s;
      const from = source.subarray(s * size, (s + 1) * size);
      const [chunk, offset] = this.file
        ? [this.staging!, 0]
        : [this.chunks[Math.floor(index / this.perChunk)], (index % this.perChunk) * size];
      if (chunk instanceof Uint32Array) chunk.set(from, offset);
      else compressFloats(from, chunk.subarray(offset, offset + size));
      this.file?.write(index, new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    }
    this.filled = Math.max(this.filled, start + samples);
  }

  /**
   * Writes the samples at `indices`, as float32, contiguously ([indices.length, ...sampleShape])
   * to wasm memory at byte address `dst`, or into a Float32Array.
   */
  gather(indices: Int32Array | readonly number[], dst: number | Float32Array): void {
    this.check();
    const size = this.sampleSize;
    const total = indices.length * size;
    let out: Uint32Array;
    if (typeof dst === "number") {
      out = wasmWords(dst, total, "ActivationCache.gather");
    } else {
      if (dst.length < total) {
        bad(`ActivationCache.gather: the destination holds ${dst.length} floats, needs ${total}`);
      }
      out = new Uint32Array(dst.buffer, dst.byteOffset, total);
    }
    const table = this.precision === "float16" ? halfToFloatTable() : undefined;
    for (let j = 0; j < indices.length; j++) {
      const index = indices[j];
      if (!(index >= 0 && index < this.filled) || !Number.isInteger(index)) {
        bad(`ActivationCache.gather: sample ${index} has not been written (${this.filled} written)`);
      }
      let chunk: Uint16Array | Uint32Array, from: number;
      if (this.file) {
        chunk = this.staging!, from = 0;
        this.file.read(index, new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      } else {
        chunk = this.chunks[Math.floor(index / this.perChunk)], from = (index % this.perChunk) * size;
      }
      const to = j * size;
      if (table === undefined) out.set(chunk.subarray(from, from + size), to);
      else expandHalves(chunk.subarray(from, from + size) as Uint16Array, out.subarray(to, to + size), table);
    }
  }

  /** One sample as a new Float32Array. */
  read(index: number): Float32Array {
    const sample = new Float32Array(this.sampleSize);
    this.gather([index], sample);
    return sample;
  }

  /** Releases the storage; the cache cannot be used afterwards. */
  dispose(): void {
    if (!this.disposed) this.file?.close();
    this.chunks = [];
    this.filled = 0;
    this.disposed = true;
  }

  private check(): void {
    if (this.disposed) bad("ActivationCache: used after dispose()");
  }
}
