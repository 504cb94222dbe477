// deno-fmt-ignore-file: deno fmt drops the @inline decorators AssemblyScript needs.
// Backward of the 2-D convolution (assembly/conv2d.ts), float32 NCHW.
//
// dX is a transposed convolution of dy with the weights. At unit stride it is
// a plain convolution of dy with the weights flipped in space and transposed
// per group (conv2dFlipWeights), which the forward kernels run; the TypeScript
// side (src/kernels/conv2d-grad.ts) picks that or, for strided convs, the
// GEMM + col2im of assembly/conv-transpose2d.ts. Strided depthwise convs have
// their own scatter kernel below.
//
// dW[m, k] = Σ_images Σ_pixels dy[m, p] · X[k, p], with k = (ci, ky, kx) and X
// the implicit im2col of the forward, is a GEMM whose reduction runs over
// pixels, computed as the GEMM micro-kernel computes one (assembly/gemm.ts):
// dy is packed into panels of eight output channels per pixel, and a tile of
// four taps × eight channels multiplies each tap's input (one splatted load,
// from the forward's prepared planes, an im2col of small outputs, or x itself
// for pointwise convs) by a pixel's eight gradients, in eight registers, over
// every pixel of a chunk of images; no horizontal sums. See
// conv2dBackwardWeights. Depthwise convs reduce one channel plane at a time.
import { depthwise3x3ChannelsScatter, depthwise3x3ChannelsWeights } from "./depthwise";
import { Geometry } from "./geometry";
import { preparePlanes, zeroFloats } from "./planes";

// Output channels per panel of packed dy, taps per tile of the weight gradient.
const NR = 8;
const TR = 4;
// Bytes of tap inputs a block of the weight gradient keeps in L1.
const TAP_BLOCK_BYTES = 16384;

// ONNX weights [m, cg, kh, kw] → [c, mg, kh, kw] with the taps reversed: the
// weights of the convolution that maps dy back to dX at unit stride.
export function conv2dFlipWeights(m: i32, group: i32, cg: i32, taps: i32, w: usize, dst: usize): void {
  const mg = m / group;
  for (let g = 0; g < group; g++) {
    for (let ci = 0; ci < cg; ci++) {
      for (let mi = 0; mi < mg; mi++) {
        const src = w + ((<usize> ((g * mg + mi) * cg + ci) * taps) << 2);
        const d = dst + ((<usize> ((g * cg + ci) * mg + mi) * taps) << 2);
        for (let t = 0; t < taps; t++) {
          store<f32>(d + (<usize> t << 2), load<f32>(src + (<usize> (taps - 1 - t) << 2)));
        }
      }
    }
  }
}

@inline
function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) +
    (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// im2col of nb images: row k = (ci, ky, kx) of dst (rowFloats apart) holds
// x[ci, oh·sh - padTop + ky·dh, ow·sw - padLeft + kx·dw] for the images'
// output pixels one after the other, zero outside the input and past them.
function im2colFlat(
  x: usize,
  nb: i32,
  c: i32,
  h: i32,
  w: i32,
  kh: i32,
  kw: i32,
  sh: i32,
  sw: i32,
  padTop: i32,
  padLeft: i32,
  dh: i32,
  dw: i32,
  outH: i32,
  outW: i32,
  rowFloats: i32,
  dst: usize,
): void {
  const plane = outH * outW;
  for (let ci = 0; ci < c; ci++) {
    for (let ky = 0; ky < kh; ky++) {
      for (let kx = 0; kx < kw; kx++) {
        const row = dst + ((<usize> ((ci * kh + ky) * kw + kx) * rowFloats) << 2);
        // Output columns whose input column ow·sw - padLeft + kx·dw lies in [0, w).
        const shift = kx * dw - padLeft;
        const ow0 = min(outW, shift >= 0 ? 0 : (-shift + sw - 1) / sw);
        const ow1 = max(ow0, min(outW, w - 1 - shift >= 0 ? (w - 1 - shift) / sw + 1 : 0));
        let o = row;
        for (let j = 0; j < nb; j++) {
          const src = x + ((<usize> (j * c + ci) * h * w) << 2);
          for (let oh = 0; oh < outH; oh++) {
            const ih = oh * sh - padTop + ky * dh;
            if (ih < 0 || ih >= h) {
              zeroFloats(o, outW);
            } else {
              zeroFloats(o, ow0);
              let s = src + (<usize> (ih * w + ow0 * sw + shift) << 2);
              let d = o + (<usize> ow0 << 2);
              let ow = ow0;
              if (sw == 1) {
                for (; ow + 4 <= ow1; ow += 4) {
                  v128.store(d, v128.load(s));
                  s += 16;
                  d += 16;
                }
              }
              for (; ow < ow1; ow++) {
                store<f32>(d, load<f32>(s));
                s += <usize> sw << 2;
                d += 4;
              }
              zeroFloats(d, outW - ow1);
            }
            o += <usize> outW << 2;
          }
        }
        zeroFloats(o, rowFloats - nb * plane);
      }
    }
  }
}

// dy of nb images (m channels of `plane` pixels each) → per group, ceil(mg/8)
// panels of [nb·plane][8]: for each pixel, in image order, the panel's eight
// channels side by side (zero past the group's), so that one pixel's
// gradients for eight output channels are two v128 loads. Four pixels of
// eight full channels at a time, as two 4×4 transposes.
function packGradientPanels(dy: usize, nb: i32, m: i32, group: i32, mg: i32, plane: i32, dst: usize): void {
  const panels = (mg + NR - 1) / NR;
  const planeBytes = <usize> plane << 2;
  const imageOut = <usize> m * planeBytes;
  for (let g = 0; g < group; g++) {
    for (let pn = 0; pn < panels; pn++) {
      const chans = min(NR, mg - pn * NR);
      let d = dst + ((<usize> (g * panels + pn) * nb * plane) << 5);
      for (let j = 0; j < nb; j++) {
        const src = dy + <usize> j * imageOut + <usize> (g * mg + pn * NR) * planeBytes;
        let p = 0;
        if (chans == NR) {
          for (; p + 4 <= plane; p += 4) {
            const o = src + (<usize> p << 2);
            const v0 = v128.load(o), v1 = v128.load(o + planeBytes);
            const v2 = v128.load(o + 2 * planeBytes), v3 = v128.load(o + 3 * planeBytes);
            const v4 = v128.load(o + 4 * planeBytes), v5 = v128.load(o + 5 * planeBytes);
            const v6 = v128.load(o + 6 * planeBytes), v7 = v128.load(o + 7 * planeBytes);
            const t0 = i32x4.shuffle(v0, v1, 0, 4, 1, 5), t1 = i32x4.shuffle(v2, v3, 0, 4, 1, 5);
            const t2 = i32x4.shuffle(v0, v1, 2, 6, 3, 7), t3 = i32x4.shuffle(v2, v3, 2, 6, 3, 7);
            const u0 = i32x4.shuffle(v4, v5, 0, 4, 1, 5), u1 = i32x4.shuffle(v6, v7, 0, 4, 1, 5);
            const u2 = i32x4.shuffle(v4, v5, 2, 6, 3, 7), u3 = i32x4.shuffle(v6, v7, 2, 6, 3, 7);
            v128.store(d, i32x4.shuffle(t0, t1, 0, 1, 4, 5));
            v128.store(d, i32x4.shuffle(u0, u1, 0, 1, 4, 5), 16);
            v128.store(d, i32x4.shuffle(t0, t1, 2, 3, 6, 7), 32);
            v128.store(d, i32x4.shuffle(u0, u1, 2, 3, 6, 7), 48);
            v128.store(d, i32x4.shuffle(t2, t3, 0, 1, 4, 5), 64);
            v128.store(d, i32x4.shuffle(u2, u3, 0, 1, 4, 5), 80);
            v128.store(d, i32x4.shuffle(t2, t3, 2, 3, 6, 7), 96);
            v128.store(d, i32x4.shuffle(u2, u3, 2, 3, 6, 7), 112);
            d += 128;
          }
        }
        for (; p < plane; p++) {
          const o = src + (<usize> p << 2);
          for (let r = 0; r < NR; r++) {
            store<f32>(d + (<usize> r << 2), r < chans ? load<f32>(o + <usize> r * planeBytes) : 0);
          }
          d += 32;
        }
      }
    }
  }
}

// Four taps × eight output channels of the weight gradient, as the GEMM
// micro-kernel computes a tile: for every pixel, each tap's input value
// (splatted) times the eight channels' gradients of that pixel (packed dy, b),
// summed in eight registers and added to c (four rows of eight floats, cs
// bytes apart) at the end. The taps' inputs for image j, row r, column w are
// at x0..x3 + j·xImage + r·xRow + 4·w; b holds nb·rows·cols pixels in that
// order.
function gradientTile(
  x0: usize,
  x1: usize,
  x2: usize,
  x3: usize,
  xImage: usize,
  xRow: usize,
  nb: i32,
  rows: i32,
  cols: i32,
  b: usize,
  c: usize,
  cs: usize,
): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let j = 0; j < nb; j++) {
    for (let r = 0; r < rows; r++) {
      const o = <usize> j * xImage + <usize> r * xRow;
      let p0 = x0 + o, p1 = x1 + o, p2 = x2 + o, p3 = x3 + o;
      const end = b + (<usize> cols << 5);
      // Two pixels per step: the second one's loads take constant offsets.
      const end2 = b + (<usize> (cols & ~1) << 5);
      while (b < end2) {
        let b0 = v128.load(b), b1 = v128.load(b, 16);
        let a = v128.load32_splat(p0);
        c00 = f32x4.add(c00, f32x4.mul(a, b0));
        c01 = f32x4.add(c01, f32x4.mul(a, b1));
        a = v128.load32_splat(p1);
        c10 = f32x4.add(c10, f32x4.mul(a, b0));
        c11 = f32x4.add(c11, f32x4.mul(a, b1));
        a = v128.load32_splat(p2);
        c20 = f32x4.add(c20, f32x4.mul(a, b0));
        c21 = f32x4.add(c21, f32x4.mul(a, b1));
        a = v128.load32_splat(p3);
        c30 = f32x4.add(c30, f32x4.mul(a, b0));
        c31 = f32x4.add(c31, f32x4.mul(a, b1));
        b0 = v128.load(b, 32);
        b1 = v128.load(b, 48);
        a = v128.load32_splat(p0, 4);
        c00 = f32x4.add(c00, f32x4.mul(a, b0));
        c01 = f32x4.add(c01, f32x4.mul(a, b1));
        a = v128.load32_splat(p1, 4);
        c10 = f32x4.add(c10, f32x4.mul(a, b0));
        c11 = f32x4.add(c11, f32x4.mul(a, b1));
        a = v128.load32_splat(p2, 4);
        c20 = f32x4.add(c20, f32x4.mul(a, b0));
        c21 = f32x4.add(c21, f32x4.mul(a, b1));
        a = v128.load32_splat(p3, 4);
        c30 = f32x4.add(c30, f32x4.mul(a, b0));
        c31 = f32x4.add(c31, f32x4.mul(a, b1));
        p0 += 8;
        p1 += 8;
        p2 += 8;
        p3 += 8;
        b += 64;
      }
      while (b < end) {
        const b0 = v128.load(b), b1 = v128.load(b, 16);
        let a = v128.load32_splat(p0);
        c00 = f32x4.add(c00, f32x4.mul(a, b0));
        c01 = f32x4.add(c01, f32x4.mul(a, b1));
        a = v128.load32_splat(p1);
        c10 = f32x4.add(c10, f32x4.mul(a, b0));
        c11 = f32x4.add(c11, f32x4.mul(a, b1));
        a = v128.load32_splat(p2);
        c20 = f32x4.add(c20, f32x4.mul(a, b0));
        c21 = f32x4.add(c21, f32x4.mul(a, b1));
        a = v128.load32_splat(p3);
        c30 = f32x4.add(c30, f32x4.mul(a, b0));
        c31 = f32x4.add(c31, f32x4.mul(a, b1));
        p0 += 4;
        p1 += 4;
        p2 += 4;
        p3 += 4;
        b += 32;
      }
    }
  }
  v128.store(c, f32x4.add(v128.load(c), c00));
  v128.store(c, f32x4.add(v128.load(c, 16), c01), 16);
  c += cs;
  v128.store(c, f32x4.add(v128.load(c), c10));
  v128.store(c, f32x4.add(v128.load(c, 16), c11), 16);
  c += cs;
  v128.store(c, f32x4.add(v128.load(c), c20));
  v128.store(c, f32x4.add(v128.load(c, 16), c21), 16);
  c += cs;
  v128.store(c, f32x4.add(v128.load(c), c30));
  v128.store(c, f32x4.add(v128.load(c, 16), c31), 16);
}

// dW [m, c/group, kh, kw] of a non-depthwise conv, overwritten, as a GEMM
// over pixels: per group, dWᵀ [taps, channels] = Σ_pixels X[tap, p] · dy[p, channel],
// `chunk` images at a time, in 4 × 8 tiles (gradientTile) that read the
// inputs in place and dy packed by packGradientPanels. The taps' inputs
// (`layout`):
// - 0: per image the prepared planes (c·sw·hp·wq floats + 16, rounded up to
//   16 bytes), read row by row, tap k at offsets[k] as in the forward;
// - 1 (small outputs and 1×1 kernels other than pointwise): the chunk's
//   im2col, c·kh·kw rows of chunk·outH·outW floats, one long run per tap;
// - 2 (1×1 at stride 1 without pads): x itself, channel k of each image.
// Workspace (bytes): kTotal i32 offsets rounded up to 16; the sums, group ×
// round4(kTotal) × round8(mg) floats; the inputs of layouts 0 and 1; the dy
// panels, group·ceil(mg/8) × chunk·outH·outW × 32 bytes; as
// src/kernels/conv2d-grad.ts computes them. Each chunk's sums are added to
// the running ones, in chunk order.
export function conv2dBackwardWeights(
  geometry: usize,
  layout: i32,
  chunk: i32,
  x: usize,
  dy: usize,
  dwt: usize,
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
  const kRows = (kTotal + TR - 1) & ~(TR - 1);
  const mCols = (mg + NR - 1) & ~(NR - 1);
  const panels = mCols / NR;
  const plane = outH * outW;
  const planeBytes = <usize> plane << 2;
  const imageIn = (<usize> c * h * w) << 2;
  const imageOut = <usize> m * planeBytes;
  // Where tap k of a group's first channel lies, and how its inputs step.
  let kFloats: usize, xImage: usize = 0, xRow: usize = 0, rows = 1, cols = plane;
  if (layout == 0) {
    kFloats = <usize> sw * hp * wq;
    xImage = (((<usize> c * kFloats + 16) << 2) + 15) & ~15;
    xRow = (<usize> sh * wq) << 2;
    rows = outH;
    cols = outW;
  } else if (layout == 1) {
    kFloats = <usize> chunk * plane;
  } else {
    kFloats = <usize> plane;
    xImage = imageIn;
  }
  const offs = workspace;
  const sums = offs + ((<usize> kTotal * 4 + 15) & ~15);
  const sumsBytes = (<usize> group * kRows * mCols) << 2;
  const xs = sums + sumsBytes;
  const xsBytes = layout == 0 ? <usize> chunk * xImage : layout == 1 ? (((<usize> c * kh * kw * kFloats) << 2) + 15) & ~15 : 0;
  const ds = xs + xsBytes;
  let k = 0;
  for (let ci = 0; ci < cg; ci++) {
    for (let ky = 0; ky < kh; ky++) {
      for (let kx = 0; kx < kw; kx++) {
        const t = kx * dw;
        const o = layout == 0
          ? <usize> ci * kFloats + <usize> (t % sw) * hp * wq + <usize> ky * dh * wq + t / sw
          : <usize> k * kFloats;
        store<i32>(offs + (<usize> k << 2), <i32> (o << 2));
        k++;
      }
    }
  }
  memory.fill(sums, 0, sumsBytes);
  // A group's first input channel (layouts 0, 2) or tap row (layout 1).
  const groupBytes = (<usize> (layout == 1 ? kTotal : cg) * kFloats) << 2;
  const cs = <usize> mCols << 2;
  for (let i0 = 0; i0 < n; i0 += chunk) {
    const nb = min(chunk, n - i0);
    let src = xs, images = nb;
    if (layout == 0) {
      for (let j = 0; j < nb; j++) {
        preparePlanes(x + <usize> (i0 + j) * imageIn, c, h, w, padTop, padLeft, sw, hp, wq, 0, xs + <usize> j * xImage);
      }
    } else if (layout == 1) {
      im2colFlat(x + <usize> i0 * imageIn, nb, c, h, w, kh, kw, sh, sw, padTop, padLeft, dh, dw, outH, outW, <i32> kFloats, xs);
      // One run over the chunk's pixels.
      images = 1;
      cols = nb * plane;
    } else {
      src = x + <usize> i0 * imageIn;
    }
    packGradientPanels(dy + <usize> i0 * imageOut, nb, m, group, mg, plane, ds);
    const panelBytes = <usize> nb * plane << 5;
    // Taps per block: their inputs for the chunk (about 4 bytes per pixel each)
    // stay in L1 while every panel of dy passes over them.
    const tapBlock = max(TR, (TAP_BLOCK_BYTES / (nb * plane * 4)) & ~(TR - 1));
    for (let g = 0; g < group; g++) {
      const gx = src + <usize> g * groupBytes;
      const gd = ds + <usize> g * panels * panelBytes;
      const gs = sums + <usize> g * kRows * cs;
      for (let b0 = 0; b0 < kTotal; b0 += tapBlock) {
        const b1 = min(kTotal, b0 + tapBlock);
        for (let pn = 0; pn < panels; pn++) {
          const panel = gd + <usize> pn * panelBytes;
          for (let t0 = b0; t0 < b1; t0 += TR) {
            // Taps past the last repeat it; their rows of the sums are never read.
            const x0 = gx + <usize> load<i32>(offs + (<usize> t0 << 2));
            const x1 = gx + <usize> load<i32>(offs + (<usize> min(t0 + 1, kTotal - 1) << 2));
            const x2 = gx + <usize> load<i32>(offs + (<usize> min(t0 + 2, kTotal - 1) << 2));
            const x3 = gx + <usize> load<i32>(offs + (<usize> min(t0 + 3, kTotal - 1) << 2));
            gradientTile(x0, x1, x2, x3, xImage, xRow, images, rows, cols, panel, gs + <usize> t0 * cs + (<usize> pn << 5), cs);
          }
        }
      }
    }
  }
  // dW [g·mg + i, k] = sums [g, k, i].
  for (let g = 0; g < group; g++) {
    const gs = sums + <usize> g * kRows * cs;
    for (let i = 0; i < mg; i++) {
      const d = dwt + ((<usize> (g * mg + i) * kTotal) << 2);
      for (let t = 0; t < kTotal; t++) {
        store<f32>(d + (<usize> t << 2), load<f32>(gs + <usize> t * cs + (<usize> i << 2)));
      }
    }
  }
}

// dy plane → rows of quads·4 floats, zero past outW.
function padRows(dy: usize, outH: i32, outW: i32, quads: i32, dst: usize): void {
  const zero = f32x4.splat(0);
  for (let oh = 0; oh < outH; oh++) {
    const s = dy + ((<usize> oh * outW) << 2);
    const d = dst + ((<usize> oh * quads) << 4);
    v128.store(d + ((<usize> (quads - 1)) << 4), zero);
    memory.copy(d, s, <usize> outW << 2);
  }
}

// Partial sums of the depthwise weight gradient, one v128 per tap.
const tapSums: usize = heap.alloc(64 * 16);

// dW [c, 1, kh, kw] of a depthwise conv (group == c == m), overwritten.
// Workspace: one prepared plane (sw·hp·wq + 16 floats, rounded up to 16
// bytes), then outH·ceil(outW/4)·4 floats of padded dy.
export function conv2dDepthwiseBackwardWeights(
  geometry: usize,
  x: usize,
  dy: usize,
  dwt: usize,
  workspace: usize,
): void {
  const geo = changetype<Geometry>(geometry);
  const n = geo.n, c = geo.c, h = geo.h, w = geo.w, kh = geo.kh, kw = geo.kw, sh = geo.strideH;
  const sw = geo.strideW, padTop = geo.padTop, padLeft = geo.padLeft, dh = geo.dilationH;
  const dw = geo.dilationW, outH = geo.outH, outW = geo.outW, hp = geo.hp, wq = geo.wq;
  if (kh == 3 && kw == 3) {
    depthwise3x3ChannelsWeights(geometry, x, dy, dwt, workspace);
    return;
  }
  const taps = kh * kw;
  const quads = (outW + 3) >> 2;
  const phaseBytes = (<usize> hp * wq) << 2;
  const rowBytes = (<usize> sh * wq) << 2;
  const dyBytes = (<usize> dh * wq) << 2;
  const planeIn = (<usize> h * w) << 2;
  const planeOut = (<usize> outH * outW) << 2;
  const dyp = workspace + ((((<usize> sw * hp * wq + 16) << 2) + 15) & ~15);
  const big = taps > 64;
  for (let ch = 0; ch < c; ch++) {
    if (big) {
      memory.fill(dwt + ((<usize> ch * taps) << 2), 0, <usize> taps << 2);
    } else {
      for (let t = 0; t < taps; t++) v128.store(tapSums + (<usize> t << 4), f32x4.splat(0));
    }
    for (let img = 0; img < n; img++) {
      const plane = <usize> (img * c + ch);
      preparePlanes(x + plane * planeIn, 1, h, w, padTop, padLeft, sw, hp, wq, 0, workspace);
      padRows(dy + plane * planeOut, outH, outW, quads, dyp);
      for (let ky = 0; ky < kh; ky++) {
        for (let kx = 0; kx < kw; kx++) {
          const t = kx * dw;
          const base = workspace + <usize> (t % sw) * phaseBytes + <usize> ky * dyBytes + (<usize> (t / sw) << 2);
          let acc = f32x4.splat(0);
          let d = dyp;
          for (let oh = 0; oh < outH; oh++) {
            let p = base + <usize> oh * rowBytes;
            for (let q = 0; q < quads; q++) {
              acc = f32x4.add(acc, f32x4.mul(v128.load(d), v128.load(p)));
              d += 16;
              p += 16;
            }
          }
          const tap = ky * kw + kx;
          if (big) {
            const o = dwt + ((<usize> (ch * taps + tap)) << 2);
            store<f32>(o, load<f32>(o) + hsum(acc));
          } else {
            const o = tapSums + (<usize> tap << 4);
            v128.store(o, f32x4.add(v128.load(o), acc));
          }
        }
      }
    }
    if (!big) {
      for (let t = 0; t < taps; t++) {
        store<f32>(dwt + ((<usize> (ch * taps + t)) << 2), hsum(v128.load(tapSums + (<usize> t << 4))));
      }
    }
  }
}

// dX [n, c, h, w] of a depthwise conv at any stride, overwritten: each tap
// scatters w·dy into a zeroed buffer laid out as the forward's prepared
// planes (where the window reads are contiguous, so are these writes), which
// is then read back into dX. Cells the forward never reads get 0.
// Workspace: one plane buffer (sw·hp·wq + 16 floats, rounded up to 16 bytes),
// then outH·ceil(outW/4)·4 floats of padded dy.
export function conv2dDepthwiseBackwardInput(
  geometry: usize,
  dy: usize,
  wt: usize,
  dx: usize,
  workspace: usize,
): void {
  const geo = changetype<Geometry>(geometry);
  const n = geo.n, c = geo.c, h = geo.h, w = geo.w, kh = geo.kh, kw = geo.kw, sh = geo.strideH;
  const sw = geo.strideW, padTop = geo.padTop, padLeft = geo.padLeft, dh = geo.dilationH;
  const dw = geo.dilationW, outH = geo.outH, outW = geo.outW, hp = geo.hp, wq = geo.wq;
  if (kh == 3 && kw == 3) {
    depthwise3x3ChannelsScatter(geometry, dy, wt, dx, workspace);
    return;
  }
  const quads = (outW + 3) >> 2;
  const phaseBytes = (<usize> hp * wq) << 2;
  const bufBytes = (<usize> sw * hp * wq) << 2;
  const rowBytes = (<usize> sh * wq) << 2;
  const dyBytes = (<usize> dh * wq) << 2;
  const planeIn = (<usize> h * w) << 2;
  const planeOut = (<usize> outH * outW) << 2;
  const dyp = workspace + ((((<usize> sw * hp * wq + 16) << 2) + 15) & ~15);
  for (let img = 0; img < n; img++) {
    for (let ch = 0; ch < c; ch++) {
      const plane = <usize> (img * c + ch);
      memory.fill(workspace, 0, bufBytes);
      padRows(dy + plane * planeOut, outH, outW, quads, dyp);
      const wp = wt + ((<usize> ch * kh * kw) << 2);
      for (let ky = 0; ky < kh; ky++) {
        for (let kx = 0; kx < kw; kx++) {
          const tap = v128.load32_splat(wp + (<usize> (ky * kw + kx) << 2));
          const t = kx * dw;
          const base = workspace + <usize> (t % sw) * phaseBytes + <usize> ky * dyBytes + (<usize> (t / sw) << 2);
          let d = dyp;
          for (let oh = 0; oh < outH; oh++) {
            let p = base + <usize> oh * rowBytes;
            for (let q = 0; q < quads; q++) {
              v128.store(p, f32x4.add(v128.load(p), f32x4.mul(tap, v128.load(d))));
              d += 16;
              p += 16;
            }
          }
        }
      }
      unpreparePlane(workspace, h, w, padTop, padLeft, sw, hp, wq, dx + plane * planeIn);
    }
  }
}

// The inverse of preparePlanes for one channel: dst[ih, iw] = the buffer's
// padded cell (ih + padTop, iw + padLeft), 0 where the buffer has none.
function unpreparePlane(
  src: usize,
  h: i32,
  w: i32,
  padTop: i32,
  padLeft: i32,
  sw: i32,
  hp: i32,
  wq: i32,
  dst: usize,
): void {
  const phaseBytes = (<usize> hp * wq) << 2;
  // Input columns below `cols` have their padded column's index inside the row.
  const cols = max(0, min(w, sw * wq - padLeft));
  for (let ih = 0; ih < h; ih++) {
    const d = dst + ((<usize> ih * w) << 2);
    const r = ih + padTop;
    if (r < 0 || r >= hp) {
      memory.fill(d, 0, <usize> w << 2);
      continue;
    }
    const row = src + ((<usize> r * wq) << 2);
    let iw = 0;
    if (sw == 1) {
      iw = max(0, min(cols, -padLeft));
      memory.fill(d, 0, <usize> iw << 2);
      memory.copy(d + (<usize> iw << 2), row + (<usize> (iw + padLeft) << 2), <usize> (cols - iw) << 2);
      iw = cols;
    } else if (sw == 2 && padLeft >= 0) {
      // Input columns iw, iw+1 sit in the two phases at the same index when
      // padLeft is even; with padLeft odd the odd column's index is one more.
      const pe = <usize> (padLeft & 1) * phaseBytes, po = <usize> ((padLeft + 1) & 1) * phaseBytes;
      const je = <usize> (padLeft >> 1), jo = <usize> ((padLeft + 1) >> 1);
      for (; iw + 8 <= cols; iw += 8) {
        const k = <usize> (iw >> 1);
        const e = v128.load(row + pe + ((je + k) << 2));
        const o = v128.load(row + po + ((jo + k) << 2));
        v128.store(d + (<usize> iw << 2), v128.shuffle<f32>(e, o, 0, 4, 1, 5));
        v128.store(d + (<usize> iw << 2), v128.shuffle<f32>(e, o, 2, 6, 3, 7), 16);
      }
    }
    for (; iw < cols; iw++) {
      const q = iw + padLeft;
      const v: f32 = q >= 0 ? load<f32>(row + <usize> (q % sw) * phaseBytes + (<usize> (q / sw) << 2)) : 0;
      store<f32>(d + (<usize> iw << 2), v);
    }
    for (; iw < w; iw++) store<f32>(d + (<usize> iw << 2), 0);
  }
}
