import assert from "node:assert/strict";
import { init } from "../mod.ts";
import {
  convTranspose2d,
  convTranspose2dOutputSize,
  type ConvTranspose2dParams,
  convTranspose2dReference,
  convTranspose2dWorkspaceBytes,
} from "../src/kernels/conv-transpose2d.ts";
import { randomFloats } from "./helpers.ts";
import { assertClose, fenced, fencedBytes, randomInts } from "./kernels-helpers.ts";

type Shape = Omit<ConvTranspose2dParams, "outH" | "outW"> & { outPadH?: number; outPadW?: number };

function params(s: Shape): ConvTranspose2dParams {
  const { outPadH = 0, outPadW = 0, ...p } = s;
  return {
    ...p,
    outH: convTranspose2dOutputSize(s.h, s.kh, s.strideH, s.padTop, s.padBottom, s.dilationH, outPadH),
    outW: convTranspose2dOutputSize(s.w, s.kw, s.strideW, s.padLeft, s.padRight, s.dilationW, outPadW),
  };
}

function base(over: Partial<Shape>): Shape {
  return {
    n: 2,
    c: 3,
    h: 5,
    w: 6,
    m: 4,
    kh: 3,
    kw: 3,
    strideH: 2,
    strideW: 2,
    padTop: 1,
    padLeft: 1,
    padBottom: 1,
    padRight: 1,
    dilationH: 1,
    dilationW: 1,
    group: 1,
    ...over,
  };
}

function check(p: ConvTranspose2dParams, seed: number, withBias = true) {
  const xLen = p.n * p.c * p.h * p.w, wLen = p.c * (p.m / p.group) * p.kh * p.kw;
  const yLen = p.n * p.m * p.outH * p.outW;
  const xs = randomFloats(xLen, seed), ws = randomFloats(wLen, seed + 1);
  const bs = withBias ? randomFloats(p.m, seed + 2) : null;
  const expected = new Float32Array(yLen);
  convTranspose2dReference(p, xs, ws, bs, expected);
  const x = fenced(xLen, xs), w = fenced(wLen, ws), y = fenced(yLen), b = bs ? fenced(p.m, bs) : null;
  const work = fencedBytes(convTranspose2dWorkspaceBytes(p));
  convTranspose2d(p, x.ptr, w.ptr, b ? b.ptr : 0, y.ptr, work.ptr);
  const actual = y.read();
  assert.deepEqual(x.read(), xs, "input changed");
  x.release("x"), w.release("w"), y.release("y"), work.release("workspace"), b?.release("bias");
  assertClose(
    actual,
    expected,
    1e-4,
    1e-5 * Math.sqrt(p.c * p.kh * p.kw),
    `convTranspose2d ${JSON.stringify(p)}`,
  );
}

Deno.test("convTranspose2d matches the reference: strides, pads, output_padding, dilation, groups", async () => {
  await init();
  let seed = 1;
  const shapes: Partial<Shape>[] = [
    {},
    { strideH: 1, strideW: 1 },
    { strideH: 3, strideW: 2, padTop: 0, padLeft: 2, padBottom: 2, padRight: 0 },
    { outPadH: 1, outPadW: 1 },
    { strideH: 3, strideW: 3, outPadH: 2, outPadW: 1, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0 },
    { dilationH: 2, dilationW: 2 },
    { kh: 2, kw: 2, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0 },
    { kh: 4, kw: 1, padLeft: 0, padRight: 0 },
    { c: 4, m: 6, group: 2 },
    { c: 5, m: 5, group: 5 },
    { c: 17, m: 5 },
    { h: 1, w: 9, kh: 1, kw: 3, padTop: 0, padBottom: 0 },
  ];
  for (const s of shapes) {
    check(params(base(s)), seed, seed % 2 === 0);
    seed += 3;
  }
});

Deno.test("convTranspose2d fuses relu and clip", async () => {
  await init();
  check({ ...params(base({})), activation: "relu" }, 50);
  check({ ...params(base({ c: 4, m: 6, group: 2 })), activation: "clip", clipMin: -0.5, clipMax: 0.25 }, 53);
});

Deno.test("convTranspose2d on random awkward shapes", async () => {
  await init();
  const r = randomInts(11);
  for (let i = 0; i < 80; i++) {
    const group = r(1, 3), kh = r(1, 4), kw = r(1, 4);
    const strideH = r(1, 3), strideW = r(1, 3);
    const s: Shape = {
      n: r(1, 2),
      c: group * r(1, 4),
      m: group * r(1, 4),
      h: r(1, 7),
      w: r(1, 7),
      kh,
      kw,
      strideH,
      strideW,
      dilationH: r(1, 2),
      dilationW: r(1, 2),
      padTop: r(0, kh - 1),
      padLeft: r(0, kw - 1),
      padBottom: r(0, kh - 1),
      padRight: r(0, kw - 1),
      group,
      outPadH: r(0, strideH - 1),
      outPadW: r(0, strideW - 1),
    };
    const p = params(s);
    if (p.outH < 1 || p.outW < 1) continue;
    check(p, 100 + 3 * i, r(0, 1) === 1);
  }
});
