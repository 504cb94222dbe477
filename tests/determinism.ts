// The digest of a short seeded quantization of tiny_cnn_fmnist (attention
// rounding, stochastic): weights, steps and loss curves. Run as a program it
// prints the digest, so a test can compare runtimes:
//   deno run -A tests/determinism.ts      node tests/run-node.mjs --main tests/determinism.ts
import { init, loadModel } from "../mod.ts";
import { readNpz } from "../src/data/npy.ts";
import { quantize } from "../src/quant/quantize.ts";
import { fingerprint } from "../src/quant/state.ts";
import { imagesToInput, readFixture } from "./fixtures.ts";

export async function quantizationDigest(): Promise<string> {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const calib = imagesToInput(readNpz(readFixture("calib.npz")).x);
  const q = await quantize(model, calib, {
    weightBits: 3,
    activationBits: 4,
    iterations: 40,
    seed: 11,
    batchSize: 16,
  });
  const parts = [
    ...q.weights.map((w) => q.finalRows.get(w.layer.weight)!),
    Float32Array.from(q.report.activations.map((a) => a.step)),
    Float32Array.from(q.report.blocks.flatMap((b) => b.losses)),
  ];
  q.dispose();
  model.dispose();
  return fingerprint(...parts);
}

if (import.meta.main || (globalThis as { process?: { argv: string[] } }).process?.argv.includes("--main")) {
  console.log(`digest ${await quantizationDigest()}`);
}
