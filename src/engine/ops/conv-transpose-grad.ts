// Backward of ConvTranspose (1-D and 2-D). A transposed convolution
// y = convT(x, W) is the input gradient of the convolution that maps y's
// shape to x's with the same weights, so its own gradients are that
// convolution's forward and weight gradient: dx = conv(dy, W) and
// dW = ∂/∂W ⟨conv(dy, W), x⟩, on the wasm kernels Conv's backward uses.
import type { Node } from "../../graph/ir.ts";
import { conv2d, type Conv2dParams, conv2dWorkspaceBytes } from "../../kernels/conv2d.ts";
import { conv2dBackwardWeights, conv2dBackwardWeightsWorkspaceBytes } from "../../kernels/conv2d-grad.ts";
import { type OpGrad, opUnsupported, registerGradients } from "../registry.ts";
import { convParams } from "./geometry.ts";
import { floatInput, scratchParts, zeroGradients } from "./grad-util.ts";

/**
 * The convolution from y [n, m, H, W] to x [n, c, h, w] that ConvTranspose
 * transposes: the forward's parameters with input and output swapped.
 */
function adjointConv(node: Node, xShape: readonly number[], wShape: readonly number[]): Conv2dParams {
  const p = convParams(node, { shape: xShape }, { shape: wShape }, true);
  return { ...p, c: p.m, h: p.outH, w: p.outW, m: p.c, outH: p.h, outW: p.w };
}

const convTransposeGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  const node = ctx.node;
  const rank = inputs[0]?.shape.length ?? 0;
  if (rank !== 3 && rank !== 4) {
    throw opUnsupported(
      node,
      "the gradient of transposed convolutions is implemented for 1-D and 2-D inputs only",
    );
  }
  if (!dy) return zeroGradients(ctx, inputs);
  const x = floatInput(node, inputs, 0), w = floatInput(node, inputs, 1);
  const p = adjointConv(node, x.shape, w.shape);
  const dx = ctx.wants(0) ? ctx.outputF32(x.shape) : undefined;
  const dw = ctx.wants(1) ? ctx.outputF32(w.shape) : undefined;
  const db = ctx.wants(2) && inputs[2] ? ctx.outputF32(inputs[2].shape) : undefined;
  // dx and dW run one after the other, in the same scratch.
  const [workspace] = scratchParts(ctx, [
    Math.max(dx ? conv2dWorkspaceBytes(p) : 0, dw ? conv2dBackwardWeightsWorkspaceBytes(p) : 0),
  ]);
  if (dx) conv2d(p, dy.ptr, w.ptr, 0, dx.ptr, workspace);
  // The adjoint convolution reads dy and writes x's shape: its weight gradient pairs them so.
  if (dw) conv2dBackwardWeights(p, dy.ptr, x.ptr, dw.ptr, workspace);
  if (db) {
    const gd = dy.data, sums = new Float64Array(p.c), plane = p.h * p.w;
    for (let i = 0; i < gd.length; i++) sums[Math.floor(i / plane) % p.c] += gd[i];
    db.data.set(sums);
  }
  return [dx, dw, db].slice(0, inputs.length);
};

registerGradients({ ConvTranspose: convTransposeGrad });
