// Kernel throughput: the wasm SIMD kernels beside their TypeScript references.
// First the convolutions of a ResNet-18-like and a MobileNetV2-like network at
// batch 32, in GFLOP/s (a multiply-add counts 2; weights prepacked, relu
// fused); then their backward (dX and dW, which block reconstruction runs
// thousands of times per block) beside the forward, at the forward's FLOP
// count; then a few memory-bound kernels in elements per second. Each time is
// the fastest of repeated runs, since the machine may be shared.
//   deno task bench:kernels [--quick]
import { init } from "../mod.ts";
import {
  conv2d,
  conv2dOutputSize,
  conv2dPackedWeightsBytes,
  conv2dPackWeights,
  type Conv2dParams,
  conv2dPath,
  conv2dReference,
  conv2dWorkspaceBytes,
} from "../src/kernels/conv2d.ts";
import {
  conv2dBackwardInput,
  conv2dBackwardInputPath,
  conv2dBackwardInputWorkspaceBytes,
  conv2dBackwardWeights,
  conv2dBackwardWeightsWorkspaceBytes,
} from "../src/kernels/conv2d-grad.ts";
import { binary } from "../src/kernels/binary.ts";
import {
  globalAveragePool,
  globalAveragePoolReference,
  maxPool2d,
  maxPool2dReference,
  maxPool2dWorkspaceBytes,
  type Pool2dParams,
} from "../src/kernels/pool.ts";
import { type BinaryParams, binaryReference } from "../src/kernels/binary.ts";
import { unary, type UnaryParams, unaryReference } from "../src/kernels/unary.ts";
import { alloc, f32, free } from "../src/wasm.ts";

await init();
const quick = Deno.args.includes("--quick");
const seconds = quick ? 0.3 : 1;

function conv(
  n: number,
  c: number,
  m: number,
  size: number,
  k: number,
  stride: number,
  group = 1,
): Conv2dParams {
  const pad = (k - 1) >> 1;
  const out = conv2dOutputSize(size, k, stride, pad, pad, 1);
  return {
    n,
    c,
    h: size,
    w: size,
    m,
    kh: k,
    kw: k,
    strideH: stride,
    strideW: stride,
    padTop: pad,
    padLeft: pad,
    padBottom: pad,
    padRight: pad,
    dilationH: 1,
    dilationW: 1,
    group,
    outH: out,
    outW: out,
    activation: "relu",
  };
}

const convs: [string, Conv2dParams][] = [
  ["resnet18: 3×3 16→16, 28×28", conv(32, 16, 16, 28, 3, 1)],
  ["resnet18: 3×3 32→32, 14×14", conv(32, 32, 32, 14, 3, 1)],
  ["resnet18: 3×3 64→64, 7×7", conv(32, 64, 64, 7, 3, 1)],
  ["resnet18: 3×3 128→128, 4×4", conv(32, 128, 128, 4, 3, 1)],
  ["resnet18: 3×3 16→32 stride 2, 28×28", conv(32, 16, 32, 28, 3, 2)],
  ["resnet18: 1×1 32→64 stride 2, 14×14", conv(32, 32, 64, 14, 1, 2)],
  ["mobilenetv2: dw 3×3 96 ch, 56×56 stride 2", conv(32, 96, 96, 56, 3, 2, 96)],
  ["mobilenetv2: dw 3×3 144 ch, 28×28", conv(32, 144, 144, 28, 3, 1, 144)],
  ["mobilenetv2: dw 3×3 384 ch, 14×14", conv(32, 384, 384, 14, 3, 1, 384)],
  ["mobilenetv2: 1×1 24→144, 28×28", conv(32, 24, 144, 28, 1, 1)],
  ["mobilenetv2: 1×1 144→24, 28×28", conv(32, 144, 24, 28, 1, 1)],
  ["mobilenetv2: 1×1 64→384, 14×14", conv(32, 64, 384, 14, 1, 1)],
  ["mobilenetv2: 1×1 960→160, 7×7", conv(32, 960, 160, 7, 1, 1)],
];

// Seconds per run: the fastest of repeated runs, since the machine may be shared.
function timeIt(run: () => void, minSeconds: number): number {
  run();
  let best = Infinity;
  const start = performance.now();
  do {
    const t0 = performance.now();
    run();
    best = Math.min(best, performance.now() - t0);
  } while (performance.now() - start < minSeconds * 1000);
  return best / 1000;
}

function fill(ptr: number, length: number, seed: number): Float32Array {
  const view = f32(ptr, length);
  for (let i = 0; i < length; i++) view[i] = Math.sin(i * 0.37 + seed) * 0.5;
  return view.slice();
}

console.log(
  "| convolution (batch 32, fused relu) | path | wasm SIMD GFLOP/s | TS reference GFLOP/s | ratio |",
);
console.log("|---|---|---:|---:|---:|");
for (const [name, p] of convs) {
  const xLen = p.n * p.c * p.h * p.w, wLen = p.m * (p.c / p.group) * p.kh * p.kw;
  const yLen = p.n * p.m * p.outH * p.outW;
  const flops = 2 * yLen * (p.c / p.group) * p.kh * p.kw;
  const x = alloc(xLen * 4), w = alloc(wLen * 4), b = alloc(p.m * 4), y = alloc(yLen * 4);
  const packed = alloc(conv2dPackedWeightsBytes(p));
  const work = alloc(conv2dWorkspaceBytes(p, { prepacked: true }));
  const xs = fill(x, xLen, 1), ws = fill(w, wLen, 2), bs = fill(b, p.m, 3);
  conv2dPackWeights(p, w, packed);
  const wasmRate = flops / timeIt(() => conv2d(p, x, 0, b, y, work, packed), seconds) / 1e9;
  // The reference is slow: time it on one image and scale.
  const one = { ...p, n: 1 };
  const ys = new Float32Array(yLen / p.n);
  const refRate = flops / p.n / timeIt(() => conv2dReference(one, xs, ws, bs, ys), seconds / 2) / 1e9;
  free(work), free(packed), free(y), free(b), free(w), free(x);
  console.log(
    `| ${name} | ${conv2dPath(p)} | ${wasmRate.toFixed(2)} | ${refRate.toFixed(2)} | ${
      (wasmRate / refRate).toFixed(0)
    }× |`,
  );
}

// Backward: dX and dW from dy, at the forward's FLOP count (each is one more
// pass of the same multiply-adds). The forward here has no fused activation.
console.log("");
console.log(
  "| convolution backward (batch 32) | forward GFLOP/s | dX path | dX GFLOP/s | dW GFLOP/s |",
);
console.log("|---|---:|---|---:|---:|");
for (const [name, conv] of convs) {
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
  const forward = flops / timeIt(() => conv2d(p, x, 0, 0, y, work, packed), seconds) / 1e9;
  const rateX = flops / timeIt(() => conv2dBackwardInput(p, y, w, dx, workX), seconds) / 1e9;
  const rateW = flops / timeIt(() => conv2dBackwardWeights(p, x, y, dw, workW), seconds) / 1e9;
  free(workW), free(workX), free(work), free(packed), free(dw), free(dx), free(y), free(w), free(x);
  console.log(
    `| ${name} | ${forward.toFixed(2)} | ${conv2dBackwardInputPath(p)} | ${rateX.toFixed(2)} | ${
      rateW.toFixed(2)
    } |`,
  );
}

// Memory-bound kernels: elements written per second, batch 32.
const n = 32;
const pool: Pool2dParams = {
  n,
  c: 64,
  h: 56,
  w: 56,
  kh: 3,
  kw: 3,
  strideH: 2,
  strideW: 2,
  padTop: 1,
  padLeft: 1,
  padBottom: 1,
  padRight: 1,
  outH: 28,
  outW: 28,
};
const add: BinaryParams = {
  op: "add",
  aShape: [n, 64, 28, 28],
  bShape: [1, 64, 1, 1],
  outShape: [n, 64, 28, 28],
};
const residual: BinaryParams = {
  op: "add",
  aShape: [n, 64, 28, 28],
  bShape: [n, 64, 28, 28],
  outShape: [n, 64, 28, 28],
};
const size = n * 64 * 28 * 28;
const unaryOf = (op: UnaryParams["op"]): UnaryParams => ({ op, length: size });
const memoryBound: [
  string,
  number,
  number,
  (x: number, y: number, work: number) => void,
  (x: Float32Array, y: Float32Array) => void,
][] = [
  [
    "relu, in place",
    size,
    size,
    (x) => unary(unaryOf("relu"), x, x),
    (x) => unaryReference(unaryOf("relu"), x, x),
  ],
  [
    "sigmoid",
    size,
    size,
    (x, y) => unary(unaryOf("sigmoid"), x, y),
    (x, y) => unaryReference(unaryOf("sigmoid"), x, y),
  ],
  [
    "tanh",
    size,
    size,
    (x, y) => unary(unaryOf("tanh"), x, y),
    (x, y) => unaryReference(unaryOf("tanh"), x, y),
  ],
  ["erf", size, size, (x, y) => unary(unaryOf("erf"), x, y), (x, y) => unaryReference(unaryOf("erf"), x, y)],
  [
    "add [32,64,28,28] + [1,64,1,1]",
    size,
    size,
    (x, y) => binary(add, x, x, y),
    (x, y) => binaryReference(add, x, x.subarray(0, 64), y),
  ],
  [
    "add [32,64,28,28] + same",
    size,
    size,
    (x, y) => binary(residual, x, x, y),
    (x, y) => binaryReference(residual, x, x, y),
  ],
  [
    "maxPool 3×3 stride 2, 64 ch 56×56",
    n * 64 * 56 * 56,
    n * 64 * 28 * 28,
    (x, y, work) => maxPool2d(pool, x, y, work),
    (x, y) => maxPool2dReference(pool, x, y),
  ],
  [
    "globalAveragePool 64 ch 28×28",
    size,
    n * 64,
    (x, y) => globalAveragePool({ n, c: 64, size: 784 }, x, y),
    (x, y) => globalAveragePoolReference({ n, c: 64, size: 784 }, x, y),
  ],
];
console.log("");
console.log("| kernel (batch 32) | wasm SIMD Gelem/s | TS reference Gelem/s | ratio |");
console.log("|---|---:|---:|---:|");
for (const [name, inLen, outLen, run, reference] of memoryBound) {
  const x = alloc(inLen * 4), y = alloc(inLen * 4), work = alloc(maxPool2dWorkspaceBytes(pool));
  const xs = fill(x, inLen, 4);
  const wasmRate = outLen / timeIt(() => run(x, y, work), seconds) / 1e9;
  const ys = new Float32Array(inLen);
  const refRate = outLen / timeIt(() => reference(xs, ys), seconds / 2) / 1e9;
  free(work), free(y), free(x);
  console.log(
    `| ${name} | ${wasmRate.toFixed(2)} | ${refRate.toFixed(3)} | ${(wasmRate / refRate).toFixed(0)}× |`,
  );
}
