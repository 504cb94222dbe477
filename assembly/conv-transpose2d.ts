// Transposed 2-D convolution, float32 NCHW (ONNX ConvTranspose), as GEMM then
// col2im: per image and group, col[(m, ky, kx), (ih, iw)] = Σ_c W[c, (m, ky, kx)]
// · X[c, (ih, iw)], then each col entry is added to y[m, ih·sh - padTop + ky·dh,
// iw·sw - padLeft + kx·dw] when that lands inside the output. y starts from the
// bias; the clamp [lo, hi] (a fused relu/clip, or ±Infinity) is applied last.
import { gemm } from "./gemm";
import { Geometry } from "./geometry";

// Workspace: mg·kh·kw·h·w floats (the col matrix of one image and group).
export function convTranspose2d(
  geometry: usize,
  x: usize,
  wt: usize,
  bias: usize,
  y: usize,
  lo: f32,
  hi: f32,
  col: usize,
): void {
  const geo = changetype<Geometry>(geometry);
  const n = geo.n, c = geo.c, h = geo.h, w = geo.w, m = geo.m, kh = geo.kh, kw = geo.kw;
  const sh = geo.strideH, sw = geo.strideW, padTop = geo.padTop, padLeft = geo.padLeft;
  const dh = geo.dilationH, dw = geo.dilationW, group = geo.group, outH = geo.outH, outW = geo.outW;
  const cg = c / group, mg = m / group;
  const rows = mg * kh * kw, hw = h * w;
  const outPlane = outH * outW;
  for (let img = 0; img < n; img++) {
    for (let g = 0; g < group; g++) {
      const xg = x + ((<usize> (img * c + g * cg) * hw) << 2);
      const wg = wt + ((<usize> g * cg * rows) << 2);
      gemm(1, 0, rows, hw, cg, wg, rows, xg, hw, col, hw, 0);
      for (let mi = 0; mi < mg; mi++) {
        const ch = g * mg + mi;
        const yp = y + ((<usize> (img * m + ch) * outPlane) << 2);
        const b: f32 = bias ? load<f32>(bias + (<usize> ch << 2)) : 0;
        fillPlane(yp, outPlane, b);
        for (let ky = 0; ky < kh; ky++) {
          for (let kx = 0; kx < kw; kx++) {
            const src = col + ((<usize> ((mi * kh + ky) * kw + kx) * hw) << 2);
            // Input columns iw whose output column iw·sw + ox lies in [0, outW).
            const ox = kx * dw - padLeft;
            const iw0 = ox >= 0 ? 0 : (-ox + sw - 1) / sw;
            const iw1 = min(w, (outW - 1 - ox) / sw + 1);
            if (outW - 1 - ox < 0 || iw0 >= iw1) continue;
            for (let ih = 0; ih < h; ih++) {
              const oh = ih * sh - padTop + ky * dh;
              if (oh < 0 || oh >= outH) continue;
              const s = src + ((<usize> (ih * w + iw0)) << 2);
              const d = yp + ((<usize> (oh * outW + iw0 * sw + ox)) << 2);
              addRow(d, s, iw1 - iw0, sw);
            }
          }
        }
      }
    }
    clampPlanes(y + ((<usize> img * m * outPlane) << 2), m * outPlane, lo, hi);
  }
}

// d[i·stride] += s[i] for i < count.

function addRow(d: usize, s: usize, count: i32, stride: i32): void {
  let i = 0;
  if (stride == 1) {
    for (; i + 4 <= count; i += 4) {
      const o = <usize> i << 2;
      v128.store(d + o, f32x4.add(v128.load(d + o), v128.load(s + o)));
    }
  }
  const step = <usize> stride << 2;
  let dp = d + <usize> i * step;
  for (; i < count; i++) {
    store<f32>(dp, load<f32>(dp) + load<f32>(s + (<usize> i << 2)));
    dp += step;
  }
}

function fillPlane(p: usize, count: i32, v: f32): void {
  const vv = f32x4.splat(v);
  let i = 0;
  for (; i + 4 <= count; i += 4) v128.store(p + (<usize> i << 2), vv);
  for (; i < count; i++) store<f32>(p + (<usize> i << 2), v);
}

function clampPlanes(p: usize, count: i32, lo: f32, hi: f32): void {
  if (lo == -Infinity && hi == Infinity) return;
  const l = f32x4.splat(lo), u = f32x4.splat(hi);
  let i = 0;
  for (; i + 4 <= count; i += 4) {
    const o = <usize> i << 2;
    v128.store(p + o, f32x4.pmin(f32x4.pmax(v128.load(p + o), l), u));
  }
  for (; i < count; i++) {
    const v = load<f32>(p + (<usize> i << 2));
    const c = v < lo ? lo : v;
    store<f32>(p + (<usize> i << 2), hi < c ? hi : c);
  }
}
