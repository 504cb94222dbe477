// deno-fmt-ignore-file: deno fmt drops the @inline decorators AssemblyScript needs.
// Elementwise binary ops with numpy broadcasting, float32. The TypeScript side
// (src/kernels/binary.ts) drops unit dimensions and merges contiguous ones, so
// the loop nest here is at most six deep with per-operand strides (0 where an
// operand is broadcast). The innermost dimension picks a SIMD loop for the
// common cases: both operands contiguous, or one of them constant along it
// (a scalar, or a per-channel [1, C, 1, 1] operand over its H·W run).

const ADD = 0;
const SUB = 1;
const MUL = 2;
const DIV = 3;
const POW = 4;
const MAX = 5;
const MIN = 6;

// max/min as Math.max/min: NaN wins, and +0 > -0 (wasm semantics are the same).
@inline
function opScalar(op: i32, a: f32, b: f32): f32 {
  if (op == ADD) return a + b;
  if (op == SUB) return a - b;
  if (op == MUL) return a * b;
  if (op == DIV) return a / b;
  if (op == MAX) return max(a, b);
  if (op == MIN) return min(a, b);
  return powC(a, b);
}

// pow as C and numpy define it (AssemblyScript's Math.pow follows JavaScript,
// where these are NaN): 1^y = x^0 = 1 even for NaN, (-1)^±Infinity = 1.
function powC(a: f32, b: f32): f32 {
  if (a == 1 || b == 0) return 1;
  if (a == -1 && abs(b) == Infinity) return 1;
  return <f32> Math.pow(<f64> a, <f64> b);
}

@inline
function opVector(op: i32, a: v128, b: v128): v128 {
  if (op == ADD) return f32x4.add(a, b);
  if (op == SUB) return f32x4.sub(a, b);
  if (op == MUL) return f32x4.mul(a, b);
  if (op == DIV) return f32x4.div(a, b);
  if (op == MAX) return f32x4.max(a, b);
  if (op == MIN) return f32x4.min(a, b);
  return powVector(a, b);
}

function powVector(a: v128, b: v128): v128 {
  let r = f32x4.splat(opScalar(POW, f32x4.extract_lane(a, 0), f32x4.extract_lane(b, 0)));
  r = f32x4.replace_lane(r, 1, opScalar(POW, f32x4.extract_lane(a, 1), f32x4.extract_lane(b, 1)));
  r = f32x4.replace_lane(r, 2, opScalar(POW, f32x4.extract_lane(a, 2), f32x4.extract_lane(b, 2)));
  return f32x4.replace_lane(r, 3, opScalar(POW, f32x4.extract_lane(a, 3), f32x4.extract_lane(b, 3)));
}

// Inner loops; `op` is a constant at each call site once inlined.
@inline
function both(op: i32, a: usize, b: usize, y: usize, len: i32): void {
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const o = <usize> i << 2;
    v128.store(y + o, opVector(op, v128.load(a + o), v128.load(b + o)));
  }
  for (; i < len; i++) {
    const o = <usize> i << 2;
    store<f32>(y + o, opScalar(op, load<f32>(a + o), load<f32>(b + o)));
  }
}

@inline
function constB(op: i32, a: usize, bv: f32, y: usize, len: i32): void {
  const b = f32x4.splat(bv);
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const o = <usize> i << 2;
    v128.store(y + o, opVector(op, v128.load(a + o), b));
  }
  for (; i < len; i++) {
    const o = <usize> i << 2;
    store<f32>(y + o, opScalar(op, load<f32>(a + o), bv));
  }
}

@inline
function constA(op: i32, av: f32, b: usize, y: usize, len: i32): void {
  const a = f32x4.splat(av);
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const o = <usize> i << 2;
    v128.store(y + o, opVector(op, a, v128.load(b + o)));
  }
  for (; i < len; i++) {
    const o = <usize> i << 2;
    store<f32>(y + o, opScalar(op, av, load<f32>(b + o)));
  }
}

@inline
function strided(op: i32, a: usize, as: usize, b: usize, bs: usize, y: usize, len: i32): void {
  for (let i = 0; i < len; i++) {
    store<f32>(y + (<usize> i << 2), opScalar(op, load<f32>(a), load<f32>(b)));
    a += as;
    b += bs;
  }
}

// Powers that are cheaper, and no less exact, than pow: x^2 = x·x and
// x^-1 = 1/x are correctly rounded either way. Returns 0 if not handled.
function powByConstant(a: usize, e: f32, y: usize, len: i32): i32 {
  if (e == 2) {
    let i = 0;
    for (; i + 4 <= len; i += 4) {
      const o = <usize> i << 2;
      const v = v128.load(a + o);
      v128.store(y + o, f32x4.mul(v, v));
    }
    for (; i < len; i++) {
      const v = load<f32>(a + (<usize> i << 2));
      store<f32>(y + (<usize> i << 2), v * v);
    }
    return 1;
  }
  if (e == 1) {
    if (a != y) memory.copy(y, a, <usize> len << 2);
    return 1;
  }
  if (e == -1) {
    constA(DIV, 1, a, y, len);
    return 1;
  }
  return 0;
}

@inline
function inner(op: i32, a: usize, as: i32, b: usize, bs: i32, y: usize, len: i32): void {
  if (as == 1 && bs == 1) both(op, a, b, y, len);
  else if (as == 1 && bs == 0) {
    if (op != POW || !powByConstant(a, load<f32>(b), y, len)) constB(op, a, load<f32>(b), y, len);
  } else if (as == 0 && bs == 1) constA(op, load<f32>(a), b, y, len);
  else strided(op, a, <usize> as << 2, b, <usize> bs << 2, y, len);
}

@inline
function nest(
  op: i32,
  a: usize,
  b: usize,
  y: usize,
  n0: i32,
  n1: i32,
  n2: i32,
  n3: i32,
  n4: i32,
  n5: i32,
  as0: i32,
  as1: i32,
  as2: i32,
  as3: i32,
  as4: i32,
  as5: i32,
  bs0: i32,
  bs1: i32,
  bs2: i32,
  bs3: i32,
  bs4: i32,
  bs5: i32,
): void {
  for (let i0 = 0; i0 < n0; i0++) {
    for (let i1 = 0; i1 < n1; i1++) {
      for (let i2 = 0; i2 < n2; i2++) {
        for (let i3 = 0; i3 < n3; i3++) {
          for (let i4 = 0; i4 < n4; i4++) {
            const ao = <usize> (i0 * as0 + i1 * as1 + i2 * as2 + i3 * as3 + i4 * as4) << 2;
            const bo = <usize> (i0 * bs0 + i1 * bs1 + i2 * bs2 + i3 * bs3 + i4 * bs4) << 2;
            inner(op, a + ao, as5, b + bo, bs5, y, n5);
            y += <usize> n5 << 2;
          }
        }
      }
    }
  }
}

// One function per op, each with its own loops: inlined into a single switch,
// binaryen folds the copies back into one loop nest that dispatches per vector.
function nestAdd(
  a: usize,
  b: usize,
  y: usize,
  n0: i32,
  n1: i32,
  n2: i32,
  n3: i32,
  n4: i32,
  n5: i32,
  as0: i32,
  as1: i32,
  as2: i32,
  as3: i32,
  as4: i32,
  as5: i32,
  bs0: i32,
  bs1: i32,
  bs2: i32,
  bs3: i32,
  bs4: i32,
  bs5: i32,
): void {
  nest(ADD, a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
}

function nestSub(
  a: usize,
  b: usize,
  y: usize,
  n0: i32,
  n1: i32,
  n2: i32,
  n3: i32,
  n4: i32,
  n5: i32,
  as0: i32,
  as1: i32,
  as2: i32,
  as3: i32,
  as4: i32,
  as5: i32,
  bs0: i32,
  bs1: i32,
  bs2: i32,
  bs3: i32,
  bs4: i32,
  bs5: i32,
): void {
  nest(SUB, a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
}

function nestMul(
  a: usize,
  b: usize,
  y: usize,
  n0: i32,
  n1: i32,
  n2: i32,
  n3: i32,
  n4: i32,
  n5: i32,
  as0: i32,
  as1: i32,
  as2: i32,
  as3: i32,
  as4: i32,
  as5: i32,
  bs0: i32,
  bs1: i32,
  bs2: i32,
  bs3: i32,
  bs4: i32,
  bs5: i32,
): void {
  nest(MUL, a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
}

function nestDiv(
  a: usize,
  b: usize,
  y: usize,
  n0: i32,
  n1: i32,
  n2: i32,
  n3: i32,
  n4: i32,
  n5: i32,
  as0: i32,
  as1: i32,
  as2: i32,
  as3: i32,
  as4: i32,
  as5: i32,
  bs0: i32,
  bs1: i32,
  bs2: i32,
  bs3: i32,
  bs4: i32,
  bs5: i32,
): void {
  nest(DIV, a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
}

function nestPow(
  a: usize,
  b: usize,
  y: usize,
  n0: i32,
  n1: i32,
  n2: i32,
  n3: i32,
  n4: i32,
  n5: i32,
  as0: i32,
  as1: i32,
  as2: i32,
  as3: i32,
  as4: i32,
  as5: i32,
  bs0: i32,
  bs1: i32,
  bs2: i32,
  bs3: i32,
  bs4: i32,
  bs5: i32,
): void {
  nest(POW, a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
}

function nestMax(
  a: usize,
  b: usize,
  y: usize,
  n0: i32,
  n1: i32,
  n2: i32,
  n3: i32,
  n4: i32,
  n5: i32,
  as0: i32,
  as1: i32,
  as2: i32,
  as3: i32,
  as4: i32,
  as5: i32,
  bs0: i32,
  bs1: i32,
  bs2: i32,
  bs3: i32,
  bs4: i32,
  bs5: i32,
): void {
  nest(MAX, a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
}

function nestMin(
  a: usize,
  b: usize,
  y: usize,
  n0: i32,
  n1: i32,
  n2: i32,
  n3: i32,
  n4: i32,
  n5: i32,
  as0: i32,
  as1: i32,
  as2: i32,
  as3: i32,
  as4: i32,
  as5: i32,
  bs0: i32,
  bs1: i32,
  bs2: i32,
  bs3: i32,
  bs4: i32,
  bs5: i32,
): void {
  nest(MIN, a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
}

// y[i] = a[i·as] op b[i·bs] over the 6-D output n0×…×n5 (row-major, contiguous);
// strides are in elements. y may be a or b when that operand has the output's shape.
export function binary(
  op: i32,
  a: usize,
  b: usize,
  y: usize,
  n0: i32,
  n1: i32,
  n2: i32,
  n3: i32,
  n4: i32,
  n5: i32,
  as0: i32,
  as1: i32,
  as2: i32,
  as3: i32,
  as4: i32,
  as5: i32,
  bs0: i32,
  bs1: i32,
  bs2: i32,
  bs3: i32,
  bs4: i32,
  bs5: i32,
): void {
  switch (op) {
    case ADD:
      nestAdd(a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
      break;
    case SUB:
      nestSub(a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
      break;
    case MUL:
      nestMul(a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
      break;
    case DIV:
      nestDiv(a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
      break;
    case POW:
      nestPow(a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
      break;
    case MAX:
      nestMax(a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
      break;
    default:
      nestMin(a, b, y, n0, n1, n2, n3, n4, n5, as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5);
  }
}
