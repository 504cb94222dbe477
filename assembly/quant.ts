// deno-fmt-ignore-file: deno fmt drops the @inline decorators AssemblyScript needs.
// Uniform affine quantizers, float32: q = clamp(round(x / s) + z, qmin, qmax),
// x̂ = s·(q - z), round half to even (f32x4.nearest), x / s a true division.
// - searchScales: per-row clipping search minimising Σ |x - x̂|^p (weights per
//   output channel; activations as one row);
// - fakeQuantNearest: x̂ with a scale and zero point per row;
// - lsqForward / lsqBackward: one scale per tensor, straight-through for x and
//   the LSQ gradient for s (Esser et al., "Learned Step Size Quantization", 2020).
// TypeScript (src/kernels/quant.ts) checks arguments and owns the buffers.
import { powV } from "./quant-math";

// Below this largest magnitude a row counts as all-zero and gets scale 1.
const MIN_RANGE: f32 = 1.262177448e-29; // 2^-96

// x̂ for four values with scale s, zero z and range [lo, hi] (splatted).
@inline
function fakeQuant(x: v128, s: v128, z: v128, lo: v128, hi: v128): v128 {
  const q = f32x4.min(f32x4.max(f32x4.add(f32x4.nearest(f32x4.div(x, s)), z), lo), hi);
  return f32x4.mul(f32x4.sub(q, z), s);
}

// Σ (|x - x̂| / norm)^p over k values at row, in float64. Stops early, with a
// partial sum >= `bound`, once it can no longer beat a candidate already seen.
function lpError(row: usize, k: i32, s: f32, z: f32, qmin: f32, qmax: f32, p: f32, invNorm: f32, bound: f64): f64 {
  const sv = f32x4.splat(s), zv = f32x4.splat(z), lo = f32x4.splat(qmin), hi = f32x4.splat(qmax);
  const pv = f32x4.splat(p), inv = f32x4.splat(invNorm);
  let sum: f64 = 0;
  let j = 0;
  while (j + 4 <= k) {
    // Blocks of up to 256 values, each summed in float64 lanes.
    const end = min(k & ~3, j + 256);
    let acc0 = f64x2.splat(0), acc1 = f64x2.splat(0);
    for (; j < end; j += 4) {
      const x = v128.load(row + (<usize> j << 2));
      const e = powV(f32x4.mul(f32x4.abs(f32x4.sub(x, fakeQuant(x, sv, zv, lo, hi))), inv), pv);
      acc0 = f64x2.add(acc0, f64x2.promote_low_f32x4(e));
      acc1 = f64x2.add(acc1, f64x2.promote_low_f32x4(i32x4.shuffle(e, e, 2, 3, 2, 3)));
    }
    sum += (f64x2.extract_lane(acc0, 0) + f64x2.extract_lane(acc0, 1)) + (f64x2.extract_lane(acc1, 0) + f64x2.extract_lane(acc1, 1));
    if (sum >= bound) return sum;
  }
  for (; j < k; j++) {
    const x = f32x4.splat(load<f32>(row + (<usize> j << 2)));
    const e = powV(f32x4.mul(f32x4.abs(f32x4.sub(x, fakeQuant(x, sv, zv, lo, hi))), inv), pv);
    sum += <f64> f32x4.extract_lane(e, 0);
  }
  return sum;
}

// For each of m rows of k values at x: candidate clipping ratios
// r_i = 1 - i / candidates (i < candidates) of the max-abs range (symmetric:
// s = r·max|x| / (2^(b-1) - 1), z = 0, levels [-2^(b-1), 2^(b-1) - 1]) or of
// [min(x, 0), max(x, 0)] (asymmetric: s = r·(max - min) / (2^b - 1),
// z = clamp(round(-r·min / s), 0, 2^b - 1), levels [0, 2^b - 1]); keeps the
// first candidate with the smallest Σ |x - x̂|^p. Writes scale[m] and zero[m].
// Returns -1, or the first row holding NaN or ±Infinity (rows from it on are
// left unwritten).
export function searchScales(
  x: usize, m: i32, k: i32, bits: i32, symmetric: i32, p: f32, candidates: i32, scale: usize, zero: usize,
): i32 {
  const qmin: f32 = symmetric ? -<f32> (1 << (bits - 1)) : 0;
  const qmax: f32 = symmetric ? <f32> ((1 << (bits - 1)) - 1) : <f32> ((1 << bits) - 1);
  for (let c = 0; c < m; c++) {
    const row = x + ((<usize> c * <usize> k) << 2);
    let lov = f32x4.splat(0), hiv = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= k; j += 4) {
      const v = v128.load(row + (<usize> j << 2));
      lov = f32x4.min(lov, v); // min/max propagate NaN
      hiv = f32x4.max(hiv, v);
    }
    let lo = min(min(f32x4.extract_lane(lov, 0), f32x4.extract_lane(lov, 1)), min(f32x4.extract_lane(lov, 2), f32x4.extract_lane(lov, 3)));
    let hi = max(max(f32x4.extract_lane(hiv, 0), f32x4.extract_lane(hiv, 1)), max(f32x4.extract_lane(hiv, 2), f32x4.extract_lane(hiv, 3)));
    for (; j < k; j++) {
      const v = load<f32>(row + (<usize> j << 2));
      lo = min(lo, v);
      hi = max(hi, v);
    }
    if (!isFinite(lo) || !isFinite(hi)) return c;
    const norm = max(-lo, hi);
    let bestScale: f32 = 1, bestZero: f32 = 0;
    if (norm >= MIN_RANGE) {
      const invNorm: f32 = 1 / norm;
      let best: f64 = Infinity;
      for (let i = 0; i < candidates; i++) {
        const r: f32 = 1 - <f32> i / <f32> candidates;
        let s: f32, z: f32 = 0;
        if (symmetric) {
          s = (r * norm) / qmax;
        } else {
          const l = r * lo;
          s = (r * hi - l) / qmax;
          z = min(max(nearest(-l / s), 0), qmax);
        }
        const err = lpError(row, k, s, z, qmin, qmax, p, invNorm, best);
        if (err < best) {
          best = err;
          bestScale = s;
          bestZero = z;
        }
      }
    }
    store<f32>(scale + (<usize> c << 2), bestScale);
    store<f32>(zero + (<usize> c << 2), bestZero);
  }
  return -1;
}

// y = s_c·(clamp(round(x / s_c) + z_c, qmin, qmax) - z_c) for m rows of k
// values; scale and zero hold one float per row. NaN gives NaN; y may be x.
export function fakeQuantNearest(
  x: usize, m: i32, k: i32, scale: usize, zero: usize, qmin: f32, qmax: f32, y: usize,
): void {
  const lo = f32x4.splat(qmin), hi = f32x4.splat(qmax);
  for (let c = 0; c < m; c++) {
    const o = (<usize> c * <usize> k) << 2;
    const s = f32x4.splat(load<f32>(scale + (<usize> c << 2)));
    const z = f32x4.splat(load<f32>(zero + (<usize> c << 2)));
    let j = 0;
    for (; j + 4 <= k; j += 4) {
      const at = o + (<usize> j << 2);
      v128.store(y + at, fakeQuant(v128.load(x + at), s, z, lo, hi));
    }
    for (; j < k; j++) {
      const at = o + (<usize> j << 2);
      store<f32>(y + at, f32x4.extract_lane(fakeQuant(f32x4.splat(load<f32>(x + at)), s, z, lo, hi), 0));
    }
  }
}

const lsqScaleZero = memory.data(8, 16);

// LSQ forward: the same quantizer with one scale and zero point for n values.
// With `drop` (a u32 word per value, 0 for none), values whose word is below
// dropBelow keep their float value (QDrop). y may be x.
export function lsqForward(
  x: usize, n: i32, s: f32, z: f32, qmin: f32, qmax: f32, y: usize, drop: usize, dropBelow: u32,
): void {
  store<f32>(lsqScaleZero, s);
  store<f32>(lsqScaleZero, z, 4);
  if (!drop) {
    fakeQuantNearest(x, 1, n, lsqScaleZero, lsqScaleZero + 4, qmin, qmax, y);
    return;
  }
  // One pass: each value quantized, or kept where its word is below dropBelow.
  const sv = f32x4.splat(s), zv = f32x4.splat(z), lo = f32x4.splat(qmin), hi = f32x4.splat(qmax);
  const below = i32x4.splat(dropBelow);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize> j << 2;
    const v = v128.load(x + o);
    v128.store(y + o, v128.bitselect(v, fakeQuant(v, sv, zv, lo, hi), i32x4.lt_u(v128.load(drop + o), below)));
  }
  for (; j < n; j++) {
    const o = <usize> j << 2;
    const v = load<f32>(x + o);
    const q = f32x4.extract_lane(fakeQuant(f32x4.splat(v), sv, zv, lo, hi), 0);
    store<f32>(y + o, load<u32>(drop + o) < dropBelow ? v : q);
  }
}

// dŷ/ds per value (LSQ): round(t) - t inside, qmin - z below, qmax - z above,
// where t = x / s and "inside" means qmin - z <= t <= qmax - z (unrounded).
@inline
function lsqSlope(t: v128, lo: v128, hi: v128): v128 {
  const inside = v128.and(f32x4.ge(t, lo), f32x4.le(t, hi));
  return v128.bitselect(f32x4.sub(f32x4.nearest(t), t), v128.bitselect(lo, hi, f32x4.lt(t, lo)), inside);
}

// Lanes whose drop word is below `below` (all ones) or none (no drop words).
@inline
function dropped(drop: usize, o: usize, below: v128): v128 {
  return drop ? i32x4.lt_u(v128.load(drop + o), below) : i32x4.splat(0);
}

// LSQ backward for n values: dx = dy inside the range, 0 outside (skipped when
// dx is 0); returns Σ dy·dŷ/ds in float64, which the caller scales by the
// LSQ gradient scale. dx may be dy. Values dropped as in lsqForward pass dy
// through to dx and add nothing to the sum.
export function lsqBackward(
  x: usize, dy: usize, n: i32, s: f32, z: f32, qmin: f32, qmax: f32, dx: usize, drop: usize, dropBelow: u32,
): f64 {
  const sv = f32x4.splat(s);
  const lo = f32x4.splat(qmin - z), hi = f32x4.splat(qmax - z);
  const below = i32x4.splat(dropBelow);
  let acc0 = f64x2.splat(0), acc1 = f64x2.splat(0);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize> j << 2;
    const t = f32x4.div(v128.load(x + o), sv);
    const g = v128.load(dy + o);
    const off = dropped(drop, o, below);
    const e = v128.andnot(f32x4.mul(g, lsqSlope(t, lo, hi)), off);
    acc0 = f64x2.add(acc0, f64x2.promote_low_f32x4(e));
    acc1 = f64x2.add(acc1, f64x2.promote_low_f32x4(i32x4.shuffle(e, e, 2, 3, 2, 3)));
    if (dx) v128.store(dx + o, v128.and(g, v128.or(off, v128.and(f32x4.ge(t, lo), f32x4.le(t, hi)))));
  }
  let sum = f64x2.extract_lane(acc0, 0) + f64x2.extract_lane(acc0, 1);
  sum += f64x2.extract_lane(acc1, 0) + f64x2.extract_lane(acc1, 1);
  for (; j < n; j++) {
    const o = <usize> j << 2;
    const t = f32x4.div(f32x4.splat(load<f32>(x + o)), sv);
    const g = f32x4.splat(load<f32>(dy + o));
    const off = drop != 0 && load<u32>(drop + o) < dropBelow;
    if (!off) sum += <f64> f32x4.extract_lane(f32x4.mul(g, lsqSlope(t, lo, hi)), 0);
    const pass = off ? i32x4.splat(-1) : v128.and(f32x4.ge(t, lo), f32x4.le(t, hi));
    if (dx) store<f32>(dx + o, f32x4.extract_lane(v128.and(g, pass), 0));
  }
  return sum;
}
