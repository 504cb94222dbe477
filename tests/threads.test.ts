// SPEC §13: work spread over workers gives bit-identical results for any
// number of them (the mini-batch is split into the same shards whatever the
// threads), and no worker outlives the call that started it. Runs in Deno
// (Web Workers) and in Node (worker_threads, through tests/run-node.mjs).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { init, loadModel, type ProgressEvent, quantize, Tensor } from "../mod.ts";
import type { Graph } from "../src/graph/ir.ts";
import { defaultThreads, withRunner, workerCounts } from "../src/engine/parallel/pool.ts";
import { reportedCores } from "../src/engine/parallel/spawn.ts";
import { calibrationImages, inDeno, SAME_RUNS, sameRunNpz, sha256Hex } from "./determinism.ts";
import { readFixture } from "./fixtures.ts";
import { modelDigest, quantizeInSlices } from "./slices.ts";
import { ortWebRun } from "./ort-web.ts";

/** Runs `work` and checks that it started workers and that every worker started has ended. */
async function onWorkers<T>(work: () => Promise<T>): Promise<T> {
  const before = workerCounts.started;
  const result = await work();
  assert.ok(workerCounts.started > before, "workers ran");
  assert.equal(workerCounts.ended, workerCounts.started, "every worker ended with its call");
  return result;
}

Deno.test("threads: a resnet18_fmnist run exports the same .npz bytes on 1, 2 and 3 threads", async () => {
  const one = await sha256Hex(await sameRunNpz(SAME_RUNS.resnet18, 1));
  const two = await onWorkers(async () => sha256Hex(await sameRunNpz(SAME_RUNS.resnet18, 2)));
  const three = await onWorkers(async () => sha256Hex(await sameRunNpz(SAME_RUNS.resnet18, 3)));
  assert.equal(two, one, "2 threads");
  assert.equal(three, one, "3 threads");
});

Deno.test("threads: the losses, progress events and report are the same on 1 and 2 threads; threads is not a setting", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const run = async (threads: number) => {
    const events: ProgressEvent[] = [];
    const q = await quantize(model, calibrationImages(96), {
      ...SAME_RUNS.tiny.options,
      threads,
      onProgress: (e) => events.push(e),
    });
    const { report } = q;
    q.dispose();
    return { events, report };
  };
  const one = await run(1), two = await onWorkers(() => run(2));
  assert.deepEqual(two.events, one.events);
  assert.deepEqual(two.report.blocks.map((b) => b.losses), one.report.blocks.map((b) => b.losses));
  assert.deepEqual(two.report.fidelity, one.report.fidelity);
  assert.deepEqual(two.report.settings, one.report.settings);
  assert.ok(!("threads" in one.report.settings), "threads is not among the report's settings");
  model.dispose();
});

Deno.test("threads: resumed slices on 2 threads end with exactly the model of an uninterrupted run on 1", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const calib = calibrationImages(96);
  const settings = {
    weightBits: 3,
    activationBits: 4,
    iterations: 12,
    seed: 5,
    batchSize: 16,
    activationDrop: 0.5,
  };
  const whole = await quantize(model, calib, { ...settings, threads: 1 });
  const { result: sliced, slices } = await onWorkers(() =>
    quantizeInSlices(model, calib, { ...settings, threads: 2 }, 100)
  );
  assert.ok(slices > 1, `expected several slices, got ${slices}`);
  assert.equal(await modelDigest(sliced), await modelDigest(whole));
  assert.deepEqual(sliced.report.blocks.map((b) => b.losses), whole.report.blocks.map((b) => b.losses));
  sliced.dispose(), whole.dispose(), model.dispose();
});

Deno.test("threads: runBatched gives run()'s outputs batch by batch, on any number of threads", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const x = calibrationImages(100);
  const want = new Float32Array(100 * 10);
  for (let first = 0; first < 100; first += 32) {
    const n = Math.min(32, 100 - first);
    const batch = new Tensor((x.data as Float32Array).slice(first * 784, (first + n) * 784), [n, 1, 28, 28]);
    want.set(model.run({ input: batch }).logits.data as Float32Array, first * 10);
  }
  for (const threads of [1, 2, 3]) {
    const run = () => model.runBatched({ input: x }, { batchSize: 32, threads });
    const { logits } = threads > 1 ? await onWorkers(run) : await run();
    assert.deepEqual(logits.shape, [100, 10]);
    assert.deepEqual(logits.data, want, `${threads} threads`);
  }
  await assert.rejects(() => model.runBatched({ input: x }, { threads: 0 }), {
    code: "INVALID_ARGUMENT",
    message: /threads must be an integer from 1/,
  });
  await assert.rejects(() => model.runBatched({ input: x }, { batch: 4 } as never), {
    code: "INVALID_ARGUMENT",
    message: /no option "batch"/,
  });
  model.dispose();
});

Deno.test("threads: workers still answer after onnxruntime-web has replaced the global Worker with worker_threads'", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const x = calibrationImages(64);
  await ortWebRun(readFixture("tiny_cnn_fmnist.onnx"), {
    input: new Tensor((x.data as Float32Array).slice(0, 784), [1, 1, 28, 28]),
  });
  const { Worker: nodeWorker } = await import("node:worker_threads");
  assert.equal((globalThis as { Worker?: unknown }).Worker, nodeWorker, "onnxruntime-web replaced it");
  const want = (await model.runBatched({ input: x }, { batchSize: 32, threads: 1 })).logits.data;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("no answer from the workers in 60 s")), 60_000);
  });
  try {
    const run = () => model.runBatched({ input: x }, { batchSize: 32, threads: 2 });
    const { logits } = await Promise.race([onWorkers(run), hung]);
    assert.deepEqual(logits.data, want);
  } finally {
    clearTimeout(timer);
    model.dispose();
  }
});

Deno.test("threads: an error raised in a worker is the AttnroundError one thread raises", async () => {
  await init();
  // A Reshape to a shape only known when it runs: [3, 5] cannot hold 8 values.
  const graph: Graph = {
    nodes: [{
      name: "r",
      opType: "Reshape",
      domain: "",
      inputs: ["x", "shape"],
      outputs: ["y"],
      attributes: new Map(),
    }],
    initializers: new Map(),
    inputs: [{ name: "x", dtype: "float32" }, { name: "shape", dtype: "int64" }],
    outputs: [{ name: "y" }],
    opset: 17,
  };
  const failure = (threads: number) =>
    withRunner(threads, async (runner) => {
      const handle = await runner.load(graph);
      const job = {
        x: new Tensor(new Float32Array(8), [8]),
        shape: new Tensor(new BigInt64Array([3n, 5n]), [2]),
      };
      return await runner.run(handle, {}, [job], ["y"])[0].then(() => undefined, (e) => e);
    });
  const here = await failure(1), there = await onWorkers(() => failure(2));
  assert.equal(here?.name, "AttnroundError");
  assert.equal(there?.name, "AttnroundError");
  assert.equal(there.code, here.code);
  assert.equal(there.message, here.message);
  assert.match(there.message, /node "r" \(Reshape\)/);
});

Deno.test("threads: the default is the cores the runtime reports, and where it has no workers one thread does the work", async () => {
  assert.equal(defaultThreads(), reportedCores());
  const cores = inDeno
    ? (globalThis as unknown as { navigator: { hardwareConcurrency: number } }).navigator.hardwareConcurrency
    : (await import("node:os")).availableParallelism();
  assert.equal(defaultThreads(), cores);
  await init();
  const worker = (globalThis as { Worker?: unknown }).Worker;
  const process = (globalThis as { process?: { getBuiltinModule?: unknown } }).process;
  const builtin = process?.getBuiltinModule;
  try {
    (globalThis as { Worker?: unknown }).Worker = undefined;
    if (process) process.getBuiltinModule = undefined;
    const before = workerCounts.started;
    const threads = await withRunner(4, (runner) => Promise.resolve(runner.threads));
    assert.equal(threads, 1);
    assert.equal(workerCounts.started, before, "no worker started");
  } finally {
    (globalThis as { Worker?: unknown }).Worker = worker;
    if (process) process.getBuiltinModule = builtin;
  }
});

Deno.test("threads: no worker outlives its run: a program that finishes, aborts and fails runs on 2 threads ends by itself", () => {
  const [command, args] = inDeno
    ? ["deno", ["run", "-A", "tests/threads-exit.ts"]]
    : ["node", ["tests/run-node.mjs", "--main", "tests/threads-exit.ts"]];
  const child = spawnSync(command, args, {
    encoding: "utf8",
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    timeout: 240_000,
  });
  assert.equal(child.error, undefined, `${command} did not end by itself: ${child.error}`);
  assert.equal(child.status, 0, child.stderr);
  assert.match(child.stdout, /outcomes finished,ABORTED,failed in onProgress,ran batched/);
  const [, started, ended] = child.stdout.match(/workers (\d+) (\d+)/)!;
  assert.ok(Number(started) > 0, "workers ran");
  assert.equal(ended, started, "every worker ended");
});
