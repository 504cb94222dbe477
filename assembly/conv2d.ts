// 2-D convolution, float32 NCHW, as an implicit GEMM: no im2col matrix.
//
// Per image and group, output[m, (oh, ow)] = Σ_k W[m, k] · X[k, (oh, ow)] with
// k = (ci, ky, kx). The weights are packed once into MR-row panels (k-major,
// zero rows past the group's channels). The input is prepared into padded,
// phase-split planes (assembly/planes.ts) so that X[k, four adjacent outputs]
// is one v128 load at `quad base + offsets[k]`. The micro-kernel computes MR
// output channels × two such quads (8 outputs) in 8 registers; bias and a
// clamp (relu / clip / none as [lo, hi]) are applied as the tile is stored.
//
// 1×1 stride-1 unpadded convs skip the preparation: the input image is already
// X (K × H·W), read in place; other 1×1 convs gather the pixels they read into
// such a dense image. Both then run over the flattened output, so no lanes are
// lost to ragged rows. Depthwise convs (group == c == m) have their own direct
// kernels: one channel plane at a time below, or for strided, dilated and
// narrow 3×3 ones four channels at a time (assembly/depthwise.ts).
import { depthwise3x3Channels } from "./depthwise";
import { Geometry } from "./geometry";
import { clamp, preparePlanes, storeLanes } from "./planes";

const MR = 4;

// ONNX weights [m, cg, kh, kw] → per group, ceil(mg/MR) panels of [k][MR].
export function conv2dPackWeights(m: i32, group: i32, kTotal: i32, w: usize, dst: usize): void {
  const mg = m / group;
  const panels = (mg + MR - 1) / MR;
  for (let g = 0; g < group; g++) {
    for (let p = 0; p < panels; p++) {
      for (let k = 0; k < kTotal; k++) {
        for (let r = 0; r < MR; r++) {
          const row = p * MR + r;
          const v: f32 = row < mg ? load<f32>(w + ((<usize> (g * mg + row) * kTotal + k) << 2)) : 0;
          store<f32>(dst, v);
          dst += 4;
        }
      }
    }
  }
}

// Scratch for the tiles at ragged edges: MR rows × 8 floats.
const edgeTile: usize = heap.alloc(MR * 8 * 4);

// MR channels × 2 quads. pa: packed panel [kTotal][MR]; offs: kTotal byte
// offsets (i32) added to the quad bases b0, b1. Writes rows < `rows` and the
// first v0 / v1 lanes of each quad to y0 / y1 (+ r·ys bytes for row r).
function tile(
  kTotal: i32,
  pa: usize,
  offs: usize,
  b0: usize,
  b1: usize,
  y0: usize,
  y1: usize,
  ys: usize,
  bias: usize,
  rows: i32,
  v0: i32,
  v1: i32,
  lo: v128,
  hi: v128,
): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const end = offs + (<usize> kTotal << 2);
  // Two k per iteration, the first one unconditionally.
  const end2 = offs + (<usize> (kTotal & ~1) << 2);
  while (offs < end2) {
    let o = <usize> load<i32>(offs);
    let x0 = v128.load(b0 + o);
    let x1 = v128.load(b1 + o);
    let a = v128.load32_splat(pa);
    c00 = f32x4.add(c00, f32x4.mul(a, x0));
    c01 = f32x4.add(c01, f32x4.mul(a, x1));
    a = v128.load32_splat(pa, 4);
    c10 = f32x4.add(c10, f32x4.mul(a, x0));
    c11 = f32x4.add(c11, f32x4.mul(a, x1));
    a = v128.load32_splat(pa, 8);
    c20 = f32x4.add(c20, f32x4.mul(a, x0));
    c21 = f32x4.add(c21, f32x4.mul(a, x1));
    a = v128.load32_splat(pa, 12);
    c30 = f32x4.add(c30, f32x4.mul(a, x0));
    c31 = f32x4.add(c31, f32x4.mul(a, x1));
    o = <usize> load<i32>(offs, 4);
    x0 = v128.load(b0 + o);
    x1 = v128.load(b1 + o);
    a = v128.load32_splat(pa, 16);
    c00 = f32x4.add(c00, f32x4.mul(a, x0));
    c01 = f32x4.add(c01, f32x4.mul(a, x1));
    a = v128.load32_splat(pa, 20);
    c10 = f32x4.add(c10, f32x4.mul(a, x0));
    c11 = f32x4.add(c11, f32x4.mul(a, x1));
    a = v128.load32_splat(pa, 24);
    c20 = f32x4.add(c20, f32x4.mul(a, x0));
    c21 = f32x4.add(c21, f32x4.mul(a, x1));
    a = v128.load32_splat(pa, 28);
    c30 = f32x4.add(c30, f32x4.mul(a, x0));
    c31 = f32x4.add(c31, f32x4.mul(a, x1));
    pa += MR << 3;
    offs += 8;
  }
  while (offs < end) {
    const o = <usize> load<i32>(offs);
    const x0 = v128.load(b0 + o);
    const x1 = v128.load(b1 + o);
    let a = v128.load32_splat(pa);
    c00 = f32x4.add(c00, f32x4.mul(a, x0));
    c01 = f32x4.add(c01, f32x4.mul(a, x1));
    a = v128.load32_splat(pa, 4);
    c10 = f32x4.add(c10, f32x4.mul(a, x0));
    c11 = f32x4.add(c11, f32x4.mul(a, x1));
    a = v128.load32_splat(pa, 8);
    c20 = f32x4.add(c20, f32x4.mul(a, x0));
    c21 = f32x4.add(c21, f32x4.mul(a, x1));
    a = v128.load32_splat(pa, 12);
    c30 = f32x4.add(c30, f32x4.mul(a, x0));
    c31 = f32x4.add(c31, f32x4.mul(a, x1));
    pa += MR << 2;
    offs += 4;
  }
  if (bias) {
    let bv = v128.load32_splat(bias);
    c00 = f32x4.add(c00, bv);
    c01 = f32x4.add(c01, bv);
    if (rows > 1) {
      bv = v128.load32_splat(bias, 4);
      c10 = f32x4.add(c10, bv);
      c11 = f32x4.add(c11, bv);
    }
    if (rows > 2) {
      bv = v128.load32_splat(bias, 8);
      c20 = f32x4.add(c20, bv);
      c21 = f32x4.add(c21, bv);
    }
    if (rows > 3) {
      bv = v128.load32_splat(bias, 12);
      c30 = f32x4.add(c30, bv);
      c31 = f32x4.add(c31, bv);
    }
  }
  c00 = clamp(c00, lo, hi);
  c01 = clamp(c01, lo, hi);
  c10 = clamp(c10, lo, hi);
  c11 = clamp(c11, lo, hi);
  c20 = clamp(c20, lo, hi);
  c21 = clamp(c21, lo, hi);
  c30 = clamp(c30, lo, hi);
  c31 = clamp(c31, lo, hi);
  if (rows == MR && v0 == 4 && v1 == 4) {
    v128.store(y0, c00);
    v128.store(y1, c01);
    v128.store(y0 + ys, c10);
    v128.store(y1 + ys, c11);
    v128.store(y0 + 2 * ys, c20);
    v128.store(y1 + 2 * ys, c21);
    v128.store(y0 + 3 * ys, c30);
    v128.store(y1 + 3 * ys, c31);
    return;
  }
  const t = edgeTile;
  v128.store(t, c00);
  v128.store(t, c01, 16);
  v128.store(t, c10, 32);
  v128.store(t, c11, 48);
  v128.store(t, c20, 64);
  v128.store(t, c21, 80);
  v128.store(t, c30, 96);
  v128.store(t, c31, 112);
  for (let r = 0; r < rows; r++) {
    const row = t + (<usize> r << 5);
    if (v0 > 0) storeLanes(y0 + <usize> r * ys, v128.load(row), v0);
    if (v1 > 0) storeLanes(y1 + <usize> r * ys, v128.load(row, 16), v1);
  }
}

// Implicit-GEMM convolution over prepacked weights (conv2dPackWeights).
// Workspace: kTotal i32 offsets rounded up to 16 bytes, then either the
// prepared planes of one image (c·sw·hp·wq floats + 16 of slack), or for
// strided/padded 1×1 convs the gathered image (c·outH·outW floats + 16), or
// for the pointwise path cg·4 floats + cg offsets for the last image's ragged quad.
export function conv2dPacked(
  geometry: usize,
  x: usize,
  packed: usize,
  bias: usize,
  y: usize,
  lo: f32,
  hi: f32,
  workspace: usize,
): void {
  const geo = changetype<Geometry>(geometry);
  const n = geo.n, c = geo.c, h = geo.h, w = geo.w, m = geo.m, kh = geo.kh, kw = geo.kw;
  const sh = geo.strideH, sw = geo.strideW, padTop = geo.padTop, padLeft = geo.padLeft;
  const dh = geo.dilationH, dw = geo.dilationW, group = geo.group, outH = geo.outH, outW = geo.outW;
  const hp = geo.hp, wq = geo.wq;
  const cg = c / group;
  const mg = m / group;
  const kTotal = cg * kh * kw;
  const panels = (mg + MR - 1) / MR;
  const panelBytes = <usize> kTotal * MR * 4;
  const offs = workspace;
  const data = workspace + ((<usize> kTotal * 4 + 15) & ~15);
  const loV = f32x4.splat(lo), hiV = f32x4.splat(hi);
  const pointwise = kh == 1 && kw == 1 && sh == 1 && sw == 1 && padTop == 0 && padLeft == 0 &&
    outH == h && outW == w;
  const outPlane = <usize> outH * outW;
  const ys = outPlane << 2;
  const imageIn = <usize> c * h * w << 2;
  // Other 1×1 convs gather the pixels they read into a dense image first, so
  // that they too run as a plain GEMM over the flattened output.
  const gather = kh == 1 && kw == 1 && !pointwise;

  // Quads run along output rows; the 1×1 paths see one row of outH·outW.
  let rowsOut = outH, rowLen = outW, chanStride: usize, rowStride: usize;
  if (pointwise || gather) {
    rowsOut = 1;
    rowLen = outH * outW;
    chanStride = <usize> rowLen;
    rowStride = 0;
    for (let k = 0; k < kTotal; k++) store<i32>(offs + (<usize> k << 2), k * rowLen * 4);
  } else {
    chanStride = <usize> sw * hp * wq;
    rowStride = <usize> sh * wq;
    let k = 0;
    for (let ci = 0; ci < cg; ci++) {
      for (let ky = 0; ky < kh; ky++) {
        for (let kx = 0; kx < kw; kx++) {
          const t = kx * dw;
          const o = <usize> ci * chanStride + <usize> (t % sw) * hp * wq + <usize> ky * dh * wq + t / sw;
          store<i32>(offs + (<usize> k << 2), <i32> (o << 2));
          k++;
        }
      }
    }
  }
  const qpr = (rowLen + 3) >> 2;
  const nQuads = rowsOut * qpr;
  // Pointwise: the last image's ragged quad would read past x, so it is copied.
  const tailOffs = data + ((<usize> cg * 16 + 15) & ~15);
  const raggedTail = pointwise && (rowLen & 3) != 0;
  if (raggedTail) { for (let k = 0; k < cg; k++) store<i32>(tailOffs + (<usize> k << 2), k * 16); }

  for (let img = 0; img < n; img++) {
    let src = data;
    if (pointwise) {
      src = x + <usize> img * imageIn;
    } else if (gather) {
      gatherPixels(x + <usize> img * imageIn, c, h, w, sh, sw, padTop, padLeft, outH, outW, data);
    } else {
      preparePlanes(x + <usize> img * imageIn, c, h, w, padTop, padLeft, sw, hp, wq, 0, data);
    }
    const lastQuad = raggedTail && img == n - 1 ? nQuads - 1 : nQuads;
    for (let g = 0; g < group; g++) {
      const gin = src + ((<usize> g * cg * chanStride) << 2);
      const gw = packed + <usize> g * panels * panelBytes;
      const gy = y + ((<usize> (img * m + g * mg) * outPlane) << 2);
      const gb = bias ? bias + (<usize> g * mg << 2) : 0;
      for (let q = 0; q < lastQuad; q += 2) {
        const oh0 = q / qpr, ow0 = (q - oh0 * qpr) << 2;
        const v0 = min(4, rowLen - ow0);
        let oh1 = oh0, ow1 = ow0, v1 = 0;
        if (q + 1 < lastQuad) {
          oh1 = (q + 1) / qpr;
          ow1 = (q + 1 - oh1 * qpr) << 2;
          v1 = min(4, rowLen - ow1);
        }
        const b0 = gin + ((<usize> oh0 * rowStride + ow0) << 2);
        const b1 = gin + ((<usize> oh1 * rowStride + ow1) << 2);
        const y0 = gy + ((<usize> oh0 * rowLen + ow0) << 2);
        const y1 = gy + ((<usize> oh1 * rowLen + ow1) << 2);
        for (let p = 0; p < panels; p++) {
          const rows = min(MR, mg - p * MR);
          tile(
            kTotal,
            gw + <usize> p * panelBytes,
            offs,
            b0,
            b1,
            y0 + <usize> p * MR * ys,
            y1 + <usize> p * MR * ys,
            ys,
            gb ? gb + (<usize> p * MR << 2) : 0,
            rows,
            v0,
            v1,
            loV,
            hiV,
          );
        }
      }
      if (lastQuad < nQuads) {
        const ow0 = (nQuads - 1) << 2;
        const v0 = rowLen - ow0;
        const tail = data;
        for (let ci = 0; ci < cg; ci++) {
          const s = gin + ((<usize> ci * chanStride + ow0) << 2);
          for (let l = 0; l < 4; l++) {
            store<f32>(tail + (<usize> (ci * 4 + l) << 2), l < v0 ? load<f32>(s + (<usize> l << 2)) : 0);
          }
        }
        const y0 = gy + (<usize> ow0 << 2);
        for (let p = 0; p < panels; p++) {
          tile(
            kTotal,
            gw + <usize> p * panelBytes,
            tailOffs,
            tail,
            tail,
            y0 + <usize> p * MR * ys,
            y0 + <usize> p * MR * ys,
            ys,
            gb ? gb + (<usize> p * MR << 2) : 0,
            min(MR, mg - p * MR),
            v0,
            0,
            loV,
            hiV,
          );
        }
      }
    }
  }
}

// dst[ci, oh, ow] = src[ci, oh·sh - padTop, ow·sw - padLeft], 0 outside the input.
function gatherPixels(
  src: usize,
  c: i32,
  h: i32,
  w: i32,
  sh: i32,
  sw: i32,
  padTop: i32,
  padLeft: i32,
  outH: i32,
  outW: i32,
  dst: usize,
): void {
  for (let ci = 0; ci < c; ci++) {
    const plane = src + ((<usize> ci * h * w) << 2);
    for (let oh = 0; oh < outH; oh++) {
      const ih = oh * sh - padTop;
      for (let ow = 0; ow < outW; ow++) {
        const iw = ow * sw - padLeft;
        const inside = ih >= 0 && ih < h && iw >= 0 && iw < w;
        store<f32>(dst, inside ? load<f32>(plane + ((<usize> ih * w + iw) << 2)) : 0);
        dst += 4;
      }
    }
  }
}

// Depthwise convolution (group == c == m): one prepared channel plane at a
// time, four outputs per v128, taps from the raw ONNX weights [c, 1, kh, kw].
// Workspace: sw·hp·wq floats + 16 of slack.
export function conv2dDepthwise(
  geometry: usize,
  x: usize,
  wt: usize,
  bias: usize,
  y: usize,
  lo: f32,
  hi: f32,
  workspace: usize,
): void {
  const geo = changetype<Geometry>(geometry);
  const n = geo.n, c = geo.c, h = geo.h, w = geo.w, kh = geo.kh, kw = geo.kw, sh = geo.strideH;
  const sw = geo.strideW, padTop = geo.padTop, padLeft = geo.padLeft, dh = geo.dilationH;
  const dw = geo.dilationW, outH = geo.outH, outW = geo.outW, hp = geo.hp, wq = geo.wq;
  // Strided, dilated or narrow 3×3: four channels at a time
  // (assembly/depthwise.ts). Wide ones at unit stride and dilation go plane by
  // plane below, where each plane's data stays in L1.
  if (kh == 3 && kw == 3 && (sh > 1 || sw > 1 || dh > 1 || dw > 1 || outW <= 8)) {
    depthwise3x3Channels(geometry, x, wt, bias, y, lo, hi, workspace);
    return;
  }
  const loV = f32x4.splat(lo), hiV = f32x4.splat(hi);
  const planeIn = <usize> h * w << 2;
  const planeOut = <usize> outH * outW << 2;
  const rowBytes = <usize> sh * wq << 2;
  const phaseBytes = <usize> hp * wq << 2;
  for (let img = 0; img < n; img++) {
    for (let ch = 0; ch < c; ch++) {
      const plane = <usize> (img * c + ch);
      preparePlanes(x + plane * planeIn, 1, h, w, padTop, padLeft, sw, hp, wq, 0, workspace);
      const b = f32x4.splat(bias ? load<f32>(bias + (<usize> ch << 2)) : 0);
      const wp = wt + (<usize> ch * kh * kw << 2);
      const yp = y + plane * planeOut;
      if (kh == 3 && kw == 3 && sw == 1 && dw == 1) {
        depthwise3x3s1(workspace, wp, yp, outH, outW, rowBytes, <usize> dh * wq << 2, b, loV, hiV);
      } else {
        for (let oh = 0; oh < outH; oh++) {
          const row = workspace + <usize> oh * rowBytes;
          const yr = yp + (<usize> oh * outW << 2);
          for (let ow = 0; ow < outW; ow += 4) {
            let acc = b;
            for (let ky = 0; ky < kh; ky++) {
              const r = row + (<usize> ky * dh * wq << 2);
              for (let kx = 0; kx < kw; kx++) {
                const t = kx * dw;
                const tap = v128.load32_splat(wp + (<usize> (ky * kw + kx) << 2));
                const v = v128.load(r + <usize> (t % sw) * phaseBytes + (<usize> (ow + t / sw) << 2));
                acc = f32x4.add(acc, f32x4.mul(tap, v));
              }
            }
            storeLanes(yr + (<usize> ow << 2), clamp(acc, loV, hiV), min(4, outW - ow));
          }
        }
      }
    }
  }
}

// 3×3 taps, unit column stride and dilation: the three taps of a row are at
// byte offsets 0, 4, 8 from the row pointer, so every load has a constant
// offset and the pointers just advance. Eight outputs per step.
function depthwise3x3s1(
  src: usize,
  wp: usize,
  yp: usize,
  outH: i32,
  outW: i32,
  rowBytes: usize,
  dyBytes: usize,
  b: v128,
  lo: v128,
  hi: v128,
): void {
  const w00 = v128.load32_splat(wp), w01 = v128.load32_splat(wp, 4), w02 = v128.load32_splat(wp, 8);
  const w10 = v128.load32_splat(wp, 12), w11 = v128.load32_splat(wp, 16), w12 = v128.load32_splat(wp, 20);
  const w20 = v128.load32_splat(wp, 24), w21 = v128.load32_splat(wp, 28), w22 = v128.load32_splat(wp, 32);
  let oh = 0;
  if (rowBytes == dyBytes) {
    // Stride and dilation 1 down the columns too: two output rows share two of
    // their four input rows, so compute them together.
    for (; oh + 2 <= outH; oh += 2) {
      let r0 = src + <usize> oh * rowBytes;
      let r1 = r0 + dyBytes;
      let r2 = r1 + dyBytes;
      let r3 = r2 + dyBytes;
      let yr = yp + (<usize> oh * outW << 2);
      const yb = <usize> outW << 2;
      for (let ow = 0; ow < outW; ow += 4) {
        let v = v128.load(r0);
        let a = f32x4.add(b, f32x4.mul(w00, v));
        v = v128.load(r0, 4);
        a = f32x4.add(a, f32x4.mul(w01, v));
        v = v128.load(r0, 8);
        a = f32x4.add(a, f32x4.mul(w02, v));
        v = v128.load(r1);
        a = f32x4.add(a, f32x4.mul(w10, v));
        let c = f32x4.add(b, f32x4.mul(w00, v));
        v = v128.load(r1, 4);
        a = f32x4.add(a, f32x4.mul(w11, v));
        c = f32x4.add(c, f32x4.mul(w01, v));
        v = v128.load(r1, 8);
        a = f32x4.add(a, f32x4.mul(w12, v));
        c = f32x4.add(c, f32x4.mul(w02, v));
        v = v128.load(r2);
        a = f32x4.add(a, f32x4.mul(w20, v));
        c = f32x4.add(c, f32x4.mul(w10, v));
        v = v128.load(r2, 4);
        a = f32x4.add(a, f32x4.mul(w21, v));
        c = f32x4.add(c, f32x4.mul(w11, v));
        v = v128.load(r2, 8);
        a = f32x4.add(a, f32x4.mul(w22, v));
        c = f32x4.add(c, f32x4.mul(w12, v));
        v = v128.load(r3);
        c = f32x4.add(c, f32x4.mul(w20, v));
        v = v128.load(r3, 4);
        c = f32x4.add(c, f32x4.mul(w21, v));
        v = v128.load(r3, 8);
        c = f32x4.add(c, f32x4.mul(w22, v));
        const count = min(4, outW - ow);
        storeLanes(yr, clamp(a, lo, hi), count);
        storeLanes(yr + yb, clamp(c, lo, hi), count);
        r0 += 16;
        r1 += 16;
        r2 += 16;
        r3 += 16;
        yr += 16;
      }
    }
  }
  for (; oh < outH; oh++) {
    let r0 = src + <usize> oh * rowBytes;
    let r1 = r0 + dyBytes;
    let r2 = r1 + dyBytes;
    let yr = yp + (<usize> oh * outW << 2);
    let ow = 0;
    for (; ow + 8 <= outW; ow += 8) {
      let a = f32x4.add(b, f32x4.mul(w00, v128.load(r0)));
      let c = f32x4.add(b, f32x4.mul(w00, v128.load(r0, 16)));
      a = f32x4.add(a, f32x4.mul(w01, v128.load(r0, 4)));
      c = f32x4.add(c, f32x4.mul(w01, v128.load(r0, 20)));
      a = f32x4.add(a, f32x4.mul(w02, v128.load(r0, 8)));
      c = f32x4.add(c, f32x4.mul(w02, v128.load(r0, 24)));
      a = f32x4.add(a, f32x4.mul(w10, v128.load(r1)));
      c = f32x4.add(c, f32x4.mul(w10, v128.load(r1, 16)));
      a = f32x4.add(a, f32x4.mul(w11, v128.load(r1, 4)));
      c = f32x4.add(c, f32x4.mul(w11, v128.load(r1, 20)));
      a = f32x4.add(a, f32x4.mul(w12, v128.load(r1, 8)));
      c = f32x4.add(c, f32x4.mul(w12, v128.load(r1, 24)));
      a = f32x4.add(a, f32x4.mul(w20, v128.load(r2)));
      c = f32x4.add(c, f32x4.mul(w20, v128.load(r2, 16)));
      a = f32x4.add(a, f32x4.mul(w21, v128.load(r2, 4)));
      c = f32x4.add(c, f32x4.mul(w21, v128.load(r2, 20)));
      a = f32x4.add(a, f32x4.mul(w22, v128.load(r2, 8)));
      c = f32x4.add(c, f32x4.mul(w22, v128.load(r2, 24)));
      v128.store(yr, clamp(a, lo, hi));
      v128.store(yr, clamp(c, lo, hi), 16);
      r0 += 32;
      r1 += 32;
      r2 += 32;
      yr += 32;
    }
    for (; ow < outW; ow += 4) {
      let a = f32x4.add(b, f32x4.mul(w00, v128.load(r0)));
      a = f32x4.add(a, f32x4.mul(w01, v128.load(r0, 4)));
      a = f32x4.add(a, f32x4.mul(w02, v128.load(r0, 8)));
      a = f32x4.add(a, f32x4.mul(w10, v128.load(r1)));
      a = f32x4.add(a, f32x4.mul(w11, v128.load(r1, 4)));
      a = f32x4.add(a, f32x4.mul(w12, v128.load(r1, 8)));
      a = f32x4.add(a, f32x4.mul(w20, v128.load(r2)));
      a = f32x4.add(a, f32x4.mul(w21, v128.load(r2, 4)));
      a = f32x4.add(a, f32x4.mul(w22, v128.load(r2, 8)));
      storeLanes(yr, clamp(a, lo, hi), min(4, outW - ow));
      r0 += 16;
      r1 += 16;
      r2 += 16;
      yr += 16;
    }
  }
}
