// The backward kernels beside their forward, on the same shapes, timed in
// turns in one run (forward, dX, dW, forward, …; the fastest of each), so
// that the ratios hold however loaded the machine is:
// - the convolutions of bench:kernels (ResNet-18 and MobileNetV2 layers,
//   batch 32): dX and dW at the forward's FLOP count, as block
//   reconstruction runs them (dX flips and packs the weights every call, as
//   it must when the weights change every iteration; the forward reads
//   weights packed once, with no fused activation);
// - the matrix products of the fixture models' classifiers and of
//   vit_fmnist's blocks: dA and dB as the Gemm and MatMul gradients call the
//   GEMM;
// - pooling: input elements per second of the forward and of dX.
// GFLOP/s count a multiply-add as 2.
//   deno task bench:backward [--quick] [--only <text in the layer's name>]
import { init } from "../mod.ts";
import {
  conv2d,
  conv2dPackedWeightsBytes,
  conv2dPackWeights,
  conv2dWorkspaceBytes,
} from "../src/kernels/conv2d.ts";
import {
  conv2dBackwardInput,
  conv2dBackwardInputPath,
  conv2dBackwardInputWorkspaceBytes,
  conv2dBackwardWeights,
  conv2dBackwardWeightsWorkspaceBytes,
} from "../src/kernels/conv2d-grad.ts";
import { gemmAt, type GemmShape } from "../src/kernels/gemm.ts";
import {
  averagePool2d,
  type AveragePool2dParams,
  averagePool2dWorkspaceBytes,
  globalAveragePool,
  type GlobalPoolParams,
  maxPool2d,
  maxPool2dWorkspaceBytes,
  type Pool2dParams,
} from "../src/kernels/pool.ts";
import {
  averagePool2dBackward,
  globalAveragePoolBackward,
  maxPool2dBackward,
} from "../src/kernels/pool-grad.ts";
import { alloc, free } from "../src/wasm.ts";
import { convs, fill, timeSideBySide } from "./layers.ts";
import { option } from "./fmnist.ts";

await init();
const quick = Deno.args.includes("--quick");
const seconds = quick ? 0.3 : 1;
const only = option("only", "");
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

console.log(
  "| convolution (batch 32) | forward GFLOP/s | dX path | dX GFLOP/s | dX / forward | dW GFLOP/s | dW / forward |",
);
console.log("|---|---:|---|---:|---:|---:|---:|");
for (const [name, conv] of convs) {
  if (!name.includes(only)) continue;
  const p = { ...conv, activation: "none" as const };
  const xLen = p.n * p.c * p.h * p.w, wLen = p.m * (p.c / p.group) * p.kh * p.kw;
  const yLen = p.n * p.m * p.outH * p.outW;
  const flops = 2 * yLen * (p.c / p.group) * p.kh * p.kw;
  const x = alloc(xLen * 4),
    w = alloc(wLen * 4),
    y = alloc(yLen * 4),
    dx = alloc(xLen * 4),
    dw = alloc(wLen * 4);
  const packed = alloc(conv2dPackedWeightsBytes(p));
  const work = alloc(conv2dWorkspaceBytes(p, { prepacked: true }));
  const workX = alloc(conv2dBackwardInputWorkspaceBytes(p)),
    workW = alloc(conv2dBackwardWeightsWorkspaceBytes(p));
  fill(x, xLen, 1), fill(w, wLen, 2), fill(y, yLen, 3);
  conv2dPackWeights(p, w, packed);
  const [forward, backX, backW] = timeSideBySide([
    () => conv2d(p, x, 0, 0, y, work, packed),
    () => conv2dBackwardInput(p, y, w, dx, workX),
    () => conv2dBackwardWeights(p, x, y, dw, workW),
  ], seconds).map((s) => flops / s / 1e9);
  free(workW), free(workX), free(work), free(packed), free(dw), free(dx), free(y), free(w), free(x);
  console.log(
    `| ${name} | ${forward.toFixed(2)} | ${conv2dBackwardInputPath(p)} | ${backX.toFixed(2)} | ${
      ratio(backX, forward)
    } | ${backW.toFixed(2)} | ${ratio(backW, forward)} |`,
  );
}

// Y [m, n] = op(A)·op(B); the gradients as src/engine/ops/nn-grad.ts calls the GEMM.
interface Product {
  name: string;
  m: number;
  n: number;
  k: number;
  transB: boolean;
}
const products: Product[] = [
  { name: "resnet18_fmnist classifier: Gemm [32, 128]·[10, 128]ᵀ", m: 32, n: 10, k: 128, transB: true },
  { name: "mobilenetv2_fmnist classifier: Gemm [32, 1280]·[10, 1280]ᵀ", m: 32, n: 10, k: 1280, transB: true },
  { name: "vit_fmnist qkv: MatMul [32·50, 64]·[64, 192]", m: 1600, n: 192, k: 64, transB: false },
  { name: "vit_fmnist mlp.2: MatMul [32·50, 128]·[128, 64]", m: 1600, n: 64, k: 128, transB: false },
];
console.log("");
console.log("| matrix product | forward GFLOP/s | dA GFLOP/s | dA / forward | dB GFLOP/s | dB / forward |");
console.log("|---|---:|---:|---:|---:|---:|");
for (const { name, m, n, k, transB } of products) {
  if (!name.includes(only)) continue;
  const flops = 2 * m * n * k;
  const a = alloc(m * k * 4),
    b = alloc(k * n * 4),
    y = alloc(m * n * 4),
    da = alloc(m * k * 4),
    db = alloc(k * n * 4);
  fill(a, m * k, 1), fill(b, k * n, 2), fill(y, m * n, 3);
  const ldb = transB ? k : n;
  const forward: GemmShape = { transA: false, transB, m, n, k, lda: k, ldb, ldc: n, accumulate: false };
  // dA [m, k] = dY · op(B)ᵀ
  const gradA: GemmShape = {
    transA: false,
    transB: !transB,
    m,
    n: k,
    k: n,
    lda: n,
    ldb,
    ldc: k,
    accumulate: false,
  };
  // dB = op(A)ᵀ·dY [k, n], or dYᵀ·A [n, k] when B is transposed
  const gradB: GemmShape = transB
    ? { transA: true, transB: false, m: n, n: k, k: m, lda: n, ldb: k, ldc: k, accumulate: false }
    : { transA: true, transB: false, m: k, n, k: m, lda: k, ldb: n, ldc: n, accumulate: false };
  const [f, ra, rb] = timeSideBySide([
    () => gemmAt(forward, a, b, y),
    () => gemmAt(gradA, y, b, da),
    () => transB ? gemmAt(gradB, y, a, db) : gemmAt(gradB, a, y, db),
  ], seconds).map((s) => flops / s / 1e9);
  free(db), free(da), free(y), free(b), free(a);
  console.log(
    `| ${name} | ${f.toFixed(2)} | ${ra.toFixed(2)} | ${ratio(ra, f)} | ${rb.toFixed(2)} | ${ratio(rb, f)} |`,
  );
}

// Pooling at batch 32: input elements per second (Gelem/s) of the forward and of dX.
const n = 32;
const window = (c: number, size: number, k: number, stride: number, pad: number): Pool2dParams => {
  const out = Math.floor((size + 2 * pad - k) / stride) + 1;
  return {
    n,
    c,
    h: size,
    w: size,
    kh: k,
    kw: k,
    strideH: stride,
    strideW: stride,
    padTop: pad,
    padLeft: pad,
    padBottom: pad,
    padRight: pad,
    outH: out,
    outW: out,
  };
};
const maxPool = window(64, 56, 3, 2, 1);
const avgPool: AveragePool2dParams = { ...window(64, 28, 2, 2, 0), countIncludePad: false };
const gap: GlobalPoolParams = { n, c: 1280, size: 16 };
const gapResnet: GlobalPoolParams = { n, c: 128, size: 16 };
const pools: [
  string,
  number,
  number,
  (x: number, y: number, dy: number, dx: number, work: number) => void,
  (
    x: number,
    y: number,
    dy: number,
    dx: number,
    work: number,
  ) => void,
][] = [
  [
    "maxPool 3×3 stride 2, 64 ch 56×56",
    n * 64 * 56 * 56,
    n * 64 * 28 * 28,
    (x, y, _dy, _dx, work) => maxPool2d(maxPool, x, y, work),
    (x, _y, dy, dx) => maxPool2dBackward(maxPool, x, dy, dx),
  ],
  [
    "averagePool 2×2 stride 2, 64 ch 28×28",
    n * 64 * 28 * 28,
    n * 64 * 14 * 14,
    (x, y, _dy, _dx, work) => averagePool2d(avgPool, x, y, work),
    (_x, _y, dy, dx) => averagePool2dBackward(avgPool, dy, dx),
  ],
  [
    "globalAveragePool 1280 ch 4×4 (mobilenetv2_fmnist)",
    n * 1280 * 16,
    n * 1280,
    (x, y) => globalAveragePool(gap, x, y),
    (_x, _y, dy, dx) => globalAveragePoolBackward(gap, dy, dx),
  ],
  [
    "globalAveragePool 128 ch 4×4 (resnet18_fmnist)",
    n * 128 * 16,
    n * 128,
    (x, y) => globalAveragePool(gapResnet, x, y),
    (_x, _y, dy, dx) => globalAveragePoolBackward(gapResnet, dy, dx),
  ],
];
console.log("");
console.log("| pooling (batch 32) | forward Gelem/s | dX Gelem/s | dX / forward |");
console.log("|---|---:|---:|---:|");
for (const [name, inLen, outLen, forward, backward] of pools) {
  if (!name.includes(only)) continue;
  const x = alloc(inLen * 4), y = alloc(outLen * 4), dy = alloc(outLen * 4), dx = alloc(inLen * 4);
  const work = alloc(Math.max(maxPool2dWorkspaceBytes(maxPool), averagePool2dWorkspaceBytes(avgPool)));
  fill(x, inLen, 4), fill(dy, outLen, 5);
  const [f, b] = timeSideBySide(
    [() => forward(x, y, dy, dx, work), () => backward(x, y, dy, dx, work)],
    seconds,
  )
    .map((s) => inLen / s / 1e9);
  free(work), free(dx), free(dy), free(y), free(x);
  console.log(`| ${name} | ${f.toFixed(2)} | ${b.toFixed(2)} | ${ratio(b, f)} |`);
}
