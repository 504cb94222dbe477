// Transposed 2-D convolution, float32 NCHW (ONNX ConvTranspose): the existing
// GEMM followed by col2im, in assembly/conv-transpose2d.ts.
// convTranspose2dReference is the plain scatter loop the tests hold it to.
import { AttnroundError } from "../errors.ts";
import { wasm } from "../wasm.ts";
import { activationRange, align16, checkIntegers, clampActivation } from "./planes.ts";
import type { Conv2dParams } from "./conv2d.ts";
import { geometryArg } from "./geometry.ts";

/**
 * The fields of Conv2dParams, read the ConvTranspose way: x [n, c, h, w],
 * weights [c, m/group, kh, kw], y [n, m, outH, outW]. output_padding and
 * output_shape are the caller's: it passes the output size it wants (see
 * convTranspose2dOutputSize); padBottom/padRight are implied by it and unused.
 */
export type ConvTranspose2dParams = Conv2dParams;

/** ONNX ConvTranspose output size along one axis, from explicit pads and output_padding. */
export function convTranspose2dOutputSize(
  size: number,
  kernel: number,
  stride: number,
  padBegin: number,
  padEnd: number,
  dilation: number,
  outputPadding = 0,
): number {
  return stride * (size - 1) + outputPadding + (kernel - 1) * dilation + 1 - padBegin - padEnd;
}

function check(p: ConvTranspose2dParams): void {
  checkIntegers("convTranspose2d", p, ["n", "outH", "outW", "padTop", "padLeft", "padBottom", "padRight"], 0);
  checkIntegers(
    "convTranspose2d",
    p,
    ["c", "h", "w", "m", "kh", "kw", "strideH", "strideW", "dilationH", "dilationW", "group"],
    1,
  );
  if (p.c % p.group !== 0 || p.m % p.group !== 0) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `convTranspose2d: group ${p.group} must divide both the input channels (${p.c}) and the output channels (${p.m})`,
    );
  }
}

/** Workspace bytes: the col matrix of one image and group, (m/group)·kh·kw × h·w floats. */
export function convTranspose2dWorkspaceBytes(p: ConvTranspose2dParams): number {
  check(p);
  return align16((p.m / p.group) * p.kh * p.kw * p.h * p.w * 4);
}

/**
 * y = act(convTranspose(x, w) + bias) on tensors in wasm memory (byte addresses);
 * bias [m] or 0 for none; `workspace` holds convTranspose2dWorkspaceBytes(p) bytes.
 */
export function convTranspose2d(
  p: ConvTranspose2dParams,
  x: number,
  w: number,
  bias: number,
  y: number,
  workspace: number,
): void {
  check(p);
  const [lo, hi] = activationRange("convTranspose2d", p);
  if (p.n === 0 || p.outH === 0 || p.outW === 0) return;
  wasm().convTranspose2d(geometryArg(p), x, w, bias, y, lo, hi, workspace);
}

/** Plain reference: same contract as convTranspose2d, on typed arrays, accumulating in float64. */
export function convTranspose2dReference(
  p: ConvTranspose2dParams,
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | null,
  y: Float32Array,
): void {
  check(p);
  const [lo, hi] = activationRange("convTranspose2d", p);
  const cg = p.c / p.group, mg = p.m / p.group, plane = p.outH * p.outW;
  const acc = new Float64Array(p.n * p.m * plane);
  for (let n = 0; n < p.n; n++) {
    for (let m = 0; m < p.m; m++) {
      acc.fill(bias ? bias[m] : 0, (n * p.m + m) * plane, (n * p.m + m + 1) * plane);
    }
    for (let c = 0; c < p.c; c++) {
      const g = Math.floor(c / cg);
      for (let ih = 0; ih < p.h; ih++) {
        for (let iw = 0; iw < p.w; iw++) {
          const v = x[((n * p.c + c) * p.h + ih) * p.w + iw];
          for (let mi = 0; mi < mg; mi++) {
            const m = g * mg + mi;
            for (let ky = 0; ky < p.kh; ky++) {
              const oh = ih * p.strideH - p.padTop + ky * p.dilationH;
              if (oh < 0 || oh >= p.outH) continue;
              for (let kx = 0; kx < p.kw; kx++) {
                const ow = iw * p.strideW - p.padLeft + kx * p.dilationW;
                if (ow < 0 || ow >= p.outW) continue;
                acc[(n * p.m + m) * plane + oh * p.outW + ow] += v *
                  w[((c * mg + mi) * p.kh + ky) * p.kw + kx];
              }
            }
          }
        }
      }
    }
  }
  for (let i = 0; i < acc.length; i++) y[i] = clampActivation(acc[i], lo, hi);
}
