// Seeded Gaussian random numbers, made inside the wasm module (assembly/random.ts)
// so that every runtime draws the same bits.
//
// The stream: Philox4x32-10 (Salmon et al., SC 2011) with key (seed, 0) and
// Box–Muller. Element e (0 <= e < 2^53) comes from block b = floor(e / 4):
// counter (b mod 2^32, floor(b / 2^32), 0, 0) gives words x0..x3, and with
// u1 = (f32(x0) + ½)·2^-32, u2 = (x1 >>> 8)·2^-24, r = sqrt(-2 ln u1), θ = 2π·u2,
// elements 4b and 4b+1 are r·cos θ and r·sin θ; 4b+2 and 4b+3 the same from
// x2, x3. Element e depends on nothing but (seed, e), so a generator's
// position is a single number (the next element index): serialise it, and
// gaussianFill(seed, position, n) continues the stream from anywhere.
// |ε| never exceeds sqrt(2·33·ln 2) ≈ 6.77 (u1 >= 2^-33).
import { AttnroundError } from "../errors.ts";
import { wasm } from "../wasm.ts";

/** The stream has 2^53 elements: positions are exact JavaScript integers. */
export const STREAM_LENGTH = 2 ** 53;

function checkSeed(kernel: string, seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `${kernel}: seed must be an integer in [0, 2^32), got ${seed}`,
    );
  }
}

/** Throws unless [first, first + count) is a valid range of stream positions. */
export function checkStreamRange(kernel: string, first: number, count: number): void {
  if (!Number.isInteger(first) || first < 0 || !Number.isInteger(count) || count < 0) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `${kernel}: counter and count must be integers >= 0, got ${first} and ${count}`,
    );
  }
  if (first > STREAM_LENGTH || count > STREAM_LENGTH - first) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `${kernel}: counter + count = ${first + count} is past the end of the stream (2^53)`,
    );
  }
}

/** The 53-bit position as the (low, high) u32 pair the wasm side takes. */
export function splitCounter(first: number): [number, number] {
  return [first % 2 ** 32, Math.floor(first / 2 ** 32)];
}

/**
 * Writes elements counter .. counter+count-1 of the standard normal stream of
 * `seed` as float32 at byte address `out` in wasm memory.
 */
export function gaussianFill(seed: number, counter: number, count: number, out: number): void {
  checkSeed("gaussianFill", seed);
  checkStreamRange("gaussianFill", counter, count);
  if (count > 0x7fffffff) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `gaussianFill: count ${count} exceeds 2^31 - 1; fill in parts`,
    );
  }
  const [lo, hi] = splitCounter(counter);
  wasm().gaussianFill(seed, lo, hi, count, out);
}

/**
 * Raw Philox4x32-10 output of `count` blocks, in wasm (the rounds under
 * gaussianFill): block i has counter words (counter[0] + i carried into
 * counter[1], counter[2], counter[3]) and key (key[0], key[1]); four u32 per
 * block at `out`.
 */
export function philoxBlocksWasm(
  key: ArrayLike<number>,
  counter: ArrayLike<number>,
  count: number,
  out: number,
): void {
  const [c0, c1, c2, c3] = Array.from(counter, (w) => w >>> 0);
  wasm().philoxBlocks(key[0] >>> 0, key[1] >>> 0, c0, c1, c2, c3, count, out);
}

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two u32. */
function mulHi(a: number, b: number): number {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const m1 = ah * bl, m2 = al * bh;
  const mid = ((al * bl) >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
  return (ah * bh + (m1 >>> 16) + (m2 >>> 16) + (mid >>> 16)) >>> 0;
}

/** Philox4x32-10 of one counter (four u32) and key (two u32), in plain TypeScript. */
export function philox4x32(counter: ArrayLike<number>, key: ArrayLike<number>): Uint32Array {
  let x0 = counter[0] >>> 0, x1 = counter[1] >>> 0, x2 = counter[2] >>> 0, x3 = counter[3] >>> 0;
  let k0 = key[0] >>> 0, k1 = key[1] >>> 0;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulHi(M0, x0), lo0 = Math.imul(M0, x0) >>> 0;
    const hi1 = mulHi(M1, x2), lo1 = Math.imul(M1, x2) >>> 0;
    x0 = (hi1 ^ x1 ^ k0) >>> 0;
    x1 = lo1;
    x2 = (hi0 ^ x3 ^ k1) >>> 0;
    x3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return Uint32Array.of(x0, x1, x2, x3);
}

/**
 * The stream in float64 from philox4x32 and Math.log/cos/sin: the reference
 * gaussianFill is held to (it computes the same formula in float32 with
 * polynomials, within ~1e-6).
 */
export function gaussianReference(seed: number, counter: number, count: number): Float64Array {
  checkSeed("gaussianReference", seed);
  checkStreamRange("gaussianReference", counter, count);
  const out = new Float64Array(count);
  let block = -1;
  let words: Uint32Array = new Uint32Array(4);
  for (let i = 0; i < count; i++) {
    const e = counter + i;
    const b = Math.floor(e / 4);
    if (b !== block) {
      block = b;
      words = philox4x32([b % 2 ** 32, Math.floor(b / 2 ** 32), 0, 0], [seed, 0]);
    }
    const lane = e % 4;
    const pair = lane >> 1;
    const u1 = Math.fround(Math.fround(words[2 * pair]) + 0.5) * 2 ** -32;
    const u2 = (words[2 * pair + 1] >>> 8) * 2 ** -24;
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    out[i] = lane & 1 ? r * Math.sin(theta) : r * Math.cos(theta);
  }
  return out;
}
