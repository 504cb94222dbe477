// deno-fmt-ignore-file: deno fmt drops the @inline decorators AssemblyScript needs.
// Float32 vector math for the quantization kernels (random.ts, quant.ts,
// quant-round.ts): log, exp, pow, sigmoid and sin/cos on [-π/4, π/4], four
// lanes at a time, from the Cephes single-precision polynomials. Plain wasm
// float arithmetic only (no fused multiply-add, no relaxed SIMD), so every
// runtime computes the same bits.

// ln x for positive normal x (Cephes logf): x = m·2^e with m in [√½, √2),
// ln m by a degree-9 polynomial in m - 1, e·ln 2 added in two parts.
// Zero, subnormal, negative and non-finite inputs give garbage: callers mask them.
@inline
export function logV(x: v128): v128 {
  let e = i32x4.sub(i32x4.shr_u(x, 23), i32x4.splat(126));
  let m = v128.or(v128.and(x, i32x4.splat(0x007fffff)), i32x4.splat(0x3f000000)); // [0.5, 1)
  const small = f32x4.lt(m, f32x4.splat(0.707106781186547524));
  e = i32x4.add(e, small); // small lanes are -1
  // Both subtractions are exact (Sterbenz).
  m = v128.bitselect(f32x4.sub(f32x4.add(m, m), f32x4.splat(1)), f32x4.sub(m, f32x4.splat(1)), small);
  const fe = f32x4.convert_i32x4_s(e);
  const z = f32x4.mul(m, m);
  let y = f32x4.add(f32x4.mul(f32x4.splat(7.0376836292e-2), m), f32x4.splat(-1.1514610310e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(1.1676998740e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(-1.2420140846e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(1.4249322787e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(-1.6668057665e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(2.0000714765e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(-2.4999993993e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(3.3333331174e-1));
  y = f32x4.mul(f32x4.mul(y, m), z);
  y = f32x4.add(y, f32x4.mul(fe, f32x4.splat(-2.12194440e-4)));
  y = f32x4.sub(y, f32x4.mul(z, f32x4.splat(0.5)));
  return f32x4.add(f32x4.add(m, y), f32x4.mul(fe, f32x4.splat(0.693359375)));
}

// e^x (Cephes expf): n = round(x / ln 2), r = x - n·ln 2 in two parts, e^r by a
// polynomial, 2^n applied as two factors so that subnormal results round once.
// x is clamped to [-104, 89] (0 and +Infinity beyond); NaN passes through.
@inline
export function expV(x: v128): v128 {
  x = f32x4.pmin(f32x4.pmax(x, f32x4.splat(-104)), f32x4.splat(89));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.add(f32x4.mul(f32x4.splat(1.9875691500e-4), r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), f32x4.splat(1));
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const n1 = i32x4.shr_s(ni, 1);
  const n2 = i32x4.sub(ni, n1);
  // 2^k as bits: k << 23 plus the bits of 1.0.
  const one = i32x4.splat(0x3f800000);
  return f32x4.mul(f32x4.mul(p, i32x4.add(i32x4.shl(n1, 23), one)), i32x4.add(i32x4.shl(n2, 23), one));
}

// x^p for x >= 0 as e^(p·ln x); 0 where x is zero or subnormal (p > 0).
@inline
export function powV(x: v128, p: v128): v128 {
  const normal = f32x4.ge(x, f32x4.splat(1.17549435e-38));
  return v128.and(expV(f32x4.mul(p, logV(x))), normal);
}

// 1 / (1 + e^-x), through e^-|x| so that the exponential never overflows.
@inline
export function sigmoidV(x: v128): v128 {
  const e = expV(f32x4.neg(f32x4.abs(x)));
  const t = f32x4.div(f32x4.splat(1), f32x4.add(f32x4.splat(1), e));
  return v128.bitselect(f32x4.mul(e, t), t, f32x4.lt(x, f32x4.splat(0)));
}

// sin a for |a| <= π/4 (Cephes sinf).
@inline
export function sinSmallV(a: v128): v128 {
  const z = f32x4.mul(a, a);
  let p = f32x4.add(f32x4.mul(f32x4.splat(-1.9515295891e-4), z), f32x4.splat(8.3321608736e-3));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(-1.6666654611e-1));
  return f32x4.add(f32x4.mul(f32x4.mul(p, z), a), a);
}

// cos a for |a| <= π/4 (Cephes cosf).
@inline
export function cosSmallV(a: v128): v128 {
  const z = f32x4.mul(a, a);
  let p = f32x4.add(f32x4.mul(f32x4.splat(2.443315711809948e-5), z), f32x4.splat(-1.388731625493765e-3));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(4.166664568298827e-2));
  p = f32x4.mul(f32x4.mul(p, z), z);
  return f32x4.add(f32x4.sub(p, f32x4.mul(z, f32x4.splat(0.5))), f32x4.splat(1));
}
