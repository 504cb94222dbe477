// Backward of the broadcasting binary ops (src/kernels/binary.ts): a broadcast
// operand's gradient is the output gradient summed back to the operand's
// shape. The wasm kernel is assembly/binary-grad.ts; planReduceToShape drops
// unit dimensions and merges contiguous ones, as planBinary does.
import { AttnroundError } from "../errors.ts";
import { wasm } from "../wasm.ts";
import { broadcastPair } from "./binary.ts";
import type { FloatArray } from "./planes.ts";

export interface ReduceToShapeParams {
  /** Shape of the gradient being summed (the broadcast output). */
  from: readonly number[];
  /** Shape to sum it to: broadcasts to `from`. */
  to: readonly number[];
  /** Multiplies the sums; default 1. */
  scale?: number;
}

/** The kernel's arguments: six dims of `from` (outermost first) and the target's strides along them. */
export interface ReducePlan {
  readonly dims: readonly number[];
  readonly strides: readonly number[];
  readonly size: number;
  readonly scale: number;
}

const MAX_RANK = 6;

export function planReduceToShape(p: ReduceToShapeParams): ReducePlan {
  const out = broadcastPair(p.from, p.to);
  if (out.length !== p.from.length || out.some((d, i) => d !== p.from[i])) {
    throw new AttnroundError(
      "SHAPE_MISMATCH",
      `reduceToShape: [${p.to}] does not broadcast to [${p.from}]`,
    );
  }
  const rank = p.from.length;
  const strides = new Array<number>(rank).fill(0);
  let step = 1;
  for (let i = p.to.length - 1; i >= 0; i--) {
    strides[rank - p.to.length + i] = p.to[i] === 1 ? 0 : step;
    step *= p.to[i];
  }
  const dims: number[] = [], ys: number[] = [];
  for (let i = 0; i < rank; i++) {
    if (p.from[i] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && ys[last] === strides[i] * p.from[i]) {
      dims[last] *= p.from[i];
      ys[last] = strides[i];
    } else {
      dims.push(p.from[i]);
      ys.push(strides[i]);
    }
  }
  if (dims.length > MAX_RANK) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `reduceToShape: [${p.from}] to [${p.to}] needs ${dims.length} loop dimensions; at most ${MAX_RANK} are supported`,
    );
  }
  while (dims.length < MAX_RANK) {
    dims.unshift(1);
    ys.unshift(0);
  }
  return { dims, strides: ys, size: step, scale: p.scale ?? 1 };
}

/** y (shape `to`) = scale · x (shape `from`) summed over the broadcast axes, in wasm memory (byte addresses). */
export function reduceToShape(p: ReduceToShapeParams, x: number, y: number): void {
  const plan = planReduceToShape(p);
  const [n0, n1, n2, n3, n4, n5] = plan.dims;
  const [s0, s1, s2, s3, s4, s5] = plan.strides;
  wasm().reduceToShape(x, y, plan.size, plan.scale, n0, n1, n2, n3, n4, n5, s0, s1, s2, s3, s4, s5);
}

/** Plain reference: same contract as reduceToShape, on typed arrays, summing in float64. */
export function reduceToShapeReference(p: ReduceToShapeParams, x: FloatArray, y: FloatArray): void {
  const plan = planReduceToShape(p);
  const acc = new Float64Array(plan.size);
  const rank = p.from.length;
  const index = new Array<number>(rank).fill(0);
  for (let i = 0; i < x.length; i++) {
    let o = 0;
    for (let d = 0; d < p.to.length; d++) {
      const axis = rank - p.to.length + d;
      o = o * p.to[d] + (p.to[d] === 1 ? 0 : index[axis]);
    }
    acc[o] += x[i];
    for (let axis = rank - 1; axis >= 0; axis--) {
      if (++index[axis] < p.from[axis]) break;
      index[axis] = 0;
    }
  }
  for (let i = 0; i < acc.length; i++) y[i] = acc[i] * plan.scale;
}
