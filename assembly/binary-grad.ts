// Backward of the broadcasting binary ops (assembly/binary.ts): the gradient
// of a broadcast operand is the output gradient summed over the axes it was
// broadcast along. The TypeScript side (src/kernels/binary-grad.ts) drops unit
// dimensions and merges contiguous ones into at most six, with the target's
// strides (0 along summed axes). The innermost dimension is either summed (a
// row reduced to one number) or kept, and then the target steps through it
// contiguously (rows added as vectors): the target's later axes are all 1.

// y [ySize floats] = scale · Σ x over the summed axes; x is the full
// [n0..n5] tensor, ys0..ys5 the strides of y in elements along each axis.
export function reduceToShape(
  x: usize,
  y: usize,
  ySize: i32,
  scale: f32,
  n0: i32,
  n1: i32,
  n2: i32,
  n3: i32,
  n4: i32,
  n5: i32,
  ys0: i32,
  ys1: i32,
  ys2: i32,
  ys3: i32,
  ys4: i32,
  ys5: i32,
): void {
  memory.fill(y, 0, <usize> ySize << 2);
  for (let i0 = 0; i0 < n0; i0++) {
    for (let i1 = 0; i1 < n1; i1++) {
      for (let i2 = 0; i2 < n2; i2++) {
        for (let i3 = 0; i3 < n3; i3++) {
          for (let i4 = 0; i4 < n4; i4++) {
            const yo = y + (<usize> (i0 * ys0 + i1 * ys1 + i2 * ys2 + i3 * ys3 + i4 * ys4) << 2);
            if (ys5 == 0) store<f32>(yo, load<f32>(yo) + sumRow(x, n5));
            else addRow(yo, x, n5);
            x += <usize> n5 << 2;
          }
        }
      }
    }
  }
  if (scale != 1) {
    const s = f32x4.splat(scale);
    let i = 0;
    for (; i + 4 <= ySize; i += 4) {
      const o = <usize> i << 2;
      v128.store(y + o, f32x4.mul(v128.load(y + o), s));
    }
    for (; i < ySize; i++) store<f32>(y + (<usize> i << 2), load<f32>(y + (<usize> i << 2)) * scale);
  }
}

function sumRow(x: usize, len: i32): f32 {
  let a = f32x4.splat(0), b = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= len; i += 8) {
    a = f32x4.add(a, v128.load(x));
    b = f32x4.add(b, v128.load(x, 16));
    x += 32;
  }
  a = f32x4.add(a, b);
  let s = (f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1)) +
    (f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3));
  for (; i < len; i++) {
    s += load<f32>(x);
    x += 4;
  }
  return s;
}

function addRow(y: usize, x: usize, len: i32): void {
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const o = <usize> i << 2;
    v128.store(y + o, f32x4.add(v128.load(y + o), v128.load(x + o)));
  }
  for (; i < len; i++) {
    const o = <usize> i << 2;
    store<f32>(y + o, load<f32>(y + o) + load<f32>(x + o));
  }
}
