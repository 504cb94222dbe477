// Adam (Kingma & Ba 2015) on the latent quantization variables, in place, as
// torch.optim.Adam computes it: m = β1·m + (1 - β1)·g, v = β2·v + (1 - β2)·g²,
// p -= stepSize·m / (sqrt(v)·invSqrtBias2 + eps), where the TypeScript side
// (src/kernels/quant-adam.ts) folds the bias corrections into
// stepSize = lr / (1 - β1^t) and invSqrtBias2 = 1 / sqrt(1 - β2^t).

export function adamStep(
  param: usize,
  grad: usize,
  m: usize,
  v: usize,
  n: i32,
  beta1: f32,
  oneMinusBeta1: f32,
  beta2: f32,
  oneMinusBeta2: f32,
  stepSize: f32,
  invSqrtBias2: f32,
  eps: f32,
): void {
  const b1 = f32x4.splat(beta1), c1 = f32x4.splat(oneMinusBeta1);
  const b2 = f32x4.splat(beta2), c2 = f32x4.splat(oneMinusBeta2);
  const lr = f32x4.splat(stepSize), bias2 = f32x4.splat(invSqrtBias2), e = f32x4.splat(eps);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize> j << 2;
    const g = v128.load(grad + o);
    const mt = f32x4.add(f32x4.mul(b1, v128.load(m + o)), f32x4.mul(c1, g));
    const vt = f32x4.add(f32x4.mul(b2, v128.load(v + o)), f32x4.mul(c2, f32x4.mul(g, g)));
    const denom = f32x4.add(f32x4.mul(f32x4.sqrt(vt), bias2), e);
    v128.store(param + o, f32x4.sub(v128.load(param + o), f32x4.div(f32x4.mul(lr, mt), denom)));
    v128.store(m + o, mt);
    v128.store(v + o, vt);
  }
  for (; j < n; j++) {
    const o = <usize> j << 2;
    const g = load<f32>(grad + o);
    const mt = beta1 * load<f32>(m + o) + oneMinusBeta1 * g;
    const vt = beta2 * load<f32>(v + o) + oneMinusBeta2 * (g * g);
    const denom = sqrt(vt) * invSqrtBias2 + eps;
    store<f32>(param + o, load<f32>(param + o) - (stepSize * mt) / denom);
    store<f32>(m + o, mt);
    store<f32>(v + o, vt);
  }
}
