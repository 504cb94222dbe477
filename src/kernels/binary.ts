// Elementwise binary ops with numpy broadcasting, float32 (ONNX Add, Sub, Mul,
// Div, Pow, Max, Min with two inputs). The wasm kernel is assembly/binary.ts:
// planBinary reduces the shapes to at most six dimensions (unit dimensions
// dropped, contiguous ones merged) with per-operand strides, which also picks
// the SIMD fast paths (equal shapes, a scalar, a per-channel operand).
import { AttnroundError } from "../errors.ts";
import { broadcastShape } from "../layout.ts";
import { wasm } from "../wasm.ts";
import type { FloatArray } from "./planes.ts";

export type BinaryOp = "add" | "sub" | "mul" | "div" | "pow" | "max" | "min";

const opCodes: Record<BinaryOp, number> = { add: 0, sub: 1, mul: 2, div: 3, pow: 4, max: 5, min: 6 };

export interface BinaryParams {
  op: BinaryOp;
  aShape: readonly number[];
  bShape: readonly number[];
  /** The broadcast of aShape and bShape (checked). */
  outShape: readonly number[];
}

/** The kernel's arguments for one op and shape triple; plan once, run many times. */
export interface BinaryPlan {
  readonly op: number;
  /** Output dims (6, outermost first), then a's and b's strides in elements. */
  readonly dims: readonly number[];
  readonly aStrides: readonly number[];
  readonly bStrides: readonly number[];
}

const MAX_RANK = 6;

/** The numpy broadcast of two shapes, or an error naming both. */
/** The broadcast of two operand shapes; SHAPE_MISMATCH if they do not broadcast. */
export function broadcastPair(a: readonly number[], b: readonly number[]): number[] {
  const out = broadcastShape([a, b]);
  if (!out) throw new AttnroundError("SHAPE_MISMATCH", `shapes [${a}] and [${b}] do not broadcast`);
  return out;
}

export function planBinary(p: BinaryParams): BinaryPlan {
  const op = opCodes[p.op];
  if (op === undefined || !Object.hasOwn(opCodes, p.op)) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `binary: unknown op "${p.op}"; expected one of ${Object.keys(opCodes).join(", ")}`,
    );
  }
  const out = broadcastPair(p.aShape, p.bShape);
  if (out.length !== p.outShape.length || out.some((d, i) => d !== p.outShape[i])) {
    throw new AttnroundError(
      "SHAPE_MISMATCH",
      `binary: [${p.aShape}] ${p.op} [${p.bShape}] gives [${out}], not the output shape [${p.outShape}]`,
    );
  }
  const rank = out.length;
  const strides = (shape: readonly number[]) => {
    const s = new Array<number>(rank).fill(0);
    let step = 1;
    for (let i = shape.length - 1; i >= 0; i--) {
      const axis = rank - shape.length + i;
      s[axis] = shape[i] === 1 ? 0 : step;
      step *= shape[i];
    }
    return s;
  };
  const as = strides(p.aShape), bs = strides(p.bShape);
  // Drop unit dimensions; merge a dimension into the next where both operands
  // step through them as one (contiguous, or broadcast along both).
  const dims: number[] = [], aS: number[] = [], bS: number[] = [];
  for (let i = 0; i < rank; i++) {
    if (out[i] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && aS[last] === as[i] * out[i] && bS[last] === bs[i] * out[i]) {
      dims[last] *= out[i];
      aS[last] = as[i];
      bS[last] = bs[i];
    } else {
      dims.push(out[i]);
      aS.push(as[i]);
      bS.push(bs[i]);
    }
  }
  if (dims.length > MAX_RANK) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `binary: [${p.aShape}] ${p.op} [${p.bShape}] needs ${dims.length} loop dimensions; at most ${MAX_RANK} are supported`,
    );
  }
  while (dims.length < MAX_RANK) {
    dims.unshift(1);
    aS.unshift(0);
    bS.unshift(0);
  }
  return { op, dims, aStrides: aS, bStrides: bS };
}

/** Runs a planned op on tensors in wasm memory (byte addresses). */
export function runBinary(plan: BinaryPlan, a: number, b: number, y: number): void {
  const [n0, n1, n2, n3, n4, n5] = plan.dims;
  if (n0 * n1 * n2 * n3 * n4 * n5 === 0) return;
  const [a0, a1, a2, a3, a4, a5] = plan.aStrides;
  const [b0, b1, b2, b3, b4, b5] = plan.bStrides;
  wasm().binary(plan.op, a, b, y, n0, n1, n2, n3, n4, n5, a0, a1, a2, a3, a4, a5, b0, b1, b2, b3, b4, b5);
}

/**
 * y = a op b with broadcasting, on tensors in wasm memory (byte addresses).
 * y may be a or b if that operand has the output's shape. pow follows C and
 * numpy, not Math.pow: pow(1, y) and pow(x, 0) are 1 even for NaN, pow(-1, ±∞) is 1.
 */
export function binary(p: BinaryParams, a: number, b: number, y: number): void {
  runBinary(planBinary(p), a, b, y);
}

/** Plain reference: same contract as binary, on typed arrays. */
export function binaryReference(p: BinaryParams, a: FloatArray, b: FloatArray, y: FloatArray): void {
  planBinary(p);
  const out = p.outShape, rank = out.length;
  const f = referenceOps[p.op];
  const index = new Array<number>(rank).fill(0);
  const size = out.reduce((s, d) => s * d, 1);
  const offset = (shape: readonly number[]) => {
    let o = 0;
    for (let i = 0; i < shape.length; i++) {
      const axis = rank - shape.length + i;
      o = o * shape[i] + (shape[i] === 1 ? 0 : index[axis]);
    }
    return o;
  };
  for (let i = 0; i < size; i++) {
    y[i] = f(a[offset(p.aShape)], b[offset(p.bShape)]);
    for (let axis = rank - 1; axis >= 0; axis--) {
      if (++index[axis] < out[axis]) break;
      index[axis] = 0;
    }
  }
}

function powC(x: number, e: number): number {
  if (x === 1 || e === 0) return 1;
  if (x === -1 && (e === Infinity || e === -Infinity)) return 1;
  return Math.pow(x, e);
}

const referenceOps: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: (a, b) => Math.fround(powC(a, b)),
  max: Math.max,
  min: Math.min,
};
