// Helpers shared by the op backwards (*-grad.ts): float inputs, zero
// gradients, one scratch region carved into parts, and gradients summed back
// to an operand's shape.
import type { Node } from "../../graph/ir.ts";
import { reduceToShape } from "../../kernels/binary-grad.ts";
import { align16 } from "../../kernels/planes.ts";
import type { GradContext } from "../registry.ts";
import { sizeOf, type Value, WasmValue } from "../value.ts";
import { opError } from "../registry.ts";

/** A forward input whose gradient is computed: float32, so in wasm memory. */
export function floatInput(node: Node, inputs: (Value | undefined)[], index: number): WasmValue {
  const v = inputs[index];
  if (!(v instanceof WasmValue)) {
    throw opError(node, `input ${index} must be float32 to be differentiated (got ${v?.dtype ?? "nothing"})`);
  }
  return v;
}

/** A new gradient of `shape`, zero. */
export function zeroGradient(ctx: GradContext, shape: readonly number[]): WasmValue {
  const g = ctx.outputF32(shape);
  g.data.fill(0);
  return g;
}

/** Zero gradients for the wanted inputs: the backward of an op whose outputs got no gradient. */
export function zeroGradients(ctx: GradContext, inputs: (Value | undefined)[]): (WasmValue | undefined)[] {
  return inputs.map((
    v,
    i,
  ) => (v && ctx.wants(i) && v.dtype === "float32" ? zeroGradient(ctx, v.shape) : undefined));
}

/**
 * One scratch region (GradContext.scratch hands out a single region per
 * call) split into parts of the given byte sizes, each 16-byte aligned.
 */
export function scratchParts(ctx: GradContext, bytes: number[]): number[] {
  const total = bytes.reduce((a, b) => a + align16(b), 0);
  let at = total > 0 ? ctx.scratch(total) : 0;
  return bytes.map((b) => {
    const part = at;
    at += align16(b);
    return part;
  });
}

/**
 * The gradient `dy` (of the broadcast output) summed back to `shape`, times
 * `scale`. With nothing to sum and scale 1 it is `dy` itself under the new
 * shape: gradients are read-only once made, so sharing bytes is safe.
 */
export function sumToShape(ctx: GradContext, dy: WasmValue, shape: readonly number[], scale = 1): WasmValue {
  if (sizeOf(shape) === dy.size && scale === 1) return new WasmValue(dy.ptr, shape);
  const g = ctx.outputF32(shape);
  reduceToShape({ from: dy.shape, to: shape, scale }, dy.ptr, g.ptr);
  return g;
}

/**
 * Zero gradients for the wanted float inputs from `first` on that an op's
 * output does not move with (roi and scales, a Cast's template, a quantizer's
 * scale): every wanted gradient must exist, even when it is zero.
 */
export function constantGradients(
  ctx: GradContext,
  inputs: (Value | undefined)[],
  first = 1,
): (WasmValue | undefined)[] {
  return inputs.slice(first).map((v, k) =>
    v && v.dtype === "float32" && ctx.wants(first + k) ? zeroGradient(ctx, v.shape) : undefined
  );
}
