// Backward of the data-movement ops in shape.ts. Ops that only reinterpret a
// shape (Identity, Reshape, Flatten, Squeeze, Unsqueeze, Dropout at
// inference) pass the gradient on as a view of the same bytes; Transpose,
// Slice, Pad, Concat and Split move it back with the wasm strided copy (Pad
// in edge, reflect and wrap modes is in index-grad.ts).
import { attrInt, attrInts, attrString } from "../../graph/ir.ts";
import { reduceToShape } from "../../kernels/binary-grad.ts";
import { stridedCopy } from "../../kernels/strided-copy.ts";
import { f32 } from "../../wasm.ts";
import { type GradContext, type OpGrad, registerGradients } from "../registry.ts";
import { WasmValue } from "../value.ts";
import { floatInput, scratchParts, zeroGradient, zeroGradients } from "./grad-util.ts";
import { padModeGrad } from "./index-grad.ts";
import { padsOf, sliceBox, splitSizes } from "./shape.ts";
import { normalizeAxis } from "./util.ts";
import { stridesOf } from "../../layout.ts";

/**
 * Identity, Reshape, Flatten, Squeeze, Unsqueeze, Dropout: input 0's gradient
 * is dy under input 0's shape. The other inputs are shapes and axes (no
 * gradient) or Dropout's ratio, which does not act at inference (zero).
 */
const viewGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  const x = inputs[0];
  const dx = x && ctx.wants(0)
    ? (dy ? new WasmValue(dy.ptr, x.shape) : zeroGradient(ctx, x.shape))
    : undefined;
  const rest = inputs.slice(1).map((v, k) =>
    v && ctx.wants(k + 1) && v.dtype === "float32" ? zeroGradient(ctx, v.shape) : undefined
  );
  return [dx, ...rest];
};

const transposeGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const x = floatInput(ctx.node, inputs, 0);
  if (!ctx.wants(0)) return [undefined];
  const perm = attrInts(ctx.node, "perm") ?? x.shape.map((_, i) => x.shape.length - 1 - i);
  const dx = ctx.outputF32(x.shape);
  // Output axis d walks input axis perm[d]: copy dy back along those strides.
  const xStrides = stridesOf(x.shape);
  stridedCopy(
    { shape: dy.shape, srcStrides: stridesOf(dy.shape), dstStrides: perm.map((p) => xStrides[p]) },
    dy.ptr,
    dx.ptr,
  );
  return [dx];
};

/** Copies dy into a zeroed dx at the box `begin` + i·`step` (Slice, and Pad with negative pads). */
function scatterBox(
  dx: WasmValue,
  dy: WasmValue,
  box: {
    shape: readonly number[];
    dyBegin: readonly number[];
    begin: readonly number[];
    step: readonly number[];
  },
): void {
  dx.data.fill(0);
  const xStrides = stridesOf(dx.shape), yStrides = stridesOf(dy.shape);
  stridedCopy(
    {
      shape: box.shape,
      srcStrides: yStrides,
      dstStrides: box.step.map((s, d) => s * xStrides[d]),
      srcOffset: box.dyBegin.reduce((o, b, d) => o + b * yStrides[d], 0),
      dstOffset: box.begin.reduce((o, b, d) => o + b * xStrides[d], 0),
    },
    dy.ptr,
    dx.ptr,
  );
}

const sliceGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  const x = floatInput(ctx.node, inputs, 0);
  const rest = inputs.slice(1).map(() => undefined);
  if (!ctx.wants(0)) return [undefined, ...rest];
  if (!dy) return [zeroGradient(ctx, x.shape), ...rest];
  const box = sliceBox(ctx, x, inputs);
  const dx = ctx.outputF32(x.shape);
  scatterBox(dx, dy, { ...box, dyBegin: box.shape.map(() => 0) });
  return [dx, ...rest];
};

/**
 * Constant Pad: dx is the part of dy that holds x (zero where negative pads
 * cropped x away); the constant value (an input from opset 11) gets the rest of dy.
 */
const padGrad: OpGrad = (ctx, inputs, outputs, [dy]) => {
  const x = floatInput(ctx.node, inputs, 0);
  const mode = attrString(ctx.node, "mode", "constant");
  if (mode !== "constant") return padModeGrad(ctx, inputs, outputs, [dy]);
  const valueInput = inputs[2];
  const dx = ctx.wants(0) ? ctx.outputF32(x.shape) : undefined;
  const dValue = valueInput && ctx.wants(2) ? ctx.outputF32(valueInput.shape) : undefined;
  const grads = [dx, undefined, dValue, undefined].slice(0, inputs.length);
  if (!dx && !dValue) return grads;
  // Without dx, the value's gradient still needs what dx would hold.
  const [inside, sums] = scratchParts(ctx, [dx ? 0 : x.size * 4, dValue ? 8 : 0]);
  const held = dx ?? new WasmValue(inside, x.shape);
  if (!dy) {
    held.data.fill(0);
    dValue?.data.fill(0);
    return grads;
  }
  const { pads } = padsOf(ctx, x, inputs);
  const rank = x.shape.length;
  const begin: number[] = [], dyBegin: number[] = [], shape: number[] = [];
  for (let d = 0; d < rank; d++) {
    // x index i lands at dy index i + pads[d]; keep the i inside both.
    const lo = Math.max(0, -pads[d]), hi = Math.min(x.shape[d], dy.shape[d] - pads[d]);
    begin.push(lo);
    dyBegin.push(lo + pads[d]);
    shape.push(Math.max(0, hi - lo));
  }
  scatterBox(held, dy, { shape, begin, dyBegin, step: shape.map(() => 1) });
  if (dValue) {
    reduceToShape({ from: dy.shape, to: [] }, dy.ptr, sums);
    reduceToShape({ from: x.shape, to: [] }, held.ptr, sums + 4);
    const s = f32(sums, 2);
    dValue.data.fill(s[0] - s[1]);
  }
  return grads;
};

/** Concat: each input's gradient is its block of dy. */
const concatGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  const present = inputs.find((v) => v !== undefined)!;
  const axis = normalizeAxis(ctx.node, attrInt(ctx.node, "axis", 0), present.shape.length);
  const grads = inputs.map((v, i) => (v && ctx.wants(i) ? ctx.outputF32(v.shape) : undefined));
  if (!dy) {
    for (const g of grads) g?.data.fill(0);
    return grads;
  }
  const yStrides = stridesOf(dy.shape);
  let offset = 0;
  inputs.forEach((v, i) => {
    if (!v) return;
    const g = grads[i];
    if (g) {
      stridedCopy(
        {
          shape: v.shape,
          srcStrides: yStrides,
          dstStrides: stridesOf(v.shape),
          srcOffset: offset * yStrides[axis],
        },
        dy.ptr,
        g.ptr,
      );
    }
    offset += v.shape[axis];
  });
  return grads;
};

/** Split: dx is the outputs' gradients side by side (zero where an output got none). */
const splitGrad: OpGrad = (ctx, inputs, outputs, gradOutputs) => {
  const x = floatInput(ctx.node, inputs, 0);
  const rest = inputs.slice(1).map(() => undefined);
  if (!ctx.wants(0)) return [undefined, ...rest];
  const axis = normalizeAxis(ctx.node, attrInt(ctx.node, "axis", 0), x.shape.length);
  // splitSizes counts the node's outputs, which on a gradient node are the input gradients.
  const forward: GradContext = { ...ctx, node: { ...ctx.node, outputs: outputs.map(() => "") } };
  const sizes = splitSizes(forward, x, inputs);
  const dx = ctx.outputF32(x.shape);
  if (gradOutputs.some((g, k) => !g && sizes[k] > 0)) dx.data.fill(0);
  const xStrides = stridesOf(x.shape);
  let offset = 0;
  sizes.forEach((size, k) => {
    const g = gradOutputs[k];
    const shape = x.shape.map((d, i) => (i === axis ? size : d));
    if (g) {
      stridedCopy(
        { shape, srcStrides: stridesOf(shape), dstStrides: xStrides, dstOffset: offset * xStrides[axis] },
        g.ptr,
        dx.ptr,
      );
    }
    offset += size;
  });
  return [dx, ...rest];
};

registerGradients({
  Identity: viewGrad,
  Dropout: viewGrad,
  Reshape: viewGrad,
  Flatten: viewGrad,
  Squeeze: viewGrad,
  Unsqueeze: viewGrad,
  Transpose: transposeGrad,
  Slice: sliceGrad,
  Pad: padGrad,
  Concat: concatGrad,
  Split: splitGrad,
});
