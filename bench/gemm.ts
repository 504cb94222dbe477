// GEMM throughput: the wasm SIMD kernel beside the plain TypeScript reference,
// in one run. Prints a Markdown table of GFLOP/s.
//   deno task bench
import { init } from "../mod.ts";
import { gemmAt, gemmReference, type GemmShape } from "../src/kernels/gemm.ts";
import { alloc, f32, free } from "../src/wasm.ts";

await init();

const shapes: [string, number, number, number][] = [
  ["square 64", 64, 64, 64],
  ["square 256", 256, 256, 256],
  ["square 512", 512, 512, 512],
  ["square 1024", 1024, 1024, 1024],
  ["conv 3x3, 64→64 ch, 14×14 ×32 imgs", 64, 6272, 576],
  ["conv 1x1, 32→128 ch, 7×7 ×32 imgs", 128, 1568, 32],
];

function timeIt(run: () => void, minSeconds: number): number {
  run();
  let reps = 0;
  const start = performance.now();
  do {
    run();
    reps++;
  } while (performance.now() - start < minSeconds * 1000);
  return (performance.now() - start) / 1000 / reps;
}

console.log("| shape | M | N | K | wasm SIMD GFLOP/s | TS reference GFLOP/s | ratio |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const [name, m, n, k] of shapes) {
  const s: GemmShape = { transA: false, transB: false, m, n, k, lda: k, ldb: n, ldc: n, accumulate: false };
  const pa = alloc(m * k * 4), pb = alloc(k * n * 4), pc = alloc(m * n * 4);
  f32(pa, m * k).fill(0.5);
  f32(pb, k * n).fill(0.25);
  const flops = 2 * m * n * k;
  const wasmSeconds = timeIt(() => gemmAt(s, pa, pb, pc), 1);
  const a = new Float32Array(m * k).fill(0.5),
    b = new Float32Array(k * n).fill(0.25),
    c = new Float32Array(m * n);
  const refSeconds = timeIt(() => gemmReference(s, a, b, c), 1);
  free(pa), free(pb), free(pc);
  const wasmRate = flops / wasmSeconds / 1e9, refRate = flops / refSeconds / 1e9;
  console.log(
    `| ${name} | ${m} | ${n} | ${k} | ${wasmRate.toFixed(2)} | ${refRate.toFixed(2)} | ${
      (wasmRate / refRate).toFixed(1)
    }× |`,
  );
}
