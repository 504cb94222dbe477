// Strided copy, float32: dst[Σ i_d·ds_d] = src[Σ i_d·ss_d] over a box of at
// most six dimensions (strides in elements, possibly negative or 0). The
// gradients of the data-movement ops are made of it: Transpose (permuted
// strides), Slice and Pad (a box at an offset), Concat and Split (blocks). The
// TypeScript side (src/kernels/strided-copy.ts) merges contiguous dimensions,
// so the innermost one is usually a plain run of floats.
export function stridedCopy(
  src: usize,
  dst: usize,
  n0: i32,
  n1: i32,
  n2: i32,
  n3: i32,
  n4: i32,
  n5: i32,
  ss0: i32,
  ss1: i32,
  ss2: i32,
  ss3: i32,
  ss4: i32,
  ss5: i32,
  ds0: i32,
  ds1: i32,
  ds2: i32,
  ds3: i32,
  ds4: i32,
  ds5: i32,
): void {
  for (let i0 = 0; i0 < n0; i0++) {
    for (let i1 = 0; i1 < n1; i1++) {
      for (let i2 = 0; i2 < n2; i2++) {
        for (let i3 = 0; i3 < n3; i3++) {
          for (let i4 = 0; i4 < n4; i4++) {
            const so = <isize> (i0 * ss0 + i1 * ss1 + i2 * ss2 + i3 * ss3 + i4 * ss4) << 2;
            const d = <isize> (i0 * ds0 + i1 * ds1 + i2 * ds2 + i3 * ds3 + i4 * ds4) << 2;
            const s = <usize> (<isize> src + so), o = <usize> (<isize> dst + d);
            if (ss5 == 1 && ds5 == 1) copyRun(o, s, n5);
            else copyStrided(o, <isize> ds5 << 2, s, <isize> ss5 << 2, n5);
          }
        }
      }
    }
  }
}

// Rows are short: a v128 loop beats memory.copy, which V8 runs as a call.
function copyRun(dst: usize, src: usize, count: i32): void {
  let i = 0;
  for (; i + 4 <= count; i += 4) {
    v128.store(dst, v128.load(src));
    src += 16;
    dst += 16;
  }
  for (; i < count; i++) {
    store<f32>(dst, load<f32>(src));
    src += 4;
    dst += 4;
  }
}

function copyStrided(dst: usize, ds: isize, src: usize, ss: isize, count: i32): void {
  for (let i = 0; i < count; i++) {
    store<f32>(dst, load<f32>(src));
    src = <usize> (<isize> src + ss);
    dst = <usize> (<isize> dst + ds);
  }
}
