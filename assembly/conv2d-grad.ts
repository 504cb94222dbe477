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
// the implicit im2col of the forward: the input is prepared into padded,
// phase-split planes (assembly/planes.ts) so that X[k, four adjacent outputs]
// is one v128 load at `quad base + offsets[k]`, and dy is copied into panels
// of four output channels with zero lanes past each row, so that one load
// gives four pixels of one channel. The micro-kernel holds 4 channels × 2 taps
// of four-lane partial sums over a chunk of images and adds their horizontal
// sums into dW. Small outputs use an im2col of the chunk instead of planes,
// and 1×1 convs whose outputs are whole quads read dy (and x) in place: see
// conv2dBackwardWeights. Depthwise convs reduce one channel plane at a time.
import { Geometry } from "./geometry";
import { preparePlanes } from "./planes";

const MR = 4;
// Quads per block of a flat weight-gradient reduction.
const BLOCK_QUADS = 64;

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

// dy of one image → per group, ceil(mg/MR) panels of [outH][quads][MR][4]:
// the four pixels of a quad for MR channels side by side, zero past each row
// and for channels past the group's.
function packRowsGradient(dy: usize, group: i32, mg: i32, outH: i32, outW: i32, quads: i32, dst: usize): void {
  const panels = (mg + MR - 1) / MR;
  const plane = outH * outW;
  const zero = f32x4.splat(0);
  for (let g = 0; g < group; g++) {
    for (let p = 0; p < panels; p++) {
      for (let r = 0; r < outH; r++) {
        for (let q = 0; q < quads; q++) {
          const ow = q << 2;
          for (let l = 0; l < MR; l++) {
            const mi = p * MR + l;
            const d = dst + (<usize> l << 4);
            if (mi >= mg) {
              v128.store(d, zero);
              continue;
            }
            const src = dy + ((<usize> (g * mg + mi) * plane + <usize> r * outW + ow) << 2);
            if (ow + 4 <= outW) {
              v128.store(d, v128.load(src));
            } else {
              for (let i = 0; i < 4; i++) {
                store<f32>(d + (<usize> i << 2), ow + i < outW ? load<f32>(src + (<usize> i << 2)) : 0);
              }
            }
          }
          dst += MR << 4;
        }
      }
    }
  }
}

// dy of nb images → per group, ceil(mg/MR) panels of [quads][MR][4] over the
// images' pixels one after the other (quads·4 ≥ nb·outH·outW), zero past them
// and for channels past the group's.
function packFlatGradient(dy: usize, nb: i32, m: i32, group: i32, mg: i32, plane: i32, quads: i32, dst: usize): void {
  const panels = (mg + MR - 1) / MR;
  const zero = f32x4.splat(0);
  const total = nb * plane;
  for (let g = 0; g < group; g++) {
    for (let p = 0; p < panels; p++) {
      for (let q = 0; q < quads; q++) {
        const t = q << 2;
        const img = t / plane, pix = t - img * plane;
        for (let l = 0; l < MR; l++) {
          const ch = g * mg + p * MR + l;
          const d = dst + (<usize> l << 4);
          if (p * MR + l >= mg) {
            v128.store(d, zero);
          } else if (pix + 4 <= plane && t + 4 <= total) {
            v128.store(d, v128.load(dy + ((<usize> (img * m + ch) * plane + pix) << 2)));
          } else {
            for (let i = 0; i < 4; i++) {
              const ti = t + i, ji = ti / plane;
              const v: f32 = ti < total ? load<f32>(dy + ((<usize> (ji * m + ch) * plane + ti - ji * plane) << 2)) : 0;
              store<f32>(d + (<usize> i << 2), v);
            }
          }
        }
        dst += MR << 4;
      }
    }
  }
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
              memory.fill(o, 0, <usize> outW << 2);
            } else {
              memory.fill(o, 0, <usize> ow0 << 2);
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
              memory.fill(d, 0, <usize> (outW - ow1) << 2);
            }
            o += <usize> outW << 2;
          }
        }
        memory.fill(o, 0, <usize> (rowFloats - nb * plane) << 2);
      }
    }
  }
}

// Four channels × two taps, summed over `rows` rows of `quads` quads in each
// of nb images. xa, xb: the two taps' first quads in the first image; d: the
// dy panel of the first image. Adds the sums to out (row stride os bytes),
// rows < `rows4` and the second tap only if `two`.
function weightTile(
  xa: usize,
  xb: usize,
  xImage: usize,
  xRow: usize,
  d: usize,
  dImage: usize,
  nb: i32,
  rows: i32,
  quads: i32,
  out: usize,
  os: usize,
  rows4: i32,
  two: bool,
): void {
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0);
  let a10 = f32x4.splat(0), a11 = f32x4.splat(0);
  let a20 = f32x4.splat(0), a21 = f32x4.splat(0);
  let a30 = f32x4.splat(0), a31 = f32x4.splat(0);
  for (let j = 0; j < nb; j++) {
    let dp = d + <usize> j * dImage;
    for (let r = 0; r < rows; r++) {
      let p0 = xa + <usize> j * xImage + <usize> r * xRow;
      let p1 = xb + <usize> j * xImage + <usize> r * xRow;
      for (let q = 0; q < quads; q++) {
        const x0 = v128.load(p0);
        const x1 = v128.load(p1);
        let v = v128.load(dp);
        a00 = f32x4.add(a00, f32x4.mul(v, x0));
        a01 = f32x4.add(a01, f32x4.mul(v, x1));
        v = v128.load(dp, 16);
        a10 = f32x4.add(a10, f32x4.mul(v, x0));
        a11 = f32x4.add(a11, f32x4.mul(v, x1));
        v = v128.load(dp, 32);
        a20 = f32x4.add(a20, f32x4.mul(v, x0));
        a21 = f32x4.add(a21, f32x4.mul(v, x1));
        v = v128.load(dp, 48);
        a30 = f32x4.add(a30, f32x4.mul(v, x0));
        a31 = f32x4.add(a31, f32x4.mul(v, x1));
        p0 += 16;
        p1 += 16;
        dp += MR << 4;
      }
    }
  }
  addTile(out, os, rows4, two, a00, a01, a10, a11, a20, a21, a30, a31);
}

// The same tile with dy read in place: the four channels' rows at d, d + c1,
// d + c2, d + c3 (rows past the group's point at row 0 and are not stored),
// quads·4 pixels per image, no lanes past them: for outputs of a multiple of
// four pixels, which then need no packing of dy.
function weightTileRows(
  xa: usize,
  xb: usize,
  xImage: usize,
  d: usize,
  c1: usize,
  c2: usize,
  c3: usize,
  dImage: usize,
  nb: i32,
  quads: i32,
  out: usize,
  os: usize,
  rows4: i32,
  two: bool,
): void {
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0);
  let a10 = f32x4.splat(0), a11 = f32x4.splat(0);
  let a20 = f32x4.splat(0), a21 = f32x4.splat(0);
  let a30 = f32x4.splat(0), a31 = f32x4.splat(0);
  for (let j = 0; j < nb; j++) {
    let dp = d + <usize> j * dImage;
    let p0 = xa + <usize> j * xImage;
    let p1 = xb + <usize> j * xImage;
    for (let q = 0; q < quads; q++) {
      const x0 = v128.load(p0);
      const x1 = v128.load(p1);
      let v = v128.load(dp);
      a00 = f32x4.add(a00, f32x4.mul(v, x0));
      a01 = f32x4.add(a01, f32x4.mul(v, x1));
      v = v128.load(dp + c1);
      a10 = f32x4.add(a10, f32x4.mul(v, x0));
      a11 = f32x4.add(a11, f32x4.mul(v, x1));
      v = v128.load(dp + c2);
      a20 = f32x4.add(a20, f32x4.mul(v, x0));
      a21 = f32x4.add(a21, f32x4.mul(v, x1));
      v = v128.load(dp + c3);
      a30 = f32x4.add(a30, f32x4.mul(v, x0));
      a31 = f32x4.add(a31, f32x4.mul(v, x1));
      p0 += 16;
      p1 += 16;
      dp += 16;
    }
  }
  addTile(out, os, rows4, two, a00, a01, a10, a11, a20, a21, a30, a31);
}

// Adds a tile's horizontal sums to dW: rows < rows4 (os bytes apart), the second tap if `two`.
function addTile(
  out: usize,
  os: usize,
  rows4: i32,
  two: bool,
  a00: v128,
  a01: v128,
  a10: v128,
  a11: v128,
  a20: v128,
  a21: v128,
  a30: v128,
  a31: v128,
): void {
  store<f32>(out, load<f32>(out) + hsum(a00));
  if (two) store<f32>(out, load<f32>(out, 4) + hsum(a01), 4);
  if (rows4 > 1) {
    out += os;
    store<f32>(out, load<f32>(out) + hsum(a10));
    if (two) store<f32>(out, load<f32>(out, 4) + hsum(a11), 4);
  }
  if (rows4 > 2) {
    out += os;
    store<f32>(out, load<f32>(out) + hsum(a20));
    if (two) store<f32>(out, load<f32>(out, 4) + hsum(a21), 4);
  }
  if (rows4 > 3) {
    out += os;
    store<f32>(out, load<f32>(out) + hsum(a30));
    if (two) store<f32>(out, load<f32>(out, 4) + hsum(a31), 4);
  }
}

// dW [m, c/group, kh, kw] of a non-depthwise conv, overwritten; `chunk`
// images at a time. Layouts (`flat`):
// - 0: per image the prepared planes (c·sw·hp·wq floats + 16) and dy packed
//   by rows of ceil(outW/4) quads;
// - 1 (1×1 kernels, and small outputs where rows are a few quads): the
//   chunk's im2col, c·kh·kw rows of round4(chunk·outH·outW) floats, and dy
//   packed over the same flattened pixels: one long reduction per tile;
// - 2 (1×1 kernels with outH·outW a multiple of four): x gathered to the
//   output pixels, or x itself at stride 1 without pads, with dy read in place.
// Workspace (bytes): kTotal i32 offsets rounded up to 16, then the input
// layout, then the dy panels (group·ceil(mg/4) panels of 64 bytes per quad),
// sized as src/kernels/conv2d-grad.ts computes them.
export function conv2dBackwardWeights(
  geometry: usize,
  flat: i32,
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
  if (flat == 2) {
    weightsInPlace(n, c, h, w, m, kh, kw, sh, sw, padTop, padLeft, dh, dw, group, outH, outW, chunk, x, dy, dwt, workspace);
    return;
  }
  const cg = c / group;
  const mg = m / group;
  const kTotal = cg * kh * kw;
  const panels = (mg + MR - 1) / MR;
  const plane = outH * outW;
  // Flat: one "image" of one row holding the whole chunk.
  const quads = flat ? (chunk * plane + 3) >> 2 : (outW + 3) >> 2;
  const rows = flat ? 1 : outH;
  const kFloats = flat ? <usize> quads << 2 : <usize> sw * hp * wq;
  const xRow: usize = flat ? 0 : (<usize> sh * wq) << 2;
  const xImage = flat ? 0 : (((<usize> c * kFloats + 16) << 2) + 15) & ~15;
  const dPanel = (<usize> rows * quads) << 6;
  const dImage = <usize> group * panels * dPanel;
  const offs = workspace;
  const xs = offs + ((<usize> kTotal * 4 + 15) & ~15);
  const ds = xs + (flat ? (((<usize> c * kh * kw * kFloats) << 2) + 15) & ~15 : <usize> chunk * xImage);
  let k = 0;
  for (let ci = 0; ci < cg; ci++) {
    for (let ky = 0; ky < kh; ky++) {
      for (let kx = 0; kx < kw; kx++) {
        const t = kx * dw;
        const o = flat
          ? <usize> k * kFloats
          : <usize> ci * kFloats + <usize> (t % sw) * hp * wq + <usize> ky * dh * wq + t / sw;
        store<i32>(offs + (<usize> k << 2), <i32> (o << 2));
        k++;
      }
    }
  }
  memory.fill(dwt, 0, (<usize> m * kTotal) << 2);
  const imageIn = (<usize> c * h * w) << 2;
  const imageOut = (<usize> m * plane) << 2;
  const os = <usize> kTotal << 2;
  // Flat: group g's rows start kTotal rows down; planes: cg channels down.
  const groupBytes = (<usize> (flat ? kTotal : cg) * kFloats) << 2;
  for (let i0 = 0; i0 < n; i0 += chunk) {
    const nb = min(chunk, n - i0);
    let quadsNow = quads, images = nb;
    if (flat) {
      im2colFlat(x + <usize> i0 * imageIn, nb, c, h, w, kh, kw, sh, sw, padTop, padLeft, dh, dw, outH, outW, quads << 2, xs);
      packFlatGradient(dy + <usize> i0 * imageOut, nb, m, group, mg, plane, quads, ds);
      // The last chunk may be shorter: its tail quads are zero and need no work.
      quadsNow = (nb * plane + 3) >> 2;
      images = 1;
    } else {
      for (let j = 0; j < nb; j++) {
        const xi = x + <usize> (i0 + j) * imageIn;
        preparePlanes(xi, c, h, w, padTop, padLeft, sw, hp, wq, 0, xs + <usize> j * xImage);
        packRowsGradient(dy + <usize> (i0 + j) * imageOut, group, mg, outH, outW, quads, ds + <usize> j * dImage);
      }
    }
    // Flat reductions run in blocks of quads, so that the inputs and dy panels
    // a block reads stay in cache while every tile passes over them.
    const block = flat ? BLOCK_QUADS : quadsNow;
    for (let q0 = 0; q0 < quadsNow; q0 += block) {
      const count = min(block, quadsNow - q0);
      for (let g = 0; g < group; g++) {
        const gx = xs + <usize> g * groupBytes + (<usize> q0 << 4);
        for (let p = 0; p < panels; p++) {
          const d = ds + <usize> (g * panels + p) * dPanel + (<usize> q0 << 6);
          const out = dwt + ((<usize> (g * mg + p * MR) * kTotal) << 2);
          const rows4 = min(MR, mg - p * MR);
          for (let kk = 0; kk < kTotal; kk += 2) {
            const two = kk + 1 < kTotal;
            const xa = gx + <usize> load<i32>(offs + (<usize> kk << 2));
            const xb = two ? gx + <usize> load<i32>(offs + (<usize> (kk + 1) << 2)) : xa;
            weightTile(xa, xb, xImage, xRow, d, dImage, images, rows, count, out + (<usize> kk << 2), os, rows4, two);
          }
        }
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
      if (kh == 3 && kw == 3) {
        depthwiseWeights3x3(workspace, dyp, outH, quads, rowBytes, dyBytes, sw, dw, phaseBytes);
        continue;
      }
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

// The nine taps of a 3×3 depthwise weight gradient over one plane, added to tapSums.
function depthwiseWeights3x3(
  src: usize,
  dyp: usize,
  outH: i32,
  quads: i32,
  rowBytes: usize,
  dyBytes: usize,
  sw: i32,
  dw: i32,
  phaseBytes: usize,
): void {
  let s00 = v128.load(tapSums), s01 = v128.load(tapSums, 16), s02 = v128.load(tapSums, 32);
  let s10 = v128.load(tapSums, 48), s11 = v128.load(tapSums, 64), s12 = v128.load(tapSums, 80);
  let s20 = v128.load(tapSums, 96), s21 = v128.load(tapSums, 112), s22 = v128.load(tapSums, 128);
  const o1 = <usize> (dw % sw) * phaseBytes + (<usize> (dw / sw) << 2);
  const o2 = <usize> ((2 * dw) % sw) * phaseBytes + (<usize> ((2 * dw) / sw) << 2);
  let d = dyp;
  for (let oh = 0; oh < outH; oh++) {
    let r0 = src + <usize> oh * rowBytes;
    let r1 = r0 + dyBytes;
    let r2 = r1 + dyBytes;
    for (let q = 0; q < quads; q++) {
      const v = v128.load(d);
      s00 = f32x4.add(s00, f32x4.mul(v, v128.load(r0)));
      s01 = f32x4.add(s01, f32x4.mul(v, v128.load(r0 + o1)));
      s02 = f32x4.add(s02, f32x4.mul(v, v128.load(r0 + o2)));
      s10 = f32x4.add(s10, f32x4.mul(v, v128.load(r1)));
      s11 = f32x4.add(s11, f32x4.mul(v, v128.load(r1 + o1)));
      s12 = f32x4.add(s12, f32x4.mul(v, v128.load(r1 + o2)));
      s20 = f32x4.add(s20, f32x4.mul(v, v128.load(r2)));
      s21 = f32x4.add(s21, f32x4.mul(v, v128.load(r2 + o1)));
      s22 = f32x4.add(s22, f32x4.mul(v, v128.load(r2 + o2)));
      d += 16;
      r0 += 16;
      r1 += 16;
      r2 += 16;
    }
  }
  v128.store(tapSums, s00);
  v128.store(tapSums, s01, 16);
  v128.store(tapSums, s02, 32);
  v128.store(tapSums, s10, 48);
  v128.store(tapSums, s11, 64);
  v128.store(tapSums, s12, 80);
  v128.store(tapSums, s20, 96);
  v128.store(tapSums, s21, 112);
  v128.store(tapSums, s22, 128);
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

// conv2dBackwardWeights' layout 2: outH·outW a multiple of four, so that dy's
// rows are whole quads and are read where they lie, and x needs no packing
// either: the chunk's im2col (row k = (ci, ky, kx) of chunk·outH·outW floats),
// or x itself when the conv is a 1×1 at stride 1 without pads. Any kernel
// works; for 1×1 kernels, where dy is as large as the rest, it is the fastest.
function weightsInPlace(
  n: i32,
  c: i32,
  h: i32,
  w: i32,
  m: i32,
  kh: i32,
  kw: i32,
  sh: i32,
  sw: i32,
  padTop: i32,
  padLeft: i32,
  dh: i32,
  dw: i32,
  group: i32,
  outH: i32,
  outW: i32,
  chunk: i32,
  x: usize,
  dy: usize,
  dwt: usize,
  workspace: usize,
): void {
  const cg = c / group;
  const mg = m / group;
  const kTotal = cg * kh * kw;
  const plane = outH * outW;
  const quads = plane >> 2;
  const planeBytes = <usize> plane << 2;
  const pointwise = kh == 1 && kw == 1 && sh == 1 && sw == 1 && padTop == 0 && padLeft == 0 &&
    outH == h && outW == w;
  const imageIn = (<usize> c * h * w) << 2;
  const imageOut = <usize> m * planeBytes;
  // In x, row k of a group is channel k of one image; in the im2col, row k of chunk·plane floats.
  const rowBytes = pointwise ? planeBytes : <usize> chunk * planeBytes;
  const xImage = pointwise ? imageIn : planeBytes;
  const os = <usize> kTotal << 2;
  memory.fill(dwt, 0, (<usize> m * kTotal) << 2);
  for (let i0 = 0; i0 < n; i0 += chunk) {
    const nb = min(chunk, n - i0);
    let xs = x + <usize> i0 * imageIn;
    if (!pointwise) {
      im2colFlat(xs, nb, c, h, w, kh, kw, sh, sw, padTop, padLeft, dh, dw, outH, outW, chunk * plane, workspace);
      xs = workspace;
    }
    for (let g = 0; g < group; g++) {
      const gx = xs + <usize> g * kTotal * rowBytes;
      for (let m0 = 0; m0 < mg; m0 += MR) {
        const rows4 = min(MR, mg - m0);
        const d = dy + <usize> i0 * imageOut + <usize> (g * mg + m0) * planeBytes;
        const c1 = rows4 > 1 ? planeBytes : 0;
        const c2 = rows4 > 2 ? 2 * planeBytes : 0;
        const c3 = rows4 > 3 ? 3 * planeBytes : 0;
        const out = dwt + ((<usize> (g * mg + m0) * kTotal) << 2);
        for (let kk = 0; kk < kTotal; kk += 2) {
          const two = kk + 1 < kTotal;
          const xa = gx + <usize> kk * rowBytes;
          const xb = two ? xa + rowBytes : xa;
          weightTileRows(xa, xb, xImage, d, c1, c2, c3, imageOut, nb, quads, out + (<usize> kk << 2), os, rows4, two);
        }
      }
    }
  }
}
