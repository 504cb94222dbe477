// deno-fmt-ignore-file: deno fmt drops the @inline decorators AssemblyScript needs.
// Backward of the elementwise activations (assembly/unary.ts), float32, four
// lanes at a time: dx = dy · f'(x), with f' read from the input x or, for
// sigmoid, from the output y. At the kinks the derivative is the one-sided
// value PyTorch uses: relu and leakyRelu take the right side at 0 (relu: 0),
// clip passes the gradient at its bounds, hardSigmoid and hardSwish do not.

const RELU = 0;
const LEAKY_RELU = 1;
const CLIP = 2;
const SIGMOID = 3;
const HARD_SIGMOID = 4;
const HARD_SWISH = 5;

// dy · f'(x) as a select where f' is a mask, so that a NaN or infinite dy
// where f' = 0 gives 0.
@inline
function grad(op: i32, dy: v128, x: v128, y: v128, alpha: v128, beta: v128): v128 {
  const zero = f32x4.splat(0), one = f32x4.splat(1);
  if (op == RELU) return v128.and(dy, f32x4.gt(x, zero));
  if (op == LEAKY_RELU) return v128.bitselect(f32x4.mul(dy, alpha), dy, f32x4.lt(x, zero));
  if (op == CLIP) return v128.and(dy, v128.and(f32x4.ge(x, alpha), f32x4.le(x, beta)));
  if (op == SIGMOID) return f32x4.mul(dy, f32x4.mul(y, f32x4.sub(one, y)));
  if (op == HARD_SIGMOID) {
    const t = f32x4.add(f32x4.mul(alpha, x), beta);
    return v128.and(f32x4.mul(dy, alpha), v128.and(f32x4.gt(t, zero), f32x4.lt(t, one)));
  }
  // hardSwish x·clamp(x/6 + 1/2, 0, 1): 0 up to -3, x/3 + 1/2 inside, 1 from 3.
  const three = f32x4.splat(3);
  const inner = f32x4.mul(dy, f32x4.add(f32x4.div(x, three), f32x4.splat(0.5)));
  return v128.and(v128.bitselect(dy, inner, f32x4.ge(x, three)), f32x4.gt(x, f32x4.neg(three)));
}

@inline
function run(op: i32, x: usize, y: usize, dy: usize, dx: usize, len: i32, alpha: v128, beta: v128): void {
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const o = <usize> i << 2;
    const yv = op == SIGMOID ? v128.load(y + o) : f32x4.splat(0);
    v128.store(dx + o, grad(op, v128.load(dy + o), v128.load(x + o), yv, alpha, beta));
  }
  for (; i < len; i++) {
    const o = <usize> i << 2;
    const yv = op == SIGMOID ? f32x4.splat(load<f32>(y + o)) : f32x4.splat(0);
    const g = grad(op, f32x4.splat(load<f32>(dy + o)), f32x4.splat(load<f32>(x + o)), yv, alpha, beta);
    store<f32>(dx + o, f32x4.extract_lane(g, 0));
  }
}

function runRelu(x: usize, y: usize, dy: usize, dx: usize, len: i32, a: v128, b: v128): void {
  run(RELU, x, y, dy, dx, len, a, b);
}

function runLeakyRelu(x: usize, y: usize, dy: usize, dx: usize, len: i32, a: v128, b: v128): void {
  run(LEAKY_RELU, x, y, dy, dx, len, a, b);
}

function runClip(x: usize, y: usize, dy: usize, dx: usize, len: i32, a: v128, b: v128): void {
  run(CLIP, x, y, dy, dx, len, a, b);
}

function runSigmoid(x: usize, y: usize, dy: usize, dx: usize, len: i32, a: v128, b: v128): void {
  run(SIGMOID, x, y, dy, dx, len, a, b);
}

function runHardSigmoid(x: usize, y: usize, dy: usize, dx: usize, len: i32, a: v128, b: v128): void {
  run(HARD_SIGMOID, x, y, dy, dx, len, a, b);
}

function runHardSwish(x: usize, y: usize, dy: usize, dx: usize, len: i32, a: v128, b: v128): void {
  run(HARD_SWISH, x, y, dy, dx, len, a, b);
}

// dx = dy · f'(x) over len floats; y (the forward output) is read by sigmoid
// only. alpha/beta: leakyRelu slope; clip min, max; hardSigmoid alpha, beta.
// dx may be dy (in place).
export function unaryGrad(
  op: i32,
  x: usize,
  y: usize,
  dy: usize,
  dx: usize,
  len: i32,
  alpha: f32,
  beta: f32,
): void {
  const a = f32x4.splat(alpha), b = f32x4.splat(beta);
  switch (op) {
    case RELU:
      runRelu(x, y, dy, dx, len, a, b);
      break;
    case LEAKY_RELU:
      runLeakyRelu(x, y, dy, dx, len, a, b);
      break;
    case CLIP:
      runClip(x, y, dy, dx, len, a, b);
      break;
    case SIGMOID:
      runSigmoid(x, y, dy, dx, len, a, b);
      break;
    case HARD_SIGMOID:
      runHardSigmoid(x, y, dy, dx, len, a, b);
      break;
    default:
      runHardSwish(x, y, dy, dx, len, a, b);
  }
}
