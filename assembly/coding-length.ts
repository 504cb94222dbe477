// deno-fmt-ignore-file: deno fmt drops the @inline decorators AssemblyScript needs.
// The lossy coding length's hot part (SPEC §6): log2 det(I + c·G) for the Gram
// matrix G of the smaller side of a float32 matrix W [m × n], row-major.
// - gramSmaller: G = W·Wᵀ [m × m] when m <= n, else Wᵀ·W [n × n], float32
//   with f32x4 accumulation; refuses NaN and ±Infinity first;
// - choleskyLogDet: A = I + c·G factorised in place as L·Lᵀ (L stored in
//   float32, every dot product and pivot in float64), log2 det A = Σ log2 d_j
//   where d_j = L_jj² is the j-th pivot.
// TypeScript (src/kernels/coding-length.ts) checks arguments and owns the buffers.

// Columns of G per tile in the Wᵀ·W path: TILE rows of G (TILE·n floats) stay in cache while every row of W passes.
const TILE = 16;

@inline
function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// Index of the first NaN or ±Infinity among count floats at x, or -1.
function firstNonFinite(x: usize, count: i32): i32 {
  const zero = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= count; i += 4) {
    const v = v128.load(x + (<usize> i << 2));
    // x - x is 0 for finite x and NaN otherwise.
    if (!i32x4.all_true(f32x4.eq(f32x4.sub(v, v), zero))) break;
  }
  for (; i < count; i++) {
    const v = load<f32>(x + (<usize> i << 2));
    if (!isFinite(v)) return i;
  }
  return -1;
}

// Σ_k a[k]·b[k] over k floats, four lanes at a time.
@inline
function dot(a: usize, b: usize, k: i32): f32 {
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  let j = 0;
  for (; j + 8 <= k; j += 8) {
    const o = <usize> j << 2;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    acc1 = f32x4.add(acc1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  for (; j + 4 <= k; j += 4) {
    const o = <usize> j << 2;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  let sum = hsum(f32x4.add(acc0, acc1));
  for (; j < k; j++) sum += load<f32>(a + (<usize> j << 2)) * load<f32>(b + (<usize> j << 2));
  return sum;
}

// G [s × s] (s = min(m, n)), both triangles written. Returns -1, or the index
// (row·n + column) of the first NaN or ±Infinity in W, leaving G unwritten.
export function gramSmaller(w: usize, m: i32, n: i32, g: usize): i32 {
  const bad = firstNonFinite(w, m * n);
  if (bad >= 0) return bad;
  if (m <= n) {
    // G_ij = row i · row j.
    for (let i = 0; i < m; i++) {
      const ri = w + ((<usize> i * <usize> n) << 2);
      for (let j = 0; j <= i; j++) {
        const v = dot(ri, w + ((<usize> j * <usize> n) << 2), n);
        store<f32>(g + ((<usize> i * <usize> m + <usize> j) << 2), v);
        store<f32>(g + ((<usize> j * <usize> m + <usize> i) << 2), v);
      }
    }
    return -1;
  }
  // G_ij = Σ_r W_ri·W_rj: each row of W adds its outer product, a tile of G rows at a time.
  memory.fill(g, 0, (<usize> n * <usize> n) << 2);
  for (let i0 = 0; i0 < n; i0 += TILE) {
    const i1 = min(n, i0 + TILE);
    for (let r = 0; r < m; r++) {
      const row = w + ((<usize> r * <usize> n) << 2);
      for (let i = i0; i < i1; i++) {
        const a = load<f32>(row + (<usize> i << 2));
        const av = f32x4.splat(a);
        const gi = g + ((<usize> i * <usize> n) << 2);
        // Columns 0 .. i (the lower triangle), in whole quads where they fit.
        let j = 0;
        for (; j + 4 <= i + 1; j += 4) {
          const o = <usize> j << 2;
          v128.store(gi + o, f32x4.add(v128.load(gi + o), f32x4.mul(av, v128.load(row + o))));
        }
        for (; j <= i; j++) {
          const o = <usize> j << 2;
          store<f32>(gi + o, load<f32>(gi + o) + a * load<f32>(row + o));
        }
      }
    }
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) {
      store<f32>(g + ((<usize> j * <usize> n + <usize> i) << 2), load<f32>(g + ((<usize> i * <usize> n + <usize> j) << 2)));
    }
  }
  return -1;
}

// Σ_k a[k]·b[k] over k floats, each product and the sum in float64.
@inline
function dot64(a: usize, b: usize, k: i32): f64 {
  let acc0 = f64x2.splat(0), acc1 = f64x2.splat(0);
  let j = 0;
  for (; j + 4 <= k; j += 4) {
    const o = <usize> j << 2;
    const x = v128.load(a + o), y = v128.load(b + o);
    acc0 = f64x2.add(acc0, f64x2.mul(f64x2.promote_low_f32x4(x), f64x2.promote_low_f32x4(y)));
    acc1 = f64x2.add(acc1, f64x2.mul(
      f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 2, 3)),
      f64x2.promote_low_f32x4(i32x4.shuffle(y, y, 2, 3, 2, 3)),
    ));
  }
  let sum = (f64x2.extract_lane(acc0, 0) + f64x2.extract_lane(acc0, 1)) + (f64x2.extract_lane(acc1, 0) + f64x2.extract_lane(acc1, 1));
  for (; j < k; j++) sum += <f64> load<f32>(a + (<usize> j << 2)) * <f64> load<f32>(b + (<usize> j << 2));
  return sum;
}

// Overwrites the lower triangle of the symmetric G [s × s] at a with the
// Cholesky factor L of I + c·G and returns log2 det(I + c·G) = Σ_j log2 d_j.
// Column by column: d_j = 1 + c·G_jj - Σ_{k<j} L_jk², L_jj = √d_j,
// L_ij = (c·G_ij - Σ_{k<j} L_ik·L_jk) / L_jj for i > j; the row prefixes
// are contiguous, so each sum is one float64 dot product.
// Returns -(j + 1) if pivot j is not a positive finite number (A is not
// positive definite, which needs G with NaN, ±Infinity or a negative c).
export function choleskyLogDet(a: usize, s: i32, c: f64): f64 {
  let logDet: f64 = 0;
  for (let j = 0; j < s; j++) {
    const rj = a + ((<usize> j * <usize> s) << 2);
    const d = 1 + c * <f64> load<f32>(rj + (<usize> j << 2)) - dot64(rj, rj, j);
    if (!(d > 0) || !isFinite(d)) return -<f64> (j + 1);
    logDet += Math.log2(d);
    const ljj = Math.sqrt(d);
    store<f32>(rj + (<usize> j << 2), <f32> ljj);
    for (let i = j + 1; i < s; i++) {
      const ri = a + ((<usize> i * <usize> s) << 2);
      const v = (c * <f64> load<f32>(ri + (<usize> j << 2)) - dot64(ri, rj, j)) / ljj;
      store<f32>(ri + (<usize> j << 2), <f32> v);
    }
  }
  return logDet;
}
