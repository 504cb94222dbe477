// Kernel throughput: the wasm SIMD kernels beside their TypeScript references.
// First the convolutions of a ResNet-18-like and a MobileNetV2-like network at
// batch 32, in GFLOP/s (a multiply-add counts 2; weights prepacked, relu
// fused); then a few memory-bound kernels in elements per second. Each time is
// the fastest of repeated runs, since the machine may be shared. The backward
// kernels beside these forwards: bench/backward.ts.
//   deno task bench:kernels [--quick]
import { init } from "../mod.ts";
import {
  conv2d,
  conv2dPackedWeightsBytes,
  conv2dPackWeights,
  conv2dPath,
  conv2dReference,
  conv2dWorkspaceBytes,
} from "../src/kernels/conv2d.ts";
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
import { alloc, free } from "../src/wasm.ts";
import { convs, fill, timeIt } from "./layers.ts";

await init();
const quick = Deno.args.includes("--quick");
const seconds = quick ? 0.3 : 1;

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
