// A program for tests/threads.test.ts: runs on 2 threads that finish, are
// aborted and fail, then ends by itself, which Deno and Node do not do while
// a worker is alive. Prints the outcomes and the workers started and ended.
//   deno run -A tests/threads-exit.ts      node tests/run-node.mjs --main tests/threads-exit.ts
import { init, loadModel, quantize, type QuantizeOptionsInput } from "../mod.ts";
import { workerCounts } from "../src/engine/parallel/pool.ts";
import { calibrationImages } from "./determinism.ts";
import { readFixture } from "./fixtures.ts";

await init();
const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
const calib = calibrationImages(64);
const options: QuantizeOptionsInput = { iterations: 20, holdout: 8, threads: 2 };
const outcomes: string[] = [];
const failed = (e: unknown) => outcomes.push((e as { code?: string }).code ?? (e as Error).message);

(await quantize(model, calib, options)).dispose();
outcomes.push("finished");
const controller = new AbortController();
await quantize(model, calib, {
  ...options,
  signal: controller.signal,
  onProgress: (e) => e.phase === "reconstruct" && controller.abort(),
}).then(() => outcomes.push("not aborted"), failed);
await quantize(model, calib, {
  ...options,
  onProgress: (e) => {
    if (e.phase === "reconstruct") throw new Error("failed in onProgress");
  },
}).then(() => outcomes.push("did not fail"), failed);
await model.runBatched({ input: calib }, { threads: 2, batchSize: 16 });
outcomes.push("ran batched");
model.dispose();
console.log(`outcomes ${outcomes.join(",")}`);
console.log(`workers ${workerCounts.started} ${workerCounts.ended}`);
