// Backward of pooling (assembly/pool.ts), float32 NCHW. Max pooling routes
// each output's gradient to the first cell of its window that holds the
// window's maximum (recomputed from x; a NaN cell wins, as in the forward);
// average pooling spreads it evenly over the cells the forward divided by.
// Windows overlap when the stride is below the kernel, so both accumulate
// into a zeroed dx. Scalar: pooling is a small share of a block's work.
import { Geometry } from "./geometry";

export function maxPool2dBackward(
  geometry: usize,
  x: usize,
  dy: usize,
  dx: usize,
): void {
  const geo = changetype<Geometry>(geometry);
  const planes = geo.n * geo.c, h = geo.h, w = geo.w, kh = geo.kh, kw = geo.kw, sh = geo.strideH;
  const sw = geo.strideW, padTop = geo.padTop, padLeft = geo.padLeft, dh = geo.dilationH;
  const dw = geo.dilationW, outH = geo.outH, outW = geo.outW;
  memory.fill(dx, 0, (<usize> planes * h * w) << 2);
  for (let pl = 0; pl < planes; pl++) {
    const xp = x + ((<usize> pl * h * w) << 2);
    const gp = dx + ((<usize> pl * h * w) << 2);
    let g = dy + ((<usize> pl * outH * outW) << 2);
    for (let oh = 0; oh < outH; oh++) {
      for (let ow = 0; ow < outW; ow++) {
        let best = -1;
        let bestValue: f32 = 0;
        for (let ky = 0; ky < kh; ky++) {
          const ih = oh * sh - padTop + ky * dh;
          if (ih < 0 || ih >= h) continue;
          for (let kx = 0; kx < kw; kx++) {
            const iw = ow * sw - padLeft + kx * dw;
            if (iw < 0 || iw >= w) continue;
            const at = ih * w + iw;
            const v = load<f32>(xp + (<usize> at << 2));
            // The first maximum wins; once a NaN is found it stays.
            if (best < 0 || (bestValue == bestValue && (v > bestValue || v != v))) {
              best = at;
              bestValue = v;
            }
          }
        }
        if (best >= 0) {
          const o = gp + (<usize> best << 2);
          store<f32>(o, load<f32>(o) + load<f32>(g));
        }
        g += 4;
      }
    }
  }
}

// Taps of a window along one axis that fall in [lo, hi): window start s, k taps, dilation d.
function countIn(s: i32, k: i32, d: i32, lo: i32, hi: i32): i32 {
  let n = 0;
  for (let i = 0; i < k; i++) {
    const v = s + i * d;
    if (v >= lo && v < hi) n++;
  }
  return n;
}

export function averagePool2dBackward(
  geometry: usize,
  countIncludePad: i32,
  dy: usize,
  dx: usize,
): void {
  const geo = changetype<Geometry>(geometry);
  const planes = geo.n * geo.c, h = geo.h, w = geo.w, kh = geo.kh, kw = geo.kw, sh = geo.strideH;
  const sw = geo.strideW, padTop = geo.padTop, padLeft = geo.padLeft, padBottom = geo.padBottom;
  const padRight = geo.padRight, dh = geo.dilationH, dw = geo.dilationW, outH = geo.outH;
  const outW = geo.outW;
  memory.fill(dx, 0, (<usize> planes * h * w) << 2);
  const loH = countIncludePad ? -padTop : 0, hiH = countIncludePad ? h + padBottom : h;
  const loW = countIncludePad ? -padLeft : 0, hiW = countIncludePad ? w + padRight : w;
  for (let pl = 0; pl < planes; pl++) {
    const gp = dx + ((<usize> pl * h * w) << 2);
    let g = dy + ((<usize> pl * outH * outW) << 2);
    for (let oh = 0; oh < outH; oh++) {
      const rows = countIn(oh * sh - padTop, kh, dh, loH, hiH);
      for (let ow = 0; ow < outW; ow++) {
        const cells = rows * countIn(ow * sw - padLeft, kw, dw, loW, hiW);
        const share = load<f32>(g) / <f32> cells;
        g += 4;
        for (let ky = 0; ky < kh; ky++) {
          const ih = oh * sh - padTop + ky * dh;
          if (ih < 0 || ih >= h) continue;
          for (let kx = 0; kx < kw; kx++) {
            const iw = ow * sw - padLeft + kx * dw;
            if (iw < 0 || iw >= w) continue;
            const o = gp + ((<usize> ih * w + iw) << 2);
            store<f32>(o, load<f32>(o) + share);
          }
        }
      }
    }
  }
}

// dx [planes, size] = dy [planes] / size, broadcast over each plane.
export function globalAveragePoolBackward(planes: i32, size: i32, dy: usize, dx: usize): void {
  for (let pl = 0; pl < planes; pl++) {
    const v = load<f32>(dy + (<usize> pl << 2)) / <f32> size;
    const vv = f32x4.splat(v);
    let p = dx + ((<usize> pl * size) << 2);
    let i = 0;
    for (; i + 4 <= size; i += 4) {
      v128.store(p, vv);
      p += 16;
    }
    for (; i < size; i++) {
      store<f32>(p, v);
      p += 4;
    }
  }
}
