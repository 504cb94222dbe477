// Backward of the reconstruction loss (src/engine/ops/loss.ts): the gradient
// of mean((p - t)²) is scale·(p - t), scale = 2·dLoss / n, computed in float64
// per value and rounded once to float32, as the TypeScript loop it replaces.

// dp = f32(scale·(f64(p) - f64(t))) and dt = -dp, each skipped when 0.
export function mseGradient(p: usize, t: usize, n: i32, scale: f64, dp: usize, dt: usize): void {
  const sv = f64x2.splat(scale);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize> i << 2;
    const a = v128.load(p + o), b = v128.load(t + o);
    const lo = f64x2.mul(sv, f64x2.sub(f64x2.promote_low_f32x4(a), f64x2.promote_low_f32x4(b)));
    const ah = i32x4.shuffle(a, a, 2, 3, 2, 3), bh = i32x4.shuffle(b, b, 2, 3, 2, 3);
    const hi = f64x2.mul(sv, f64x2.sub(f64x2.promote_low_f32x4(ah), f64x2.promote_low_f32x4(bh)));
    const g = i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
    if (dp) v128.store(dp + o, g);
    if (dt) v128.store(dt + o, f32x4.neg(g));
  }
  for (; i < n; i++) {
    const o = <usize> i << 2;
    const g = <f32> (scale * (<f64> load<f32>(p + o) - <f64> load<f32>(t + o)));
    if (dp) store<f32>(dp + o, g);
    if (dt) store<f32>(dt + o, -g);
  }
}
