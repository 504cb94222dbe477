// Pooling, float32 NCHW (ONNX MaxPool, AveragePool, GlobalAveragePool). The
// wasm kernels are in assembly/pool.ts; the *Reference functions are the plain
// loops the tests hold them to. ceil_mode and auto_pad are the caller's: it
// passes explicit pads and the output size it wants, and windows that reach
// past the end pads simply see fewer cells.
import { AttnroundError } from "../errors.ts";
import { wasm } from "../wasm.ts";
import { geometryArg } from "./geometry.ts";
import { align16, checkIntegers, type FloatArray, planeBytes } from "./planes.ts";

export interface Pool2dParams {
  n: number;
  c: number;
  h: number;
  w: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  padTop: number;
  padLeft: number;
  padBottom: number;
  padRight: number;
  /** Default 1. */
  dilationH?: number;
  dilationW?: number;
  outH: number;
  outW: number;
}

export interface AveragePool2dParams extends Pool2dParams {
  /**
   * Divide by the window's cells within the padded extent (padding counted)
   * instead of by its cells inside the input. Cells beyond the end pads,
   * which ceil_mode windows may reach, never count. Default false.
   */
  countIncludePad?: boolean;
}

export interface GlobalPoolParams {
  n: number;
  c: number;
  /** Spatial size: the product of all dimensions after the channel. */
  size: number;
}

interface Resolved extends Pool2dParams {
  dilationH: number;
  dilationW: number;
}

function resolve(kernel: string, p: Pool2dParams): Resolved {
  const r = { ...p, dilationH: p.dilationH ?? 1, dilationW: p.dilationW ?? 1 };
  checkIntegers(kernel, r, ["n", "c", "outH", "outW", "padTop", "padLeft", "padBottom", "padRight"], 0);
  checkIntegers(kernel, r, ["h", "w", "kh", "kw", "strideH", "strideW", "dilationH", "dilationW"], 1);
  return r;
}

function windowWorkspace(p: Resolved, average: boolean): number {
  const columns = average ? Math.ceil(p.outW / 4) * 16 : 0;
  return align16(p.kh * p.kw * 4) + columns + planeBytes(p, 1);
}

export function maxPool2dWorkspaceBytes(p: Pool2dParams): number {
  return windowWorkspace(resolve("maxPool2d", p), false);
}

export function averagePool2dWorkspaceBytes(p: AveragePool2dParams): number {
  return windowWorkspace(resolve("averagePool2d", p), true);
}

/** y [n, c, outH, outW] = max over each window of x [n, c, h, w]; pads never win. */
export function maxPool2d(p: Pool2dParams, x: number, y: number, workspace: number): void {
  const r = resolve("maxPool2d", p);
  if (r.n * r.c * r.outH * r.outW === 0) return;
  wasm().maxPool2d(geometryArg(r), x, y, workspace);
}

/** y [n, c, outH, outW] = mean over each window of x [n, c, h, w] (see countIncludePad). */
export function averagePool2d(p: AveragePool2dParams, x: number, y: number, workspace: number): void {
  const r = resolve("averagePool2d", p);
  if (r.n * r.c * r.outH * r.outW === 0) return;
  wasm().averagePool2d(geometryArg(r), p.countIncludePad ? 1 : 0, x, y, workspace);
}

/** y [n, c] = mean of each plane of x [n, c, ...]; needs no workspace. */
export function globalAveragePool(p: GlobalPoolParams, x: number, y: number): void {
  checkIntegers("globalAveragePool", p, ["n", "c"], 0);
  checkIntegers("globalAveragePool", p, ["size"], 1);
  wasm().globalAveragePool(p.n * p.c, p.size, x, y);
}

function windowReference(
  p: Resolved,
  x: FloatArray,
  y: FloatArray,
  reduce: (values: number[], cellsInPadded: number) => number,
): void {
  for (let plane = 0; plane < p.n * p.c; plane++) {
    for (let oh = 0; oh < p.outH; oh++) {
      for (let ow = 0; ow < p.outW; ow++) {
        const values: number[] = [];
        let padded = 0;
        for (let ky = 0; ky < p.kh; ky++) {
          const ih = oh * p.strideH - p.padTop + ky * p.dilationH;
          for (let kx = 0; kx < p.kw; kx++) {
            const iw = ow * p.strideW - p.padLeft + kx * p.dilationW;
            if (ih < p.h + p.padBottom && iw < p.w + p.padRight) padded++;
            if (ih >= 0 && ih < p.h && iw >= 0 && iw < p.w) values.push(x[(plane * p.h + ih) * p.w + iw]);
          }
        }
        y[(plane * p.outH + oh) * p.outW + ow] = reduce(values, padded);
      }
    }
  }
}

export function maxPool2dReference(p: Pool2dParams, x: FloatArray, y: FloatArray): void {
  windowReference(resolve("maxPool2d", p), x, y, (v) => v.length === 0 ? -Infinity : Math.max(...v));
}

export function averagePool2dReference(p: AveragePool2dParams, x: FloatArray, y: FloatArray): void {
  windowReference(resolve("averagePool2d", p), x, y, (v, padded) => {
    const sum = v.reduce((a, b) => a + b, 0);
    return sum / (p.countIncludePad ? padded : v.length);
  });
}

export function globalAveragePoolReference(p: GlobalPoolParams, x: FloatArray, y: FloatArray): void {
  if (!(p.size >= 1)) {
    throw new AttnroundError("INVALID_ARGUMENT", "globalAveragePool: params.size must be >= 1");
  }
  for (let plane = 0; plane < p.n * p.c; plane++) {
    let sum = 0;
    for (let i = 0; i < p.size; i++) sum += x[plane * p.size + i];
    y[plane] = sum / p.size;
  }
}
