import assert from "node:assert/strict";
import { init } from "../mod.ts";
import type { Conv2dParams } from "../src/kernels/conv2d.ts";
import {
  conv2dBackwardInput,
  conv2dBackwardInputPath,
  conv2dBackwardInputReference,
  conv2dBackwardInputWorkspaceBytes,
  conv2dBackwardWeights,
  conv2dBackwardWeightsReference,
  conv2dBackwardWeightsWorkspaceBytes,
} from "../src/kernels/conv2d-grad.ts";
import { randomFloats } from "./helpers.ts";
import {
  assertClose,
  convParams,
  type ConvShape,
  convShape,
  fenced,
  fencedBytes,
  randomInts,
} from "./kernels-helpers.ts";

/** Runs both backward kernels in wasm (fenced buffers) and the references; asserts they agree. */
function check(p: Conv2dParams, seed: number): void {
  const xLen = p.n * p.c * p.h * p.w;
  const wLen = p.m * (p.c / p.group) * p.kh * p.kw;
  const yLen = p.n * p.m * p.outH * p.outW;
  const xs = randomFloats(xLen, seed), ws = randomFloats(wLen, seed + 1), dys = randomFloats(yLen, seed + 2);
  const dxExpected = new Float32Array(xLen), dwExpected = new Float32Array(wLen);
  conv2dBackwardInputReference(p, dys, ws, dxExpected);
  conv2dBackwardWeightsReference(p, xs, dys, dwExpected);

  const x = fenced(xLen, xs), w = fenced(wLen, ws), dy = fenced(yLen, dys);
  const dx = fenced(xLen), dw = fenced(wLen);
  const workX = fencedBytes(conv2dBackwardInputWorkspaceBytes(p));
  const workW = fencedBytes(conv2dBackwardWeightsWorkspaceBytes(p));
  conv2dBackwardInput(p, dy.ptr, w.ptr, dx.ptr, workX.ptr);
  conv2dBackwardWeights(p, x.ptr, dy.ptr, dw.ptr, workW.ptr);
  const what = `${conv2dBackwardInputPath(p)} ${JSON.stringify(p)}`;
  assert.deepEqual(dy.read(), dys, `${what}: dy changed`);
  assert.deepEqual(x.read(), xs, `${what}: x changed`);
  assert.deepEqual(w.read(), ws, `${what}: w changed`);
  const dxActual = dx.read(), dwActual = dw.read();
  x.release("x"), w.release("w"), dy.release("dy"), dx.release("dx"), dw.release("dw");
  workX.release("dX workspace"), workW.release("dW workspace");
  const kx = (p.m / p.group) * p.kh * p.kw, kw = p.n * p.outH * p.outW;
  assertClose(dxActual, dxExpected, 1e-4, 1e-5 * Math.sqrt(kx), `dX ${what}`);
  assertClose(dwActual, dwExpected, 1e-4, 1e-5 * Math.sqrt(kw), `dW ${what}`);
}

Deno.test("conv2d backward picks the flipped-conv, depthwise-scatter and col2im paths", () => {
  assert.equal(conv2dBackwardInputPath(convParams(convShape({}))), "flipped-conv");
  assert.equal(conv2dBackwardInputPath(convParams(convShape({ strideW: 2 }))), "col2im");
  assert.equal(
    conv2dBackwardInputPath(convParams(convShape({ c: 4, m: 4, group: 4, strideH: 2 }))),
    "depthwise-scatter",
  );
  assert.equal(conv2dBackwardInputPath(convParams(convShape({ c: 4, m: 4, group: 4 }))), "flipped-conv");
  // A pad larger than dilation·(kernel - 1) cannot be flipped.
  assert.equal(conv2dBackwardInputPath(convParams(convShape({ padTop: 3 }))), "col2im");
});

Deno.test("conv2d backward 3×3 matches the references for channels 1-17, strides 1-3", async () => {
  await init();
  let seed = 10;
  for (const c of [1, 3, 5, 17]) {
    for (const m of [1, 4, 5, 17]) {
      for (const stride of [1, 2, 3]) {
        check(convParams(convShape({ c, m, strideH: stride, strideW: stride, h: 11, w: 13 })), seed++);
      }
    }
  }
});

Deno.test("conv2d backward with asymmetric pads, dilation, rectangular and 1×1 kernels", async () => {
  await init();
  let seed = 100;
  const shapes: Partial<ConvShape>[] = [
    { padTop: 0, padLeft: 2, padBottom: 1, padRight: 0 },
    { padTop: 2, padLeft: 0, padBottom: 0, padRight: 3, strideW: 2 },
    { dilationH: 2, dilationW: 2, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2 },
    { dilationH: 2, dilationW: 3, strideH: 2, strideW: 3, h: 15, w: 17 },
    { kh: 1, kw: 5, padLeft: 2, padRight: 2, padTop: 0, padBottom: 0 },
    { kh: 5, kw: 2, padTop: 3, padBottom: 1, padLeft: 0, padRight: 1, strideH: 2 },
    { kh: 7, kw: 7, strideH: 2, strideW: 2, padTop: 3, padLeft: 3, padBottom: 3, padRight: 3, h: 16, w: 16 },
    { kh: 2, kw: 2, strideH: 2, strideW: 2, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0, h: 8, w: 8 },
    { kh: 3, kw: 3, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0, h: 3, w: 3 },
    { kh: 3, kw: 3, padTop: 3, padLeft: 1, padBottom: 0, padRight: 4 },
    { kh: 1, kw: 1, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0 },
    { kh: 1, kw: 1, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0, strideH: 2, strideW: 2 },
    { kh: 1, kw: 1, padTop: 1, padLeft: 0, padBottom: 0, padRight: 1 },
  ];
  for (const s of shapes) {
    check(convParams(convShape(s)), seed++);
    check(convParams(convShape({ ...s, c: 17, m: 6, n: 1 })), seed++);
    check(convParams(convShape({ ...s, c: 6, m: 6, group: 6, n: 3 })), seed++);
  }
});

Deno.test("conv2d backward with groups (2, 3, depthwise) and depthwise strides 1-3", async () => {
  await init();
  let seed = 300;
  for (const [c, m, group] of [[4, 6, 2], [6, 9, 3], [8, 8, 8], [5, 5, 5], [4, 8, 4], [16, 16, 16]]) {
    for (const stride of [1, 2, 3]) {
      check(convParams(convShape({ c, m, group, strideH: stride, strideW: stride, h: 12, w: 15 })), seed++);
      check(
        convParams(
          convShape({ c, m, group, strideH: stride, strideW: 1, padLeft: 0, padRight: 2, dilationW: 2 }),
        ),
        seed++,
      );
    }
  }
});

Deno.test("conv2d backward depthwise 3×3 four channels at a time: ragged channel groups, narrow planes, strides, dilations, pads", async () => {
  await init();
  let seed = 900;
  const pads: Partial<ConvShape>[] = [
    { padTop: 0, padLeft: 0, padBottom: 0, padRight: 0 },
    { padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 },
    { padTop: 2, padLeft: 0, padBottom: 1, padRight: 3 },
  ];
  for (const c of [1, 3, 4, 5, 9]) {
    for (const [h, w] of [[1, 1], [3, 2], [5, 4], [9, 11]]) {
      for (const [stride, dilation] of [[1, 1], [2, 1], [3, 1], [1, 2], [2, 2]]) {
        for (const pad of pads) {
          const s = convShape({ c, m: c, group: c, h, w, strideH: stride, strideW: stride, ...pad });
          const shape = { ...s, dilationH: dilation, dilationW: dilation };
          if (h + shape.padTop + shape.padBottom < 2 * dilation + 1) continue;
          if (w + shape.padLeft + shape.padRight < 2 * dilation + 1) continue;
          check(convParams(shape), seed++);
        }
      }
    }
  }
});

Deno.test("conv2d backward on random shapes", async () => {
  await init();
  const r = randomInts(7);
  for (let i = 0; i < 60; i++) {
    const kh = r(1, 4), kw = r(1, 4), dilationH = r(1, 2), dilationW = r(1, 2);
    const group = [1, 1, 2, 3][r(0, 3)];
    const depthwise = r(0, 3) === 0;
    const c = depthwise ? r(1, 9) : group * r(1, 5), m = depthwise ? c : group * r(1, 5);
    const s: ConvShape = {
      n: r(1, 3),
      c,
      m,
      group: depthwise ? c : group,
      h: r(dilationH * (kh - 1) + 1, 14),
      w: r(dilationW * (kw - 1) + 1, 14),
      kh,
      kw,
      strideH: r(1, 3),
      strideW: r(1, 3),
      padTop: r(0, 3),
      padLeft: r(0, 3),
      padBottom: r(0, 3),
      padRight: r(0, 3),
      dilationH,
      dilationW,
    };
    check(convParams(s), 1000 + i);
  }
});

Deno.test("conv2d backward 1×1: pointwise (x read in place), strided and padded (an im2col)", async () => {
  await init();
  let seed = 700;
  const none = { padTop: 0, padLeft: 0, padBottom: 0, padRight: 0 };
  for (const [c, m, group] of [[5, 7, 1], [4, 6, 2], [16, 9, 1], [3, 3, 3]]) {
    check(convParams(convShape({ c, m, group, kh: 1, kw: 1, h: 8, w: 6, ...none })), seed++);
    check(
      convParams(convShape({ c, m, group, kh: 1, kw: 1, h: 8, w: 8, strideH: 2, strideW: 2, ...none })),
      seed++,
    );
    check(
      convParams(
        convShape({ c, m, group, kh: 1, kw: 1, h: 6, w: 6, ...none, padTop: 1, padBottom: 1, padLeft: 2 }),
      ),
      seed++,
    );
    check(
      convParams(
        convShape({ c, m, group, n: 37, kh: 1, kw: 1, h: 12, w: 12, strideH: 3, strideW: 3, ...none }),
      ),
      seed++,
    );
  }
  // Strided 1×1 inputs as an im2col of a chunk of images.
  check(
    convParams(convShape({ c: 64, m: 8, n: 5, kh: 1, kw: 1, h: 56, w: 56, strideH: 2, strideW: 2, ...none })),
    seed++,
  );
});

Deno.test("conv2d backward with depthwise kernels of more than 64 taps", async () => {
  await init();
  const pads = { padTop: 4, padLeft: 4, padBottom: 4, padRight: 4 };
  check(convParams(convShape({ c: 3, m: 3, group: 3, kh: 9, kw: 9, h: 12, w: 11, ...pads })), 600);
  check(
    convParams(
      convShape({ c: 2, m: 2, group: 2, kh: 9, kw: 9, h: 13, w: 13, strideH: 2, strideW: 2, ...pads }),
    ),
    601,
  );
});

Deno.test("conv2d backward weights over many images (chunked)", async () => {
  await init();
  check(convParams(convShape({ n: 40, c: 16, m: 16, h: 28, w: 28 })), 500);
  check(
    convParams(
      convShape({
        n: 33,
        c: 8,
        m: 12,
        h: 9,
        w: 9,
        kh: 1,
        kw: 1,
        padTop: 0,
        padLeft: 0,
        padBottom: 0,
        padRight: 0,
      }),
    ),
    501,
  );
});
