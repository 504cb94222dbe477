// Backward of ConvTranspose (1-D and 2-D). A transposed convolution
// y = convT(x, W) is the input gradient of the convolution that maps y's
// shape to x's with the same weights, so its own gradients are that
// convolution's forward and weight gradient: dx = conv(dy, W) and
// dW = ∂/∂W ⟨conv(dy, W), x⟩, on the wasm kernels Conv's backward uses.
import { attrInt, attrInts, attrString, type Node } from "../../graph/ir.ts";
import { conv2d, type Conv2dParams, conv2dWorkspaceBytes } from "../../kernels/conv2d.ts";
import { conv2dBackwardWeights, conv2dBackwardWeightsWorkspaceBytes } from "../../kernels/conv2d-grad.ts";
import { type OpGrad, registerGradients } from "../registry.ts";
import { floatInput, scratchParts, zeroGradients } from "./grad-util.ts";
import { opUnsupported } from "./util.ts";

/**
 * The convolution from y [n, m, H, W] to x [n, c, h, w] that ConvTranspose
 * transposes, with the forward's pads (from pads, auto_pad or output_shape).
 */
function adjointConv(node: Node, xShape: readonly number[], wShape: readonly number[]): Conv2dParams {
  const nsp = xShape.length - 2;
  const group = attrInt(node, "group", 1);
  const kernel = attrInts(node, "kernel_shape") ?? wShape.slice(2);
  const strides = attrInts(node, "strides") ?? new Array(nsp).fill(1);
  const dilations = attrInts(node, "dilations") ?? new Array(nsp).fill(1);
  const outputPadding = attrInts(node, "output_padding") ?? new Array(nsp).fill(0);
  const spatial = xShape.slice(2);
  let pads = attrInts(node, "pads") ?? new Array(2 * nsp).fill(0);
  const outputShape = attrInts(node, "output_shape");
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  const full = spatial.map((d, i) =>
    strides[i] * (d - 1) + outputPadding[i] + (kernel[i] - 1) * dilations[i] + 1
  );
  let out: number[];
  if (outputShape || autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    out = outputShape ? outputShape.slice(-nsp) : spatial.map((d, i) => d * strides[i]);
    pads = new Array(2 * nsp).fill(0);
    for (let i = 0; i < nsp; i++) {
      const total = Math.max(0, full[i] - out[i]);
      const half = Math.floor(total / 2);
      pads[i] = autoPad === "SAME_UPPER" ? half : total - half;
      pads[i + nsp] = total - pads[i];
    }
  } else {
    out = full.map((f, i) => f - pads[i] - pads[i + nsp]);
  }
  // 1-D runs as 2-D with height 1.
  const two = <T>(v: T[], one: T) => (nsp === 2 ? v : [one, v[0]]);
  const [kh, kw] = two(kernel, 1),
    [strideH, strideW] = two(strides, 1),
    [dilationH, dilationW] = two(dilations, 1);
  const p4 = nsp === 2 ? pads : [0, pads[0], 0, pads[1]];
  const [h, w] = two(spatial, 1), [outH, outW] = two(out, 1);
  return {
    n: xShape[0],
    c: wShape[1] * group,
    h: outH,
    w: outW,
    m: xShape[1],
    kh,
    kw,
    strideH,
    strideW,
    padTop: p4[0],
    padLeft: p4[1],
    padBottom: p4[2],
    padRight: p4[3],
    dilationH,
    dilationW,
    group,
    outH: h,
    outW: w,
  };
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
