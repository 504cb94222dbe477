// Uniform affine quantizers (SPEC §3): q = clamp(round(x / s) + z, qmin, qmax),
// x̂ = s·(q - z), round half to even, x / s a float32 division. The wasm
// kernels are in assembly/quant.ts; the *Reference functions are the plain
// loops the tests hold them to.
//
// Layouts: a weight is m rows (output channels) × k values (fan-in),
// row-major, float32; scale and zero are float32[m] (zero holds integers).
// Pointers are byte addresses in wasm memory. NaN in fakeQuantNearest and
// lsqForward gives NaN out; the scale searches refuse NaN and ±Infinity.
import { AttnroundError } from "../errors.ts";
import { alloc, f32, free, wasm } from "../wasm.ts";
import { checkIntegers } from "./planes.ts";

/** Integer levels [qmin, qmax] of a quantizer. */
export interface Levels {
  qmin: number;
  qmax: number;
}

/**
 * Symmetric: signed [-2^(b-1), 2^(b-1) - 1] with zero point 0.
 * Asymmetric: unsigned [0, 2^b - 1] with a zero point per channel (or tensor).
 */
export function quantLevels(bits: number, symmetric: boolean): Levels {
  checkBits("quantLevels", bits);
  return symmetric
    ? { qmin: -(2 ** (bits - 1)), qmax: 2 ** (bits - 1) - 1 }
    : { qmin: 0, qmax: 2 ** bits - 1 };
}

export interface ScaleSearchOptions {
  /** Exponent of the error Σ |x - x̂|^p (BRECQ and LAPQ use 2.4). */
  p: number;
  /** Clipping ratios tried: r_i = 1 - i / candidates, i = 0 .. candidates-1. */
  candidates: number;
}

export const defaultScaleSearch: Readonly<ScaleSearchOptions> = { p: 2.4, candidates: 100 };

function searchOptions(kernel: string, options: Partial<ScaleSearchOptions>): ScaleSearchOptions {
  const o = { ...defaultScaleSearch, ...options };
  if (!(o.p > 0 && o.p <= 16)) {
    throw new AttnroundError("INVALID_ARGUMENT", `${kernel}: options.p must be in (0, 16], got ${o.p}`);
  }
  checkIntegers(kernel, { candidates: o.candidates }, ["candidates"], 1);
  return o;
}

function checkBits(kernel: string, bits: number): void {
  if (!Number.isInteger(bits) || bits < 2 || bits > 16) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `${kernel}: bits must be an integer in [2, 16], got ${bits}`,
    );
  }
}

function checkLevels(kernel: string, qmin: number, qmax: number): void {
  if (
    !Number.isInteger(qmin) || !Number.isInteger(qmax) || qmin >= qmax || qmin < -(2 ** 23) || qmax > 2 ** 23
  ) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `${kernel}: qmin < qmax must be integers within ±2^23, got [${qmin}, ${qmax}]`,
    );
  }
}

/**
 * Per-channel scale (and zero point) of a weight w [m × k] by the clipping
 * search of BRECQ: for each row, the ratio r_i = 1 - i/candidates of its range
 * (symmetric: s = r·max|w| / (2^(b-1) - 1), z = 0; asymmetric: [min(w, 0),
 * max(w, 0)] scaled by r, s = range / (2^b - 1), z = clamp(round(-r·min / s)),
 * so that 0 stays exactly representable) that minimises Σ |w - ŵ|^p; the
 * largest ratio wins ties. A row whose largest magnitude is below 2^-96 (all
 * zero in practice) gets s = 1, z = 0. Writes scale[m], zero[m] (float32).
 * Throws INVALID_DATA naming the first row that holds NaN or ±Infinity.
 */
export function searchWeightScales(
  w: number,
  m: number,
  k: number,
  bits: number,
  symmetric: boolean,
  scale: number,
  zero: number,
  options: Partial<ScaleSearchOptions> = {},
): void {
  checkIntegers("searchWeightScales", { m, k }, ["m", "k"], 0);
  checkBits("searchWeightScales", bits);
  const o = searchOptions("searchWeightScales", options);
  const bad = wasm().searchScales(w, m, k, bits, symmetric ? 1 : 0, o.p, o.candidates, scale, zero);
  if (bad >= 0) {
    throw new AttnroundError(
      "INVALID_DATA",
      `searchWeightScales: channel ${bad} of the weight holds NaN or ±Infinity; quantize finite weights only`,
    );
  }
}

export interface ActivationQuant extends Levels {
  scale: number;
  zero: number;
}

/**
 * Per-tensor scale of an activation from `count` float32 samples at `samples`:
 * the same search over [min(x, 0), max(x, 0)], unsigned levels [0, 2^b - 1]
 * and a zero point (0 when the samples are non-negative). Throws INVALID_DATA
 * on NaN or ±Infinity.
 */
export function searchActivationScale(
  samples: number,
  count: number,
  bits: number,
  options: Partial<ScaleSearchOptions> = {},
): ActivationQuant {
  checkIntegers("searchActivationScale", { count }, ["count"], 0);
  checkBits("searchActivationScale", bits);
  const o = searchOptions("searchActivationScale", options);
  const out = alloc(16);
  try {
    const bad = wasm().searchScales(samples, 1, count, bits, 0, o.p, o.candidates, out, out + 4);
    if (bad >= 0) {
      throw new AttnroundError(
        "INVALID_DATA",
        "searchActivationScale: the samples hold NaN or ±Infinity; check the layer feeding this activation",
      );
    }
    const [scale, zero] = f32(out, 2);
    return { scale, zero, ...quantLevels(bits, false) };
  } finally {
    free(out);
  }
}

/** out [m × k] = s_c·(clamp(round(w / s_c) + z_c, qmin, qmax) - z_c); out may be w. */
export function fakeQuantNearest(
  w: number,
  m: number,
  k: number,
  scale: number,
  zero: number,
  qmin: number,
  qmax: number,
  out: number,
): void {
  checkIntegers("fakeQuantNearest", { m, k }, ["m", "k"], 0);
  checkLevels("fakeQuantNearest", qmin, qmax);
  wasm().fakeQuantNearest(w, m, k, scale, zero, qmin, qmax, out);
}

function checkLsq(kernel: string, n: number, scale: number, zero: number, qmin: number, qmax: number): void {
  checkIntegers(kernel, { n }, ["n"], 0);
  checkLevels(kernel, qmin, qmax);
  if (!(scale > 0) || !Number.isFinite(scale)) {
    throw new AttnroundError("INVALID_ARGUMENT", `${kernel}: scale must be finite and > 0, got ${scale}`);
  }
  if (!Number.isInteger(zero) || zero < qmin || zero > qmax) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `${kernel}: zero must be an integer in [qmin, qmax], got ${zero}`,
    );
  }
}

/**
 * QDrop (Wei et al., "QDrop: Randomly dropping quantization for extremely
 * low-bit post-training quantization", 2022): `words` points at one u32 per
 * value, and the values whose word is below `below` skip the quantizer.
 */
export interface Drop {
  words: number;
  below: number;
}

/** No value dropped. */
export const NO_DROP: Readonly<Drop> = { words: 0, below: 0 };

/** The drop threshold for probability p: a uniform u32 word is below it with probability p. */
export function dropBelow(p: number): number {
  return Math.min(Math.round(p * 2 ** 32), 2 ** 32 - 1);
}

/**
 * LSQ fake quantization of n values, one scale and zero point: y = s·(clamp(round(x/s) + z) - z);
 * dropped values (see Drop) keep x. y may be x only without drop.
 */
export function lsqForward(
  x: number,
  n: number,
  scale: number,
  zero: number,
  qmin: number,
  qmax: number,
  y: number,
  drop: Readonly<Drop> = NO_DROP,
): void {
  checkLsq("lsqForward", n, scale, zero, qmin, qmax);
  wasm().lsqForward(x, n, scale, zero, qmin, qmax, y, drop.words, drop.below);
}

/**
 * LSQ backward (Esser et al. 2020) for n values with upstream gradient dy:
 * dx = dy where qmin - z <= x/s <= qmax - z, else 0 (skipped when dx is 0;
 * dx may be dy); returns dL/ds = g·Σ dy·∂ŷ/∂s with ∂ŷ/∂s = round(x/s) - x/s
 * inside, qmin - z below, qmax - z above, g = 1/sqrt(n·qmax) unless given.
 * The zero point stays fixed. Dropped values pass dy to dx and add nothing to dL/ds.
 */
export function lsqBackward(
  x: number,
  dy: number,
  n: number,
  scale: number,
  zero: number,
  qmin: number,
  qmax: number,
  dx: number,
  gradScale = lsqGradScale(n, qmax),
  drop: Readonly<Drop> = NO_DROP,
): number {
  checkLsq("lsqBackward", n, scale, zero, qmin, qmax);
  return gradScale * wasm().lsqBackward(x, dy, n, scale, zero, qmin, qmax, dx, drop.words, drop.below);
}

/** LSQ's step-gradient scale 1 / sqrt(n·qmax) (1 when either is 0). */
export function lsqGradScale(n: number, qmax: number): number {
  return n > 0 && qmax > 0 ? 1 / Math.sqrt(n * qmax) : 1;
}

// ---- References (float32 arithmetic mirrored with Math.fround, loops in order) ----

const fr = Math.fround;

/** Round half to even, as f32x4.nearest and numpy.round. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** x̂ of one float32 value: bit-identical to the wasm quantizer. */
export function fakeQuantValue(x: number, s: number, z: number, qmin: number, qmax: number): number {
  const q = Math.min(Math.max(fr(roundHalfEven(fr(x / s)) + z), qmin), qmax);
  return fr(fr(q - z) * s);
}

export function fakeQuantNearestReference(
  w: Float32Array,
  m: number,
  k: number,
  scale: Float32Array,
  zero: Float32Array,
  qmin: number,
  qmax: number,
  out: Float32Array,
): void {
  for (let c = 0; c < m; c++) {
    for (let j = 0; j < k; j++) out[c * k + j] = fakeQuantValue(w[c * k + j], scale[c], zero[c], qmin, qmax);
  }
}

/** One candidate of the clipping search: its scale, zero point and Σ (|x - x̂| / norm)^p in float64. */
export interface ScaleCandidate {
  scale: number;
  zero: number;
  error: number;
}

/**
 * Every candidate of the search for one row of float32 values (the same
 * float32 candidate scales as the wasm kernel, errors by Math.pow in float64),
 * or null for a row the search leaves at scale 1 (all-zero) and undefined for
 * a row with NaN or ±Infinity.
 */
export function scaleCandidatesReference(
  row: Float32Array,
  bits: number,
  symmetric: boolean,
  options: Partial<ScaleSearchOptions> = {},
): ScaleCandidate[] | null | undefined {
  const { p, candidates } = { ...defaultScaleSearch, ...options };
  const { qmin, qmax } = quantLevels(bits, symmetric);
  let lo = 0, hi = 0;
  for (const v of row) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return undefined;
  const norm = Math.max(-lo, hi);
  if (norm < 2 ** -96) return null;
  const pf = fr(p);
  const invNorm = fr(1 / norm);
  const out: ScaleCandidate[] = [];
  for (let i = 0; i < candidates; i++) {
    const r = fr(1 - fr(i / candidates));
    let s: number, z = 0;
    if (symmetric) {
      s = fr(fr(r * norm) / qmax);
    } else {
      const l = fr(r * lo);
      s = fr(fr(fr(r * hi) - l) / qmax);
      z = Math.min(Math.max(roundHalfEven(fr(-l / s)), 0), qmax);
    }
    let error = 0;
    for (const v of row) error += Math.abs(v - fakeQuantValue(v, s, z, qmin, qmax)) ** pf * invNorm ** pf;
    out.push({ scale: s, zero: z, error });
  }
  return out;
}

/** y = LSQ forward of n float32 values (bit-identical to lsqForward). */
export function lsqForwardReference(
  x: Float32Array,
  scale: number,
  zero: number,
  qmin: number,
  qmax: number,
  drop?: { words: Uint32Array; below: number },
): Float32Array {
  const s = fr(scale);
  return x.map((v, i) => (drop && drop.words[i] < drop.below ? v : fakeQuantValue(v, s, zero, qmin, qmax)));
}

/** dx and the unscaled Σ dy·∂ŷ/∂s (float32 terms, float64 sum) of lsqBackward. */
export function lsqBackwardReference(
  x: Float32Array,
  dy: Float32Array,
  scale: number,
  zero: number,
  qmin: number,
  qmax: number,
  drop?: { words: Uint32Array; below: number },
): { dx: Float32Array; sum: number } {
  const s = fr(scale), lo = qmin - zero, hi = qmax - zero;
  const dx = new Float32Array(x.length);
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    if (drop && drop.words[i] < drop.below) {
      dx[i] = dy[i];
      continue;
    }
    const t = fr(x[i] / s);
    const inside = t >= lo && t <= hi;
    const slope = inside ? fr(roundHalfEven(t) - t) : t < lo ? lo : hi;
    sum += fr(dy[i] * slope);
    dx[i] = inside ? dy[i] : 0;
  }
  return { dx, sum };
}
