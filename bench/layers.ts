// What bench:kernels and bench:backward share: the convolutions of a
// ResNet-18-like and a MobileNetV2-like network at batch 32 (the first six are
// resnet18_fmnist's own, the last four mobilenetv2_fmnist's), random fills of
// wasm memory, and a timer that keeps the fastest of repeated runs.
import { conv2dOutputSize, type Conv2dParams } from "../src/kernels/conv2d.ts";
import { f32 } from "../src/wasm.ts";

/** A square conv with "same" padding (k − 1)/2 and a fused relu. */
export function conv(
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

export const convs: [string, Conv2dParams][] = [
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
  // Where mobilenetv2_fmnist spends most of its depthwise and pointwise work.
  ["mobilenetv2_fmnist: dw 3×3 96 ch, 14×14 stride 2", conv(32, 96, 96, 14, 3, 2, 96)],
  ["mobilenetv2_fmnist: dw 3×3 192 ch, 7×7", conv(32, 192, 192, 7, 3, 1, 192)],
  ["mobilenetv2_fmnist: 1×1 32→192, 7×7", conv(32, 32, 192, 7, 1, 1)],
  ["mobilenetv2_fmnist: 1×1 192→32, 7×7", conv(32, 192, 32, 7, 1, 1)],
];

/** Seconds per run: the fastest of repeated runs, since the machine may be shared. */
export function timeIt(run: () => void, minSeconds: number): number {
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

/**
 * Seconds per run of each of `runs`, timed in turns (one run of each, again
 * and again) so that all of them see the same load; the fastest of each.
 */
export function timeSideBySide(runs: (() => void)[], minSeconds: number): number[] {
  for (const run of runs) run();
  const best = runs.map(() => Infinity);
  const start = performance.now();
  do {
    runs.forEach((run, i) => {
      const t0 = performance.now();
      run();
      best[i] = Math.min(best[i], performance.now() - t0);
    });
  } while (performance.now() - start < minSeconds * 1000 * runs.length);
  return best.map((ms) => ms / 1000);
}

/** Fills `length` floats at `ptr` with a deterministic pattern in [-0.5, 0.5]; returns a host copy. */
export function fill(ptr: number, length: number, seed: number): Float32Array {
  const view = f32(ptr, length);
  for (let i = 0; i < length; i++) view[i] = Math.sin(i * 0.37 + seed) * 0.5;
  return view.slice();
}
