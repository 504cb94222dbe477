// deno-fmt-ignore-file: deno fmt drops the @inline decorators AssemblyScript needs.
// Seeded Gaussian random numbers: Philox4x32-10 (Salmon et al., "Parallel
// random numbers: as easy as 1, 2, 3", SC 2011) and Box–Muller, four Philox
// blocks (16 normals) per step in SIMD lanes.
//
// The stream (src/kernels/random.ts documents it for callers): element e
// (a 53-bit index) comes from Philox block b = floor(e / 4) with counter
// (b mod 2^32, floor(b / 2^32), 0, 0) and key (seed, 0), giving words x0..x3.
// u1 = (f32(x0) + 0.5)·2^-32, u2 = f32(x1 >> 8)·2^-24, r = sqrt(-2 ln u1),
// θ = 2π·u2; element 4b is r·cos θ, 4b+1 is r·sin θ, and 4b+2, 4b+3 the same
// from x2, x3. So element e depends only on (seed, e): a run's position in the
// stream is one number, and any slice of the stream can be produced alone.
import { cosSmallV, logV, sinSmallV } from "./quant-math";

const M0: u32 = 0xd2511f53;
const M1: u32 = 0xcd9e8d57;
const W0: u32 = 0x9e3779b9;
const W1: u32 = 0xbb67ae85;

// 16 floats for the partial groups at either end of a fill; 16 words of Philox output.
const edge = memory.data(64, 16);
const words = memory.data(128, 16);

// r·cos(2π·u2) where u2 = x1 >> 8 scaled, and r·sin: the quadrant comes from
// round(4·u2), which is exact, so the polynomial only sees |a| <= π/4.
@inline
function boxMullerCos(r: v128, x1: v128): v128 {
  const u = f32x4.mul(f32x4.convert_i32x4_u(i32x4.shr_u(x1, 8)), f32x4.splat(5.9604644775390625e-8));
  const j = f32x4.nearest(f32x4.mul(u, f32x4.splat(4)));
  const a = f32x4.mul(f32x4.sub(u, f32x4.mul(j, f32x4.splat(0.25))), f32x4.splat(6.2831853071795865));
  const q = i32x4.trunc_sat_f32x4_s(j);
  const s = sinSmallV(a), c = cosSmallV(a);
  // cos(jπ/2 + a): quadrants 1, 3 swap to ∓sin; quadrants 1, 2 negate.
  const swap = i32x4.eq(v128.and(q, i32x4.splat(1)), i32x4.splat(0));
  const flip = i32x4.shl(v128.and(i32x4.add(q, i32x4.splat(1)), i32x4.splat(2)), 30);
  return f32x4.mul(r, v128.xor(v128.bitselect(c, s, swap), flip));
}

@inline
function boxMullerSin(r: v128, x1: v128): v128 {
  const u = f32x4.mul(f32x4.convert_i32x4_u(i32x4.shr_u(x1, 8)), f32x4.splat(5.9604644775390625e-8));
  const j = f32x4.nearest(f32x4.mul(u, f32x4.splat(4)));
  const a = f32x4.mul(f32x4.sub(u, f32x4.mul(j, f32x4.splat(0.25))), f32x4.splat(6.2831853071795865));
  const q = i32x4.trunc_sat_f32x4_s(j);
  const s = sinSmallV(a), c = cosSmallV(a);
  // sin(jπ/2 + a): quadrants 1, 3 swap to ±cos; quadrants 2, 3 negate.
  const swap = i32x4.eq(v128.and(q, i32x4.splat(1)), i32x4.splat(0));
  const flip = i32x4.shl(v128.and(q, i32x4.splat(2)), 30);
  return f32x4.mul(r, v128.xor(v128.bitselect(s, c, swap), flip));
}

// sqrt(-2 ln u1), u1 = (f32(x0) + 0.5)·2^-32 in (0, 1].
@inline
function radius(x0: v128): v128 {
  const u = f32x4.mul(f32x4.add(f32x4.convert_i32x4_u(x0), f32x4.splat(0.5)), f32x4.splat(2.3283064365386963e-10));
  return f32x4.sqrt(f32x4.mul(logV(u), f32x4.splat(-2)));
}

// Ten Philox rounds on four blocks at once (lane i is block i): counter words
// c0..c3, key (k0, k1). Stores the output words x0, x1, x2, x3 (one v128 each,
// lanes = blocks) at dst.
@inline
function philox4(c0: v128, c1: v128, c2: v128, c3: v128, k0: u32, k1: u32, dst: usize): void {
  const m0 = i32x4.splat(M0), m1 = i32x4.splat(M1);
  for (let round = 0; round < 10; round++) {
    // The four 64-bit products of each pair, once; their halves taken apart by shuffles.
    const p0l = i64x2.extmul_low_i32x4_u(c0, m0), p0h = i64x2.extmul_high_i32x4_u(c0, m0);
    const p1l = i64x2.extmul_low_i32x4_u(c2, m1), p1h = i64x2.extmul_high_i32x4_u(c2, m1);
    const hi0 = i32x4.shuffle(p0l, p0h, 1, 3, 5, 7), lo0 = i32x4.shuffle(p0l, p0h, 0, 2, 4, 6);
    const hi1 = i32x4.shuffle(p1l, p1h, 1, 3, 5, 7), lo1 = i32x4.shuffle(p1l, p1h, 0, 2, 4, 6);
    c0 = v128.xor(v128.xor(hi1, c1), i32x4.splat(k0));
    c1 = lo1;
    c2 = v128.xor(v128.xor(hi0, c3), i32x4.splat(k1));
    c3 = lo0;
    k0 += W0;
    k1 += W1;
  }
  v128.store(dst, c0);
  v128.store(dst, c1, 16);
  v128.store(dst, c2, 32);
  v128.store(dst, c3, 48);
}

// philox4 on eight blocks as two interleaved groups of four (c and d), whose
// rounds are independent: one group's multiplies run while the other's wait,
// where a lone group is held up by each round's latency. The same words.
@inline
function philox8(
  c0: v128, c1: v128, c2: v128, c3: v128, d0: v128, d1: v128, d2: v128, d3: v128, k0: u32, k1: u32, dst: usize,
): void {
  const m0 = i32x4.splat(M0), m1 = i32x4.splat(M1);
  for (let round = 0; round < 10; round++) {
    const p0l = i64x2.extmul_low_i32x4_u(c0, m0), p0h = i64x2.extmul_high_i32x4_u(c0, m0);
    const q0l = i64x2.extmul_low_i32x4_u(d0, m0), q0h = i64x2.extmul_high_i32x4_u(d0, m0);
    const p1l = i64x2.extmul_low_i32x4_u(c2, m1), p1h = i64x2.extmul_high_i32x4_u(c2, m1);
    const q1l = i64x2.extmul_low_i32x4_u(d2, m1), q1h = i64x2.extmul_high_i32x4_u(d2, m1);
    const kv0 = i32x4.splat(k0), kv1 = i32x4.splat(k1);
    c0 = v128.xor(v128.xor(i32x4.shuffle(p1l, p1h, 1, 3, 5, 7), c1), kv0);
    d0 = v128.xor(v128.xor(i32x4.shuffle(q1l, q1h, 1, 3, 5, 7), d1), kv0);
    c1 = i32x4.shuffle(p1l, p1h, 0, 2, 4, 6);
    d1 = i32x4.shuffle(q1l, q1h, 0, 2, 4, 6);
    c2 = v128.xor(v128.xor(i32x4.shuffle(p0l, p0h, 1, 3, 5, 7), c3), kv1);
    d2 = v128.xor(v128.xor(i32x4.shuffle(q0l, q0h, 1, 3, 5, 7), d3), kv1);
    c3 = i32x4.shuffle(p0l, p0h, 0, 2, 4, 6);
    d3 = i32x4.shuffle(q0l, q0h, 0, 2, 4, 6);
    k0 += W0;
    k1 += W1;
  }
  v128.store(dst, c0);
  v128.store(dst, c1, 16);
  v128.store(dst, c2, 32);
  v128.store(dst, c3, 48);
  v128.store(dst, d0, 64);
  v128.store(dst, d1, 80);
  v128.store(dst, d2, 96);
  v128.store(dst, d3, 112);
}

// Counter words 0 and 1 of blocks b .. b+3, carrying from the low word into the high.
@inline
function counterLo(b: u64): v128 {
  return i32x4.add(i32x4.splat(<u32> b), i32x4(0, 1, 2, 3));
}

@inline
function counterHi(b: u64, lo: v128): v128 {
  // Where the low word wrapped (lo < low word of b), add one: lt_u gives -1.
  return i32x4.sub(i32x4.splat(<u32> (b >>> 32)), i32x4.lt_u(lo, i32x4.splat(<u32> b)));
}

// Lanes are blocks; stores them transposed, so that each block's four values are adjacent.
@inline
function storeTransposed(g0: v128, g1: v128, g2: v128, g3: v128, dst: usize): void {
  const t0 = i32x4.shuffle(g0, g1, 0, 4, 1, 5), t1 = i32x4.shuffle(g2, g3, 0, 4, 1, 5);
  const t2 = i32x4.shuffle(g0, g1, 2, 6, 3, 7), t3 = i32x4.shuffle(g2, g3, 2, 6, 3, 7);
  v128.store(dst, i32x4.shuffle(t0, t1, 0, 1, 4, 5));
  v128.store(dst, i32x4.shuffle(t0, t1, 2, 3, 6, 7), 16);
  v128.store(dst, i32x4.shuffle(t2, t3, 0, 1, 4, 5), 32);
  v128.store(dst, i32x4.shuffle(t2, t3, 2, 3, 6, 7), 48);
}

// The 16 normals of blocks b .. b+3 (elements 4b .. 4b+15), stored at dst.
function normals16(seed: u32, b: u64, dst: usize): void {
  const lo = counterLo(b);
  const zero = i32x4.splat(0);
  philox4(lo, counterHi(b, lo), zero, zero, seed, 0, words);
  const x0 = v128.load(words), x1 = v128.load(words, 16);
  const x2 = v128.load(words, 32), x3 = v128.load(words, 48);
  const r01 = radius(x0), r23 = radius(x2);
  storeTransposed(boxMullerCos(r01, x1), boxMullerSin(r01, x1), boxMullerCos(r23, x3), boxMullerSin(r23, x3), dst);
}

// Writes elements first .. first+count-1 of stream `seed` to out (float32).
// Whole 16-element groups of the stream go straight to out; the partial ones at
// either end are made in `edge` and copied.
export function fillGaussian(seed: u32, first: u64, count: i32, out: usize): void {
  const end = first + <u64> count;
  for (let g = first & ~15; g < end; g += 16) {
    if (g >= first && g + 16 <= end) {
      normals16(seed, g >>> 2, out + (<usize> (g - first) << 2));
    } else {
      normals16(seed, g >>> 2, edge);
      const from = max(g, first), to = min(g + 16, end);
      for (let e = from; e < to; e++) {
        store<f32>(out + (<usize> (e - first) << 2), load<f32>(edge + (<usize> (e - g) << 2)));
      }
    }
  }
}

// The exported form: the 53-bit start split into two u32 words (JavaScript
// numbers cannot carry an i64 without BigInt).
export function gaussianFill(seed: u32, firstLo: u32, firstHi: u32, count: i32, out: usize): void {
  fillGaussian(seed, (<u64> firstHi << 32) | <u64> firstLo, count, out);
}

// Raw Philox4x32-10 words of `count` consecutive blocks, four u32 per block:
// block i has counter (b + i, with carry into the second word, then c2, c3) and
// key (k0, k1). The same rounds as the normals, exported so that tests can hold
// them to the published known-answer vectors.
export function philoxBlocks(k0: u32, k1: u32, bLo: u32, bHi: u32, c2: u32, c3: u32, count: i32, out: usize): void {
  const first = (<u64> bHi << 32) | <u64> bLo;
  const cv2 = i32x4.splat(c2), cv3 = i32x4.splat(c3);
  let i = 0;
  // Eight whole blocks at a time, then the rest four at a time.
  for (; i + 8 <= count; i += 8) {
    const b = first + <u64> i, e = b + 4;
    const lo = counterLo(b), elo = counterLo(e);
    philox8(lo, counterHi(b, lo), cv2, cv3, elo, counterHi(e, elo), cv2, cv3, k0, k1, words);
    storeTransposed(v128.load(words), v128.load(words, 16), v128.load(words, 32), v128.load(words, 48), out + (<usize> i << 4));
    storeTransposed(v128.load(words, 64), v128.load(words, 80), v128.load(words, 96), v128.load(words, 112), out + (<usize> (i + 4) << 4));
  }
  for (; i < count; i += 4) {
    const b = first + <u64> i;
    const lo = counterLo(b);
    philox4(lo, counterHi(b, lo), cv2, cv3, k0, k1, words);
    const x0 = v128.load(words), x1 = v128.load(words, 16);
    const x2 = v128.load(words, 32), x3 = v128.load(words, 48);
    const n = min(4, count - i);
    if (n == 4) {
      storeTransposed(x0, x1, x2, x3, out + (<usize> i << 4));
    } else {
      storeTransposed(x0, x1, x2, x3, edge);
      memory.copy(out + (<usize> i << 4), edge, <usize> n << 4);
    }
  }
}
