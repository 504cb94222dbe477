// Rounding modes of a per-channel weight quantizer (SPEC §4); the wasm kernels
// are in assembly/quant-round.ts.
//
// Layout as in quant.ts: m rows (output channels) × k values, row-major
// float32; scale and zero float32[m]; one level range [qmin, qmax]; pointers
// are byte addresses in wasm memory. Every forward writes ŵ = s·(q - z) to
// `wHat` and, unless `grad` is 0, dŵ/d(latent) per element to `grad`;
// roundingBackward(dWHat, grad, n, dLatent) then gives the latent's gradient.
// NaN in a latent gives NaN in ŵ.
//
// - attention, stochastic (the paper): latent v in levels (v = w/s + z at
//   start); q = clamp(round(v + σε), qmin, qmax) with ε element counter + i
//   of the Gaussian stream of `seed` (random.ts); P(q = k) is
//   Φ((k + ½ - v)/σ) - Φ((k - ½ - v)/σ) inside the range. Straight-through:
//   dŵ/dv = s where qmin <= v + σε <= qmax, else 0. σ = 0 draws nothing.
// - attention, expectation: q = Σ k·p_k over the levels k in [qmin, qmax]
//   with |k - v| <= 4σ, p_k ∝ exp(-(k - v)²/2σ²); dq/dv = Var_p(k)/σ² exactly
//   (d p_k/dv = p_k·(k - E k)/σ², so d E k/dv = E[k(k - E k)]/σ²), except at
//   the jumps where a level enters or leaves the ±4σ window. With no level in
//   the window (v more than 4σ outside the range, or σ < 1/8 between levels)
//   and with σ = 0: q = clamp(round(v)), slope 0.
// - adaround (Nagel et al. 2020, as BRECQ): latent α per weight,
//   h(α) = clamp(sigmoid(α)·(ζ - γ) + γ, 0, 1), ζ = 1.1, γ = -0.1;
//   q = clamp(floor(w/s) + h(α) + z) (soft) or floor(w/s) + (α >= 0) (hard);
//   regulariser R = Σ (1 - |2h(α) - 1|^β).
import { AttnroundError } from "../errors.ts";
import { wasm } from "../wasm.ts";
import { checkIntegers } from "./planes.ts";
import { roundHalfEven } from "./quant.ts";
import { checkStreamRange, splitCounter } from "./random.ts";

function checkGrid(kernel: string, m: number, k: number, qmin: number, qmax: number): void {
  checkIntegers(kernel, { m, k }, ["m", "k"], 0);
  if (
    !Number.isInteger(qmin) || !Number.isInteger(qmax) || qmin >= qmax || qmin < -(2 ** 23) || qmax > 2 ** 23
  ) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `${kernel}: qmin < qmax must be integers within ±2^23, got [${qmin}, ${qmax}]`,
    );
  }
}

function checkSigma(kernel: string, sigma: number): void {
  if (!(sigma >= 0 && sigma <= 64)) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `${kernel}: sigma must be in [0, 64] (levels), got ${sigma}`,
    );
  }
}

/** v [m × k] = w / s_c + z_c: the attention latent, in levels. */
export function attentionInit(w: number, m: number, k: number, scale: number, zero: number, v: number): void {
  checkIntegers("attentionInit", { m, k }, ["m", "k"], 0);
  wasm().attentionInit(w, m, k, scale, zero, v);
}

/**
 * Stochastic attention round of the latent v [m × k] with noise σ (levels).
 * Element i (row-major) uses stream element counter + i; returns how many
 * stream elements it used (m·k, or 0 when σ = 0), the caller's next counter
 * being counter + that.
 */
export function attentionStochasticForward(
  v: number,
  m: number,
  k: number,
  scale: number,
  zero: number,
  qmin: number,
  qmax: number,
  sigma: number,
  seed: number,
  counter: number,
  wHat: number,
  grad: number,
): number {
  checkGrid("attentionStochasticForward", m, k, qmin, qmax);
  checkSigma("attentionStochasticForward", sigma);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `attentionStochasticForward: seed must be an integer in [0, 2^32), got ${seed}`,
    );
  }
  const used = sigma > 0 ? m * k : 0;
  checkStreamRange("attentionStochasticForward", counter, used);
  const [lo, hi] = splitCounter(counter);
  wasm().attentionStochastic(v, m, k, scale, zero, qmin, qmax, sigma, seed, lo, hi, wHat, grad);
  return used;
}

/** Expectation attention round of v [m × k]: ŵ = s·(E_p[k] - z), grad = s·Var_p(k)/σ². */
export function attentionExpectedForward(
  v: number,
  m: number,
  k: number,
  scale: number,
  zero: number,
  qmin: number,
  qmax: number,
  sigma: number,
  wHat: number,
  grad: number,
): void {
  checkGrid("attentionExpectedForward", m, k, qmin, qmax);
  checkSigma("attentionExpectedForward", sigma);
  wasm().attentionExpected(v, m, k, scale, zero, qmin, qmax, sigma, wHat, grad);
}

/** α [m × k] = -ln((ζ - γ)/(rest - γ) - 1), rest = w/s - floor(w/s), so that h(α) = rest. */
export function adaroundInit(w: number, m: number, k: number, scale: number, alpha: number): void {
  checkIntegers("adaroundInit", { m, k }, ["m", "k"], 0);
  wasm().adaroundInit(w, m, k, scale, alpha);
}

/** AdaRound forward from the float weight w and latent α [m × k]; grad = dŵ/dα (0 when hard). */
export function adaroundForward(
  w: number,
  alpha: number,
  m: number,
  k: number,
  scale: number,
  zero: number,
  qmin: number,
  qmax: number,
  hard: boolean,
  wHat: number,
  grad: number,
): void {
  checkGrid("adaroundForward", m, k, qmin, qmax);
  wasm().adaroundForward(w, alpha, m, k, scale, zero, qmin, qmax, hard ? 1 : 0, wHat, grad);
}

/**
 * AdaRound's regulariser R = Σ (1 - |2h(α) - 1|^β) over n latents (float64
 * sum); adds gradScale·dR/dα to dAlpha unless it is 0. β > 1.
 */
export function adaroundRegularizer(
  alpha: number,
  n: number,
  beta: number,
  gradScale: number,
  dAlpha: number,
): number {
  checkIntegers("adaroundRegularizer", { n }, ["n"], 0);
  if (!(beta > 1 && beta <= 1000)) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `adaroundRegularizer: beta must be in (1, 1000], got ${beta}`,
    );
  }
  return wasm().adaroundRegularizer(alpha, n, beta, gradScale, dAlpha);
}

/** dLatent [n] = dWHat·grad (the forward's dŵ/d(latent)), or += when accumulate. */
export function roundingBackward(
  dWHat: number,
  grad: number,
  n: number,
  dLatent: number,
  accumulate = false,
): void {
  checkIntegers("roundingBackward", { n }, ["n"], 0);
  wasm().roundingBackward(dWHat, grad, n, dLatent, accumulate ? 1 : 0);
}

// ---- References ----

const fr = Math.fround;
const ZETA = 1.1;
const GAMMA = -0.1;

export interface RoundingResult {
  wHat: Float32Array;
  grad: Float32Array;
}

/**
 * Stochastic attention round in float32 arithmetic (bit-identical to the
 * kernel) with the normals given: eps[i] for element i, or none when σ = 0.
 */
export function attentionStochasticReference(
  v: Float32Array,
  m: number,
  k: number,
  scale: Float32Array,
  zero: Float32Array,
  qmin: number,
  qmax: number,
  sigma: number,
  eps?: Float32Array,
): RoundingResult {
  const wHat = new Float32Array(m * k), grad = new Float32Array(m * k);
  const sg = fr(sigma);
  for (let c = 0; c < m; c++) {
    for (let j = 0; j < k; j++) {
      const i = c * k + j;
      const t = sg !== 0 && eps ? fr(v[i] + fr(sg * eps[i])) : v[i];
      const q = Math.min(Math.max(roundHalfEven(t), qmin), qmax);
      wHat[i] = fr(fr(q - zero[c]) * scale[c]);
      grad[i] = t >= qmin && t <= qmax ? scale[c] : 0;
    }
  }
  return { wHat, grad };
}

/** E_p[k] and Var_p(k) of the expectation mode for one latent, in float64. */
export function expectedLevel(
  v: number,
  sigma: number,
  qmin: number,
  qmax: number,
): { q: number; variance: number } {
  if (!(sigma > 0)) return { q: Math.min(Math.max(roundHalfEven(v), qmin), qmax), variance: 0 };
  const from = Math.max(qmin, Math.ceil(v - 4 * sigma)), to = Math.min(qmax, Math.floor(v + 4 * sigma));
  let w = 0, s1 = 0, s2 = 0;
  for (let level = from; level <= to; level++) {
    const p = Math.exp(-((level - v) ** 2) / (2 * sigma * sigma));
    w += p;
    s1 += p * level;
    s2 += p * level * level;
  }
  if (w === 0) return { q: Math.min(Math.max(roundHalfEven(v), qmin), qmax), variance: 0 };
  const mean = s1 / w;
  let variance = 0;
  for (let level = from; level <= to; level++) {
    variance += Math.exp(-((level - v) ** 2) / (2 * sigma * sigma)) * (level - mean) ** 2;
  }
  return { q: mean, variance: variance / w };
}

/** Expectation attention round in float64 (the kernel is within ~1e-6 of it). */
export function attentionExpectedReference(
  v: Float32Array,
  m: number,
  k: number,
  scale: Float32Array,
  zero: Float32Array,
  qmin: number,
  qmax: number,
  sigma: number,
): { wHat: Float64Array; grad: Float64Array } {
  const wHat = new Float64Array(m * k), grad = new Float64Array(m * k);
  for (let c = 0; c < m; c++) {
    for (let j = 0; j < k; j++) {
      const i = c * k + j;
      const { q, variance } = expectedLevel(v[i], sigma, qmin, qmax);
      wHat[i] = scale[c] * (q - zero[c]);
      grad[i] = sigma > 0 ? (scale[c] * variance) / (sigma * sigma) : 0;
    }
  }
  return { wHat, grad };
}

/** w / s in float32, as the kernels compute it (floor(w/s) must match exactly). */
function ratio(w: number, s: number): number {
  return fr(w / s);
}

const sigmoid = (a: number) => 1 / (1 + Math.exp(-a));

/** h(α) of AdaRound, in float64, and whether neither clamp is active. */
export function rectifiedSigmoid(a: number): { h: number; raw: number; slope: number } {
  const sg = sigmoid(a);
  const raw = sg * (ZETA - GAMMA) + GAMMA;
  const inside = raw >= 0 && raw <= 1;
  return { h: Math.min(Math.max(raw, 0), 1), raw, slope: inside ? (ZETA - GAMMA) * sg * (1 - sg) : 0 };
}

export function adaroundInitReference(
  w: Float32Array,
  m: number,
  k: number,
  scale: Float32Array,
): Float64Array {
  const alpha = new Float64Array(m * k);
  for (let c = 0; c < m; c++) {
    for (let j = 0; j < k; j++) {
      const x = ratio(w[c * k + j], scale[c]);
      const rest = x - Math.floor(x);
      alpha[c * k + j] = -Math.log((ZETA - GAMMA) / (rest - GAMMA) - 1);
    }
  }
  return alpha;
}

/** AdaRound forward in float64 after the float32 w/s (soft results within ~1e-6 of the kernel's). */
export function adaroundForwardReference(
  w: Float32Array,
  alpha: Float32Array,
  m: number,
  k: number,
  scale: Float32Array,
  zero: Float32Array,
  qmin: number,
  qmax: number,
  hard: boolean,
): { wHat: Float64Array; grad: Float64Array } {
  const wHat = new Float64Array(m * k), grad = new Float64Array(m * k);
  for (let c = 0; c < m; c++) {
    for (let j = 0; j < k; j++) {
      const i = c * k + j;
      const s = scale[c], z = zero[c];
      const r = rectifiedSigmoid(alpha[i]);
      const h = hard ? (alpha[i] >= 0 ? 1 : 0) : r.h;
      const t = Math.floor(ratio(w[i], s)) + h + z;
      wHat[i] = s * (Math.min(Math.max(t, qmin), qmax) - z);
      grad[i] = !hard && t >= qmin && t <= qmax ? s * r.slope : 0;
    }
  }
  return { wHat, grad };
}

/** R and dR/dα of the AdaRound regulariser, in float64. */
export function adaroundRegularizerReference(
  alpha: Float32Array,
  beta: number,
): { r: number; grad: Float64Array } {
  const grad = new Float64Array(alpha.length);
  let r = 0;
  for (let i = 0; i < alpha.length; i++) {
    const { h, slope } = rectifiedSigmoid(alpha[i]);
    const u = 2 * h - 1;
    r += 1 - Math.abs(u) ** beta;
    grad[i] = -2 * beta * Math.abs(u) ** (beta - 1) * Math.sign(u) * slope;
  }
  return { r, grad };
}
