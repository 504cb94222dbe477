// Backward of the reductions (ReduceSum, ReduceMean, ReduceMax, ReduceMin,
// ReduceProd, ReduceSumSquare, ReduceL1, ReduceL2) and of GlobalMaxPool.
// Every input element reads the gradient of the output slot it was reduced
// into, times its own derivative. Plain TypeScript.
import { attrInt, attrInts } from "../../graph/ir.ts";
import { type GradContext, type OpGrad, registerGradients } from "../registry.ts";
import type { Value } from "../value.ts";
import { constantGradients, floatInput, zeroGradients } from "./grad-util.ts";
import { broadcastIndex, normalizeAxis, toNumbers } from "./util.ts";

/** The opset from which each reduction reads its axes from input 1 instead of an attribute. */
const AXES_INPUT_SINCE: Record<string, number> = { ReduceSum: 13 };

/**
 * The shape of the reduced output with kept axes, as the forward decides it
 * (axes attribute or input, empty axes meaning all of them unless
 * noop_with_empty_axes), or undefined when the reduction is the identity.
 */
function keptShape(ctx: GradContext, x: Value, inputs: (Value | undefined)[]): number[] | undefined {
  const node = ctx.node;
  if (node.opType === "GlobalMaxPool") return x.shape.map((d, i) => (i < 2 ? d : 1));
  let axes = ctx.opset >= (AXES_INPUT_SINCE[node.opType] ?? 18)
    ? (inputs[1] ? toNumbers(inputs[1]) : undefined)
    : attrInts(node, "axes");
  if (!axes || axes.length === 0) {
    if (attrInt(node, "noop_with_empty_axes", 0) === 1) return undefined;
    axes = x.shape.map((_, i) => i);
  }
  const reduced = new Set(axes.map((a) => normalizeAxis(node, a, x.shape.length)));
  return x.shape.map((d, i) => (reduced.has(i) ? 1 : d));
}

/**
 * ∂y[slot]/∂x[i] for every element, given x, each element's slot, and the
 * number of elements per slot. Called once the gradient is allocated.
 */
type Derivative = (x: Float32Array, slot: Int32Array, slots: number, count: number) => (i: number) => number;

/** Per slot: the first element that holds the extreme (the one the forward returns). */
function extremeElements(larger: boolean): Derivative {
  return (x, slot, slots) => {
    const best = new Int32Array(slots).fill(-1);
    for (let i = 0; i < x.length; i++) {
      const b = best[slot[i]];
      if (b < 0 || (larger ? x[i] > x[b] : x[i] < x[b])) best[slot[i]] = i;
    }
    return (i) => (best[slot[i]] === i ? 1 : 0);
  };
}

/** Π over the other elements of the slot, exact when the slot holds zeros. */
const productDerivative: Derivative = (x, slot, slots) => {
  const nonZero = new Float64Array(slots).fill(1), zeros = new Int32Array(slots);
  for (let i = 0; i < x.length; i++) {
    if (x[i] === 0) zeros[slot[i]]++;
    else nonZero[slot[i]] *= x[i];
  }
  return (i) => {
    const s = slot[i];
    if (x[i] === 0) return zeros[s] === 1 ? nonZero[s] : 0;
    return zeros[s] > 0 ? 0 : nonZero[s] / x[i];
  };
};

/** x / ‖x‖₂ over the slot (0 where the norm is 0). */
const l2Derivative: Derivative = (x, slot, slots) => {
  const squares = new Float64Array(slots);
  for (let i = 0; i < x.length; i++) squares[slot[i]] += x[i] * x[i];
  return (i) => (squares[slot[i]] > 0 ? x[i] / Math.sqrt(squares[slot[i]]) : 0);
};

const derivatives: Record<string, Derivative> = {
  ReduceSum: () => () => 1,
  ReduceMean: (_x, _slot, _slots, count) => () => 1 / count,
  ReduceMax: extremeElements(true),
  ReduceMin: extremeElements(false),
  ReduceProd: productDerivative,
  ReduceSumSquare: (x) => (i) => 2 * x[i],
  ReduceL1: (x) => (i) => Math.sign(x[i]),
  ReduceL2: l2Derivative,
  GlobalMaxPool: extremeElements(true),
};

function reduceGrad(op: string): OpGrad {
  const derivative = derivatives[op];
  return (ctx, inputs, _outputs, [dy]) => {
    const x = floatInput(ctx.node, inputs, 0);
    const rest = constantGradients(ctx, inputs);
    if (!ctx.wants(0)) return [undefined, ...rest];
    if (!dy) return [...zeroGradients(ctx, [x]), ...rest];
    const kept = keptShape(ctx, x, inputs);
    const dx = ctx.outputF32(x.shape);
    const dxd = dx.data, gd = dy.data;
    if (!kept) {
      dxd.set(gd);
      return [dx, ...rest];
    }
    // slot[i]: the output element that input element i was reduced into.
    const slot = broadcastIndex(kept, x.shape);
    const slots = dy.size, count = x.size / Math.max(slots, 1);
    const local = derivative(x.data, slot, slots, count);
    for (let i = 0; i < dxd.length; i++) dxd[i] = gd[slot[i]] * local(i);
    return [dx, ...rest];
  };
}

registerGradients(Object.fromEntries(Object.keys(derivatives).map((op) => [op, reduceGrad(op)])));
