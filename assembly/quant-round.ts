// deno-fmt-ignore-file: deno fmt drops the @inline decorators AssemblyScript needs.
// Rounding modes over a per-channel weight: m rows (output channels) of k
// values, row-major, with a scale and an integer zero point (as float32) per
// row and one level range [qmin, qmax]. Each forward writes ŵ = s·(q - z) and,
// unless its `grad` pointer is 0, the per-element derivative dŵ/d(latent) that
// roundingBackward multiplies the incoming gradient by.
// - attention, stochastic: q = clamp(round(v + σε)), ε from the Philox stream,
//   straight-through derivative s where qmin <= v + σε <= qmax, else 0;
// - attention, expectation: q = Σ k·p_k(v) over the levels within ±4σ, with
//   p_k ∝ exp(-(k - v)² / 2σ²); dq/dv = Var_p(k) / σ² exactly;
// - adaround (Nagel et al. 2020, as BRECQ): q = clamp(floor(w/s) + h(α) + z).
// src/kernels/quant-round.ts documents the contracts and holds the references.
import { fillGaussian } from "./random";
import { expV, logV, powV, sigmoidV } from "./quant-math";

const CHUNK = 1024;
// Normals for one chunk of the stochastic forward.
const noise = memory.data(CHUNK << 2, 16);

// AdaRound's rectified sigmoid: h = clamp(sigmoid(α)·(ζ - γ) + γ, 0, 1).
const ZETA_MINUS_GAMMA: f32 = 1.2;
const GAMMA: f32 = -0.1;

@inline
function rowAt(base: usize, c: i32, k: i32): usize {
  return base + ((<usize> c * <usize> k) << 2);
}

// v = w / s + z: the latent of the attention modes, in levels.
export function attentionInit(w: usize, m: i32, k: i32, scale: usize, zero: usize, v: usize): void {
  for (let c = 0; c < m; c++) {
    const s = f32x4.splat(load<f32>(scale + (<usize> c << 2)));
    const z = f32x4.splat(load<f32>(zero + (<usize> c << 2)));
    const src = rowAt(w, c, k), dst = rowAt(v, c, k);
    let j = 0;
    for (; j + 4 <= k; j += 4) {
      const o = <usize> j << 2;
      v128.store(dst + o, f32x4.add(f32x4.div(v128.load(src + o), s), z));
    }
    for (; j < k; j++) {
      const o = <usize> j << 2;
      store<f32>(dst + o, f32x4.extract_lane(f32x4.add(f32x4.div(f32x4.splat(load<f32>(src + o)), s), z), 0));
    }
  }
}

// One value of the stochastic forward: t = v + σε (σε = 0 when σ is 0).
@inline
function stochastic(t: v128, s: v128, z: v128, lo: v128, hi: v128, what: usize, grad: usize, o: usize): void {
  const q = f32x4.min(f32x4.max(f32x4.nearest(t), lo), hi);
  v128.store(what + o, f32x4.mul(f32x4.sub(q, z), s));
  if (grad) v128.store(grad + o, v128.and(s, v128.and(f32x4.ge(t, lo), f32x4.le(t, hi))));
}

@inline
function stochasticOne(t: v128, s: v128, z: v128, lo: v128, hi: v128, what: usize, grad: usize, o: usize): void {
  const q = f32x4.min(f32x4.max(f32x4.nearest(t), lo), hi);
  store<f32>(what + o, f32x4.extract_lane(f32x4.mul(f32x4.sub(q, z), s), 0));
  if (grad) store<f32>(grad + o, f32x4.extract_lane(v128.and(s, v128.and(f32x4.ge(t, lo), f32x4.le(t, hi))), 0));
}

// Stochastic attention round. Element i (row-major index) uses normal number
// first + i of stream `seed`; with σ = 0 no normals are drawn.
export function attentionStochastic(
  v: usize, m: i32, k: i32, scale: usize, zero: usize, qmin: f32, qmax: f32, sigma: f32,
  seed: u32, firstLo: u32, firstHi: u32, what: usize, grad: usize,
): void {
  const lo = f32x4.splat(qmin), hi = f32x4.splat(qmax), sg = f32x4.splat(sigma);
  const first = (<u64> firstHi << 32) | <u64> firstLo;
  for (let c = 0; c < m; c++) {
    const s = f32x4.splat(load<f32>(scale + (<usize> c << 2)));
    const z = f32x4.splat(load<f32>(zero + (<usize> c << 2)));
    const row = <usize> c * <usize> k;
    for (let j0 = 0; j0 < k; j0 += CHUNK) {
      const len = min(CHUNK, k - j0);
      const base = (row + <usize> j0) << 2;
      const src = v + base, dst = what + base, g = grad ? grad + base : 0;
      if (sigma != 0) {
        fillGaussian(seed, first + <u64> row + <u64> j0, len, noise);
        let j = 0;
        for (; j + 4 <= len; j += 4) {
          const o = <usize> j << 2;
          stochastic(f32x4.add(v128.load(src + o), f32x4.mul(sg, v128.load(noise + o))), s, z, lo, hi, dst, g, o);
        }
        for (; j < len; j++) {
          const o = <usize> j << 2;
          const t = f32x4.add(f32x4.splat(load<f32>(src + o)), f32x4.mul(sg, f32x4.splat(load<f32>(noise + o))));
          stochasticOne(t, s, z, lo, hi, dst, g, o);
        }
      } else {
        let j = 0;
        for (; j + 4 <= len; j += 4) {
          const o = <usize> j << 2;
          stochastic(v128.load(src + o), s, z, lo, hi, dst, g, o);
        }
        for (; j < len; j++) {
          const o = <usize> j << 2;
          stochasticOne(f32x4.splat(load<f32>(src + o)), s, z, lo, hi, dst, g, o);
        }
      }
    }
  }
}

// Expected level and its derivative for four latents, returned through two
// module globals (AssemblyScript functions return one value).
let expectedQ: v128 = i32x4.splat(0);
let expectedSlope: v128 = i32x4.splat(0);

// Levels c + d, d in [-span, span], c = round(v), that lie within ±radius of v
// and inside [lo, hi], weighted by exp(-(k - v)² · inv2s2). With no such level
// (v beyond the range by more than 4σ, or σ below 1/8 and v between levels)
// q is clamp(round(v)) and the slope 0. NaN gives NaN and slope 0.
@inline
function expected(v: v128, lo: v128, hi: v128, span: i32, radius: v128, inv2s2: v128, invS2: v128): void {
  const c = f32x4.nearest(v);
  let w = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0);
  for (let d = -span; d <= span; d++) {
    const dv = f32x4.splat(<f32> d);
    const level = f32x4.add(c, dv);
    const dist = f32x4.sub(level, v);
    const ok = v128.and(f32x4.le(f32x4.abs(dist), radius), v128.and(f32x4.ge(level, lo), f32x4.le(level, hi)));
    const p = v128.and(expV(f32x4.mul(f32x4.neg(f32x4.mul(dist, dist)), inv2s2)), ok);
    w = f32x4.add(w, p);
    const pd = f32x4.mul(p, dv);
    s1 = f32x4.add(s1, pd);
    s2 = f32x4.add(s2, f32x4.mul(pd, dv));
  }
  const none = f32x4.eq(w, f32x4.splat(0));
  const mean = f32x4.div(s1, w);
  const variance = f32x4.max(f32x4.sub(f32x4.div(s2, w), f32x4.mul(mean, mean)), f32x4.splat(0));
  expectedQ = v128.bitselect(f32x4.min(f32x4.max(c, lo), hi), f32x4.add(c, mean), none);
  expectedSlope = v128.andnot(f32x4.mul(variance, invS2), none);
}

// Expectation attention round: ŵ = s·(E_p[k] - z), grad = s·Var_p(k) / σ².
// σ = 0 is round to nearest with slope 0.
export function attentionExpected(
  v: usize, m: i32, k: i32, scale: usize, zero: usize, qmin: f32, qmax: f32, sigma: f32, what: usize, grad: usize,
): void {
  const lo = f32x4.splat(qmin), hi = f32x4.splat(qmax);
  const radius: f32 = <f32> 4 * sigma;
  // Levels within 4σ of v lie within 4σ + ½ of round(v).
  const span = sigma > 0 ? <i32> floor(radius + <f32> 0.5) : 0;
  const variance: f32 = sigma * sigma;
  const inv2s2: f32 = sigma > 0 ? <f32> 0.5 / variance : 0;
  const invS2: f32 = sigma > 0 ? <f32> 1 / variance : 0;
  for (let c = 0; c < m; c++) {
    const s = f32x4.splat(load<f32>(scale + (<usize> c << 2)));
    const z = f32x4.splat(load<f32>(zero + (<usize> c << 2)));
    const base = (<usize> c * <usize> k) << 2;
    let j = 0;
    for (; j + 4 <= k; j += 4) {
      const o = base + (<usize> j << 2);
      expected(v128.load(v + o), lo, hi, span, f32x4.splat(radius), f32x4.splat(inv2s2), f32x4.splat(invS2));
      v128.store(what + o, f32x4.mul(f32x4.sub(expectedQ, z), s));
      if (grad) v128.store(grad + o, f32x4.mul(expectedSlope, s));
    }
    for (; j < k; j++) {
      const o = base + (<usize> j << 2);
      expected(f32x4.splat(load<f32>(v + o)), lo, hi, span, f32x4.splat(radius), f32x4.splat(inv2s2), f32x4.splat(invS2));
      store<f32>(what + o, f32x4.extract_lane(f32x4.mul(f32x4.sub(expectedQ, z), s), 0));
      if (grad) store<f32>(grad + o, f32x4.extract_lane(f32x4.mul(expectedSlope, s), 0));
    }
  }
}

// α = -ln((ζ - γ) / (rest - γ) - 1), rest = w/s - floor(w/s): h(α) = rest.
@inline
function adaroundAlpha(w: v128, s: v128): v128 {
  const x = f32x4.div(w, s);
  const rest = f32x4.sub(x, f32x4.floor(x));
  const ratio = f32x4.div(f32x4.splat(ZETA_MINUS_GAMMA), f32x4.sub(rest, f32x4.splat(GAMMA)));
  return f32x4.neg(logV(f32x4.sub(ratio, f32x4.splat(1))));
}

export function adaroundInit(w: usize, m: i32, k: i32, scale: usize, alpha: usize): void {
  for (let c = 0; c < m; c++) {
    const s = f32x4.splat(load<f32>(scale + (<usize> c << 2)));
    const base = (<usize> c * <usize> k) << 2;
    let j = 0;
    for (; j + 4 <= k; j += 4) {
      const o = base + (<usize> j << 2);
      v128.store(alpha + o, adaroundAlpha(v128.load(w + o), s));
    }
    for (; j < k; j++) {
      const o = base + (<usize> j << 2);
      store<f32>(alpha + o, f32x4.extract_lane(adaroundAlpha(f32x4.splat(load<f32>(w + o)), s), 0));
    }
  }
}

let adaroundW: v128 = i32x4.splat(0);
let adaroundSlope: v128 = i32x4.splat(0);

// Soft: h = clamp(sigmoid(α)(ζ - γ) + γ, 0, 1), slope s·(ζ - γ)·σ(1 - σ) where
// neither clamp is active (bounds included, as torch.clamp). Hard: h = α >= 0.
@inline
function adaround(w: v128, a: v128, s: v128, z: v128, lo: v128, hi: v128, hard: bool): void {
  const x = f32x4.div(w, s);
  let h: v128, slope: v128;
  if (hard) {
    h = v128.and(f32x4.splat(1), f32x4.ge(a, f32x4.splat(0)));
    slope = f32x4.splat(0);
  } else {
    const sg = sigmoidV(a);
    const raw = f32x4.add(f32x4.mul(sg, f32x4.splat(ZETA_MINUS_GAMMA)), f32x4.splat(GAMMA));
    h = f32x4.min(f32x4.max(raw, f32x4.splat(0)), f32x4.splat(1));
    const dh = f32x4.mul(f32x4.mul(sg, f32x4.sub(f32x4.splat(1), sg)), f32x4.splat(ZETA_MINUS_GAMMA));
    slope = v128.and(dh, v128.and(f32x4.ge(raw, f32x4.splat(0)), f32x4.le(raw, f32x4.splat(1))));
  }
  const t = f32x4.add(f32x4.add(f32x4.floor(x), h), z);
  const q = f32x4.min(f32x4.max(t, lo), hi);
  adaroundW = f32x4.mul(f32x4.sub(q, z), s);
  adaroundSlope = v128.and(f32x4.mul(slope, s), v128.and(f32x4.ge(t, lo), f32x4.le(t, hi)));
}

// AdaRound forward: ŵ from the float weight w and the latent α; grad = dŵ/dα
// (0 in hard mode).
export function adaroundForward(
  w: usize, alpha: usize, m: i32, k: i32, scale: usize, zero: usize, qmin: f32, qmax: f32, hard: i32,
  what: usize, grad: usize,
): void {
  const lo = f32x4.splat(qmin), hi = f32x4.splat(qmax);
  for (let c = 0; c < m; c++) {
    const s = f32x4.splat(load<f32>(scale + (<usize> c << 2)));
    const z = f32x4.splat(load<f32>(zero + (<usize> c << 2)));
    const base = (<usize> c * <usize> k) << 2;
    let j = 0;
    for (; j + 4 <= k; j += 4) {
      const o = base + (<usize> j << 2);
      adaround(v128.load(w + o), v128.load(alpha + o), s, z, lo, hi, hard != 0);
      v128.store(what + o, adaroundW);
      if (grad) v128.store(grad + o, adaroundSlope);
    }
    for (; j < k; j++) {
      const o = base + (<usize> j << 2);
      adaround(f32x4.splat(load<f32>(w + o)), f32x4.splat(load<f32>(alpha + o)), s, z, lo, hi, hard != 0);
      store<f32>(what + o, f32x4.extract_lane(adaroundW, 0));
      if (grad) store<f32>(grad + o, f32x4.extract_lane(adaroundSlope, 0));
    }
  }
}

let regTerm: v128 = i32x4.splat(0);
let regGrad: v128 = i32x4.splat(0);

// 1 - |2h - 1|^β and its derivative in α: -2β|2h - 1|^(β-1)·sign(2h - 1)·dh/dα.
@inline
function regularizer(a: v128, beta: v128, betaMinusOne: v128): void {
  const sg = sigmoidV(a);
  const raw = f32x4.add(f32x4.mul(sg, f32x4.splat(ZETA_MINUS_GAMMA)), f32x4.splat(GAMMA));
  const h = f32x4.min(f32x4.max(raw, f32x4.splat(0)), f32x4.splat(1));
  const u = f32x4.sub(f32x4.add(h, h), f32x4.splat(1));
  const t = f32x4.abs(u);
  const pm1 = powV(t, betaMinusOne);
  regTerm = f32x4.sub(f32x4.splat(1), f32x4.mul(pm1, t));
  const dh = f32x4.mul(f32x4.mul(sg, f32x4.sub(f32x4.splat(1), sg)), f32x4.splat(ZETA_MINUS_GAMMA));
  const inside = v128.and(f32x4.ge(raw, f32x4.splat(0)), f32x4.le(raw, f32x4.splat(1)));
  const dRdh = v128.xor(f32x4.mul(f32x4.mul(beta, f32x4.splat(-2)), pm1), v128.and(u, i32x4.splat(0x80000000)));
  regGrad = v128.and(f32x4.mul(dRdh, dh), inside);
}

// R = Σ (1 - |2h(α) - 1|^β) over n latents, in float64; adds gradScale·dR/dα
// to dAlpha unless it is 0. β > 1.
export function adaroundRegularizer(alpha: usize, n: i32, beta: f32, gradScale: f32, dAlpha: usize): f64 {
  const b = f32x4.splat(beta), b1 = f32x4.splat(beta - 1), gs = f32x4.splat(gradScale);
  let acc0 = f64x2.splat(0), acc1 = f64x2.splat(0);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize> j << 2;
    regularizer(v128.load(alpha + o), b, b1);
    acc0 = f64x2.add(acc0, f64x2.promote_low_f32x4(regTerm));
    acc1 = f64x2.add(acc1, f64x2.promote_low_f32x4(i32x4.shuffle(regTerm, regTerm, 2, 3, 2, 3)));
    if (dAlpha) v128.store(dAlpha + o, f32x4.add(v128.load(dAlpha + o), f32x4.mul(regGrad, gs)));
  }
  let sum = f64x2.extract_lane(acc0, 0) + f64x2.extract_lane(acc0, 1);
  sum += f64x2.extract_lane(acc1, 0) + f64x2.extract_lane(acc1, 1);
  for (; j < n; j++) {
    const o = <usize> j << 2;
    regularizer(f32x4.splat(load<f32>(alpha + o)), b, b1);
    sum += <f64> f32x4.extract_lane(regTerm, 0);
    if (dAlpha) store<f32>(dAlpha + o, load<f32>(dAlpha + o) + f32x4.extract_lane(f32x4.mul(regGrad, gs), 0));
  }
  return sum;
}

// dLatent = dŵ · grad (the forward's derivative), or += when accumulate is set.
// dLatent may be dŵ.
export function roundingBackward(dWhat: usize, grad: usize, n: i32, dLatent: usize, accumulate: i32): void {
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize> j << 2;
    let d = f32x4.mul(v128.load(dWhat + o), v128.load(grad + o));
    if (accumulate) d = f32x4.add(v128.load(dLatent + o), d);
    v128.store(dLatent + o, d);
  }
  for (; j < n; j++) {
    const o = <usize> j << 2;
    let d = load<f32>(dWhat + o) * load<f32>(grad + o);
    if (accumulate) d = load<f32>(dLatent + o) + d;
    store<f32>(dLatent + o, d);
  }
}
