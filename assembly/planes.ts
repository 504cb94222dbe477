// deno-fmt-ignore-file: deno fmt drops the @inline decorators AssemblyScript needs.
// Prepared planes: the input of a sliding-window op (conv, depthwise conv,
// pooling) copied into a padded buffer and split by column phase, so that for
// any stride and dilation the inputs that four horizontally adjacent outputs
// read at one tap are four consecutive floats. Then every tap of every window
// is one unaligned v128 load, with no bounds checks in the hot loops.
//
// Layout per channel: `sw` phase planes of `hp` rows × `wq` floats. Padded
// column j*sw + p (p the phase) lives at index j of phase plane p; padded
// row r is input row r - padTop, padded column q is input column q - padLeft.
// Cells outside the input hold `fill` (0 for conv and average pooling, -inf for
// max pooling). Tap (ky, kx) of output (oh, ow) sits in phase (kx·dw) % sw at
// row oh·sh + ky·dh, index ow + (kx·dw) / sw. The TypeScript side chooses hp and
// wq large enough for every read (see src/kernels/planes.ts).

export function preparePlanes(
  src: usize,
  channels: i32,
  h: i32,
  w: i32,
  padTop: i32,
  padLeft: i32,
  sw: i32,
  hp: i32,
  wq: i32,
  fill: f32,
  dst: usize,
): void {
  const fillV = f32x4.splat(fill);
  const rowBytes = <usize> wq << 2;
  for (let c = 0; c < channels; c++) {
    const plane = src + ((<usize> c * h * w) << 2);
    if (sw == 2) {
      prepareStride2(plane, h, w, padTop, padLeft, hp, wq, fillV, dst);
      dst += rowBytes * hp * 2;
      continue;
    }
    for (let p = 0; p < sw; p++) {
      // Indices [j0, j1) of this phase read input columns j·sw + p - padLeft in [0, w).
      let j0 = padLeft > p ? (padLeft - p + sw - 1) / sw : 0;
      let j1 = (w + padLeft - p + sw - 1) / sw;
      if (j1 < 0) j1 = 0;
      if (j0 > wq) j0 = wq;
      if (j1 > wq) j1 = wq;
      if (j1 < j0) j1 = j0;
      for (let r = 0; r < hp; r++) {
        const ih = r - padTop;
        const row = dst;
        dst += rowBytes;
        if (ih < 0 || ih >= h) {
          fillRow(row, wq, fillV);
          continue;
        }
        fillRow(row, j0, fillV);
        const srcRow = plane + ((<usize> ih * w) << 2);
        const first = j0 * sw + p - padLeft;
        if (sw == 1) {
          copyFloats(row + (<usize> j0 << 2), srcRow + (<usize> first << 2), j1 - j0);
        } else if (sw == 2) {
          copyEvery2(row + (<usize> j0 << 2), srcRow + (<usize> first << 2), j1 - j0);
        } else {
          let s = srcRow + (<usize> first << 2);
          for (let j = j0; j < j1; j++) {
            store<f32>(row + (<usize> j << 2), load<f32>(s));
            s += <usize> sw << 2;
          }
        }
        fillRow(row + (<usize> j1 << 2), wq - j1, fillV);
      }
    }
  }
}

// Rows are short: a v128 loop beats memory.copy, which V8 runs as a call.
function copyFloats(dst: usize, src: usize, count: i32): void {
  let j = 0;
  for (; j + 4 <= count; j += 4) {
    v128.store(dst, v128.load(src));
    src += 16;
    dst += 16;
  }
  for (; j < count; j++) {
    store<f32>(dst, load<f32>(src));
    src += 4;
    dst += 4;
  }
}

// Both phase planes of one channel for column stride 2, in one pass over each
// input row: eight input floats split into their even and odd lanes, which
// land in the two phase rows at the same or adjacent indices.
function prepareStride2(
  plane: usize,
  h: i32,
  w: i32,
  padTop: i32,
  padLeft: i32,
  hp: i32,
  wq: i32,
  fillV: v128,
  dst: usize,
): void {
  const rowBytes = <usize> wq << 2;
  const phaseBytes = rowBytes * hp;
  // Input column iw sits at padded column iw + padLeft: phase (iw + padLeft) & 1,
  // index (iw + padLeft) >> 1. Columns whose index reaches wq are never read.
  const wUsed = min(w, 2 * wq - padLeft);
  for (let r = 0; r < hp; r++) {
    const d0 = dst + <usize> r * rowBytes;
    const d1 = d0 + phaseBytes;
    fillRow(d0, wq, fillV);
    fillRow(d1, wq, fillV);
    const ih = r - padTop;
    if (ih < 0 || ih >= h) continue;
    const s = plane + ((<usize> ih * w) << 2);
    // Even lanes (iw even) go to the phase of padLeft, odd lanes to the other.
    const de = (padLeft & 1) == 0 ? d0 : d1, dodd = (padLeft & 1) == 0 ? d1 : d0;
    const je = <usize> (padLeft >> 1), jo = <usize> ((padLeft + 1) >> 1);
    let iw = 0;
    for (; iw + 8 <= wUsed; iw += 8) {
      const a = v128.load(s + (<usize> iw << 2));
      const b = v128.load(s + (<usize> iw << 2), 16);
      const k = <usize> (iw >> 1);
      v128.store(de + ((je + k) << 2), v128.shuffle<f32>(a, b, 0, 2, 4, 6));
      v128.store(dodd + ((jo + k) << 2), v128.shuffle<f32>(a, b, 1, 3, 5, 7));
    }
    for (; iw < wUsed; iw++) {
      const k = <usize> (iw >> 1);
      if (iw & 1) store<f32>(dodd + ((jo + k) << 2), load<f32>(s + (<usize> iw << 2)));
      else store<f32>(de + ((je + k) << 2), load<f32>(s + (<usize> iw << 2)));
    }
  }
}

// Every other float of src (count of them) to consecutive floats of dst.
// The last source read is src[2·(count-1)]: never past the input row.
function copyEvery2(dst: usize, src: usize, count: i32): void {
  let j = 0;
  for (; j + 4 < count; j += 4) {
    const a = v128.load(src);
    const b = v128.load(src, 16);
    v128.store(dst, v128.shuffle<f32>(a, b, 0, 2, 4, 6));
    src += 32;
    dst += 16;
  }
  for (; j < count; j++) {
    store<f32>(dst, load<f32>(src));
    src += 8;
    dst += 4;
  }
}

// Zeroes `count` floats at dst: short runs, where memory.fill (a call in V8) costs more than the stores.
export function zeroFloats(dst: usize, count: i32): void {
  fillRow(dst, count, f32x4.splat(0));
}

@inline
function fillRow(row: usize, count: i32, v: v128): void {
  let i = 0;
  for (; i + 4 <= count; i += 4) v128.store(row + (<usize> i << 2), v);
  for (; i < count; i++) store<f32>(row + (<usize> i << 2), f32x4.extract_lane(v, 0));
}

// Stores the first `count` (1..4) lanes of v at p.
@inline
export function storeLanes(p: usize, v: v128, count: i32): void {
  if (count >= 4) {
    v128.store(p, v);
  } else {
    store<f32>(p, f32x4.extract_lane(v, 0));
    if (count > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
    if (count > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
  }
}

// max(v, lo) then min(·, hi), as single pmax/pmin instructions: NaN in v stays
// NaN, and relu(-0) is -0 (the exact-semantics f32x4.max costs several
// instructions on x86).
@inline
export function clamp(v: v128, lo: v128, hi: v128): v128 {
  return f32x4.pmin(f32x4.pmax(v, lo), hi);
}
