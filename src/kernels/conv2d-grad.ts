// Backward of the 2-D convolution (src/kernels/conv2d.ts): the gradients of
// the input and of the weights, given the output gradient dy [n, m, outH, outW].
// The wasm kernels are in assembly/conv2d-grad.ts. dX, a transposed
// convolution of dy, runs
// - at unit stride as a forward convolution of dy with the weights flipped in
//   space and transposed per group ("flipped-conv": the implicit-GEMM,
//   pointwise or depthwise kernels of the forward);
// - for strided depthwise convs as a scatter into prepared planes ("depthwise-scatter");
// - otherwise as GEMM + col2im, the ConvTranspose kernel ("col2im").
// dW is a GEMM over pixels (dy packed by eight output channels, four taps per
// tile, no horizontal sums), reading the taps' inputs from prepared planes,
// an im2col of a chunk of images (small outputs, strided or padded 1×1) or x
// itself (pointwise); depthwise convs reduce per channel plane. The bias
// gradient is dy summed per channel (reduceToShape in src/kernels/binary-grad.ts).
// The *Reference functions are the plain loops the tests hold the kernels to.
import { wasm } from "../wasm.ts";
import {
  conv2d,
  conv2dPackedWeightsBytes,
  conv2dPackWeights,
  type Conv2dParams,
  conv2dPath,
  conv2dWorkspaceBytes,
  depthwiseByChannels,
  depthwiseCellsBytes,
} from "./conv2d.ts";
import {
  convTranspose2d,
  type ConvTranspose2dParams,
  convTranspose2dWorkspaceBytes,
} from "./conv-transpose2d.ts";
import { geometryArg } from "./geometry.ts";
import { align16, type FloatArray, planeBytes, planeGeometry } from "./planes.ts";

export type Conv2dBackwardInputPath = "flipped-conv" | "depthwise-scatter" | "col2im";

/** Bytes of prepared images the weight gradient keeps at once (inputs and dy): about half of L2. */
const CHUNK_BYTES = 512 * 1024;

const isDepthwise = (p: Conv2dParams) => conv2dPath(p) === "depthwise";

/** Which kernel computes dX for these (forward) params. */
export function conv2dBackwardInputPath(p: Conv2dParams): Conv2dBackwardInputPath {
  const unitStride = p.strideH === 1 && p.strideW === 1;
  // The flipped convolution pads dy by dilation·(kernel - 1) - pad, which must not be negative.
  const flippable = p.padTop <= p.dilationH * (p.kh - 1) && p.padLeft <= p.dilationW * (p.kw - 1);
  if (unitStride && flippable) return "flipped-conv";
  return isDepthwise(p) ? "depthwise-scatter" : "col2im";
}

/** The forward params of the convolution that maps dy to dX at unit stride. */
function flippedParams(p: Conv2dParams): Conv2dParams {
  return {
    n: p.n,
    c: p.m,
    h: p.outH,
    w: p.outW,
    m: p.c,
    kh: p.kh,
    kw: p.kw,
    strideH: 1,
    strideW: 1,
    padTop: p.dilationH * (p.kh - 1) - p.padTop,
    padLeft: p.dilationW * (p.kw - 1) - p.padLeft,
    // Negative end pads only mean that the last rows of dy reach no input; the kernels never read them.
    padBottom: Math.max(0, p.dilationH * (p.kh - 1) - p.padBottom),
    padRight: Math.max(0, p.dilationW * (p.kw - 1) - p.padRight),
    dilationH: p.dilationH,
    dilationW: p.dilationW,
    group: p.group,
    outH: p.h,
    outW: p.w,
  };
}

/** The ConvTranspose params that scatter dy [n, m, outH, outW] back to dX [n, c, h, w]. */
function transposedParams(p: Conv2dParams): ConvTranspose2dParams {
  return { ...p, c: p.m, h: p.outH, w: p.outW, m: p.c, outH: p.h, outW: p.w, activation: "none" };
}

function paddedRowsBytes(p: Conv2dParams): number {
  return align16(p.outH * Math.ceil(p.outW / 4) * 16);
}

/** Workspace of the depthwise backward kernels: the input's cells and dy's, or a prepared plane and padded rows. */
function depthwiseBackwardBytes(p: Conv2dParams): number {
  if (depthwiseByChannels(p)) return depthwiseCellsBytes(p) + p.outH * p.outW * 16;
  return planeBytes(p, 1) + paddedRowsBytes(p);
}

/** Workspace bytes conv2dBackwardInput needs for these params. */
export function conv2dBackwardInputWorkspaceBytes(p: Conv2dParams): number {
  const path = conv2dBackwardInputPath(p);
  if (path === "col2im") return convTranspose2dWorkspaceBytes(transposedParams(p));
  if (path === "depthwise-scatter") return depthwiseBackwardBytes(p);
  const f = flippedParams(p);
  const flipped = align16(p.m * (p.c / p.group) * p.kh * p.kw * 4);
  const packed = isDepthwise(f) ? 0 : conv2dPackedWeightsBytes(f);
  return flipped + packed + conv2dWorkspaceBytes(f, { prepacked: true });
}

/**
 * dX [n, c, h, w] = the gradient of the conv's input, from dy [n, m, outH, outW]
 * and the weights w [m, c/group, kh, kw] (byte addresses in wasm memory).
 * `workspace` holds conv2dBackwardInputWorkspaceBytes(p) bytes. p's activation is ignored.
 */
export function conv2dBackwardInput(
  p: Conv2dParams,
  dy: number,
  w: number,
  dx: number,
  workspace: number,
): void {
  conv2dWorkspaceBytes(p); // checks p
  if (p.n === 0) return;
  const path = conv2dBackwardInputPath(p);
  if (path === "col2im") {
    convTranspose2d(transposedParams(p), dy, w, 0, dx, workspace);
    return;
  }
  const k = wasm();
  if (path === "depthwise-scatter") {
    k.conv2dDepthwiseBackwardInput(geometryArg(p), dy, w, dx, workspace);
    return;
  }
  const f = flippedParams(p);
  const flipped = workspace;
  workspace += align16(p.m * (p.c / p.group) * p.kh * p.kw * 4);
  k.conv2dFlipWeights(p.m, p.group, p.c / p.group, p.kh * p.kw, w, flipped);
  if (isDepthwise(f)) {
    conv2d(f, dy, flipped, 0, dx, workspace);
    return;
  }
  const packed = workspace;
  workspace += conv2dPackedWeightsBytes(f);
  conv2dPackWeights(f, flipped, packed);
  conv2d(f, dy, 0, 0, dx, workspace, packed);
}

interface WeightsPlan {
  /** Where the kernel reads the taps' inputs: 0 prepared planes, 1 im2col, 2 x in place (see assembly). */
  layout: number;
  chunk: number;
  bytes: number;
}

/** Output planes up to this many pixels reduce over an im2col of the whole chunk, not row by row. */
const FLAT_PIXELS = 64;
/** Output channels per panel of packed dy, taps per tile (assembly/conv2d-grad.ts). */
const NR = 8, TR = 4;

/**
 * How conv2dBackwardWeights runs for these params: where the kernel reads the
 * taps' inputs, how many images a chunk holds and the workspace bytes. Mirrors
 * the workspace layout of conv2dBackwardWeights in assembly/conv2d-grad.ts.
 */
export function weightsPlan(p: Conv2dParams): WeightsPlan {
  const cg = p.c / p.group, mg = p.m / p.group;
  const plane = p.outH * p.outW;
  const kTotal = cg * p.kh * p.kw;
  const offsets = align16(kTotal * 4);
  const sums = p.group * Math.ceil(kTotal / TR) * TR * Math.ceil(mg / NR) * NR * 4;
  // Per image: the packed dy, and the inputs the tiles read (in place for layout 2).
  const dyPanels = p.group * Math.ceil(mg / NR) * NR * plane * 4;
  const chunkOf = (perImage: number) => Math.max(1, Math.min(p.n, Math.floor(CHUNK_BYTES / perImage)));
  if (conv2dPath(p) === "pointwise") {
    const chunk = chunkOf(dyPanels + p.c * plane * 4);
    return { layout: 2, chunk, bytes: offsets + sums + chunk * dyPanels };
  }
  if ((p.kh === 1 && p.kw === 1) || plane <= FLAT_PIXELS) {
    const columns = p.c * p.kh * p.kw * plane * 4;
    const chunk = chunkOf(columns + dyPanels);
    return { layout: 1, chunk, bytes: offsets + sums + align16(chunk * columns) + chunk * dyPanels };
  }
  const xImage = align16((p.c * planeGeometry(p).channelFloats + 16) * 4);
  const chunk = chunkOf(xImage + dyPanels);
  return { layout: 0, chunk, bytes: offsets + sums + chunk * (xImage + dyPanels) };
}

/** Workspace bytes conv2dBackwardWeights needs for these params. */
export function conv2dBackwardWeightsWorkspaceBytes(p: Conv2dParams): number {
  conv2dWorkspaceBytes(p); // checks p
  if (isDepthwise(p)) return depthwiseBackwardBytes(p);
  return weightsPlan(p).bytes;
}

/**
 * dW [m, c/group, kh, kw] = the gradient of the conv's weights, from its input
 * x [n, c, h, w] and dy [n, m, outH, outW] (byte addresses in wasm memory);
 * dW is overwritten. `workspace` holds conv2dBackwardWeightsWorkspaceBytes(p) bytes.
 */
export function conv2dBackwardWeights(
  p: Conv2dParams,
  x: number,
  dy: number,
  dw: number,
  workspace: number,
): void {
  conv2dWorkspaceBytes(p); // checks p
  const k = wasm();
  if (isDepthwise(p)) {
    k.conv2dDepthwiseBackwardWeights(geometryArg(p), x, dy, dw, workspace);
    return;
  }
  const plan = weightsPlan(p);
  k.conv2dBackwardWeights(geometryArg(p), plan.layout, plan.chunk, x, dy, dw, workspace);
}

/** Visits every (input, weight, output) index triple of the convolution once. */
function eachTap(p: Conv2dParams, visit: (xi: number, wi: number, yi: number) => void): void {
  const cg = p.c / p.group, mg = p.m / p.group;
  for (let n = 0; n < p.n; n++) {
    for (let m = 0; m < p.m; m++) {
      const g = Math.floor(m / mg);
      for (let oh = 0; oh < p.outH; oh++) {
        for (let ow = 0; ow < p.outW; ow++) {
          const yi = ((n * p.m + m) * p.outH + oh) * p.outW + ow;
          for (let ci = 0; ci < cg; ci++) {
            const c = g * cg + ci;
            for (let ky = 0; ky < p.kh; ky++) {
              const ih = oh * p.strideH - p.padTop + ky * p.dilationH;
              if (ih < 0 || ih >= p.h) continue;
              for (let kx = 0; kx < p.kw; kx++) {
                const iw = ow * p.strideW - p.padLeft + kx * p.dilationW;
                if (iw < 0 || iw >= p.w) continue;
                visit(((n * p.c + c) * p.h + ih) * p.w + iw, ((m * cg + ci) * p.kh + ky) * p.kw + kx, yi);
              }
            }
          }
        }
      }
    }
  }
}

/** Plain reference of conv2dBackwardInput on typed arrays, accumulating in float64. */
export function conv2dBackwardInputReference(
  p: Conv2dParams,
  dy: FloatArray,
  w: FloatArray,
  dx: FloatArray,
): void {
  const acc = new Float64Array(p.n * p.c * p.h * p.w);
  eachTap(p, (xi, wi, yi) => acc[xi] += dy[yi] * w[wi]);
  dx.set(acc);
}

/** Plain reference of conv2dBackwardWeights on typed arrays, accumulating in float64. */
export function conv2dBackwardWeightsReference(
  p: Conv2dParams,
  x: FloatArray,
  dy: FloatArray,
  dw: FloatArray,
): void {
  const acc = new Float64Array(p.m * (p.c / p.group) * p.kh * p.kw);
  eachTap(p, (xi, wi, yi) => acc[wi] += dy[yi] * x[xi]);
  dw.set(acc);
}
