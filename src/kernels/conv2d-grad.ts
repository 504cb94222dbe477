// Backward of the 2-D convolution (src/kernels/conv2d.ts): the gradients of
// the input and of the weights, given the output gradient dy [n, m, outH, outW].
// The wasm kernels are in assembly/conv2d-grad.ts. dX, a transposed
// convolution of dy, runs
// - at unit stride as a forward convolution of dy with the weights flipped in
//   space and transposed per group ("flipped-conv": the implicit-GEMM,
//   pointwise or depthwise kernels of the forward);
// - for strided depthwise convs as a scatter into prepared planes ("depthwise-scatter");
// - otherwise as GEMM + col2im, the ConvTranspose kernel ("col2im").
// dW is a reduction over pixels: over prepared planes of the input, over an
// im2col of a chunk of images (1×1 kernels, outputs of at most 64 pixels), or
// with dy and x read in place (1×1 kernels with outputs of a multiple of four
// pixels); depthwise convs reduce per channel plane. The bias gradient is dy
// summed per channel (reduceToShape in src/kernels/binary-grad.ts).
// The *Reference functions are the plain loops the tests hold the kernels to.
import { wasm } from "../wasm.ts";
import {
  conv2d,
  conv2dPackedWeightsBytes,
  conv2dPackWeights,
  type Conv2dParams,
  conv2dPath,
  conv2dWorkspaceBytes,
} from "./conv2d.ts";
import {
  convTranspose2d,
  type ConvTranspose2dParams,
  convTranspose2dWorkspaceBytes,
} from "./conv-transpose2d.ts";
import { geometryArg } from "./geometry.ts";
import { align16, type FloatArray, planeBytes, planeGeometry } from "./planes.ts";

export type Conv2dBackwardInputPath = "flipped-conv" | "depthwise-scatter" | "col2im";

const MR = 4;
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

/** Workspace bytes conv2dBackwardInput needs for these params. */
export function conv2dBackwardInputWorkspaceBytes(p: Conv2dParams): number {
  const path = conv2dBackwardInputPath(p);
  if (path === "col2im") return convTranspose2dWorkspaceBytes(transposedParams(p));
  if (path === "depthwise-scatter") return planeBytes(p, 1) + paddedRowsBytes(p);
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
  /** The kernel's input layout: 0 prepared planes, 1 packed im2col, 2 dy in place (see assembly). */
  layout: number;
  chunk: number;
  bytes: number;
}

/** Output planes up to this many pixels reduce over an im2col of the whole chunk, not row by row. */
const FLAT_PIXELS = 64;

// Mirrors the workspace layout of conv2dBackwardWeights in assembly/conv2d-grad.ts.
function weightsPlan(p: Conv2dParams): WeightsPlan {
  const cg = p.c / p.group, mg = p.m / p.group;
  const plane = p.outH * p.outW;
  const flat = (p.kh === 1 && p.kw === 1) || plane <= FLAT_PIXELS;
  const panels = p.group * Math.ceil(mg / MR);
  const offsets = align16(cg * p.kh * p.kw * 4);
  const columns = p.c * p.kh * p.kw * plane * 4;
  if (p.kh === 1 && p.kw === 1 && plane % 4 === 0) {
    // dy in place; x too when the conv reads it pixel for pixel.
    if (conv2dPath(p) === "pointwise") return { layout: 2, chunk: p.n, bytes: 0 };
    const chunk = Math.max(1, Math.min(p.n, Math.floor(CHUNK_BYTES / columns)));
    return { layout: 2, chunk, bytes: align16(chunk * columns) };
  }
  if (flat) {
    // Per image: its im2col columns and its dy panels (16 bytes per pixel per panel).
    const chunk = Math.max(1, Math.min(p.n, Math.floor(CHUNK_BYTES / (columns + panels * plane * 16))));
    const floats = 4 * Math.ceil((chunk * plane) / 4);
    return {
      layout: 1,
      chunk,
      bytes: offsets + align16(p.c * p.kh * p.kw * floats * 4) + panels * floats * 16,
    };
  }
  const xImage = align16((p.c * planeGeometry(p).channelFloats + 16) * 4);
  const dImage = panels * p.outH * Math.ceil(p.outW / 4) * 64;
  const chunk = Math.max(1, Math.min(p.n, Math.floor(CHUNK_BYTES / (xImage + dImage))));
  return { layout: 0, chunk, bytes: offsets + chunk * (xImage + dImage) };
}

/** Workspace bytes conv2dBackwardWeights needs for these params. */
export function conv2dBackwardWeightsWorkspaceBytes(p: Conv2dParams): number {
  conv2dWorkspaceBytes(p); // checks p
  if (isDepthwise(p)) return planeBytes(p, 1) + paddedRowsBytes(p);
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
