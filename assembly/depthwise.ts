// deno-fmt-ignore-file: deno fmt drops the @inline decorators AssemblyScript needs.
// Depthwise 3×3 convolution (group == c == m) four channels at a time: each
// v128 lane is a channel. The four channels' planes of one image are
// interleaved into a padded buffer of cells (one cell = the four channels'
// values at one padded position, 16 bytes), so that every tap of every output
// is one aligned load times a vector of four channels' weights, at any plane
// size, stride or dilation, with no per-plane preparation or horizontal sums.
// Outputs are transposed back into the planes four pixels at a time.
//
// Padded cell (r, q) holds input (r - padTop, q - padLeft), zero outside the
// input; the buffer holds rows r < HP = (outH - 1)·sh + 2·dh + 1 and columns
// q < WP = (outW - 1)·sw + 2·dw + 1, the cells some output reads.
//
// The forward and the input gradient's scatter add their terms in the same
// order as the per-plane kernels (assembly/conv2d.ts, conv2d-grad.ts), so
// their results are the same bits; the weight gradient sums per lane over
// images and pixels in order.
import { Geometry } from "./geometry";
import { clamp } from "./planes";

// The first `count` floats of four rows (a0..a3) as `count` cells at dst.
// Rows of four or more floats are read in quads, the last one overlapping
// the one before (it rewrites the same cells); shorter rows float by float.
function interleaveRow(a0: usize, a1: usize, a2: usize, a3: usize, count: i32, dst: usize): void {
  if (count < 4) {
    for (let i = 0; i < count; i++) {
      const o = <usize> i << 2, d = dst + (<usize> i << 4);
      store<f32>(d, load<f32>(a0 + o));
      store<f32>(d, load<f32>(a1 + o), 4);
      store<f32>(d, load<f32>(a2 + o), 8);
      store<f32>(d, load<f32>(a3 + o), 12);
    }
    return;
  }
  for (let i = 0; i < count; i += 4) {
    const at = min(i, count - 4);
    const o = <usize> at << 2;
    const v0 = v128.load(a0 + o), v1 = v128.load(a1 + o), v2 = v128.load(a2 + o), v3 = v128.load(a3 + o);
    const t0 = i32x4.shuffle(v0, v1, 0, 4, 1, 5), t1 = i32x4.shuffle(v2, v3, 0, 4, 1, 5);
    const t2 = i32x4.shuffle(v0, v1, 2, 6, 3, 7), t3 = i32x4.shuffle(v2, v3, 2, 6, 3, 7);
    const d = dst + (<usize> at << 4);
    v128.store(d, i32x4.shuffle(t0, t1, 0, 1, 4, 5));
    v128.store(d, i32x4.shuffle(t0, t1, 2, 3, 6, 7), 16);
    v128.store(d, i32x4.shuffle(t2, t3, 0, 1, 4, 5), 32);
    v128.store(d, i32x4.shuffle(t2, t3, 2, 3, 6, 7), 48);
  }
}

// Four cells (c0..c3, consecutive pixels) back to four channels' quads: lane
// i of the cells to d_i (channels i < nc only).
@inline
function storeCells(c0: v128, c1: v128, c2: v128, c3: v128, nc: i32, d0: usize, d1: usize, d2: usize, d3: usize): void {
  const t0 = i32x4.shuffle(c0, c1, 0, 4, 1, 5), t1 = i32x4.shuffle(c2, c3, 0, 4, 1, 5);
  const t2 = i32x4.shuffle(c0, c1, 2, 6, 3, 7), t3 = i32x4.shuffle(c2, c3, 2, 6, 3, 7);
  v128.store(d0, i32x4.shuffle(t0, t1, 0, 1, 4, 5));
  if (nc > 1) v128.store(d1, i32x4.shuffle(t0, t1, 2, 3, 6, 7));
  if (nc > 2) v128.store(d2, i32x4.shuffle(t2, t3, 0, 1, 4, 5));
  if (nc > 3) v128.store(d3, i32x4.shuffle(t2, t3, 2, 3, 6, 7));
}

// One cell's lanes to four channels' floats (channels i < nc).
@inline
function storeCell(c: v128, nc: i32, d0: usize, d1: usize, d2: usize, d3: usize): void {
  store<f32>(d0, f32x4.extract_lane(c, 0));
  if (nc > 1) store<f32>(d1, f32x4.extract_lane(c, 1));
  if (nc > 2) store<f32>(d2, f32x4.extract_lane(c, 2));
  if (nc > 3) store<f32>(d3, f32x4.extract_lane(c, 3));
}

@inline
function zeroCells(dst: usize, count: i32): void {
  const z = f32x4.splat(0);
  for (let i = 0; i < count; i++) v128.store(dst + (<usize> i << 4), z);
}

// Four channels' input planes (p0..p3, h × w) into the padded buffer of HP × WP cells.
function interleavePadded(
  p0: usize, p1: usize, p2: usize, p3: usize, h: i32, w: i32, top: i32, left: i32, HP: i32, WP: i32, dst: usize,
): void {
  const lead = min(left, WP);
  // Input columns that have a cell.
  const cols = max(0, min(w, WP - left));
  for (let r = 0; r < HP; r++) {
    const d = dst + (<usize> r * WP << 4);
    const ih = r - top;
    if (ih < 0 || ih >= h || cols == 0) {
      zeroCells(d, WP);
      continue;
    }
    zeroCells(d, lead);
    const o = <usize> ih * w << 2;
    interleaveRow(p0 + o, p1 + o, p2 + o, p3 + o, cols, d + (<usize> left << 4));
    zeroCells(d + (<usize> (left + cols) << 4), WP - left - cols);
  }
}

// The weights of tap t of four channels (rows of 9 floats at w0..w3) as one vector.
@inline
function tapWeights(w0: usize, w1: usize, w2: usize, w3: usize, t: i32): v128 {
  const o = <usize> t << 2;
  let v = f32x4.splat(load<f32>(w0 + o));
  v = f32x4.replace_lane(v, 1, load<f32>(w1 + o));
  v = f32x4.replace_lane(v, 2, load<f32>(w2 + o));
  return f32x4.replace_lane(v, 3, load<f32>(w3 + o));
}

// One output cell: b + Σ_taps w·x in tap order (ky, kx), from the cell at p.
@inline
function taps9(
  p: usize, row: usize, col: usize, b: v128,
  w00: v128, w01: v128, w02: v128, w10: v128, w11: v128, w12: v128, w20: v128, w21: v128, w22: v128,
): v128 {
  const p1 = p + row, p2 = p1 + row;
  let a = f32x4.add(b, f32x4.mul(w00, v128.load(p)));
  a = f32x4.add(a, f32x4.mul(w01, v128.load(p + col)));
  a = f32x4.add(a, f32x4.mul(w02, v128.load(p + 2 * col)));
  a = f32x4.add(a, f32x4.mul(w10, v128.load(p1)));
  a = f32x4.add(a, f32x4.mul(w11, v128.load(p1 + col)));
  a = f32x4.add(a, f32x4.mul(w12, v128.load(p1 + 2 * col)));
  a = f32x4.add(a, f32x4.mul(w20, v128.load(p2)));
  a = f32x4.add(a, f32x4.mul(w21, v128.load(p2 + col)));
  return f32x4.add(a, f32x4.mul(w22, v128.load(p2 + 2 * col)));
}

// taps9 at unit column dilation: a row's three taps are adjacent cells, loaded at constant offsets.
@inline
function taps9Adjacent(
  p: usize, row: usize, b: v128,
  w00: v128, w01: v128, w02: v128, w10: v128, w11: v128, w12: v128, w20: v128, w21: v128, w22: v128,
): v128 {
  const p1 = p + row, p2 = p1 + row;
  let a = f32x4.add(b, f32x4.mul(w00, v128.load(p)));
  a = f32x4.add(a, f32x4.mul(w01, v128.load(p, 16)));
  a = f32x4.add(a, f32x4.mul(w02, v128.load(p, 32)));
  a = f32x4.add(a, f32x4.mul(w10, v128.load(p1)));
  a = f32x4.add(a, f32x4.mul(w11, v128.load(p1, 16)));
  a = f32x4.add(a, f32x4.mul(w12, v128.load(p1, 32)));
  a = f32x4.add(a, f32x4.mul(w20, v128.load(p2)));
  a = f32x4.add(a, f32x4.mul(w21, v128.load(p2, 16)));
  return f32x4.add(a, f32x4.mul(w22, v128.load(p2, 32)));
}

// Four output cells on their way back to the planes.
const outCells = memory.data(64, 16);

// y = clamp(conv(x) + bias) for a depthwise 3×3 conv. Workspace: HP·WP cells.
export function depthwise3x3Channels(
  geometry: usize, x: usize, wt: usize, bias: usize, y: usize, lo: f32, hi: f32, work: usize,
): void {
  const geo = changetype<Geometry>(geometry);
  const n = geo.n, c = geo.c, h = geo.h, w = geo.w, sh = geo.strideH, sw = geo.strideW;
  const top = geo.padTop, left = geo.padLeft, dh = geo.dilationH, dw = geo.dilationW;
  const outH = geo.outH, outW = geo.outW;
  const HP = (outH - 1) * sh + 2 * dh + 1, WP = (outW - 1) * sw + 2 * dw + 1;
  const loV = f32x4.splat(lo), hiV = f32x4.splat(hi);
  const planeIn = <usize> h * w << 2, planeOut = <usize> outH * outW << 2;
  const row = <usize> dh * WP << 4, col = <usize> dw << 4;
  const stepW = <usize> sw << 4, stepH = <usize> sh * WP << 4;
  for (let img = 0; img < n; img++) {
    for (let c0 = 0; c0 < c; c0 += 4) {
      const nc = min(4, c - c0);
      const ch1 = c0 + min(1, nc - 1), ch2 = c0 + min(2, nc - 1), ch3 = c0 + min(3, nc - 1);
      const xi = x + <usize> img * c * planeIn;
      interleavePadded(
        xi + <usize> c0 * planeIn, xi + <usize> ch1 * planeIn, xi + <usize> ch2 * planeIn, xi + <usize> ch3 * planeIn,
        h, w, top, left, HP, WP, work,
      );
      const a0 = wt + (<usize> c0 * 36), a1 = wt + (<usize> ch1 * 36);
      const a2 = wt + (<usize> ch2 * 36), a3 = wt + (<usize> ch3 * 36);
      const w00 = tapWeights(a0, a1, a2, a3, 0), w01 = tapWeights(a0, a1, a2, a3, 1);
      const w02 = tapWeights(a0, a1, a2, a3, 2), w10 = tapWeights(a0, a1, a2, a3, 3);
      const w11 = tapWeights(a0, a1, a2, a3, 4), w12 = tapWeights(a0, a1, a2, a3, 5);
      const w20 = tapWeights(a0, a1, a2, a3, 6), w21 = tapWeights(a0, a1, a2, a3, 7);
      const w22 = tapWeights(a0, a1, a2, a3, 8);
      let b = f32x4.splat(0);
      if (bias) {
        b = f32x4.splat(load<f32>(bias + (<usize> c0 << 2)));
        b = f32x4.replace_lane(b, 1, load<f32>(bias + (<usize> ch1 << 2)));
        b = f32x4.replace_lane(b, 2, load<f32>(bias + (<usize> ch2 << 2)));
        b = f32x4.replace_lane(b, 3, load<f32>(bias + (<usize> ch3 << 2)));
      }
      const yi = y + <usize> img * c * planeOut;
      const y0 = yi + <usize> c0 * planeOut, y1 = yi + <usize> ch1 * planeOut;
      const y2 = yi + <usize> ch2 * planeOut, y3 = yi + <usize> ch3 * planeOut;
      for (let oh = 0; oh < outH; oh++) {
        const rb = work + <usize> oh * stepH;
        const ro = <usize> oh * outW << 2;
        if (outW < 4) {
          for (let ow = 0; ow < outW; ow++) {
            const v = clamp(taps9(rb + <usize> ow * stepW, row, col, b, w00, w01, w02, w10, w11, w12, w20, w21, w22), loV, hiV);
            const o = ro + (<usize> ow << 2);
            storeCell(v, nc, y0 + o, y1 + o, y2 + o, y3 + o);
          }
          continue;
        }
        for (let i = 0; i < outW; i += 4) {
          // The last four outputs of a ragged row overlap the ones before.
          const ow = min(i, outW - 4);
          const p = rb + <usize> ow * stepW;
          if (dw == 1) {
            v128.store(outCells, clamp(taps9Adjacent(p, row, b, w00, w01, w02, w10, w11, w12, w20, w21, w22), loV, hiV));
            v128.store(outCells, clamp(taps9Adjacent(p + stepW, row, b, w00, w01, w02, w10, w11, w12, w20, w21, w22), loV, hiV), 16);
            v128.store(outCells, clamp(taps9Adjacent(p + 2 * stepW, row, b, w00, w01, w02, w10, w11, w12, w20, w21, w22), loV, hiV), 32);
            v128.store(outCells, clamp(taps9Adjacent(p + 3 * stepW, row, b, w00, w01, w02, w10, w11, w12, w20, w21, w22), loV, hiV), 48);
            const o = ro + (<usize> ow << 2);
            storeCells(
              v128.load(outCells), v128.load(outCells, 16), v128.load(outCells, 32), v128.load(outCells, 48),
              nc, y0 + o, y1 + o, y2 + o, y3 + o,
            );
            continue;
          }
          // Each output cell goes through scratch: four live at once would not fit the registers.
          v128.store(outCells, clamp(taps9(p, row, col, b, w00, w01, w02, w10, w11, w12, w20, w21, w22), loV, hiV));
          v128.store(outCells, clamp(taps9(p + stepW, row, col, b, w00, w01, w02, w10, w11, w12, w20, w21, w22), loV, hiV), 16);
          v128.store(outCells, clamp(taps9(p + 2 * stepW, row, col, b, w00, w01, w02, w10, w11, w12, w20, w21, w22), loV, hiV), 32);
          v128.store(outCells, clamp(taps9(p + 3 * stepW, row, col, b, w00, w01, w02, w10, w11, w12, w20, w21, w22), loV, hiV), 48);
          const o = ro + (<usize> ow << 2);
          storeCells(
            v128.load(outCells), v128.load(outCells, 16), v128.load(outCells, 32), v128.load(outCells, 48),
            nc, y0 + o, y1 + o, y2 + o, y3 + o,
          );
        }
      }
    }
  }
}

// dW [c, 1, 3, 3] of a depthwise 3×3 conv, overwritten. Workspace: HP·WP
// cells of x, then outH·outW cells of dy.
export function depthwise3x3ChannelsWeights(geometry: usize, x: usize, dy: usize, dwt: usize, work: usize): void {
  const geo = changetype<Geometry>(geometry);
  const n = geo.n, c = geo.c, h = geo.h, w = geo.w, sh = geo.strideH, sw = geo.strideW;
  const top = geo.padTop, left = geo.padLeft, dh = geo.dilationH, dw = geo.dilationW;
  const outH = geo.outH, outW = geo.outW;
  const HP = (outH - 1) * sh + 2 * dh + 1, WP = (outW - 1) * sw + 2 * dw + 1;
  const planeIn = <usize> h * w << 2, planeOut = <usize> outH * outW << 2;
  const row = <usize> dh * WP << 4, col = <usize> dw << 4;
  const stepW = <usize> sw << 4, stepH = <usize> sh * WP << 4;
  const cells = work + (<usize> HP * WP << 4);
  for (let c0 = 0; c0 < c; c0 += 4) {
    const nc = min(4, c - c0);
    const ch1 = c0 + min(1, nc - 1), ch2 = c0 + min(2, nc - 1), ch3 = c0 + min(3, nc - 1);
    let s00 = f32x4.splat(0), s01 = f32x4.splat(0), s02 = f32x4.splat(0);
    let s10 = f32x4.splat(0), s11 = f32x4.splat(0), s12 = f32x4.splat(0);
    let s20 = f32x4.splat(0), s21 = f32x4.splat(0), s22 = f32x4.splat(0);
    for (let img = 0; img < n; img++) {
      const xi = x + <usize> img * c * planeIn;
      interleavePadded(
        xi + <usize> c0 * planeIn, xi + <usize> ch1 * planeIn, xi + <usize> ch2 * planeIn, xi + <usize> ch3 * planeIn,
        h, w, top, left, HP, WP, work,
      );
      const di = dy + <usize> img * c * planeOut;
      interleaveRow(
        di + <usize> c0 * planeOut, di + <usize> ch1 * planeOut, di + <usize> ch2 * planeOut, di + <usize> ch3 * planeOut,
        outH * outW, cells,
      );
      let d = cells;
      for (let oh = 0; oh < outH; oh++) {
        let p = work + <usize> oh * stepH;
        for (let ow = 0; ow < outW; ow++) {
          const g = v128.load(d);
          const p1 = p + row, p2 = p1 + row;
          s00 = f32x4.add(s00, f32x4.mul(g, v128.load(p)));
          s01 = f32x4.add(s01, f32x4.mul(g, v128.load(p + col)));
          s02 = f32x4.add(s02, f32x4.mul(g, v128.load(p + 2 * col)));
          s10 = f32x4.add(s10, f32x4.mul(g, v128.load(p1)));
          s11 = f32x4.add(s11, f32x4.mul(g, v128.load(p1 + col)));
          s12 = f32x4.add(s12, f32x4.mul(g, v128.load(p1 + 2 * col)));
          s20 = f32x4.add(s20, f32x4.mul(g, v128.load(p2)));
          s21 = f32x4.add(s21, f32x4.mul(g, v128.load(p2 + col)));
          s22 = f32x4.add(s22, f32x4.mul(g, v128.load(p2 + 2 * col)));
          d += 16;
          p += stepW;
        }
      }
    }
    // Lane i of tap t's sum is dW[c0 + i, t].
    const t0 = work, o0 = dwt + <usize> c0 * 36, o1 = dwt + <usize> ch1 * 36;
    const o2 = dwt + <usize> ch2 * 36, o3 = dwt + <usize> ch3 * 36;
    v128.store(t0, s00);
    v128.store(t0, s01, 16);
    v128.store(t0, s02, 32);
    v128.store(t0, s10, 48);
    v128.store(t0, s11, 64);
    v128.store(t0, s12, 80);
    v128.store(t0, s20, 96);
    v128.store(t0, s21, 112);
    v128.store(t0, s22, 128);
    for (let t = 0; t < 9; t++) {
      const s = v128.load(t0 + (<usize> t << 4)), o = <usize> t << 2;
      storeCell(s, nc, o0 + o, o1 + o, o2 + o, o3 + o);
    }
  }
}

// dX [n, c, h, w] of a depthwise 3×3 conv, overwritten, as a scatter: each
// tap, in order, adds w·dy into the padded cells the forward read it from,
// which then go back into dX (0 where no output read the input). Workspace:
// HP·WP cells, then outH·outW cells of dy.
export function depthwise3x3ChannelsScatter(geometry: usize, dy: usize, wt: usize, dx: usize, work: usize): void {
  const geo = changetype<Geometry>(geometry);
  const n = geo.n, c = geo.c, h = geo.h, w = geo.w, sh = geo.strideH, sw = geo.strideW;
  const top = geo.padTop, left = geo.padLeft, dh = geo.dilationH, dw = geo.dilationW;
  const outH = geo.outH, outW = geo.outW;
  const HP = (outH - 1) * sh + 2 * dh + 1, WP = (outW - 1) * sw + 2 * dw + 1;
  const planeIn = <usize> h * w << 2, planeOut = <usize> outH * outW << 2;
  const stepW = <usize> sw << 4, stepH = <usize> sh * WP << 4;
  const cells = work + (<usize> HP * WP << 4);
  // Input columns that have a cell; rows likewise.
  const cols = max(0, min(w, WP - left));
  for (let img = 0; img < n; img++) {
    for (let c0 = 0; c0 < c; c0 += 4) {
      const nc = min(4, c - c0);
      const ch1 = c0 + min(1, nc - 1), ch2 = c0 + min(2, nc - 1), ch3 = c0 + min(3, nc - 1);
      const di = dy + <usize> img * c * planeOut;
      interleaveRow(
        di + <usize> c0 * planeOut, di + <usize> ch1 * planeOut, di + <usize> ch2 * planeOut, di + <usize> ch3 * planeOut,
        outH * outW, cells,
      );
      zeroCells(work, HP * WP);
      const a0 = wt + (<usize> c0 * 36), a1 = wt + (<usize> ch1 * 36);
      const a2 = wt + (<usize> ch2 * 36), a3 = wt + (<usize> ch3 * 36);
      for (let ky = 0; ky < 3; ky++) {
        for (let kx = 0; kx < 3; kx++) {
          const tap = tapWeights(a0, a1, a2, a3, ky * 3 + kx);
          const base = work + (<usize> (ky * dh * WP + kx * dw) << 4);
          let d = cells;
          for (let oh = 0; oh < outH; oh++) {
            let p = base + <usize> oh * stepH;
            for (let ow = 0; ow < outW; ow++) {
              v128.store(p, f32x4.add(v128.load(p), f32x4.mul(tap, v128.load(d))));
              d += 16;
              p += stepW;
            }
          }
        }
      }
      const xi = dx + <usize> img * c * planeIn;
      const d0 = xi + <usize> c0 * planeIn, d1 = xi + <usize> ch1 * planeIn;
      const d2 = xi + <usize> ch2 * planeIn, d3 = xi + <usize> ch3 * planeIn;
      for (let ih = 0; ih < h; ih++) {
        const r = ih + top;
        const ro = <usize> ih * w << 2;
        let iw = 0;
        if (r < HP) {
          const src = work + (<usize> (r * WP + left) << 4);
          if (cols < 4) {
            for (; iw < cols; iw++) {
              const o = ro + (<usize> iw << 2);
              storeCell(v128.load(src + (<usize> iw << 4)), nc, d0 + o, d1 + o, d2 + o, d3 + o);
            }
          } else {
            for (let i = 0; i < cols; i += 4) {
              const at = min(i, cols - 4);
              const s = src + (<usize> at << 4), o = ro + (<usize> at << 2);
              storeCells(v128.load(s), v128.load(s, 16), v128.load(s, 32), v128.load(s, 48), nc, d0 + o, d1 + o, d2 + o, d3 + o);
            }
            iw = cols;
          }
        }
        for (; iw < w; iw++) {
          const o = ro + (<usize> iw << 2);
          storeCell(f32x4.splat(0), nc, d0 + o, d1 + o, d2 + o, d3 + o);
        }
      }
    }
  }
}
