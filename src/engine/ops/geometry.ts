// Geometry of sliding-window ops (Conv, ConvTranspose, pooling): kernel,
// strides, dilations, pads and output size from a node's attributes, shared by
// the 1-D/2-D kernels (nn.ts), the N-D ones (spatial-nd.ts) and the backward.
import { attrInt, attrInts, attrString, type Node } from "../../graph/ir.ts";
import type { Conv2dParams } from "../../kernels/conv2d.ts";
import { opError, opUnsupported } from "../registry.ts";

export interface SpatialGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Begin pads per spatial axis, then end pads. */
  pads: number[];
  out: number[];
}

/** Kernel, strides, dilations, pads and output size of a conv/pool node, auto_pad and ceil_mode included. */
export function spatialGeometry(
  node: Node,
  inShape: readonly number[],
  kernel: number[],
  ceil = false,
): SpatialGeometry {
  const n = kernel.length;
  const strides = attrInts(node, "strides") ?? new Array(n).fill(1);
  const dilations = attrInts(node, "dilations") ?? new Array(n).fill(1);
  let pads = attrInts(node, "pads") ?? new Array(2 * n).fill(0);
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  const spatial = inShape.slice(2);
  if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    pads = new Array(2 * n).fill(0);
    for (let i = 0; i < n; i++) {
      const out = Math.ceil(spatial[i] / strides[i]);
      const total = Math.max(0, (out - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 - spatial[i]);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === "SAME_UPPER" ? small : total - small;
      pads[i + n] = total - pads[i];
    }
  } else if (autoPad === "VALID") {
    pads = new Array(2 * n).fill(0);
  }
  const out = spatial.map((d, i) => {
    const span = d + pads[i] + pads[i + n] - dilations[i] * (kernel[i] - 1) - 1;
    let o = (ceil ? Math.ceil(span / strides[i]) : Math.floor(span / strides[i])) + 1;
    // With ceil_mode the last window must start inside the input or its begin padding.
    if (ceil && (o - 1) * strides[i] >= d + pads[i]) o--;
    return o;
  });
  if (out.some((o) => o <= 0)) throw opError(node, `input [${inShape}] is too small for kernel [${kernel}]`);
  return { kernel, strides, dilations, pads, out };
}

/** Lays 2-D spatial axes out so 1-D ops run as 2-D with height 1. */
export function as2d(g: SpatialGeometry): SpatialGeometry {
  if (g.kernel.length === 2) return g;
  return {
    kernel: [1, g.kernel[0]],
    strides: [1, g.strides[0]],
    dilations: [1, g.dilations[0]],
    pads: [0, g.pads[0], 0, g.pads[1]],
    out: [1, g.out[0]],
  };
}

/**
 * The 2-D kernel params of a 1-D or 2-D Conv node (1-D as height 1), without a
 * fused activation; with `transposed`, of a ConvTranspose node (weight [c, m/group, …]).
 */
export function convParams(
  node: Node,
  x: { shape: readonly number[] },
  w: { shape: readonly number[] },
  transposed = false,
): Conv2dParams {
  const rank = x.shape.length;
  if (rank !== 3 && rank !== 4) {
    throw opUnsupported(node, `only 1-D and 2-D convolutions are supported (input [${x.shape}])`);
  }
  const group = attrInt(node, "group", 1);
  const [n, c] = x.shape;
  const m = transposed ? w.shape[1] * group : w.shape[0];
  const kernel = attrInts(node, "kernel_shape") ?? w.shape.slice(2);
  const fits = transposed ? w.shape[0] === c && c % group === 0 : c === w.shape[1] * group && m % group === 0;
  if (!fits) throw opError(node, `weight [${w.shape}] does not fit input [${x.shape}] with group ${group}`);
  const g = as2d(
    transposed ? transposedGeometry(node, x.shape.slice(2), kernel) : spatialGeometry(node, x.shape, kernel),
  );
  const [h, wd] = rank === 4 ? [x.shape[2], x.shape[3]] : [1, x.shape[2]];
  return {
    n,
    c,
    h,
    w: wd,
    m,
    kh: g.kernel[0],
    kw: g.kernel[1],
    strideH: g.strides[0],
    strideW: g.strides[1],
    padTop: g.pads[0],
    padLeft: g.pads[1],
    padBottom: g.pads[2],
    padRight: g.pads[3],
    dilationH: g.dilations[0],
    dilationW: g.dilations[1],
    group,
    outH: g.out[0],
    outW: g.out[1],
  };
}

/** Output size and pads of a ConvTranspose: from output_shape or auto_pad when given, else from pads. */
export function transposedGeometry(
  node: Node,
  spatial: readonly number[],
  kernel: number[],
): SpatialGeometry {
  const n = spatial.length;
  const strides = attrInts(node, "strides") ?? new Array(n).fill(1);
  const dilations = attrInts(node, "dilations") ?? new Array(n).fill(1);
  const outputPadding = attrInts(node, "output_padding") ?? new Array(n).fill(0);
  let pads = attrInts(node, "pads") ?? new Array(2 * n).fill(0);
  const outputShape = attrInts(node, "output_shape");
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  const full = spatial.map((d, i) =>
    strides[i] * (d - 1) + outputPadding[i] + (kernel[i] - 1) * dilations[i] + 1
  );
  let out: number[];
  if (outputShape || autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    out = outputShape ? outputShape.slice(-n) : spatial.map((d, i) => d * strides[i]);
    pads = new Array(2 * n).fill(0);
    for (let i = 0; i < n; i++) {
      const total = Math.max(0, full[i] - out[i]);
      const half = Math.floor(total / 2);
      pads[i] = autoPad === "SAME_UPPER" ? half : total - half;
      pads[i + n] = total - pads[i];
    }
  } else {
    out = full.map((f, i) => f - pads[i] - pads[i + n]);
  }
  if (out.some((o) => o <= 0)) throw opError(node, `output size [${out}] is empty`);
  return { kernel, strides, dilations, pads, out };
}
