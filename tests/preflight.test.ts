// What quantize() settles before its first iteration (src/quant/preflight.ts):
// the batch of a model fixed to 1 is freed or the model runs sample by sample,
// a mini-batch that does not fit the memory budget trains in shards, and a
// block that cannot be reconstructed or a run that cannot fit fails at once.
import assert from "node:assert/strict";
import { AttnroundError, init, loadModel, quantize, Tensor } from "../mod.ts";
import { detectRuntime } from "../src/cli/runtime.ts";
import { readNpz } from "../src/data/npy.ts";
import { registerOps } from "../src/engine/registry.ts";
import { nodeProto, valueInfoProto } from "../src/export/proto.ts";
import { decodeModel, encodeModel } from "../src/onnx/codec.ts";
import { tensorToProto } from "../src/onnx/tensor-proto.ts";
import { DataType, type ModelProto } from "../src/onnx/types.ts";
import { samplesFitting } from "../src/quant/preflight.ts";
import { shardCount, SHARDS, splitBatch } from "../src/quant/reconstruct.ts";
import { argmaxRows, imagesToInput, readFixture } from "./fixtures.ts";

const calibration = (count: number) => {
  const x = imagesToInput(readNpz(readFixture("calib.npz")).x);
  return new Tensor((x.data as Float32Array).slice(0, count * 784), [count, 1, 28, 28]);
};
const testImages = (count: number) => {
  const x = imagesToInput(readNpz(readFixture("test.npz")).x);
  return new Tensor((x.data as Float32Array).slice(0, count * 784), [count, 1, 28, 28]);
};

/** tiny_cnn_fmnist with its input's batch fixed to 1, as TensorFlow-style exports write it. */
function fixedBatchTinyCnn(edit: (m: ModelProto) => void = () => {}): Uint8Array {
  const m = decodeModel(readFixture("tiny_cnn_fmnist.onnx"));
  m.graph.input[0].type!.tensorType!.shape!.dim[0] = { dimValue: 1, denotation: "" };
  edit(m);
  return encodeModel(m);
}

const settings = { weightBits: 4, activationBits: 4, iterations: 30, batchSize: 8, holdout: 16 } as const;

Deno.test("splitBatch: shards as equal as they can be, in order, covering the batch", () => {
  assert.deepEqual(splitBatch(32, 1), [[0, 32]]);
  assert.deepEqual(splitBatch(32, 4), [[0, 8], [8, 8], [16, 8], [24, 8]]);
  assert.deepEqual(splitBatch(7, 3), [[0, 3], [3, 2], [5, 2]]);
  assert.deepEqual(splitBatch(5, 5), [[0, 1], [1, 1], [2, 1], [3, 1], [4, 1]]);
});

Deno.test("shardCount: a fixed number of shards per mini-batch, more when memory holds fewer samples per run", () => {
  assert.equal(shardCount(32, Infinity), SHARDS);
  assert.equal(shardCount(32, 64), SHARDS);
  assert.equal(shardCount(32, 2), 16);
  assert.equal(shardCount(5, Infinity), 5, "at most one shard per sample");
  assert.equal(shardCount(1, Infinity), 1);
});

Deno.test("samplesFitting: as many samples as one run's arena holds, at most 64", () => {
  const plan = { sampleBySample: false, runBytes: 256 * 2 ** 20 };
  // A 224×224 forward of about 11 MiB per sample: 256 MiB holds 23 samples.
  assert.equal(samplesFitting(plan, 11_497_536), 23);
  assert.equal(samplesFitting({ ...plan, runBytes: 100 * 2 ** 20 }, 11_497_536), 9);
  assert.equal(samplesFitting(plan, 1000), 64);
  assert.equal(samplesFitting(plan, 2 ** 30), 1);
  assert.equal(samplesFitting({ ...plan, sampleBySample: true }, 1000), 1);
});

Deno.test("preflight: a model whose batch is fixed to 1 quantizes as its free-batch twin does, byte for byte", async () => {
  await init();
  const calib = calibration(96);
  const free = await quantize(loadModel(readFixture("tiny_cnn_fmnist.onnx")), calib, settings);
  const fixed = await quantize(loadModel(fixedBatchTinyCnn()), calib, settings);
  assert.equal(fixed.report.memory.sampleBySample, false);
  assert.deepEqual(fixed.toNpz(), free.toNpz());
  const x = testImages(20);
  assert.deepEqual(fixed.run({ input: x }).logits.data, free.run({ input: x }).logits.data);
  free.dispose(), fixed.dispose();
});

Deno.test("preflight: a fixed batch that cannot be freed runs sample by sample, and trains like the batched model", async () => {
  await init();
  // Logits → their first sample → [1, 10]: the same for one sample, but a batch of several gives one row.
  const bytes = fixedBatchTinyCnn((m) => {
    const out = m.graph.output[0];
    m.graph.node.push(
      nodeProto("Gather", "first", [out.name, "zero"], ["first_logits"]),
      nodeProto("Unsqueeze", "again", ["first_logits", "axes"], ["only_logits"]),
    );
    m.graph.initializer.push(
      tensorToProto("zero", new Tensor(new BigInt64Array([0n]), [])),
      tensorToProto("axes", new Tensor(new BigInt64Array([0n]), [1])),
    );
    m.graph.output = [valueInfoProto("only_logits", DataType.FLOAT, [1, 10])];
  });
  const calib = calibration(96);
  const single = await quantize(loadModel(bytes), calib, settings);
  const batched = await quantize(loadModel(readFixture("tiny_cnn_fmnist.onnx")), calib, settings);
  assert.equal(single.report.memory.sampleBySample, true);
  assert.equal(single.report.memory.trainingSamples, 1);
  // The same model but for the order in which 8 per-sample gradients are summed.
  let agree = 0;
  const x = testImages(200);
  const want = argmaxRows(batched.run({ input: x }).logits);
  for (let i = 0; i < 200; i++) {
    const one = new Tensor((x.data as Float32Array).slice(i * 784, (i + 1) * 784), [1, 1, 28, 28]);
    const y = single.run({ input: one }).only_logits.data as Float32Array;
    if (y.indexOf(Math.max(...y)) === want[i]) agree++;
  }
  assert.ok(agree >= 196, `top-1 agrees on ${agree} of 200 images`);
  single.dispose(), batched.dispose();
});

Deno.test("preflight: a budget too small for the mini-batch trains it in shards, with the same result up to summation order", async () => {
  await init();
  const model = loadModel(readFixture("resnet18_fmnist.onnx"));
  const calib = calibration(64);
  const options = { ...settings, batchSize: 32, iterations: 20, activationDrop: 0.5 };
  const whole = await quantize(model, calib, options);
  const sharded = await quantize(model, calib, { ...options, memoryBudget: 2 ** 25 });
  assert.ok(whole.report.memory.trainingSamples >= 32);
  assert.ok(sharded.report.memory.trainingSamples < 32, `${sharded.report.memory.trainingSamples} per run`);
  // QDrop's stream and LSQ's scale follow the whole mini-batch, so the first losses agree closely.
  for (const [b, block] of whole.report.blocks.entries()) {
    const a = block.losses[0], c = sharded.report.blocks[b].losses[0];
    assert.ok(Math.abs(a - c) <= 1e-4 * Math.abs(a) + 1e-9, `block ${b}: first loss ${a} vs ${c}`);
  }
  const x = testImages(300);
  const p = argmaxRows(whole.run({ input: x }).logits), q = argmaxRows(sharded.run({ input: x }).logits);
  const agree = p.filter((c, i) => c === q[i]).length;
  assert.ok(agree >= 291, `top-1 agrees on ${agree} of 300 images`);
  whole.dispose(), sharded.dispose(), model.dispose();
});

Deno.test("preflight: caches larger than the budget go to a spill store, and train alike", async () => {
  await init();
  const model = loadModel(readFixture("resnet18_fmnist.onnx"));
  const calib = calibration(96);
  const options = { ...settings, batchSize: 32, iterations: 10 };
  const spill = (await detectRuntime()).spill;
  const free = await quantize(model, calib, options);
  const spilled = await quantize(model, calib, { ...options, memoryBudget: 2 ** 24, spill });
  assert.equal(spilled.report.memory.peakCacheBytes, 0, "no cache in memory");
  assert.ok(free.report.memory.peakCacheBytes > 0);
  const x = testImages(300);
  const p = argmaxRows(free.run({ input: x }).logits), q = argmaxRows(spilled.run({ input: x }).logits);
  const agree = p.filter((c, i) => c === q[i]).length;
  assert.ok(agree >= 291, `top-1 agrees on ${agree} of 300 images`);
  free.dispose(), spilled.dispose(), model.dispose();
});

Deno.test("preflight: a block holding an op without a backward fails in seconds, naming the node, before any iteration", async () => {
  await init();
  // A forward-only op of our own after the last layer, whose weights the gradient must reach through it.
  registerOps(
    {
      Twice: (ctx, [x]) => {
        const y = ctx.outputF32(x!.shape);
        y.data.set((x!.data as Float32Array).map((v) => 2 * v));
        return [y];
      },
    },
    {},
    "test.preflight",
  );
  const bytes = fixedBatchTinyCnn((m) => {
    const gemm = m.graph.node.find((n) => n.opType === "Gemm")!;
    const out = gemm.output[0];
    gemm.output = [`${out}_once`];
    m.graph.node.splice(m.graph.node.indexOf(gemm) + 1, 0, {
      ...nodeProto("Twice", "the_twice_node", [`${out}_once`], [out]),
      domain: "test.preflight",
    });
    m.opsetImport.push({ domain: "test.preflight", version: 1 });
  });
  let iterations = 0;
  const started = performance.now();
  await assert.rejects(
    quantize(loadModel(bytes), calibration(64), {
      ...settings,
      onProgress: (e) => e.phase === "reconstruct" && iterations++,
    }),
    (e: unknown) =>
      e instanceof AttnroundError && e.code === "UNSUPPORTED_MODEL" && /the_twice_node/.test(e.message),
  );
  assert.equal(iterations, 0);
  assert.ok(performance.now() - started < 10_000);
});

Deno.test("preflight: a run whose caches exceed the memory budget fails at once, saying what would fit", async () => {
  await init();
  const model = loadModel(readFixture("resnet18_fmnist.onnx"));
  const calib = calibration(1024);
  const started = performance.now();
  await assert.rejects(
    quantize(model, calib, { ...settings, memoryBudget: 2 ** 24 }),
    (e: unknown) =>
      e instanceof AttnroundError && e.code === "MEMORY_BUDGET" && /--memory/.test(e.message) &&
      /calibration samples/.test(e.message),
  );
  assert.ok(performance.now() - started < 10_000);
  model.dispose();
});
