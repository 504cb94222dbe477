// The edge entry (mod.edge.ts), run as Cloudflare Workers and Vercel Edge run
// it. For Workers, in workerd itself (tests/workerd-runtime.mjs: the npm
// package's binary serves tests/edge-driver.ts bundled with the "workerd"
// condition, the wasm a module of the worker). For Vercel Edge, whose runtime
// is not packaged, in an emulation (tests/edge-runtime.mjs: a fresh Node
// process that hands the bundle the wasm precompiled at "deploy time" and
// forbids compiling wasm from bytes). Results are compared with the default
// entry's, in process.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { init, loadModel, quantize, readNpz, Tensor } from "../mod.ts";
import { imagesToInput, readFixture } from "./fixtures.ts";
import { modelDigest } from "./slices.ts";

interface EdgeRun {
  condition: string;
  bundleBytes: number;
  embedsWasmBytes: boolean;
  result?: unknown;
  error?: { name: string; code?: string; message: string };
}

function runAtTheEdge(
  runtime: "workerd" | "emulated",
  condition: string,
  task: "float" | "quantize",
  args: unknown[] = [],
): EdgeRun {
  const runner = runtime === "workerd" ? "./workerd-runtime.mjs" : "./edge-runtime.mjs";
  const script = fileURLToPath(new URL(runner, import.meta.url));
  const child = spawnSync("node", [script, condition, task, JSON.stringify(args)], { encoding: "utf8" });
  assert.equal(child.status, 0, `node ${script} failed:\n${child.stderr}`);
  return JSON.parse(child.stdout.trim().split("\n").at(-1)!);
}

const images = (count: number) => {
  const x = readNpz(readFixture("calib.npz")).x;
  return imagesToInput(new Tensor((x.data as Uint8Array).slice(0, count * 784), [count, 28, 28]));
};

Deno.test("edge entry in workerd: quantizes from the worker's wasm module, and a run in budgeted requests ends with the same model", async () => {
  const settings = { weightBits: 3, activationBits: 4, iterations: 24, seed: 5, batchSize: 16 };
  const edge = runAtTheEdge("workerd", "workerd", "quantize", [128, settings, 20]);
  assert.equal(edge.error, undefined, JSON.stringify(edge.error));
  assert.equal(edge.embedsWasmBytes, false, "the workerd bundle must not carry the embedded wasm bytes");
  const { whole, sliced, slices, logits } = edge.result as {
    whole: string;
    sliced: string;
    slices: number;
    logits: number[];
  };
  assert.ok(slices >= 3, `expected several requests, got ${slices}`);
  assert.equal(sliced, whole, "the run in requests must end with the uninterrupted run's model");

  // The default entry, in this process, makes the same model and the same outputs.
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const q = await quantize(model, images(128), settings);
  assert.equal(await modelDigest(q), whole, "edge and default entries must agree bit for bit");
  const input = new Tensor(images(4).data as Float32Array, [4, 1, 28, 28]);
  assert.deepEqual(Array.from(q.run({ input }).logits.data as Float32Array), logits);
  q.dispose();
  model.dispose();
});

Deno.test("edge entry (edge-light): the float model runs from the imported module", async () => {
  const edge = runAtTheEdge("emulated", "edge-light", "float");
  assert.equal(edge.error, undefined, JSON.stringify(edge.error));
  assert.equal(edge.embedsWasmBytes, false);
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const input = new Tensor(images(4).data as Float32Array, [4, 1, 28, 28]);
  assert.deepEqual(edge.result, Array.from(model.run({ input }).logits.data as Float32Array));
  model.dispose();
});

Deno.test("default entry: bundles the embedded bytes, which workerd and the emulation refuse to compile", () => {
  // The control for the tests above: the bundle check and the ban both bite.
  for (const runtime of ["workerd", "emulated"] as const) {
    const edge = runAtTheEdge(runtime, "default", "float");
    assert.equal(edge.embedsWasmBytes, true, runtime);
    assert.equal(edge.error?.name, "AttnroundError", `${runtime}: ${JSON.stringify(edge.error)}`);
    assert.equal(edge.error?.code, "WASM_INIT_FAILED", runtime);
    assert.match(edge.error!.message, /disallowed by embedder/, runtime);
  }
});

Deno.test("edge entry in workerd: the float model runs", async () => {
  const edge = runAtTheEdge("workerd", "workerd", "float");
  assert.equal(edge.error, undefined, JSON.stringify(edge.error));
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const input = new Tensor(images(4).data as Float32Array, [4, 1, 28, 28]);
  assert.deepEqual(edge.result, Array.from(model.run({ input }).logits.data as Float32Array));
  model.dispose();
});
