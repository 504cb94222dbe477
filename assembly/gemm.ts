// Single-precision GEMM: C = op(A)·op(B) (+ C), row-major, with leading dimensions.
// op(A) is M×K, op(B) is K×N. Blocked as in GotoBLAS: op(B) is packed into
// KC×NR panels, op(A) into MR×KC panels, and a MR×NR register-tiled micro-kernel
// runs over them. Packing absorbs the transposes, so one micro-kernel serves all
// four variants; zero padding in the packed panels handles ragged edges.

const MR = 4;
const NR = 8;
const KC = 256;
const MC = 128;
const NC = 1024;

// Scratch for the packed panels, allocated once when the module starts (the
// start function runs at instantiation) so that no kernel call allocates.
const packA: usize = heap.alloc(<usize> (MC * KC) << 2);
const packB: usize = heap.alloc(<usize> (KC * NC) << 2);
const edgeTile: usize = heap.alloc(<usize> (MR * NR) << 2);

// Packs rows [i0, i0+mc) × cols [p0, p0+kc) of op(A) into MR-row panels,
// each stored k-major: panel[k*MR + r].
function packPanelsA(transA: i32, a: usize, lda: i32, i0: i32, mc: i32, p0: i32, kc: i32): void {
  let dst = packA;
  for (let ir = 0; ir < mc; ir += MR) {
    const rows = min(MR, mc - ir);
    if (!transA) {
      for (let k = 0; k < kc; k++) {
        for (let r = 0; r < MR; r++) {
          const v: f32 = r < rows ? load<f32>(a + ((<usize> (i0 + ir + r) * lda + p0 + k) << 2)) : 0;
          store<f32>(dst + ((k * MR + r) << 2), v);
        }
      }
    } else {
      // op(A)[i,k] = A[k,i]: rows of the panel are contiguous in memory.
      for (let k = 0; k < kc; k++) {
        const src = a + ((<usize> (p0 + k) * lda + i0 + ir) << 2);
        if (rows == MR) {
          v128.store(dst + ((k * MR) << 2), v128.load(src));
        } else {
          for (let r = 0; r < MR; r++) {
            store<f32>(dst + ((k * MR + r) << 2), r < rows ? load<f32>(src + (r << 2)) : 0);
          }
        }
      }
    }
    dst += <usize> (kc * MR) << 2;
  }
}

// Packs rows [p0, p0+kc) × cols [j0, j0+nc) of op(B) into NR-column panels,
// each stored k-major: panel[k*NR + c].
function packPanelsB(transB: i32, b: usize, ldb: i32, p0: i32, kc: i32, j0: i32, nc: i32): void {
  let dst = packB;
  for (let jr = 0; jr < nc; jr += NR) {
    const cols = min(NR, nc - jr);
    if (!transB) {
      for (let k = 0; k < kc; k++) {
        const src = b + ((<usize> (p0 + k) * ldb + j0 + jr) << 2);
        const d = dst + ((k * NR) << 2);
        if (cols == NR) {
          v128.store(d, v128.load(src));
          v128.store(d, v128.load(src, 16), 16);
        } else {
          for (let c = 0; c < NR; c++) store<f32>(d + (c << 2), c < cols ? load<f32>(src + (c << 2)) : 0);
        }
      }
    } else {
      // op(B)[k,j] = B[j,k]: walk each source row once.
      for (let c = 0; c < NR; c++) {
        if (c < cols) {
          const src = b + ((<usize> (j0 + jr + c) * ldb + p0) << 2);
          for (let k = 0; k < kc; k++) store<f32>(dst + ((k * NR + c) << 2), load<f32>(src + (k << 2)));
        } else {
          for (let k = 0; k < kc; k++) store<f32>(dst + ((k * NR + c) << 2), 0);
        }
      }
    }
    dst += <usize> (kc * NR) << 2;
  }
}

// MR×NR tile of packed A times packed B, written to c (row stride ldc floats).
// add != 0 adds to what c holds.
function microKernel(kc: i32, pa: usize, pb: usize, c: usize, ldc: i32, add: i32): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = f32x4.add(c00, f32x4.mul(a, b0));
    c01 = f32x4.add(c01, f32x4.mul(a, b1));
    a = v128.load32_splat(pa, 4);
    c10 = f32x4.add(c10, f32x4.mul(a, b0));
    c11 = f32x4.add(c11, f32x4.mul(a, b1));
    a = v128.load32_splat(pa, 8);
    c20 = f32x4.add(c20, f32x4.mul(a, b0));
    c21 = f32x4.add(c21, f32x4.mul(a, b1));
    a = v128.load32_splat(pa, 12);
    c30 = f32x4.add(c30, f32x4.mul(a, b0));
    c31 = f32x4.add(c31, f32x4.mul(a, b1));
    pa += MR << 2;
    pb += NR << 2;
  }
  const stride = <usize> ldc << 2;
  if (add) {
    c00 = f32x4.add(c00, v128.load(c));
    c01 = f32x4.add(c01, v128.load(c, 16));
    c10 = f32x4.add(c10, v128.load(c + stride));
    c11 = f32x4.add(c11, v128.load(c + stride, 16));
    c20 = f32x4.add(c20, v128.load(c + 2 * stride));
    c21 = f32x4.add(c21, v128.load(c + 2 * stride, 16));
    c30 = f32x4.add(c30, v128.load(c + 3 * stride));
    c31 = f32x4.add(c31, v128.load(c + 3 * stride, 16));
  }
  v128.store(c, c00);
  v128.store(c, c01, 16);
  v128.store(c + stride, c10);
  v128.store(c + stride, c11, 16);
  v128.store(c + 2 * stride, c20);
  v128.store(c + 2 * stride, c21, 16);
  v128.store(c + 3 * stride, c30);
  v128.store(c + 3 * stride, c31, 16);
}

export function gemm(
  transA: i32,
  transB: i32,
  m: i32,
  n: i32,
  k: i32,
  a: usize,
  lda: i32,
  b: usize,
  ldb: i32,
  c: usize,
  ldc: i32,
  accumulate: i32,
): void {
  if (k == 0) {
    if (!accumulate) {
      for (let i = 0; i < m; i++) memory.fill(c + ((<usize> i * ldc) << 2), 0, <usize> n << 2);
    }
    return;
  }
  for (let j0 = 0; j0 < n; j0 += NC) {
    const nc = min(NC, n - j0);
    for (let p0 = 0; p0 < k; p0 += KC) {
      const kc = min(KC, k - p0);
      const add = accumulate || p0 > 0 ? 1 : 0;
      packPanelsB(transB, b, ldb, p0, kc, j0, nc);
      for (let i0 = 0; i0 < m; i0 += MC) {
        const mc = min(MC, m - i0);
        packPanelsA(transA, a, lda, i0, mc, p0, kc);
        for (let jr = 0; jr < nc; jr += NR) {
          const cols = min(NR, nc - jr);
          const pb = packB + ((<usize> jr * kc) << 2);
          for (let ir = 0; ir < mc; ir += MR) {
            const rows = min(MR, mc - ir);
            const pa = packA + ((<usize> ir * kc) << 2);
            const dst = c + ((<usize> (i0 + ir) * ldc + j0 + jr) << 2);
            if (rows == MR && cols == NR) {
              microKernel(kc, pa, pb, dst, ldc, add);
            } else {
              microKernel(kc, pa, pb, edgeTile, NR, 0);
              for (let r = 0; r < rows; r++) {
                for (let cc = 0; cc < cols; cc++) {
                  const p = dst + ((<usize> r * ldc + cc) << 2);
                  const v = load<f32>(edgeTile + ((r * NR + cc) << 2));
                  store<f32>(p, add ? load<f32>(p) + v : v);
                }
              }
            }
          }
        }
      }
    }
  }
}
