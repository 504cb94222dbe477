// Backward of pooling (src/kernels/pool.ts): dx from dy [n, c, outH, outW].
// Max pooling sends each output's gradient to the first maximum of its window
// (recomputed from x), average pooling spreads it over the cells the forward
// divided by. The wasm kernels are in assembly/pool-grad.ts; the *Reference
// functions are the plain loops the tests hold them to.
import { wasm } from "../wasm.ts";
import { geometryArg } from "./geometry.ts";
import { checkIntegers, type FloatArray } from "./planes.ts";
import type { AveragePool2dParams, GlobalPoolParams, Pool2dParams } from "./pool.ts";

function resolve(kernel: string, p: Pool2dParams) {
  const r = { ...p, dilationH: p.dilationH ?? 1, dilationW: p.dilationW ?? 1 };
  checkIntegers(kernel, r, ["n", "c", "outH", "outW", "padTop", "padLeft", "padBottom", "padRight"], 0);
  checkIntegers(kernel, r, ["h", "w", "kh", "kw", "strideH", "strideW", "dilationH", "dilationW"], 1);
  return r;
}

/** dx [n, c, h, w] of max pooling from its input x and dy (byte addresses); needs no workspace. */
export function maxPool2dBackward(p: Pool2dParams, x: number, dy: number, dx: number): void {
  const r = resolve("maxPool2dBackward", p);
  wasm().maxPool2dBackward(geometryArg(r), x, dy, dx);
}

/** dx [n, c, h, w] of average pooling from dy (byte addresses); needs no workspace. */
export function averagePool2dBackward(p: AveragePool2dParams, dy: number, dx: number): void {
  const r = resolve("averagePool2dBackward", p);
  wasm().averagePool2dBackward(geometryArg(r), p.countIncludePad ? 1 : 0, dy, dx);
}

/** dx [n, c, size] = dy [n, c] / size over each plane. */
export function globalAveragePoolBackward(p: GlobalPoolParams, dy: number, dx: number): void {
  checkIntegers("globalAveragePoolBackward", p, ["n", "c"], 0);
  checkIntegers("globalAveragePoolBackward", p, ["size"], 1);
  wasm().globalAveragePoolBackward(p.n * p.c, p.size, dy, dx);
}

/** The in-input cells of each window, and how many cells the average divides by. */
function eachWindow(
  p: AveragePool2dParams,
  visit: (plane: number, yi: number, cells: number[], divisor: number) => void,
): void {
  const r = resolve("pool2dBackward", p);
  for (let plane = 0; plane < r.n * r.c; plane++) {
    for (let oh = 0; oh < r.outH; oh++) {
      for (let ow = 0; ow < r.outW; ow++) {
        const cells: number[] = [];
        let padded = 0;
        for (let ky = 0; ky < r.kh; ky++) {
          const ih = oh * r.strideH - r.padTop + ky * r.dilationH;
          for (let kx = 0; kx < r.kw; kx++) {
            const iw = ow * r.strideW - r.padLeft + kx * r.dilationW;
            if (ih < r.h + r.padBottom && iw < r.w + r.padRight) padded++;
            if (ih >= 0 && ih < r.h && iw >= 0 && iw < r.w) cells.push((plane * r.h + ih) * r.w + iw);
          }
        }
        visit(plane, (plane * r.outH + oh) * r.outW + ow, cells, p.countIncludePad ? padded : cells.length);
      }
    }
  }
}

/** Plain reference of maxPool2dBackward on typed arrays. */
export function maxPool2dBackwardReference(
  p: Pool2dParams,
  x: FloatArray,
  dy: FloatArray,
  dx: FloatArray,
): void {
  const acc = new Float64Array(dx.length);
  eachWindow(p, (_plane, yi, cells) => {
    // The first maximum; a NaN wins over anything but an earlier NaN, as in the forward.
    let best = -1;
    for (const i of cells) {
      if (best < 0 || (!Number.isNaN(x[best]) && (x[i] > x[best] || Number.isNaN(x[i])))) best = i;
    }
    if (best >= 0) acc[best] += dy[yi];
  });
  dx.set(acc);
}

/** Plain reference of averagePool2dBackward on typed arrays. */
export function averagePool2dBackwardReference(p: AveragePool2dParams, dy: FloatArray, dx: FloatArray): void {
  const acc = new Float64Array(dx.length);
  eachWindow(p, (_plane, yi, cells, divisor) => {
    for (const i of cells) acc[i] += dy[yi] / divisor;
  });
  dx.set(acc);
}
