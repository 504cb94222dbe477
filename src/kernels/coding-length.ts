// The lossy coding length of a weight (SPEC §6; Ma, Derksen, Hong, Wright,
// "Segmentation of multivariate mixed data via lossy data coding and
// compression", TPAMI 2007): the m rows of W [m × n] are samples in R^n and
//   L(W) = ((m + n) / 2) · log2 det(I + (n / (ε² m)) · WᵀW),
// the bits needed to code them up to a mean squared error ε² per row.
// det(I_n + c·WᵀW) = det(I_m + c·WWᵀ), so the determinant is taken over the
// Gram matrix of the smaller side, by a Cholesky factorisation in wasm
// (assembly/coding-length.ts): log2 det = Σ log2 L_jj². The *Reference
// functions are plain float64 loops for the tests.
import { AttnroundError } from "../errors.ts";
import { alloc, f32, free, wasm } from "../wasm.ts";
import { checkIntegers } from "./planes.ts";

function checkShape(kernel: string, m: number, n: number): void {
  checkIntegers(kernel, { m, n }, ["m", "n"], 1);
}

function nonFinite(kernel: string, index: number, n: number): never {
  throw new AttnroundError(
    "INVALID_DATA",
    `${kernel}: the matrix holds NaN or ±Infinity at row ${Math.floor(index / n)}, column ${
      index % n
    }; the coding length needs finite values`,
  );
}

/**
 * log2 det(I + c·G) for G the Gram matrix of the smaller side of the float32
 * matrix at `w` [m × n] (row-major, byte address in wasm memory): W·Wᵀ when
 * m <= n, else Wᵀ·W. G accumulates in float32 (f32x4), the factorisation in
 * float64. Throws INVALID_DATA naming the first NaN or ±Infinity in W, or
 * when I + c·G is not positive definite (a Gram matrix that overflowed
 * float32: values beyond ~1e18).
 */
export function gramLogDet(w: number, m: number, n: number, c: number): number {
  checkShape("gramLogDet", m, n);
  if (!(c >= 0 && Number.isFinite(c))) {
    throw new AttnroundError("INVALID_ARGUMENT", `gramLogDet: c must be a finite number >= 0, got ${c}`);
  }
  const s = Math.min(m, n);
  const g = alloc(s * s * 4);
  try {
    const bad = wasm().gramSmaller(w, m, n, g);
    if (bad >= 0) nonFinite("gramLogDet", bad, n);
    const logDet = wasm().choleskyLogDet(g, s, c);
    if (logDet < 0) {
      throw new AttnroundError(
        "INVALID_DATA",
        `gramLogDet: I + c·G is not positive definite (pivot ${-logDet - 1} of ${s}); ` +
          `the Gram matrix overflowed float32: scale the values (or c) down`,
      );
    }
    return logDet;
  } finally {
    free(g);
  }
}

/**
 * L(W) = ((m + n) / 2) · log2 det(I + (n / (ε² m)) · WᵀW) in bits, for
 * `rows` holding W [m × n] row-major (n = rows.length / m) and a distortion
 * ε > 0. Throws INVALID_DATA on NaN or ±Infinity.
 */
export function codingLength(rows: Float32Array, m: number, epsilon: number): number {
  const n = checkRows("codingLength", rows, m, epsilon);
  const w = alloc(rows.length * 4);
  try {
    f32(w, rows.length).set(rows);
    return ((m + n) / 2) * gramLogDet(w, m, n, n / (epsilon * epsilon * m));
  } finally {
    free(w);
  }
}

function checkRows(kernel: string, rows: Float32Array, m: number, epsilon: number): number {
  checkIntegers(kernel, { m }, ["m"], 1);
  const n = rows.length / m;
  if (!Number.isInteger(n) || n < 1) {
    throw new AttnroundError(
      "SHAPE_MISMATCH",
      `${kernel}: ${rows.length} values do not make ${m} rows of at least one value`,
    );
  }
  if (!(epsilon > 0 && Number.isFinite(epsilon))) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `${kernel}: epsilon must be a finite number > 0, got ${epsilon}`,
    );
  }
  return n;
}

/** The same log2 det in plain float64: Gram matrix, Cholesky, Σ log2 of the pivots. */
export function gramLogDetReference(w: ArrayLike<number>, m: number, n: number, c: number): number {
  checkShape("gramLogDetReference", m, n);
  for (let i = 0; i < m * n; i++) if (!Number.isFinite(w[i])) nonFinite("gramLogDetReference", i, n);
  const s = Math.min(m, n);
  // a[i][j] = 1 + c·G_ij on the diagonal, c·G_ij elsewhere.
  const a = new Float64Array(s * s);
  for (let i = 0; i < s; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = 0;
      if (m <= n) { for (let k = 0; k < n; k++) sum += w[i * n + k] * w[j * n + k]; }
      else for (let r = 0; r < m; r++) sum += w[r * n + i] * w[r * n + j];
      a[i * s + j] = c * sum + (i === j ? 1 : 0);
    }
  }
  let logDet = 0;
  for (let j = 0; j < s; j++) {
    let d = a[j * s + j];
    for (let k = 0; k < j; k++) d -= a[j * s + k] ** 2;
    if (!(d > 0)) {
      throw new AttnroundError("INVALID_DATA", `gramLogDetReference: pivot ${j} is ${d}, not positive`);
    }
    logDet += Math.log2(d);
    const ljj = Math.sqrt(d);
    a[j * s + j] = ljj;
    for (let i = j + 1; i < s; i++) {
      let v = a[i * s + j];
      for (let k = 0; k < j; k++) v -= a[i * s + k] * a[j * s + k];
      a[i * s + j] = v / ljj;
    }
  }
  return logDet;
}

/** codingLength in plain float64. */
export function codingLengthReference(rows: Float32Array, m: number, epsilon: number): number {
  const n = checkRows("codingLengthReference", rows, m, epsilon);
  return ((m + n) / 2) * gramLogDetReference(rows, m, n, n / (epsilon * epsilon * m));
}
