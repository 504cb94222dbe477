import assert from "node:assert/strict";
import { init } from "../mod.ts";
import {
  conv2d,
  conv2dPackedWeightsBytes,
  conv2dPackWeights,
  type Conv2dParams,
  conv2dPath,
  conv2dReference,
  conv2dWorkspaceBytes,
} from "../src/kernels/conv2d.ts";
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

/** Runs conv2d in wasm (fenced buffers) and the reference; asserts they agree. */
function check(p: Conv2dParams, seed: number, options: { bias?: boolean; prepacked?: boolean } = {}) {
  const xLen = p.n * p.c * p.h * p.w;
  const wLen = p.m * (p.c / p.group) * p.kh * p.kw;
  const yLen = p.n * p.m * p.outH * p.outW;
  const xs = randomFloats(xLen, seed), ws = randomFloats(wLen, seed + 1);
  const bs = options.bias === false ? null : randomFloats(p.m, seed + 2);
  const expected = new Float32Array(yLen);
  conv2dReference(p, xs, ws, bs, expected);

  const x = fenced(xLen, xs), w = fenced(wLen, ws), y = fenced(yLen);
  const b = bs ? fenced(p.m, bs) : null;
  const prepacked = options.prepacked ?? false;
  const work = fencedBytes(conv2dWorkspaceBytes(p, { prepacked }));
  const packed = prepacked ? fencedBytes(conv2dPackedWeightsBytes(p)) : null;
  if (packed) conv2dPackWeights(p, w.ptr, packed.ptr);
  conv2d(p, x.ptr, packed ? 0 : w.ptr, b ? b.ptr : 0, y.ptr, work.ptr, packed ? packed.ptr : 0);
  const actual = y.read();
  const what = `${conv2dPath(p)} ${JSON.stringify(p)}`;
  assert.deepEqual(x.read(), xs, `${what}: input changed`);
  x.release("x"), w.release("w"), y.release("y"), work.release("workspace");
  b?.release("bias"), packed?.release("packed weights");
  const k = (p.c / p.group) * p.kh * p.kw;
  assertClose(actual, expected, 1e-4, 1e-5 * Math.sqrt(k), what);
}

Deno.test("conv2d chooses the pointwise, depthwise and implicit-GEMM paths", () => {
  assert.equal(
    conv2dPath(convParams(convShape({ kh: 1, kw: 1, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0 }))),
    "pointwise",
  );
  assert.equal(conv2dPath(convParams(convShape({ c: 6, m: 6, group: 6 }))), "depthwise");
  assert.equal(conv2dPath(convParams(convShape({ c: 6, m: 6, group: 3 }))), "implicit-gemm");
  assert.equal(
    conv2dPath(convParams(convShape({ kh: 1, kw: 1, strideH: 2, strideW: 2 }))),
    "pointwise-gather",
  );
  assert.equal(conv2dPath(convParams(convShape({ kh: 1, kw: 2, padLeft: 0, padRight: 0 }))), "implicit-gemm");
});

Deno.test("conv2d 3×3 matches the reference for channels 1, 3, 5, 17 and strides 1-3", async () => {
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

Deno.test("conv2d with asymmetric pads, dilation 2, rectangular kernels and no bias", async () => {
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
  ];
  for (const s of shapes) {
    check(convParams(convShape(s)), seed++, { bias: false });
    check(convParams(convShape({ ...s, c: 17, m: 6, n: 1 })), seed++);
  }
});

Deno.test("conv2d 1-D (h = 1) with stride, pads and dilation", async () => {
  await init();
  let seed = 200;
  for (
    const [kw, stride, dil, pl, pr] of [[3, 1, 1, 1, 1], [5, 2, 1, 2, 2], [3, 1, 2, 2, 0], [1, 1, 1, 0, 0]]
  ) {
    check(
      convParams(convShape({
        h: 1,
        w: 37,
        kh: 1,
        kw,
        strideW: stride,
        dilationW: dil,
        padTop: 0,
        padBottom: 0,
        padLeft: pl,
        padRight: pr,
        c: 5,
        m: 7,
      })),
      seed++,
    );
  }
});

Deno.test("conv2d 1×1 pointwise on ragged spatial sizes reads and writes nothing outside its tensors", async () => {
  await init();
  let seed = 300;
  for (const [h, w] of [[1, 1], [1, 3], [3, 5], [4, 4], [7, 7], [2, 9]]) {
    for (const [n, c, m] of [[1, 3, 5], [3, 17, 8], [2, 1, 1], [1, 64, 33]]) {
      check(
        convParams(
          convShape({ n, c, m, h, w, kh: 1, kw: 1, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0 }),
        ),
        seed++,
      );
    }
  }
  // Strided and padded 1×1 convs gather their pixels first.
  check(
    convParams(
      convShape({ kh: 1, kw: 1, strideH: 2, strideW: 2, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0 }),
    ),
    390,
  );
  check(convParams(convShape({ kh: 1, kw: 1, padTop: 1, padLeft: 0, padBottom: 0, padRight: 1 })), 391);
  for (
    const [stride, c, m, group, h, w] of [[2, 17, 9, 1, 13, 11], [3, 6, 4, 2, 7, 8], [2, 32, 64, 1, 14, 14]]
  ) {
    const s = {
      kh: 1,
      kw: 1,
      strideH: stride,
      strideW: stride,
      padTop: 0,
      padLeft: 0,
      padBottom: 0,
      padRight: 0,
    };
    check(convParams(convShape({ ...s, c, m, group, h, w, n: 3 })), 392 + stride + c, { prepacked: true });
  }
});

Deno.test("conv2d grouped: groups 2 and c, with and without channel multipliers", async () => {
  await init();
  let seed = 400;
  for (
    const [c, m, group] of [[4, 6, 2], [6, 4, 2], [6, 12, 3], [5, 10, 5], [17, 17, 17], [8, 16, 8], [6, 6, 2]]
  ) {
    for (const stride of [1, 2]) {
      check(convParams(convShape({ c, m, group, strideH: stride, strideW: stride, h: 9, w: 10 })), seed++);
    }
  }
  check(
    convParams(
      convShape({ c: 6, m: 6, group: 3, kh: 1, kw: 1, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0 }),
    ),
    490,
  );
});

Deno.test("conv2d depthwise 3×3 stride 1 and 2, other kernels, dilations and odd widths", async () => {
  await init();
  let seed = 500;
  for (let w = 1; w <= 19; w += 3) {
    for (const stride of [1, 2]) {
      check(
        convParams(convShape({ c: 5, m: 5, group: 5, h: 6, w, strideH: stride, strideW: stride })),
        seed++,
      );
    }
  }
  const shapes: Partial<ConvShape>[] = [
    { kh: 5, kw: 5, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2, h: 12, w: 12 },
    { kh: 3, kw: 3, dilationH: 2, dilationW: 2, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2 },
    { kh: 3, kw: 3, strideH: 3, strideW: 3, padTop: 0, padLeft: 1, padBottom: 2, padRight: 0, h: 13, w: 14 },
    { kh: 3, kw: 3, strideH: 2, strideW: 1, padTop: 1, padLeft: 0, padBottom: 0, padRight: 1 },
    { kh: 1, kw: 7, padTop: 0, padLeft: 3, padBottom: 0, padRight: 3, h: 1, w: 30 },
    { kh: 2, kw: 4, dilationW: 2, padTop: 1, padLeft: 0, padBottom: 0, padRight: 3 },
  ];
  for (const s of shapes) {
    check(convParams(convShape({ ...s, c: 17, m: 17, group: 17 })), seed++);
    check(convParams(convShape({ ...s, c: 3, m: 3, group: 3 })), seed++, { bias: false });
  }
  check(convParams(convShape({ c: 1, m: 1, group: 1 })), seed++);
});

Deno.test("conv2d depthwise 3×3 four channels at a time: ragged channel groups, narrow planes, strides, dilations, pads, clip", async () => {
  await init();
  let seed = 900;
  const pads: Partial<ConvShape>[] = [
    { padTop: 0, padLeft: 0, padBottom: 0, padRight: 0 },
    { padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 },
    { padTop: 2, padLeft: 0, padBottom: 1, padRight: 3 },
  ];
  for (const c of [1, 2, 3, 4, 5, 7, 8, 9]) {
    for (const [h, w] of [[1, 1], [3, 2], [5, 4], [6, 6], [9, 11]]) {
      for (const [stride, dilation] of [[1, 1], [2, 1], [3, 1], [1, 2], [2, 2]]) {
        for (const pad of pads) {
          const s = convShape({ c, m: c, group: c, h, w, strideH: stride, strideW: stride, ...pad });
          const shape = { ...s, dilationH: dilation, dilationW: dilation };
          // Some combinations leave no output.
          if (h + shape.padTop + shape.padBottom < 2 * dilation + 1) continue;
          if (w + shape.padLeft + shape.padRight < 2 * dilation + 1) continue;
          const p = convParams(shape);
          check(seed % 3 === 0 ? { ...p, activation: "clip", clipMin: -0.3, clipMax: 0.4 } : p, seed++);
        }
      }
    }
  }
});

Deno.test("conv2d fuses relu and clip into the output write", async () => {
  await init();
  let seed = 600;
  for (
    const over of [{}, { c: 6, m: 6, group: 6 }, {
      kh: 1,
      kw: 1,
      padTop: 0,
      padLeft: 0,
      padBottom: 0,
      padRight: 0,
    }]
  ) {
    check({ ...convParams(convShape(over)), activation: "relu" }, seed++);
    check({ ...convParams(convShape(over)), activation: "clip", clipMin: -0.25, clipMax: 0.5 }, seed++);
    check({ ...convParams(convShape(over)), activation: "clip", clipMin: 0, clipMax: 6 }, seed++);
  }
});

Deno.test("conv2d with prepacked weights gives the same results as packing per call", async () => {
  await init();
  let seed = 700;
  for (
    const over of [{}, { c: 6, m: 6, group: 6 }, { c: 6, m: 9, group: 3 }, {
      kh: 1,
      kw: 1,
      padTop: 0,
      padLeft: 0,
      padBottom: 0,
      padRight: 0,
    }]
  ) {
    check(convParams(convShape(over)), seed++, { prepacked: true });
  }
});

Deno.test("conv2d on random awkward shapes", async () => {
  await init();
  const r = randomInts(42);
  for (let i = 0; i < 150; i++) {
    const groupKind = r(0, 2);
    const cg = r(1, 6), mg = r(1, 7);
    const group = groupKind === 0 ? 1 : groupKind === 1 ? r(2, 3) : r(1, 8);
    const depthwise = groupKind === 2;
    const kh = r(1, 4), kw = r(1, 4);
    const s: ConvShape = {
      n: r(1, 3),
      c: depthwise ? group : cg * group,
      m: depthwise ? group : mg * group,
      h: r(kh, 12),
      w: r(kw, 12),
      kh,
      kw,
      strideH: r(1, 3),
      strideW: r(1, 3),
      dilationH: r(1, 2),
      dilationW: r(1, 2),
      padTop: r(0, 2),
      padLeft: r(0, 2),
      padBottom: r(0, 2),
      padRight: r(0, 2),
      group,
    };
    const p = convParams(s);
    if (p.outH < 1 || p.outW < 1) continue;
    const act = r(0, 2);
    if (act === 1) p.activation = "relu";
    if (act === 2) Object.assign(p, { activation: "clip", clipMin: -0.3, clipMax: 0.4 });
    check(p, 1000 + i, { bias: r(0, 1) === 1, prepacked: r(0, 1) === 1 });
  }
});

Deno.test("conv2d rejects params that do not describe a convolution", async () => {
  await init();
  assert.throws(() => conv2dWorkspaceBytes(convParams(convShape({ c: 5, group: 2 }))), {
    name: "AttnroundError",
    code: "INVALID_ARGUMENT",
  });
  assert.throws(() => conv2dWorkspaceBytes(convParams(convShape({ strideH: 0 }))), {
    code: "INVALID_ARGUMENT",
  });
  assert.throws(
    () => conv2d({ ...convParams(convShape({})), activation: "gelu" as "relu" }, 0, 0, 0, 0, 0),
    { code: "INVALID_ARGUMENT" },
  );
});
