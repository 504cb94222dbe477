// Backward of Gemm, MatMul, BatchNormalization and pooling against float64 finite differences.
import { init } from "../mod.ts";
import { gemmReference } from "../src/kernels/gemm.ts";
import { matmulOutputShape, matmulReference } from "../src/kernels/matmul.ts";
import {
  type AveragePool2dParams,
  averagePool2dReference,
  globalAveragePoolReference,
  maxPool2dReference,
} from "../src/kernels/pool.ts";
import { Tensor } from "../src/tensor.ts";
import { checkGradient, type Input, uniform } from "./grad-helpers.ts";
import { randomFloats } from "./helpers.ts";

const f64 = (v: Input) => v as Float64Array;

function gemmCase(
  name: string,
  s: { m: number; n: number; k: number; transA?: boolean; transB?: boolean; alpha?: number; beta?: number },
  cShape: number[] | undefined,
  seed: number,
): void {
  const { m, n, k, transA = false, transB = false, alpha = 1, beta = 1 } = s;
  const inputs = [uniform(transA ? [k, m] : [m, k], seed), uniform(transB ? [n, k] : [k, n], seed + 1)];
  if (cShape) inputs.push(uniform(cShape, seed + 2));
  checkGradient({
    name,
    op: "Gemm",
    attributes: { transA: +transA, transB: +transB, alpha, beta },
    inputs,
    reference: ([a, b, c]) => {
      const y = new Float64Array(m * n);
      gemmReference(
        { transA, transB, m, n, k, lda: transA ? m : k, ldb: transB ? k : n, ldc: n, accumulate: false },
        f64(a),
        f64(b),
        y,
      );
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let cv = 0;
          if (c && cShape) {
            // numpy broadcast of C to [m, n]
            const shape = [...new Array(2 - cShape.length).fill(1), ...cShape];
            cv = f64(c)[(shape[0] === 1 ? 0 : i) * shape[1] + (shape[1] === 1 ? 0 : j)];
          }
          y[i * n + j] = alpha * y[i * n + j] + beta * cv;
        }
      }
      return [y];
    },
  }, seed);
}

Deno.test("Gemm gradient: transposes, alpha, beta, broadcast C", async () => {
  await init();
  let seed = 1;
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      gemmCase(
        `Gemm transA=${transA} transB=${transB}`,
        { m: 5, n: 7, k: 9, transA, transB },
        [5, 7],
        seed++,
      );
    }
  }
  gemmCase("Gemm alpha 0.5 beta 2, C [n]", { m: 4, n: 6, k: 3, alpha: 0.5, beta: 2 }, [6], seed++);
  gemmCase(
    "Gemm alpha -1.5, transB, C [m, 1]",
    { m: 6, n: 5, k: 7, alpha: -1.5, transB: true },
    [6, 1],
    seed++,
  );
  gemmCase("Gemm C scalar [1]", { m: 3, n: 4, k: 5, beta: 0.25 }, [1], seed++);
  gemmCase("Gemm C []", { m: 3, n: 4, k: 5, transA: true }, [], seed++);
  gemmCase("Gemm beta 0", { m: 3, n: 4, k: 5, beta: 0 }, [3, 4], seed++);
  gemmCase("Gemm without C", { m: 9, n: 13, k: 17, transA: true, transB: true, alpha: 2 }, undefined, seed++);
});

function matmulCase(name: string, aShape: number[], bShape: number[], seed: number): void {
  checkGradient({
    name,
    op: "MatMul",
    inputs: [uniform(aShape, seed), uniform(bShape, seed + 1)],
    reference: ([a, b]) => {
      const out = matmulOutputShape({ aShape, bShape });
      const y = new Float64Array(out.reduce((x, d) => x * d, 1));
      matmulReference({ aShape, bShape }, f64(a), f64(b), y);
      return [y];
    },
  }, seed);
}

Deno.test("MatMul gradient: 2-D, batched, broadcast batches, 1-D operands", async () => {
  await init();
  matmulCase("MatMul 2-D", [5, 7], [7, 3], 1);
  matmulCase("MatMul batch × 2-D (folded)", [2, 3, 4, 5], [5, 6], 2);
  matmulCase("MatMul 2-D × batch", [4, 5], [3, 5, 6], 3);
  matmulCase("MatMul batches broadcast both ways", [3, 1, 4, 5], [1, 2, 5, 6], 4);
  matmulCase("MatMul same batch", [2, 4, 3], [2, 3, 5], 5);
  matmulCase("MatMul 1-D × 2-D", [5], [5, 4], 6);
  matmulCase("MatMul batch × 1-D", [2, 3, 5], [5], 7);
  matmulCase("MatMul 1-D × 1-D", [6], [6], 8);
});

function batchNormCase(name: string, shape: number[], eps: number, seed: number): void {
  const c = shape[1];
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const variance = new Tensor(randomFloats(c, seed + 4).map((v) => 0.5 + Math.abs(v)), [c]);
  checkGradient({
    name,
    op: "BatchNormalization",
    attributes: { epsilon: eps },
    inputs: [
      uniform(shape, seed),
      uniform([c], seed + 1, 0.5, 1.5),
      uniform([c], seed + 2),
      uniform([c], seed + 3),
      variance,
    ],
    reference: ([x, scale, bias, mean, v]) => {
      const xd = f64(x), y = new Float64Array(xd.length);
      for (let i = 0; i < xd.length; i++) {
        const ch = Math.floor(i / inner) % c;
        y[i] = (xd[i] - f64(mean)[ch]) * f64(scale)[ch] / Math.sqrt(f64(v)[ch] + eps) + f64(bias)[ch];
      }
      return [y];
    },
  }, seed);
}

Deno.test("BatchNormalization gradient (inference mode): x and all four parameters", async () => {
  await init();
  batchNormCase("BatchNormalization [2,3,4,5]", [2, 3, 4, 5], 1e-5, 1);
  batchNormCase("BatchNormalization [3,4] eps 0.1", [3, 4], 0.1, 2);
  batchNormCase("BatchNormalization [2,5,7]", [2, 5, 7], 1e-3, 3);
});

type PoolShape = Omit<AveragePool2dParams, "n" | "c" | "h" | "w" | "outH" | "outW">;

function outSize(size: number, k: number, s: number, pb: number, pe: number, d: number, ceil: boolean) {
  const span = size + pb + pe - d * (k - 1) - 1;
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (out - 1) * s >= size + pb) out--;
  return out;
}

function poolCase(
  name: string,
  kind: "MaxPool" | "AveragePool",
  x: number[],
  s: PoolShape,
  ceil: boolean,
  seed: number,
): void {
  const oneD = x.length === 3;
  const [n, c, h, w] = oneD ? [x[0], x[1], 1, x[2]] : x;
  const dh = s.dilationH ?? 1, dw = s.dilationW ?? 1;
  const p: AveragePool2dParams = {
    ...s,
    n,
    c,
    h,
    w,
    outH: outSize(h, s.kh, s.strideH, s.padTop, s.padBottom, dh, ceil),
    outW: outSize(w, s.kw, s.strideW, s.padLeft, s.padRight, dw, ceil),
  };
  const attributes: Record<string, number | number[]> = oneD
    ? { kernel_shape: [s.kw], strides: [s.strideW], pads: [s.padLeft, s.padRight] }
    : {
      kernel_shape: [s.kh, s.kw],
      strides: [s.strideH, s.strideW],
      pads: [s.padTop, s.padLeft, s.padBottom, s.padRight],
    };
  if (s.dilationH !== undefined) attributes.dilations = oneD ? [dw] : [dh, dw];
  if (ceil) attributes.ceil_mode = 1;
  if (s.countIncludePad) attributes.count_include_pad = 1;
  checkGradient({
    name,
    op: kind,
    attributes,
    opset: 19,
    inputs: [uniform(x, seed)],
    reference: ([xv]) => {
      const y = new Float64Array(p.n * p.c * p.outH * p.outW);
      (kind === "MaxPool" ? maxPool2dReference : averagePool2dReference)(p, f64(xv), y);
      return [y];
    },
  }, seed);
}

const pads = (t: number, l: number, b: number, r: number) => ({
  padTop: t,
  padLeft: l,
  padBottom: b,
  padRight: r,
});

Deno.test("MaxPool gradient: overlapping windows, pads, ceil mode, dilation, 1-D", async () => {
  await init();
  const k3s2 = { kh: 3, kw: 3, strideH: 2, strideW: 2 };
  poolCase("MaxPool 3×3 s2 p1", "MaxPool", [2, 3, 9, 8], { ...k3s2, ...pads(1, 1, 1, 1) }, false, 1);
  poolCase(
    "MaxPool 2×2 s2",
    "MaxPool",
    [2, 2, 6, 7],
    { kh: 2, kw: 2, strideH: 2, strideW: 2, ...pads(0, 0, 0, 0) },
    false,
    2,
  );
  poolCase(
    "MaxPool 3×3 s1 asymmetric pads",
    "MaxPool",
    [1, 3, 6, 7],
    { kh: 3, kw: 3, strideH: 1, strideW: 1, ...pads(0, 2, 1, 0) },
    false,
    3,
  );
  poolCase("MaxPool 3×3 s2 ceil", "MaxPool", [2, 2, 8, 8], { ...k3s2, ...pads(0, 0, 0, 0) }, true, 4);
  poolCase(
    "MaxPool dilation 2",
    "MaxPool",
    [1, 2, 9, 9],
    { kh: 2, kw: 3, strideH: 1, strideW: 2, dilationH: 2, dilationW: 2, ...pads(1, 1, 0, 1) },
    false,
    5,
  );
  poolCase(
    "MaxPool 1-D",
    "MaxPool",
    [2, 3, 11],
    { kh: 1, kw: 3, strideH: 1, strideW: 2, ...pads(0, 1, 0, 1) },
    false,
    6,
  );
});

Deno.test("AveragePool gradient: count_include_pad, asymmetric pads, ceil mode, 1-D", async () => {
  await init();
  const k3s2 = { kh: 3, kw: 3, strideH: 2, strideW: 2 };
  poolCase("AveragePool 3×3 s2 p1", "AveragePool", [2, 3, 9, 8], { ...k3s2, ...pads(1, 1, 1, 1) }, false, 11);
  poolCase(
    "AveragePool 3×3 s2 p1 count_include_pad",
    "AveragePool",
    [2, 3, 9, 8],
    { ...k3s2, ...pads(1, 1, 1, 1), countIncludePad: true },
    false,
    12,
  );
  poolCase(
    "AveragePool 2×3 asymmetric pads",
    "AveragePool",
    [1, 2, 7, 6],
    { kh: 2, kw: 3, strideH: 1, strideW: 2, ...pads(1, 0, 0, 2) },
    false,
    13,
  );
  poolCase(
    "AveragePool ceil count_include_pad",
    "AveragePool",
    [2, 2, 8, 8],
    { ...k3s2, ...pads(1, 0, 1, 0), countIncludePad: true },
    true,
    14,
  );
  poolCase(
    "AveragePool 1-D",
    "AveragePool",
    [2, 3, 10],
    { kh: 1, kw: 4, strideH: 1, strideW: 3, ...pads(0, 2, 0, 1) },
    false,
    15,
  );
});

Deno.test("GlobalAveragePool gradient", async () => {
  await init();
  for (const [i, shape] of [[2, 3, 5, 7], [3, 4, 1, 1], [2, 5, 9]].entries()) {
    const [n, c] = shape;
    const size = shape.slice(2).reduce((a, b) => a * b, 1);
    checkGradient({
      name: `GlobalAveragePool [${shape}]`,
      op: "GlobalAveragePool",
      inputs: [uniform(shape, i + 1)],
      reference: ([x]) => {
        const y = new Float64Array(n * c);
        globalAveragePoolReference({ n, c, size }, f64(x), y);
        return [y];
      },
    }, i + 1);
  }
});
