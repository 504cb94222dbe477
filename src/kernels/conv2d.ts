// 2-D convolution, float32 NCHW (ONNX Conv), with bias and relu/clip fused into
// the output write. The wasm kernels are in assembly/conv2d.ts:
// - depthwise (group == c == m): a direct SIMD kernel per channel plane, or
//   for strided, dilated and narrow 3×3 ones four channels per v128;
// - everything else: an implicit GEMM over weights packed into 4-row panels,
//   reading the input in place (1×1 stride-1 unpadded), from a gathered dense
//   image (other 1×1), or from padded, phase-split planes of one image (see
//   assembly/planes.ts).
// conv2dReference is the plain loop the tests hold the kernels to.
import { AttnroundError } from "../errors.ts";
import { wasm } from "../wasm.ts";
import { geometryArg } from "./geometry.ts";
import {
  type Activation,
  activationRange,
  align16,
  checkIntegers,
  clampActivation,
  type FloatArray,
  planeBytes,
} from "./planes.ts";

export type { Activation };

export interface Conv2dParams {
  n: number;
  c: number;
  h: number;
  w: number;
  /** Output channels. */
  m: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  padTop: number;
  padLeft: number;
  padBottom: number;
  padRight: number;
  dilationH: number;
  dilationW: number;
  group: number;
  outH: number;
  outW: number;
  /** Fused after the bias; default "none". */
  activation?: Activation;
  /** Bounds of "clip"; default ±Infinity. */
  clipMin?: number;
  clipMax?: number;
}

export type Conv2dPath = "pointwise" | "pointwise-gather" | "depthwise" | "implicit-gemm";

const MR = 4;

/** Which kernel runs a convolution of these params. */
export function conv2dPath(p: Conv2dParams): Conv2dPath {
  if (p.group === p.c && p.group === p.m) return "depthwise";
  const pointwise = p.kh === 1 && p.kw === 1 && p.strideH === 1 && p.strideW === 1 && p.padTop === 0 &&
    p.padLeft === 0 && p.outH === p.h && p.outW === p.w;
  if (pointwise) return "pointwise";
  return p.kh === 1 && p.kw === 1 ? "pointwise-gather" : "implicit-gemm";
}

/** The output size along one axis (ONNX Conv, explicit pads). */
export function conv2dOutputSize(
  size: number,
  kernel: number,
  stride: number,
  padBegin: number,
  padEnd: number,
  dilation: number,
): number {
  return Math.floor((size + padBegin + padEnd - dilation * (kernel - 1) - 1) / stride) + 1;
}

function check(p: Conv2dParams): void {
  checkIntegers("conv2d", p, ["n", "outH", "outW", "padTop", "padLeft", "padBottom", "padRight"], 0);
  checkIntegers(
    "conv2d",
    p,
    ["c", "h", "w", "m", "kh", "kw", "strideH", "strideW", "dilationH", "dilationW"],
    1,
  );
  checkIntegers("conv2d", p, ["group"], 1);
  if (p.c % p.group !== 0 || p.m % p.group !== 0) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `conv2d: group ${p.group} must divide both the input channels (${p.c}) and the output channels (${p.m})`,
    );
  }
}

/** Bytes of the weights in the form the kernel reads (conv2dPackWeights writes it). */
export function conv2dPackedWeightsBytes(p: Conv2dParams): number {
  check(p);
  if (conv2dPath(p) === "depthwise") return align16(p.m * p.kh * p.kw * 4);
  const mg = p.m / p.group;
  return align16(p.group * Math.ceil(mg / MR) * MR * (p.c / p.group) * p.kh * p.kw * 4);
}

/**
 * Packs ONNX weights [m, c/group, kh, kw] at `w` into `packed`
 * (conv2dPackedWeightsBytes(p) bytes), once per weight tensor; conv2d can then
 * be given `packed` and skip packing on every call.
 */
export function conv2dPackWeights(p: Conv2dParams, w: number, packed: number): void {
  check(p);
  const k = wasm();
  if (conv2dPath(p) === "depthwise") {
    new Uint8Array(k.memory.buffer).copyWithin(packed, w, w + p.m * p.kh * p.kw * 4);
  } else {
    k.conv2dPackWeights(p.m, p.group, (p.c / p.group) * p.kh * p.kw, w, packed);
  }
}

/**
 * Whether a depthwise conv's backward passes run four channels at a time
 * (assembly/depthwise.ts): 3×3 kernels. The forward does for the strided,
 * dilated and narrow ones and gets workspace for either way.
 */
export function depthwiseByChannels(p: Conv2dParams): boolean {
  return p.kh === 3 && p.kw === 3;
}

/** Bytes of the padded cells (four channels' values per 16 bytes) assembly/depthwise.ts works in. */
export function depthwiseCellsBytes(p: Conv2dParams): number {
  const rows = (p.outH - 1) * p.strideH + 2 * p.dilationH + 1;
  const cols = (p.outW - 1) * p.strideW + 2 * p.dilationW + 1;
  return align16(rows * cols * 16);
}

function kernelWorkspaceBytes(p: Conv2dParams): number {
  const path = conv2dPath(p);
  if (path === "depthwise") {
    return depthwiseByChannels(p) ? Math.max(depthwiseCellsBytes(p), planeBytes(p, 1)) : planeBytes(p, 1);
  }
  const cg = p.c / p.group;
  const offsets = align16(cg * p.kh * p.kw * 4);
  if (path === "pointwise") return offsets + align16(cg * 16) + align16(cg * 4);
  if (path === "pointwise-gather") return offsets + align16((p.c * p.outH * p.outW + 16) * 4);
  return offsets + planeBytes(p, p.c);
}

/**
 * Workspace bytes conv2d needs for these params. With `prepacked`, the caller
 * passes packed weights (conv2dPackWeights) and the workspace leaves them out.
 */
export function conv2dWorkspaceBytes(p: Conv2dParams, options: { prepacked?: boolean } = {}): number {
  check(p);
  const packing = options.prepacked || conv2dPath(p) === "depthwise" ? 0 : conv2dPackedWeightsBytes(p);
  return packing + kernelWorkspaceBytes(p);
}

/**
 * y = act(conv(x, w) + bias) on tensors in wasm memory (byte addresses):
 * x [n, c, h, w], w [m, c/group, kh, kw], bias [m] or 0 for none, y [n, m, outH, outW].
 * `workspace` holds conv2dWorkspaceBytes(p, { prepacked: packed !== 0 }) bytes.
 * With `packed` (from conv2dPackWeights) `w` is not read.
 */
export function conv2d(
  p: Conv2dParams,
  x: number,
  w: number,
  bias: number,
  y: number,
  workspace: number,
  packed = 0,
): void {
  check(p);
  const [lo, hi] = activationRange("conv2d", p);
  if (p.n === 0 || p.outH === 0 || p.outW === 0) return;
  const k = wasm();
  if (conv2dPath(p) === "depthwise") {
    k.conv2dDepthwise(geometryArg(p), x, packed || w, bias, y, lo, hi, workspace);
    return;
  }
  if (packed === 0) {
    packed = workspace;
    workspace += conv2dPackedWeightsBytes(p);
    k.conv2dPackWeights(p.m, p.group, (p.c / p.group) * p.kh * p.kw, w, packed);
  }
  k.conv2dPacked(geometryArg(p), x, packed, bias, y, lo, hi, workspace);
}

/** Plain reference: same contract as conv2d, on typed arrays, accumulating in float64. */
export function conv2dReference(
  p: Conv2dParams,
  x: FloatArray,
  w: FloatArray,
  bias: FloatArray | null,
  y: FloatArray,
): void {
  check(p);
  const [lo, hi] = activationRange("conv2d", p);
  const cg = p.c / p.group, mg = p.m / p.group;
  for (let n = 0; n < p.n; n++) {
    for (let m = 0; m < p.m; m++) {
      const g = Math.floor(m / mg);
      for (let oh = 0; oh < p.outH; oh++) {
        for (let ow = 0; ow < p.outW; ow++) {
          let sum = bias ? bias[m] : 0;
          for (let ci = 0; ci < cg; ci++) {
            const c = g * cg + ci;
            for (let ky = 0; ky < p.kh; ky++) {
              const ih = oh * p.strideH - p.padTop + ky * p.dilationH;
              if (ih < 0 || ih >= p.h) continue;
              for (let kx = 0; kx < p.kw; kx++) {
                const iw = ow * p.strideW - p.padLeft + kx * p.dilationW;
                if (iw < 0 || iw >= p.w) continue;
                sum += x[((n * p.c + c) * p.h + ih) * p.w + iw] * w[((m * cg + ci) * p.kh + ky) * p.kw + kx];
              }
            }
          }
          y[((n * p.m + m) * p.outH + oh) * p.outW + ow] = clampActivation(sum, lo, hi);
        }
      }
    }
  }
}
