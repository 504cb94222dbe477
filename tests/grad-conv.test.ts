// Conv's registered backward (dX, dW, dB) against float64 finite differences.
import { init } from "../mod.ts";
import { conv2dOutputSize, type Conv2dParams, conv2dReference } from "../src/kernels/conv2d.ts";
import { checkGradient, type Input, uniform } from "./grad-helpers.ts";
import type { Tensor } from "../src/tensor.ts";

interface ConvCase {
  n?: number;
  c: number;
  m: number;
  /** Spatial size: [h, w], or [w] for a 1-D conv. */
  size: number[];
  kernel: number[];
  strides?: number[];
  /** ONNX pads: begins, then ends. */
  pads?: number[];
  dilations?: number[];
  group?: number;
  bias?: boolean;
  autoPad?: string;
}

function convCase(name: string, s: ConvCase, seed: number): void {
  const rank = s.size.length, n = s.n ?? 2, group = s.group ?? 1;
  const strides = s.strides ?? s.size.map(() => 1), dilations = s.dilations ?? s.size.map(() => 1);
  let pads = s.pads ?? new Array(2 * rank).fill(0);
  if (s.autoPad === "SAME_UPPER" || s.autoPad === "SAME_LOWER") {
    pads = new Array(2 * rank).fill(0);
    for (let i = 0; i < rank; i++) {
      const out = Math.ceil(s.size[i] / strides[i]);
      const total = Math.max(0, (out - 1) * strides[i] + dilations[i] * (s.kernel[i] - 1) + 1 - s.size[i]);
      pads[i] = s.autoPad === "SAME_UPPER" ? Math.floor(total / 2) : total - Math.floor(total / 2);
      pads[i + rank] = total - pads[i];
    }
  }
  // The 1-D case as 2-D with height 1, as the op lays it out.
  const two = (v: number[], one: number) => (rank === 2 ? v : [one, v[0]]);
  const [h, w] = two(s.size, 1), [kh, kw] = two(s.kernel, 1), [sh, sw] = two(strides, 1);
  const [dh, dw] = two(dilations, 1);
  const [pt, pl, pb, pr] = rank === 2 ? pads : [0, pads[0], 0, pads[1]];
  const p: Conv2dParams = {
    n,
    c: s.c,
    h,
    w,
    m: s.m,
    kh,
    kw,
    strideH: sh,
    strideW: sw,
    padTop: pt,
    padLeft: pl,
    padBottom: pb,
    padRight: pr,
    dilationH: dh,
    dilationW: dw,
    group,
    outH: conv2dOutputSize(h, kh, sh, pt, pb, dh),
    outW: conv2dOutputSize(w, kw, sw, pl, pr, dw),
  };
  const inputs: Tensor[] = [
    uniform([n, s.c, ...s.size], seed),
    uniform([s.m, s.c / group, ...s.kernel], seed + 1),
  ];
  if (s.bias !== false) inputs.push(uniform([s.m], seed + 2));
  const attributes: Record<string, number[] | number | string> = {
    strides,
    dilations,
    group,
    kernel_shape: s.kernel,
  };
  if (s.autoPad) attributes.auto_pad = s.autoPad;
  else attributes.pads = pads;
  checkGradient({
    name,
    op: "Conv",
    attributes,
    inputs,
    reference: ([x, wt, b]: Input[]) => {
      const y = new Float64Array(p.n * p.m * p.outH * p.outW);
      conv2dReference(p, x as Float64Array, wt as Float64Array, (b as Float64Array | undefined) ?? null, y);
      return [y];
    },
  }, seed);
}

Deno.test("Conv gradient: 3×3, odd sizes, strides 1-2, bias", async () => {
  await init();
  convCase("3×3 s1 p1", { c: 3, m: 5, size: [7, 9], kernel: [3, 3], pads: [1, 1, 1, 1] }, 1);
  convCase("3×3 s2 p1", { c: 3, m: 4, size: [7, 8], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, 2);
  convCase("3×3 s(2,1) no pad", { c: 2, m: 3, size: [9, 6], kernel: [3, 3], strides: [2, 1] }, 3);
  convCase("3×3 s1 without bias", {
    c: 4,
    m: 6,
    size: [5, 6],
    kernel: [3, 3],
    pads: [1, 1, 1, 1],
    bias: false,
  }, 4);
});

Deno.test("Conv gradient: asymmetric pads, dilation 2, rectangular and large kernels", async () => {
  await init();
  convCase("pads 0,2,1,0", { c: 3, m: 4, size: [6, 7], kernel: [3, 3], pads: [0, 2, 1, 0] }, 10);
  convCase("pads 2,0,0,3 s2", {
    c: 2,
    m: 3,
    size: [7, 7],
    kernel: [3, 3],
    strides: [1, 2],
    pads: [2, 0, 0, 3],
  }, 11);
  convCase(
    "dilation 2",
    { c: 3, m: 4, size: [9, 8], kernel: [3, 3], dilations: [2, 2], pads: [2, 2, 2, 2] },
    12,
  );
  convCase("dilation (2,1) s2", {
    c: 2,
    m: 3,
    size: [11, 9],
    kernel: [3, 2],
    dilations: [2, 1],
    strides: [2, 2],
    pads: [1, 0, 2, 1],
  }, 13);
  convCase("5×5 s3", { c: 2, m: 3, size: [11, 12], kernel: [5, 5], strides: [3, 3], pads: [2, 2, 2, 2] }, 14);
  convCase("pad beyond the kernel (col2im at stride 1)", {
    c: 2,
    m: 3,
    size: [5, 6],
    kernel: [3, 3],
    pads: [3, 1, 0, 4],
  }, 15);
  convCase("auto_pad SAME_UPPER s2", {
    c: 3,
    m: 2,
    size: [7, 6],
    kernel: [3, 3],
    strides: [2, 2],
    autoPad: "SAME_UPPER",
  }, 16);
});

Deno.test("Conv gradient: 1×1 (pointwise, strided, padded, groups)", async () => {
  await init();
  convCase("1×1", { c: 5, m: 7, size: [6, 5], kernel: [1, 1] }, 20);
  convCase("1×1 s2", { c: 4, m: 6, size: [7, 7], kernel: [1, 1], strides: [2, 2] }, 21);
  convCase("1×1 padded", { c: 3, m: 2, size: [4, 5], kernel: [1, 1], pads: [1, 0, 0, 1] }, 22);
  convCase("1×1, 48 output pixels", { c: 5, m: 7, size: [8, 6], kernel: [1, 1] }, 23);
  convCase("1×1 s2, 16 output pixels", {
    c: 6,
    m: 4,
    size: [8, 8],
    kernel: [1, 1],
    strides: [2, 2],
    group: 2,
  }, 24);
});

Deno.test("Conv gradient: groups 2, 3 and depthwise (strides 1-2, dilation, large pads)", async () => {
  await init();
  convCase("groups 2", { c: 4, m: 6, size: [6, 7], kernel: [3, 3], pads: [1, 1, 1, 1], group: 2 }, 30);
  convCase("groups 3 s2", {
    c: 6,
    m: 3,
    size: [7, 6],
    kernel: [3, 3],
    strides: [2, 2],
    pads: [1, 0, 1, 2],
    group: 3,
  }, 31);
  convCase("depthwise s1", { c: 4, m: 4, size: [7, 9], kernel: [3, 3], pads: [1, 1, 1, 1], group: 4 }, 32);
  convCase("depthwise s2", {
    c: 5,
    m: 5,
    size: [9, 8],
    kernel: [3, 3],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    group: 5,
  }, 33);
  convCase("depthwise s2 odd pads", {
    c: 3,
    m: 3,
    size: [8, 11],
    kernel: [3, 3],
    strides: [2, 2],
    pads: [0, 1, 1, 0],
    group: 3,
  }, 34);
  convCase("depthwise dilation 2", {
    c: 3,
    m: 3,
    size: [9, 9],
    kernel: [3, 3],
    dilations: [2, 2],
    pads: [2, 2, 2, 2],
    group: 3,
  }, 35);
  convCase("depthwise 5×5 s3", {
    c: 2,
    m: 2,
    size: [11, 13],
    kernel: [5, 5],
    strides: [3, 3],
    pads: [2, 2, 2, 2],
    group: 2,
  }, 36);
  convCase("depthwise pad beyond the kernel", {
    c: 2,
    m: 2,
    size: [5, 6],
    kernel: [3, 3],
    pads: [3, 0, 1, 3],
    group: 2,
  }, 37);
  convCase(
    "channel multiplier 2",
    { c: 3, m: 6, size: [6, 6], kernel: [3, 3], pads: [1, 1, 1, 1], group: 3 },
    38,
  );
});

Deno.test("Conv gradient: 1-D", async () => {
  await init();
  convCase("1-D k3 s1", { c: 3, m: 4, size: [11], kernel: [3], pads: [1, 1] }, 40);
  convCase("1-D k4 s2 dilation 2", {
    c: 2,
    m: 3,
    size: [17],
    kernel: [4],
    strides: [2],
    dilations: [2],
    pads: [2, 1],
  }, 41);
  convCase(
    "1-D depthwise s2",
    { c: 4, m: 4, size: [13], kernel: [3], strides: [2], pads: [1, 1], group: 4 },
    42,
  );
});
