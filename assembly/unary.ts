// deno-fmt-ignore-file: deno fmt drops the @inline decorators AssemblyScript needs.
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

// Every constant of the vector code, four lanes each, in a static table:
// a v128.load from it is one instruction where V8 materialises a v128.const
// with several, at each use inside the loops.
const CONSTANTS = memory.data<f32>([
  -104, -104, -104, -104,
  89, 89, 89, 89,
  1.44269504088896341, 1.44269504088896341, 1.44269504088896341, 1.44269504088896341,
  0.693359375, 0.693359375, 0.693359375, 0.693359375,
  -2.12194440e-4, -2.12194440e-4, -2.12194440e-4, -2.12194440e-4,
  1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4,
  1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3,
  8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3,
  4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2,
  1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1,
  5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1,
  1, 1, 1, 1,
  0, 0, 0, 0,
  -5.70498872745e-3, -5.70498872745e-3, -5.70498872745e-3, -5.70498872745e-3,
  2.06390887954e-2, 2.06390887954e-2, 2.06390887954e-2, 2.06390887954e-2,
  -5.37397155531e-2, -5.37397155531e-2, -5.37397155531e-2, -5.37397155531e-2,
  1.33314422036e-1, 1.33314422036e-1, 1.33314422036e-1, 1.33314422036e-1,
  -3.33332819422e-1, -3.33332819422e-1, -3.33332819422e-1, -3.33332819422e-1,
  2, 2, 2, 2,
  0.625, 0.625, 0.625, 0.625,
  -4, -4, -4, -4,
  4, 4, 4, 4,
  -2.72614225801306e-10, -2.72614225801306e-10, -2.72614225801306e-10, -2.72614225801306e-10,
  2.77068142495902e-08, 2.77068142495902e-08, 2.77068142495902e-08, 2.77068142495902e-08,
  -2.10102402082508e-06, -2.10102402082508e-06, -2.10102402082508e-06, -2.10102402082508e-06,
  -5.69250639462346e-05, -5.69250639462346e-05, -5.69250639462346e-05, -5.69250639462346e-05,
  -7.34990630326855e-04, -7.34990630326855e-04, -7.34990630326855e-04, -7.34990630326855e-04,
  -2.95459980854025e-03, -2.95459980854025e-03, -2.95459980854025e-03, -2.95459980854025e-03,
  -1.60960333262415e-02, -1.60960333262415e-02, -1.60960333262415e-02, -1.60960333262415e-02,
  -1.45660718464996e-05, -1.45660718464996e-05, -1.45660718464996e-05, -1.45660718464996e-05,
  -2.13374055278905e-04, -2.13374055278905e-04, -2.13374055278905e-04, -2.13374055278905e-04,
  -1.68282697438203e-03, -1.68282697438203e-03, -1.68282697438203e-03, -1.68282697438203e-03,
  -7.37332916720468e-03, -7.37332916720468e-03, -7.37332916720468e-03, -7.37332916720468e-03,
  -1.42647390514189e-02, -1.42647390514189e-02, -1.42647390514189e-02, -1.42647390514189e-02,
  6, 6, 6, 6,
  3, 3, 3, 3,
], 16);

@inline
function c(i: i32): v128 {
  return v128.load(CONSTANTS + (<usize> i << 4));
}

// exp(x) = 2^n · e^r with n = round(x / ln 2), r = x - n·ln 2 (Cody-Waite, two
// parts), e^r by the Cephes expf polynomial. 2^n is applied as two factors so
// that results in the subnormal range round once. x is clamped to [-104, 89]:
// beyond, the result is 0 or +Infinity anyway; NaN passes through.
@inline
function expV(x: v128): v128 {
  x = f32x4.pmin(f32x4.pmax(x, c(0)), c(1));
  const n = f32x4.nearest(f32x4.mul(x, c(2)));
  let r = f32x4.sub(x, f32x4.mul(n, c(3)));
  r = f32x4.sub(r, f32x4.mul(n, c(4)));
  let p = f32x4.add(f32x4.mul(c(5), r), c(6));
  p = f32x4.add(f32x4.mul(p, r), c(7));
  p = f32x4.add(f32x4.mul(p, r), c(8));
  p = f32x4.add(f32x4.mul(p, r), c(9));
  p = f32x4.add(f32x4.mul(p, r), c(10));
  p = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), c(11));
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const n1 = i32x4.shr_s(ni, 1);
  const n2 = i32x4.sub(ni, n1);
  // 2^k as bits: k << 23 plus the bits of 1.0 (the exponent bias 127 << 23).
  const s1 = i32x4.add(i32x4.shl(n1, 23), c(11));
  const s2 = i32x4.add(i32x4.shl(n2, 23), c(11));
  return f32x4.mul(f32x4.mul(p, s1), s2);
}

// 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below, so that e^x never overflows.
@inline
function sigmoidV(x: v128): v128 {
  const e = expV(f32x4.neg(f32x4.abs(x)));
  const t = f32x4.div(c(11), f32x4.add(c(11), e));
  return v128.bitselect(f32x4.mul(e, t), t, f32x4.lt(x, c(12)));
}

// |x| < 0.625: the Cephes tanhf odd polynomial; above: 1 - 2 / (e^2|x| + 1).
@inline
function tanhV(x: v128): v128 {
  const ax = f32x4.abs(x);
  const z = f32x4.mul(x, x);
  let p = f32x4.add(f32x4.mul(c(13), z), c(14));
  p = f32x4.add(f32x4.mul(p, z), c(15));
  p = f32x4.add(f32x4.mul(p, z), c(16));
  p = f32x4.add(f32x4.mul(p, z), c(17));
  const small = f32x4.add(f32x4.mul(f32x4.mul(p, z), x), x);
  const e = expV(f32x4.add(ax, ax));
  const big = f32x4.sub(c(11), f32x4.div(c(18), f32x4.add(e, c(11))));
  const signed = v128.bitselect(x, big, i32x4.splat(0x80000000));
  return v128.bitselect(small, signed, f32x4.lt(ax, c(19)));
}

// erf as an odd rational function x·P(x²)/Q(x²) on [-4, 4] (the float
// approximation used by Eigen and XLA); beyond ±4 erf is ±1 in float32.
@inline
function erfV(a: v128): v128 {
  const x = f32x4.pmin(f32x4.pmax(a, c(20)), c(21));
  const z = f32x4.mul(x, x);
  let p = f32x4.add(f32x4.mul(c(22), z), c(23));
  p = f32x4.add(f32x4.mul(p, z), c(24));
  p = f32x4.add(f32x4.mul(p, z), c(25));
  p = f32x4.add(f32x4.mul(p, z), c(26));
  p = f32x4.add(f32x4.mul(p, z), c(27));
  p = f32x4.add(f32x4.mul(p, z), c(28));
  p = f32x4.mul(p, x);
  let q = f32x4.add(f32x4.mul(c(29), z), c(30));
  q = f32x4.add(f32x4.mul(q, z), c(31));
  q = f32x4.add(f32x4.mul(q, z), c(32));
  q = f32x4.add(f32x4.mul(q, z), c(33));
  return f32x4.div(p, q);
}

@inline
function apply(op: i32, x: v128, alpha: v128, beta: v128): v128 {
  if (op == RELU) return f32x4.max(x, c(12));
  if (op == LEAKY_RELU) return v128.bitselect(f32x4.mul(x, alpha), x, f32x4.lt(x, c(12)));
  if (op == CLIP) return f32x4.min(f32x4.max(x, alpha), beta);
  if (op == SIGMOID) return sigmoidV(x);
  if (op == HARD_SIGMOID) {
    return f32x4.max(c(12), f32x4.min(c(11), f32x4.add(f32x4.mul(alpha, x), beta)));
  }
  if (op == HARD_SWISH) {
    // x · clamp(x + 3, 0, 6) / 6: the ONNX formula (alpha 1/6, beta 1/2) without
    // its cancellation near x = -3.
    return f32x4.mul(
      x,
      f32x4.div(f32x4.max(c(12), f32x4.min(c(34), f32x4.add(x, c(35)))), c(34)),
    );
  }
  if (op == SQRT) return f32x4.sqrt(x);
  if (op == EXP) return expV(x);
  if (op == TANH) return tanhV(x);
  if (op == ERF) return erfV(x);
  if (op == NEG) return f32x4.neg(x);
  if (op == ABS) return f32x4.abs(x);
  return f32x4.div(c(11), x);
}

// The tail goes through the same vector code, one lane used, so every element
// of a tensor gets bit-identical treatment.
@inline
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

// One function per op, each with its own loop: inlined into a single switch,
// binaryen folds the thirteen loops back into one that dispatches per vector.
function runRelu(x: usize, y: usize, len: i32, a: v128, b: v128): void {
  run(RELU, x, y, len, a, b);
}

function runLeakyRelu(x: usize, y: usize, len: i32, a: v128, b: v128): void {
  run(LEAKY_RELU, x, y, len, a, b);
}

function runClip(x: usize, y: usize, len: i32, a: v128, b: v128): void {
  run(CLIP, x, y, len, a, b);
}

function runSigmoid(x: usize, y: usize, len: i32, a: v128, b: v128): void {
  run(SIGMOID, x, y, len, a, b);
}

function runHardSigmoid(x: usize, y: usize, len: i32, a: v128, b: v128): void {
  run(HARD_SIGMOID, x, y, len, a, b);
}

function runHardSwish(x: usize, y: usize, len: i32, a: v128, b: v128): void {
  run(HARD_SWISH, x, y, len, a, b);
}

function runSqrt(x: usize, y: usize, len: i32, a: v128, b: v128): void {
  run(SQRT, x, y, len, a, b);
}

function runExp(x: usize, y: usize, len: i32, a: v128, b: v128): void {
  run(EXP, x, y, len, a, b);
}

function runTanh(x: usize, y: usize, len: i32, a: v128, b: v128): void {
  run(TANH, x, y, len, a, b);
}

function runErf(x: usize, y: usize, len: i32, a: v128, b: v128): void {
  run(ERF, x, y, len, a, b);
}

function runNeg(x: usize, y: usize, len: i32, a: v128, b: v128): void {
  run(NEG, x, y, len, a, b);
}

function runAbs(x: usize, y: usize, len: i32, a: v128, b: v128): void {
  run(ABS, x, y, len, a, b);
}

function runReciprocal(x: usize, y: usize, len: i32, a: v128, b: v128): void {
  run(RECIPROCAL, x, y, len, a, b);
}

// alpha/beta: leakyRelu alpha; clip min, max; hardSigmoid and hardSwish alpha, beta.
export function unary(op: i32, x: usize, y: usize, len: i32, alpha: f32, beta: f32): void {
  const a = f32x4.splat(alpha), b = f32x4.splat(beta);
  switch (op) {
    case RELU:
      runRelu(x, y, len, a, b);
      break;
    case LEAKY_RELU:
      runLeakyRelu(x, y, len, a, b);
      break;
    case CLIP:
      runClip(x, y, len, a, b);
      break;
    case SIGMOID:
      runSigmoid(x, y, len, a, b);
      break;
    case HARD_SIGMOID:
      runHardSigmoid(x, y, len, a, b);
      break;
    case HARD_SWISH:
      runHardSwish(x, y, len, a, b);
      break;
    case SQRT:
      runSqrt(x, y, len, a, b);
      break;
    case EXP:
      runExp(x, y, len, a, b);
      break;
    case TANH:
      runTanh(x, y, len, a, b);
      break;
    case ERF:
      runErf(x, y, len, a, b);
      break;
    case NEG:
      runNeg(x, y, len, a, b);
      break;
    case ABS:
      runAbs(x, y, len, a, b);
      break;
    default:
      runReciprocal(x, y, len, a, b);
  }
}
