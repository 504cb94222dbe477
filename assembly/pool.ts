// deno-fmt-ignore-file: deno fmt drops the @inline decorators AssemblyScript needs.
// Pooling, float32 NCHW: max and average over sliding windows, and global
// average. The window ops prepare one padded, phase-split plane at a time
// (assembly/planes.ts) and compute four adjacent outputs per v128; the taps'
// byte offsets within the prepared plane are a table in the workspace.
import { Geometry } from "./geometry";
import { preparePlanes, storeLanes } from "./planes";

// Workspace: kh·kw i32 tap offsets (rounded up to 16 bytes), then for average
// pooling ceil(outW/4)·4 column counts, then one prepared plane.
function tapOffsets(kh: i32, kw: i32, sw: i32, dh: i32, dw: i32, hp: i32, wq: i32, offs: usize): void {
  let t = 0;
  for (let ky = 0; ky < kh; ky++) {
    for (let kx = 0; kx < kw; kx++) {
      const c = kx * dw;
      store<i32>(offs + (<usize> t << 2), ((c % sw) * hp * wq + ky * dh * wq + c / sw) << 2);
      t++;
    }
  }
}

export function maxPool2d(
  geometry: usize,
  x: usize,
  y: usize,
  workspace: usize,
): void {
  const geo = changetype<Geometry>(geometry);
  const planes = geo.n * geo.c, h = geo.h, w = geo.w, kh = geo.kh, kw = geo.kw, sh = geo.strideH;
  const sw = geo.strideW, padTop = geo.padTop, padLeft = geo.padLeft, dh = geo.dilationH;
  const dw = geo.dilationW, outH = geo.outH, outW = geo.outW, hp = geo.hp, wq = geo.wq;
  const taps = kh * kw;
  const offs = workspace;
  const prep = workspace + ((<usize> taps * 4 + 15) & ~15);
  tapOffsets(kh, kw, sw, dh, dw, hp, wq, offs);
  const end = offs + (<usize> taps << 2);
  const rowBytes = <usize> sh * wq << 2;
  const none = f32x4.splat(-Infinity);
  for (let pl = 0; pl < planes; pl++) {
    preparePlanes(x + ((<usize> pl * h * w) << 2), 1, h, w, padTop, padLeft, sw, hp, wq, -Infinity, prep);
    const yp = y + ((<usize> pl * outH * outW) << 2);
    for (let oh = 0; oh < outH; oh++) {
      const row = prep + <usize> oh * rowBytes;
      const yr = yp + ((<usize> oh * outW) << 2);
      for (let ow = 0; ow < outW; ow += 4) {
        const q = row + (<usize> ow << 2);
        // pmax is one instruction where the NaN-propagating max is eight on
        // x86; NaN inputs are collected in a mask instead. (A tie of -0 and +0
        // may give either.)
        let acc = none, nan = f32x4.splat(0);
        for (let o = offs; o < end; o += 4) {
          const v = v128.load(q + <usize> load<i32>(o));
          acc = f32x4.pmax(acc, v);
          nan = v128.or(nan, f32x4.ne(v, v));
        }
        storeLanes(yr + (<usize> ow << 2), v128.bitselect(f32x4.splat(NaN), acc, nan), min(4, outW - ow));
      }
    }
  }
}

// Taps of a window along one axis that fall in [lo, hi): window start s, k taps, dilation d.
@inline
function countIn(s: i32, k: i32, d: i32, lo: i32, hi: i32): i32 {
  let n = 0;
  for (let i = 0; i < k; i++) {
    const v = s + i * d;
    if (v >= lo && v < hi) n++;
  }
  return n;
}

// Divides each window sum by its count of input cells, or with
// countIncludePad of cells within the padded extent [-padTop, h + padBottom)
// (cells beyond it, which ceil_mode windows may reach, never count).
export function averagePool2d(
  geometry: usize,
  countIncludePad: i32,
  x: usize,
  y: usize,
  workspace: usize,
): void {
  const geo = changetype<Geometry>(geometry);
  const planes = geo.n * geo.c, h = geo.h, w = geo.w, kh = geo.kh, kw = geo.kw, sh = geo.strideH;
  const sw = geo.strideW, padTop = geo.padTop, padLeft = geo.padLeft, padBottom = geo.padBottom;
  const padRight = geo.padRight, dh = geo.dilationH, dw = geo.dilationW, outH = geo.outH;
  const outW = geo.outW, hp = geo.hp, wq = geo.wq;
  const taps = kh * kw;
  const offs = workspace;
  const cols = offs + ((<usize> taps * 4 + 15) & ~15);
  const quads = (outW + 3) >> 2;
  const prep = cols + (<usize> quads << 4);
  tapOffsets(kh, kw, sw, dh, dw, hp, wq, offs);
  const loW = countIncludePad ? -padLeft : 0, hiW = countIncludePad ? w + padRight : w;
  for (let ow = 0; ow < quads * 4; ow++) {
    const n = ow < outW ? countIn(ow * sw - padLeft, kw, dw, loW, hiW) : 1;
    store<f32>(cols + (<usize> ow << 2), <f32> n);
  }
  const loH = countIncludePad ? -padTop : 0, hiH = countIncludePad ? h + padBottom : h;
  const end = offs + (<usize> taps << 2);
  const rowBytes = <usize> sh * wq << 2;
  for (let pl = 0; pl < planes; pl++) {
    preparePlanes(x + ((<usize> pl * h * w) << 2), 1, h, w, padTop, padLeft, sw, hp, wq, 0, prep);
    const yp = y + ((<usize> pl * outH * outW) << 2);
    for (let oh = 0; oh < outH; oh++) {
      const row = prep + <usize> oh * rowBytes;
      const yr = yp + ((<usize> oh * outW) << 2);
      const rowCount = f32x4.splat(<f32> countIn(oh * sh - padTop, kh, dh, loH, hiH));
      for (let ow = 0; ow < outW; ow += 4) {
        const q = row + (<usize> ow << 2);
        let acc = f32x4.splat(0);
        for (let o = offs; o < end; o += 4) acc = f32x4.add(acc, v128.load(q + <usize> load<i32>(o)));
        const count = f32x4.mul(rowCount, v128.load(cols + (<usize> ow << 2)));
        storeLanes(yr + (<usize> ow << 2), f32x4.div(acc, count), min(4, outW - ow));
      }
    }
  }
}

// Mean of each of `planes` planes of `size` floats.
export function globalAveragePool(planes: i32, size: i32, x: usize, y: usize): void {
  for (let pl = 0; pl < planes; pl++) {
    let p = x + ((<usize> pl * size) << 2);
    let a = f32x4.splat(0), b = f32x4.splat(0);
    let i = 0;
    for (; i + 8 <= size; i += 8) {
      a = f32x4.add(a, v128.load(p));
      b = f32x4.add(b, v128.load(p, 16));
      p += 32;
    }
    a = f32x4.add(a, b);
    let sum: f64 = <f64> f32x4.extract_lane(a, 0) + <f64> f32x4.extract_lane(a, 1) +
      <f64> f32x4.extract_lane(a, 2) + <f64> f32x4.extract_lane(a, 3);
    for (; i < size; i++) {
      sum += <f64> load<f32>(p);
      p += 4;
    }
    store<f32>(y + (<usize> pl << 2), <f32> (sum / <f64> size));
  }
}
