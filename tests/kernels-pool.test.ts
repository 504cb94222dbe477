import assert from "node:assert/strict";
import { init } from "../mod.ts";
import {
  averagePool2d,
  type AveragePool2dParams,
  averagePool2dReference,
  averagePool2dWorkspaceBytes,
  globalAveragePool,
  globalAveragePoolReference,
  maxPool2d,
  maxPool2dReference,
  maxPool2dWorkspaceBytes,
  type Pool2dParams,
} from "../src/kernels/pool.ts";
import { randomFloats } from "./helpers.ts";
import { assertClose, fenced, fencedBytes, randomInts } from "./kernels-helpers.ts";

type Shape = Omit<AveragePool2dParams, "outH" | "outW">;

/** Output size along one axis, floor or ceil mode (ceil windows must start inside input or left pad). */
function outSize(
  size: number,
  k: number,
  s: number,
  pb: number,
  pe: number,
  d: number,
  ceil: boolean,
): number {
  const span = size + pb + pe - d * (k - 1) - 1;
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (out - 1) * s >= size + pb) out--;
  return out;
}

function params(s: Shape, ceil = false): AveragePool2dParams {
  return {
    ...s,
    outH: outSize(s.h, s.kh, s.strideH, s.padTop, s.padBottom, s.dilationH ?? 1, ceil),
    outW: outSize(s.w, s.kw, s.strideW, s.padLeft, s.padRight, s.dilationW ?? 1, ceil),
  };
}

function base(over: Partial<Shape>): Shape {
  return {
    n: 2,
    c: 3,
    h: 9,
    w: 11,
    kh: 3,
    kw: 3,
    strideH: 2,
    strideW: 2,
    padTop: 1,
    padLeft: 1,
    padBottom: 1,
    padRight: 1,
    ...over,
  };
}

function check(kind: "max" | "average", p: AveragePool2dParams, seed: number) {
  const xLen = p.n * p.c * p.h * p.w, yLen = p.n * p.c * p.outH * p.outW;
  const xs = randomFloats(xLen, seed);
  const expected = new Float32Array(yLen);
  const x = fenced(xLen, xs), y = fenced(yLen);
  let work;
  if (kind === "max") {
    maxPool2dReference(p, xs, expected);
    work = fencedBytes(maxPool2dWorkspaceBytes(p));
    maxPool2d(p, x.ptr, y.ptr, work.ptr);
  } else {
    averagePool2dReference(p, xs, expected);
    work = fencedBytes(averagePool2dWorkspaceBytes(p));
    averagePool2d(p, x.ptr, y.ptr, work.ptr);
  }
  const actual = y.read();
  assert.deepEqual(x.read(), xs, "input changed");
  x.release("x"), y.release("y"), work.release("workspace");
  const what = `${kind}Pool2d ${JSON.stringify(p)}`;
  if (kind === "max") assert.deepEqual(actual, expected, what);
  else assertClose(actual, expected, 1e-5, 1e-6, what);
}

const shapes: Partial<Shape>[] = [
  {},
  { kh: 2, kw: 2, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0 },
  { strideH: 1, strideW: 1 },
  { strideH: 3, strideW: 3, padTop: 0, padLeft: 2, padBottom: 2, padRight: 0 },
  { kh: 1, kw: 4, strideH: 1, strideW: 3, padTop: 0, padBottom: 0, padLeft: 2, padRight: 1 },
  { kh: 5, kw: 2, strideH: 2, strideW: 1, padTop: 2, padBottom: 1, padLeft: 0, padRight: 1, c: 17 },
  { h: 1, w: 23, kh: 1, kw: 3, strideH: 1, strideW: 2, padTop: 0, padBottom: 0 },
  { h: 2, w: 2, kh: 2, kw: 2, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0, c: 5 },
  { dilationH: 2, dilationW: 2, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2, h: 12, w: 13 },
];

Deno.test("maxPool2d matches the reference exactly (strides, asymmetric pads, dilation, ceil_mode)", async () => {
  await init();
  let seed = 1;
  for (const s of shapes) {
    check("max", params(base(s)), seed++);
    check("max", params(base(s), true), seed++);
  }
});

Deno.test("averagePool2d matches the reference, with and without count_include_pad, floor and ceil", async () => {
  await init();
  let seed = 100;
  for (const s of shapes) {
    for (const countIncludePad of [false, true]) {
      check("average", params(base({ ...s, countIncludePad })), seed++);
      check("average", params(base({ ...s, countIncludePad }), true), seed++);
    }
  }
});

Deno.test("averagePool2d divides by the cells it covers (hand-computed)", async () => {
  await init();
  // 1×3 input [1, 2, 3], kernel 2, stride 2, pads 1/0, ceil -> windows {pad,1}, {2,3}.
  for (const [countIncludePad, expected] of [[false, [1, 2.5]], [true, [0.5, 2.5]]] as const) {
    const p: AveragePool2dParams = {
      n: 1,
      c: 1,
      h: 1,
      w: 3,
      kh: 1,
      kw: 2,
      strideH: 1,
      strideW: 2,
      padTop: 0,
      padLeft: 1,
      padBottom: 0,
      padRight: 0,
      outH: 1,
      outW: 2,
      countIncludePad,
    };
    const x = fenced(3, new Float32Array([1, 2, 3])), y = fenced(2);
    const work = fencedBytes(averagePool2dWorkspaceBytes(p));
    averagePool2d(p, x.ptr, y.ptr, work.ptr);
    assert.deepEqual([...y.read()], expected);
    x.release("x"), y.release("y"), work.release("workspace");
  }
});

Deno.test("pooling on random awkward shapes", async () => {
  await init();
  const r = randomInts(7);
  for (let i = 0; i < 120; i++) {
    const kh = r(1, 4), kw = r(1, 4);
    const s: Shape = {
      n: r(1, 2),
      c: r(1, 5),
      h: r(kh, 13),
      w: r(kw, 13),
      kh,
      kw,
      strideH: r(1, 3),
      strideW: r(1, 3),
      dilationH: r(1, 2),
      dilationW: r(1, 2),
      padTop: r(0, kh - 1),
      padLeft: r(0, kw - 1),
      padBottom: r(0, kh - 1),
      padRight: r(0, kw - 1),
      countIncludePad: r(0, 1) === 1,
    };
    const p = params(s, r(0, 1) === 1);
    if (p.outH < 1 || p.outW < 1) continue;
    check(r(0, 1) ? "max" : "average", p, 500 + i);
  }
});

Deno.test("globalAveragePool over any spatial size", async () => {
  await init();
  let seed = 900;
  for (const size of [1, 3, 7, 8, 9, 49, 196, 1000]) {
    for (const [n, c] of [[1, 1], [2, 5], [3, 17]]) {
      const xs = randomFloats(n * c * size, seed++);
      const expected = new Float32Array(n * c);
      globalAveragePoolReference({ n, c, size }, xs, expected);
      const x = fenced(xs.length, xs), y = fenced(n * c);
      globalAveragePool({ n, c, size }, x.ptr, y.ptr);
      assertClose(y.read(), expected, 1e-5, 1e-6, `globalAveragePool n=${n} c=${c} size=${size}`);
      x.release("x"), y.release("y");
    }
  }
});

Deno.test("maxPool2d propagates NaN and keeps infinities", async () => {
  await init();
  const p: Pool2dParams = {
    n: 1,
    c: 1,
    h: 2,
    w: 4,
    kh: 2,
    kw: 2,
    strideH: 2,
    strideW: 2,
    padTop: 0,
    padLeft: 0,
    padBottom: 0,
    padRight: 0,
    outH: 1,
    outW: 2,
  };
  const x = fenced(8, new Float32Array([NaN, 1, -Infinity, -Infinity, 2, 3, -Infinity, -Infinity])),
    y = fenced(2);
  const work = fencedBytes(maxPool2dWorkspaceBytes(p));
  maxPool2d(p, x.ptr, y.ptr, work.ptr);
  assert.deepEqual([...y.read()], [NaN, -Infinity]);
  x.release("x"), y.release("y"), work.release("workspace");
});
