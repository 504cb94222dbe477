// The small backward kernels (reduceToShape, unaryGrad, stridedCopy, pooling)
// against their references, in fenced wasm buffers, on cases finite
// differences cannot see: ties, NaN and infinite gradients, general strides.
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { reduceToShape, reduceToShapeReference } from "../src/kernels/binary-grad.ts";
import {
  averagePool2dBackward,
  averagePool2dBackwardReference,
  maxPool2dBackward,
  maxPool2dBackwardReference,
} from "../src/kernels/pool-grad.ts";
import type { AveragePool2dParams } from "../src/kernels/pool.ts";
import { stridedCopy, stridedCopyReference } from "../src/kernels/strided-copy.ts";
import { unaryGrad, type UnaryGradOp, unaryGradReference } from "../src/kernels/unary-grad.ts";
import { randomFloats } from "./helpers.ts";
import { assertClose, fenced, randomInts } from "./kernels-helpers.ts";

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

Deno.test("reduceToShape matches the reference on random broadcasts, with a scale", async () => {
  await init();
  const r = randomInts(3);
  for (let t = 0; t < 200; t++) {
    const rank = r(0, 5);
    const from = Array.from({ length: rank }, () => r(1, 5));
    const to = from.slice(r(0, rank)).map((d) => (r(0, 1) ? d : 1));
    const scale = [1, -1, 0.5][r(0, 2)];
    const xs = randomFloats(size(from), t);
    const expected = new Float32Array(size(to));
    reduceToShapeReference({ from, to, scale }, xs, expected);
    const x = fenced(xs.length, xs), y = fenced(size(to));
    reduceToShape({ from, to, scale }, x.ptr, y.ptr);
    const actual = y.read();
    x.release("x"), y.release("y");
    assertClose(actual, expected, 1e-5, 1e-6, `[${from}] → [${to}] × ${scale}`);
  }
});

Deno.test("unaryGrad matches the reference, odd lengths, and a NaN or infinite dy where f' = 0 gives 0", async () => {
  await init();
  const ops: UnaryGradOp[] = ["relu", "leakyRelu", "clip", "sigmoid", "hardSigmoid", "hardSwish"];
  for (const op of ops) {
    for (const length of [1, 3, 4, 17, 64]) {
      const xs = randomFloats(length, length).map((v) => v * 5);
      xs[0] = 0; // the kinks: relu at 0, clip at its bound
      const ys = xs.map((v) => 1 / (1 + Math.exp(-v)));
      const dys = randomFloats(length, length + 1);
      const p = { op, length, alpha: 0.3, beta: 0.4, min: -1, max: 0 };
      const expected = new Float32Array(length);
      unaryGradReference(p, xs, ys, dys, expected);
      const x = fenced(length, xs), y = fenced(length, ys), dy = fenced(length, dys), dx = fenced(length);
      unaryGrad(p, x.ptr, y.ptr, dy.ptr, dx.ptr);
      const actual = dx.read();
      x.release("x"), y.release("y"), dy.release("dy"), dx.release("dx");
      assertClose(actual, expected, 1e-6, 1e-7, `${op} × ${length}`);
    }
  }
  // Masked lanes: x where the derivative is 0, dy NaN and Infinity.
  for (const op of ["relu", "clip", "hardSigmoid", "hardSwish"] as const) {
    const xs = new Float32Array([-10, -10, -10, -10, -10]),
      dys = new Float32Array([NaN, Infinity, -Infinity, NaN, 1]);
    const x = fenced(5, xs), dy = fenced(5, dys), dx = fenced(5);
    unaryGrad({ op, length: 5, min: -1, max: 1 }, x.ptr, x.ptr, dy.ptr, dx.ptr);
    assert.deepEqual([...dx.read()], [0, 0, 0, 0, 0], `${op}: masked gradients`);
    x.release("x"), dy.release("dy"), dx.release("dx");
  }
});

Deno.test("stridedCopy matches the reference with general, negative and zero strides", async () => {
  await init();
  const r = randomInts(5);
  for (let t = 0; t < 200; t++) {
    const rank = r(1, 6);
    const shape = Array.from({ length: rank }, () => r(1, 4));
    // A destination laid out as a permutation of the box, possibly reversed on some axes.
    const perm = shape.map((_, i) => i).sort(() => r(0, 1) - 0.5);
    const dstShape = perm.map((p) => shape[p]);
    const dstPlain = dstShape.map((_, i) => size(dstShape.slice(i + 1)));
    const dstStrides = shape.map((_, i) => dstPlain[perm.indexOf(i)]);
    const flip = shape.map(() => r(0, 3) === 0);
    const dstOffset = shape.reduce((o, d, i) => o + (flip[i] ? (d - 1) * dstStrides[i] : 0), 0);
    // The source: a larger padded box, read with a step of 1 or 2 per axis, and broadcast (stride 0) on one.
    const srcShape = shape.map((d) => 2 * d + 1);
    const srcPlain = srcShape.map((_, i) => size(srcShape.slice(i + 1)));
    const steps = shape.map(() => r(1, 2));
    const zero = r(0, rank);
    const srcStrides = srcPlain.map((s, i) => (i === zero ? 0 : s * steps[i]));
    const p = {
      shape,
      srcStrides,
      dstStrides: dstStrides.map((s, i) => (flip[i] ? -s : s)),
      srcOffset: r(0, 1),
      dstOffset,
    };
    const srcData = randomFloats(size(srcShape), t);
    const expected = new Float32Array(size(shape)).fill(7);
    stridedCopyReference(p, srcData, expected);
    const src = fenced(srcData.length, srcData),
      dst = fenced(expected.length, new Float32Array(expected.length).fill(7));
    stridedCopy(p, src.ptr, dst.ptr);
    const actual = dst.read();
    src.release("src"), dst.release("dst");
    assert.deepEqual(actual, expected, JSON.stringify(p));
  }
});

Deno.test("pooling backward matches the reference, ties going to the first maximum", async () => {
  await init();
  const r = randomInts(9);
  for (let t = 0; t < 60; t++) {
    const kh = r(1, 3), kw = r(1, 3), sh = r(1, 3), sw = r(1, 3), dh = r(1, 2), dw = r(1, 2);
    const h = r(dh * (kh - 1) + 1, 9), w = r(dw * (kw - 1) + 1, 9);
    const pads = [r(0, kh - 1), r(0, kw - 1), r(0, kh - 1), r(0, kw - 1)];
    const p: AveragePool2dParams = {
      n: r(1, 2),
      c: r(1, 3),
      h,
      w,
      kh,
      kw,
      strideH: sh,
      strideW: sw,
      dilationH: dh,
      dilationW: dw,
      padTop: pads[0],
      padLeft: pads[1],
      padBottom: pads[2],
      padRight: pads[3],
      outH: Math.floor((h + pads[0] + pads[2] - dh * (kh - 1) - 1) / sh) + 1,
      outW: Math.floor((w + pads[1] + pads[3] - dw * (kw - 1) - 1) / sw) + 1,
      countIncludePad: r(0, 1) === 1,
    };
    // Few distinct values: many ties.
    const xs = randomFloats(p.n * p.c * h * w, t).map((v) => Math.round(v * 2));
    const dys = randomFloats(p.n * p.c * p.outH * p.outW, t + 1);
    const maxExpected = new Float32Array(xs.length), avgExpected = new Float32Array(xs.length);
    maxPool2dBackwardReference(p, xs, dys, maxExpected);
    averagePool2dBackwardReference(p, dys, avgExpected);
    const x = fenced(xs.length, xs), dy = fenced(dys.length, dys), dx = fenced(xs.length);
    maxPool2dBackward(p, x.ptr, dy.ptr, dx.ptr);
    assertClose(dx.read(), maxExpected, 1e-6, 1e-6, `max ${JSON.stringify(p)}`);
    averagePool2dBackward(p, dy.ptr, dx.ptr);
    assertClose(dx.read(), avgExpected, 1e-5, 1e-6, `average ${JSON.stringify(p)}`);
    x.release("x"), dy.release("dy"), dx.release("dx");
  }
});

Deno.test("pooling backward on wide planes (four windows at a time), with ties, NaN and infinities", async () => {
  await init();
  const r = randomInts(19);
  for (let t = 0; t < 40; t++) {
    const kh = r(1, 3), kw = r(1, 3), sh = r(1, 2), sw = r(1, 2), dh = r(1, 2), dw = t % 3 === 0 ? 2 : 1;
    const h = r(dh * (kh - 1) + 1, 12), w = r(12, 40);
    const pads = [r(0, kh - 1), r(0, kw - 1), r(0, kh - 1), r(0, kw - 1)];
    const p: AveragePool2dParams = {
      n: r(1, 2),
      c: r(1, 3),
      h,
      w,
      kh,
      kw,
      strideH: sh,
      strideW: sw,
      dilationH: dh,
      dilationW: dw,
      padTop: pads[0],
      padLeft: pads[1],
      padBottom: pads[2],
      padRight: pads[3],
      outH: Math.floor((h + pads[0] + pads[2] - dh * (kh - 1) - 1) / sh) + 1,
      outW: Math.floor((w + pads[1] + pads[3] - dw * (kw - 1) - 1) / sw) + 1,
      countIncludePad: r(0, 1) === 1,
    };
    const special = [NaN, Infinity, -Infinity];
    const xs = randomFloats(p.n * p.c * h * w, 50 + t).map((v, i) =>
      i % 29 === 7 ? special[i % 3] : Math.round(v * 2)
    );
    const dys = randomFloats(p.n * p.c * p.outH * p.outW, 90 + t);
    const maxExpected = new Float32Array(xs.length), avgExpected = new Float32Array(xs.length);
    maxPool2dBackwardReference(p, xs, dys, maxExpected);
    averagePool2dBackwardReference(p, dys, avgExpected);
    const x = fenced(xs.length, xs), dy = fenced(dys.length, dys), dx = fenced(xs.length);
    maxPool2dBackward(p, x.ptr, dy.ptr, dx.ptr);
    assertClose(dx.read(), maxExpected, 1e-6, 1e-6, `max ${JSON.stringify(p)}`);
    averagePool2dBackward(p, dy.ptr, dx.ptr);
    assertClose(dx.read(), avgExpected, 1e-5, 1e-6, `average ${JSON.stringify(p)}`);
    x.release("x"), dy.release("dy"), dx.release("dx");
  }
  // The usual 2×2 pooling at stride 2 and 3×3 max pooling at stride 2, pad 1.
  for (const [k, pad] of [[2, 0], [3, 1]]) {
    const h = 24, w = 30, out = (n: number) => Math.floor((n + 2 * pad - k) / 2) + 1;
    const p: AveragePool2dParams = {
      n: 2,
      c: 3,
      h,
      w,
      kh: k,
      kw: k,
      strideH: 2,
      strideW: 2,
      padTop: pad,
      padLeft: pad,
      padBottom: pad,
      padRight: pad,
      outH: out(h),
      outW: out(w),
      countIncludePad: false,
    };
    const xs = randomFloats(p.n * p.c * h * w, k).map((v) => Math.round(v * 3));
    const dys = randomFloats(p.n * p.c * p.outH * p.outW, k + 1);
    const maxExpected = new Float32Array(xs.length), avgExpected = new Float32Array(xs.length);
    maxPool2dBackwardReference(p, xs, dys, maxExpected);
    averagePool2dBackwardReference(p, dys, avgExpected);
    const x = fenced(xs.length, xs), dy = fenced(dys.length, dys), dx = fenced(xs.length);
    maxPool2dBackward(p, x.ptr, dy.ptr, dx.ptr);
    assertClose(dx.read(), maxExpected, 1e-6, 1e-6, `max ${JSON.stringify(p)}`);
    averagePool2dBackward(p, dy.ptr, dx.ptr);
    assertClose(dx.read(), avgExpected, 1e-5, 1e-6, `average ${JSON.stringify(p)}`);
    x.release("x"), dy.release("dy"), dx.release("dx");
  }
});
