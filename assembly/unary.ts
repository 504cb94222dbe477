// Elementwise unary ops, float32, four lanes at a time; x == y (in place) is
// fine. exp, sigmoid, tanh and erf are evaluated in float32 with range
// reduction and minimax polynomials, within a few ulp (1e-6 relative) of
// Math.* rounded to float32, with the same NaN and ±Infinity results.

const RELU = 0;
const LEAKY_RELU = 1;
const CLIP = 2;
const SIGMOID = 3;
const HARD_SIGMOID = 4;
const HARD_SWISH = 5;
const SQRT = 6;
const EXP = 7;
const TANH = 8;
const ERF = 9;
const NEG = 10;
const ABS = 11;
const RECIPROCAL = 12;

function splat(v: f32): v128 {
  return f32x4.splat(v);
}

// exp(x) = 2^n · e^r with n = round(x / ln 2), r = x - n·ln 2 (Cody-Waite, two
// parts), e^r by the Cephes expf polynomial. 2^n is applied as two factors so
// that results in the subnormal range round once. x is clamped to [-104, 89]:
// beyond, the result is 0 or +Infinity anyway; NaN passes through.

function expV(x: v128): v128 {
  x = f32x4.pmin(f32x4.pmax(x, splat(-104)), splat(89));
  const n = f32x4.nearest(f32x4.mul(x, splat(1.44269504088896341)));
  let r = f32x4.sub(x, f32x4.mul(n, splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, splat(-2.12194440e-4)));
  let p = f32x4.add(f32x4.mul(splat(1.9875691500e-4), r), splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), splat(1));
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const n1 = i32x4.shr_s(ni, 1);
  const n2 = i32x4.sub(ni, n1);
  const s1 = i32x4.shl(i32x4.add(n1, i32x4.splat(127)), 23);
  const s2 = i32x4.shl(i32x4.add(n2, i32x4.splat(127)), 23);
  return f32x4.mul(f32x4.mul(p, s1), s2);
}

// 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below, so that e^x never overflows.

function sigmoidV(x: v128): v128 {
  const e = expV(f32x4.neg(f32x4.abs(x)));
  const t = f32x4.div(splat(1), f32x4.add(splat(1), e));
  return v128.bitselect(f32x4.mul(e, t), t, f32x4.lt(x, splat(0)));
}

// |x| < 0.625: the Cephes tanhf odd polynomial; above: 1 - 2 / (e^2|x| + 1).

function tanhV(x: v128): v128 {
  const ax = f32x4.abs(x);
  const z = f32x4.mul(x, x);
  let p = f32x4.add(f32x4.mul(splat(-5.70498872745e-3), z), splat(2.06390887954e-2));
  p = f32x4.add(f32x4.mul(p, z), splat(-5.37397155531e-2));
  p = f32x4.add(f32x4.mul(p, z), splat(1.33314422036e-1));
  p = f32x4.add(f32x4.mul(p, z), splat(-3.33332819422e-1));
  const small = f32x4.add(f32x4.mul(f32x4.mul(p, z), x), x);
  const e = expV(f32x4.add(ax, ax));
  const big = f32x4.sub(splat(1), f32x4.div(splat(2), f32x4.add(e, splat(1))));
  const signed = v128.bitselect(x, big, i32x4.splat(0x80000000));
  return v128.bitselect(small, signed, f32x4.lt(ax, splat(0.625)));
}

// erf as an odd rational function x·P(x²)/Q(x²) on [-4, 4] (the float
// approximation used by Eigen and XLA); beyond ±4 erf is ±1 in float32.

function erfV(a: v128): v128 {
  const x = f32x4.pmin(f32x4.pmax(a, splat(-4)), splat(4));
  const z = f32x4.mul(x, x);
  let p = f32x4.add(f32x4.mul(splat(-2.72614225801306e-10), z), splat(2.77068142495902e-08));
  p = f32x4.add(f32x4.mul(p, z), splat(-2.10102402082508e-06));
  p = f32x4.add(f32x4.mul(p, z), splat(-5.69250639462346e-05));
  p = f32x4.add(f32x4.mul(p, z), splat(-7.34990630326855e-04));
  p = f32x4.add(f32x4.mul(p, z), splat(-2.95459980854025e-03));
  p = f32x4.add(f32x4.mul(p, z), splat(-1.60960333262415e-02));
  p = f32x4.mul(p, x);
  let q = f32x4.add(f32x4.mul(splat(-1.45660718464996e-05), z), splat(-2.13374055278905e-04));
  q = f32x4.add(f32x4.mul(q, z), splat(-1.68282697438203e-03));
  q = f32x4.add(f32x4.mul(q, z), splat(-7.37332916720468e-03));
  q = f32x4.add(f32x4.mul(q, z), splat(-1.42647390514189e-02));
  return f32x4.div(p, q);
}

function apply(op: i32, x: v128, alpha: v128, beta: v128): v128 {
  if (op == RELU) return f32x4.max(x, splat(0));
  if (op == LEAKY_RELU) return v128.bitselect(f32x4.mul(x, alpha), x, f32x4.lt(x, splat(0)));
  if (op == CLIP) return f32x4.min(f32x4.max(x, alpha), beta);
  if (op == SIGMOID) return sigmoidV(x);
  if (op == HARD_SIGMOID) {
    return f32x4.max(splat(0), f32x4.min(splat(1), f32x4.add(f32x4.mul(alpha, x), beta)));
  }
  if (op == HARD_SWISH) {
    // x · clamp(x + 3, 0, 6) / 6: the ONNX formula (alpha 1/6, beta 1/2) without
    // its cancellation near x = -3.
    return f32x4.mul(
      x,
      f32x4.div(f32x4.max(splat(0), f32x4.min(splat(6), f32x4.add(x, splat(3)))), splat(6)),
    );
  }
  if (op == SQRT) return f32x4.sqrt(x);
  if (op == EXP) return expV(x);
  if (op == TANH) return tanhV(x);
  if (op == ERF) return erfV(x);
  if (op == NEG) return f32x4.neg(x);
  if (op == ABS) return f32x4.abs(x);
  return f32x4.div(splat(1), x);
}

// The tail goes through the same vector code, one lane used, so every element
// of a tensor gets bit-identical treatment.

function run(op: i32, x: usize, y: usize, len: i32, alpha: v128, beta: v128): void {
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const o = <usize> i << 2;
    v128.store(y + o, apply(op, v128.load(x + o), alpha, beta));
  }
  for (; i < len; i++) {
    const o = <usize> i << 2;
    store<f32>(y + o, f32x4.extract_lane(apply(op, f32x4.splat(load<f32>(x + o)), alpha, beta), 0));
  }
}

// alpha/beta: leakyRelu alpha; clip min, max; hardSigmoid and hardSwish alpha, beta.
export function unary(op: i32, x: usize, y: usize, len: i32, alpha: f32, beta: f32): void {
  const a = f32x4.splat(alpha), b = f32x4.splat(beta);
  switch (op) {
    case RELU:
      run(RELU, x, y, len, a, b);
      break;
    case LEAKY_RELU:
      run(LEAKY_RELU, x, y, len, a, b);
      break;
    case CLIP:
      run(CLIP, x, y, len, a, b);
      break;
    case SIGMOID:
      run(SIGMOID, x, y, len, a, b);
      break;
    case HARD_SIGMOID:
      run(HARD_SIGMOID, x, y, len, a, b);
      break;
    case HARD_SWISH:
      run(HARD_SWISH, x, y, len, a, b);
      break;
    case SQRT:
      run(SQRT, x, y, len, a, b);
      break;
    case EXP:
      run(EXP, x, y, len, a, b);
      break;
    case TANH:
      run(TANH, x, y, len, a, b);
      break;
    case ERF:
      run(ERF, x, y, len, a, b);
      break;
    case NEG:
      run(NEG, x, y, len, a, b);
      break;
    case ABS:
      run(ABS, x, y, len, a, b);
      break;
    default:
      run(RECIPROCAL, x, y, len, a, b);
  }
}
