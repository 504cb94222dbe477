// deno-fmt-ignore-file: deno fmt drops the @inline decorators AssemblyScript needs.
// Backward of pooling (assembly/pool.ts), float32 NCHW. Max pooling routes
// each output's gradient to the first cell of its window that holds the
// window's maximum (recomputed from x; a NaN cell wins, as in the forward);
// average pooling spreads it evenly over the cells the forward divided by.
// Windows overlap when the stride is below the kernel, so both accumulate
// into a zeroed dx. Scalar, but with each window's span inside the input
// worked out once and branch-free maximum searches.
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
  for (let pl = 0; pl < planes; pl++) {
    const xp = x + ((<usize> pl * h * w) << 2);
    const gp = dx + ((<usize> pl * h * w) << 2);
    // Zeroed plane by plane, so that it is still in cache when the gradients arrive.
    memory.fill(gp, 0, (<usize> h * w) << 2);
    let g = dy + ((<usize> pl * outH * outW) << 2);
    for (let oh = 0; oh < outH; oh++) {
      // The window's rows inside the input: [ky0, ky1).
      const ih0 = oh * sh - padTop;
      const ky0 = firstIn(ih0, dh, 0), ky1 = max(ky0, lastIn(ih0, kh, dh, h));
      const fullRows = ky0 == 0 && ky1 == kh;
      for (let ow = 0; ow < outW; ow++) {
        const iw0 = ow * sw - padLeft;
        // Four outputs whose windows lie inside the input, and whose taps'
        // cells are one or two v128 loads (stride 1 or 2): their searches run
        // side by side in lanes.
        if (fullRows && ow + 4 <= outW && (sw == 1 || sw == 2) && iw0 >= 0 && iw0 + 7 + (kw - 1) * dw < w) {
          maxQuad(xp, gp, g, ih0 * w + iw0, w, kh, kw, dh, dw, sw);
          ow += 3;
          g += 16;
          continue;
        }
        const kx0 = firstIn(iw0, dw, 0), kx1 = max(kx0, lastIn(iw0, kw, dw, w));
        if (ky0 < ky1 && kx0 < kx1) {
          // The first maximum wins, a NaN over anything but a NaN: branch-free
          // selects, since which cell wins is as good as random.
          let best = (ih0 + ky0 * dh) * w + iw0 + kx0 * dw;
          let bestValue = load<f32>(xp + (<usize> best << 2));
          for (let ky = ky0; ky < ky1; ky++) {
            const row = (ih0 + ky * dh) * w + iw0;
            for (let kx = kx0; kx < kx1; kx++) {
              const at = row + kx * dw;
              const v = load<f32>(xp + (<usize> at << 2));
              const wins = (v > bestValue) | ((v != v) & (bestValue == bestValue));
              best = select<i32>(at, best, wins);
              bestValue = select<f32>(v, bestValue, wins);
            }
          }
          const o = gp + (<usize> best << 2);
          store<f32>(o, load<f32>(o) + load<f32>(g));
        }
        g += 4;
      }
    }
  }
}

// The cells of four adjacent outputs' tap at `at` (their first output's
// cell, in floats), for column stride 1 or 2.
@inline
function quadCells(xp: usize, at: i32, sw: i32): v128 {
  const p = xp + (<usize> at << 2);
  if (sw == 1) return v128.load(p);
  return i32x4.shuffle(v128.load(p), v128.load(p, 16), 0, 2, 4, 6);
}

// maxPool2dBackward for four adjacent outputs whose windows lie inside the
// plane: lane j searches output j's window (first maximum, NaN over non-NaN),
// keeping the winning tap's cell offset, then adds dy to the four cells in
// output order. at: the first output's window corner, in floats.
function maxQuad(xp: usize, gp: usize, g: usize, at: i32, w: i32, kh: i32, kw: i32, dh: i32, dw: i32, sw: i32): void {
  let best = quadCells(xp, at, sw);
  let where = i32x4.splat(0);
  for (let ky = 0; ky < kh; ky++) {
    const row = ky * dh * w;
    for (let kx = 0; kx < kw; kx++) {
      const t = row + kx * dw;
      const v = quadCells(xp, at + t, sw);
      const wins = v128.or(f32x4.gt(v, best), v128.and(f32x4.ne(v, v), f32x4.eq(best, best)));
      best = v128.bitselect(v, best, wins);
      where = v128.bitselect(i32x4.splat(t), where, wins);
    }
  }
  let o = gp + (<usize> (at + i32x4.extract_lane(where, 0)) << 2);
  store<f32>(o, load<f32>(o) + load<f32>(g));
  o = gp + (<usize> (at + sw + i32x4.extract_lane(where, 1)) << 2);
  store<f32>(o, load<f32>(o) + load<f32>(g, 4));
  o = gp + (<usize> (at + 2 * sw + i32x4.extract_lane(where, 2)) << 2);
  store<f32>(o, load<f32>(o) + load<f32>(g, 8));
  o = gp + (<usize> (at + 3 * sw + i32x4.extract_lane(where, 3)) << 2);
  store<f32>(o, load<f32>(o) + load<f32>(g, 12));
}

// The first tap i (dilation d) with s + i·d >= lo.
@inline
function firstIn(s: i32, d: i32, lo: i32): i32 {
  return s >= lo ? 0 : (lo - s + d - 1) / d;
}

// One past the last of k taps with s + i·d < hi (0 if none).
@inline
function lastIn(s: i32, k: i32, d: i32, hi: i32): i32 {
  return s >= hi ? 0 : min(k, (hi - 1 - s) / d + 1);
}

// Taps of a window along one axis that fall in [lo, hi): window start s, k taps, dilation d.
@inline
function countIn(s: i32, k: i32, d: i32, lo: i32, hi: i32): i32 {
  return max(0, lastIn(s, k, d, hi) - firstIn(s, d, lo));
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
  const loH = countIncludePad ? -padTop : 0, hiH = countIncludePad ? h + padBottom : h;
  const loW = countIncludePad ? -padLeft : 0, hiW = countIncludePad ? w + padRight : w;
  for (let pl = 0; pl < planes; pl++) {
    const gp = dx + ((<usize> pl * h * w) << 2);
    memory.fill(gp, 0, (<usize> h * w) << 2);
    let g = dy + ((<usize> pl * outH * outW) << 2);
    for (let oh = 0; oh < outH; oh++) {
      const rows = countIn(oh * sh - padTop, kh, dh, loH, hiH);
      const ih0 = oh * sh - padTop;
      const ky0 = firstIn(ih0, dh, 0), ky1 = lastIn(ih0, kh, dh, h);
      for (let ow = 0; ow < outW; ow++) {
        const iw0 = ow * sw - padLeft;
        // Four outputs of 2-wide windows at column stride 2 (the usual 2×2
        // pooling), inside the input: their shares in one division, added to
        // their disjoint cells two rows of lanes at a time.
        if (sw == 2 && kw == 2 && dw == 1 && ow + 4 <= outW && iw0 >= 0 && iw0 + 8 < w) {
          const shares = f32x4.div(v128.load(g), f32x4.splat(<f32> (rows * 2)));
          g += 16;
          const zero = f32x4.splat(0);
          const lo = i32x4.shuffle(shares, zero, 0, 4, 1, 4), hi = i32x4.shuffle(shares, zero, 2, 4, 3, 4);
          for (let ky = ky0; ky < ky1; ky++) {
            let p = gp + ((<usize> (ih0 + ky * dh) * w + iw0) << 2);
            v128.store(p, f32x4.add(v128.load(p), lo));
            v128.store(p, f32x4.add(v128.load(p, 16), hi), 16);
            p += 4;
            v128.store(p, f32x4.add(v128.load(p), lo));
            v128.store(p, f32x4.add(v128.load(p, 16), hi), 16);
          }
          ow += 3;
          continue;
        }
        const cells = rows * countIn(ow * sw - padLeft, kw, dw, loW, hiW);
        const share = load<f32>(g) / <f32> cells;
        g += 4;
        const kx1 = lastIn(iw0, kw, dw, w), kx0 = firstIn(iw0, dw, 0);
        for (let ky = ky0; ky < ky1; ky++) {
          const row = gp + ((<usize> (ih0 + ky * dh) * w + iw0) << 2);
          for (let kx = kx0; kx < kx1; kx++) {
            const o = row + (<usize> (kx * dw) << 2);
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
