import assert from "node:assert/strict";
import {
  AttnroundError,
  defaultOptions,
  init,
  loadModel,
  QuantizationRun,
  quantize,
  Tensor,
} from "../mod.ts";
import { readNpz } from "../src/data/npy.ts";
import { toRows } from "../src/layout.ts";
import { argmaxRows, imagesToInput, readFixture } from "./fixtures.ts";
import { modelDigest, quantizeInSlices } from "./slices.ts";

const calibration = () => imagesToInput(readNpz(readFixture("calib.npz")).x);
const testSet = () => {
  const { x, y } = readNpz(readFixture("test.npz"));
  return { x: imagesToInput(x), y: y.data as Uint8Array };
};

function accuracy(run: (input: Tensor) => Tensor, count: number): number {
  const { x, y } = testSet();
  let correct = 0;
  for (let start = 0; start < count; start += 500) {
    const n = Math.min(500, count - start);
    const logits = run(new Tensor(x.data.slice(start * 784, (start + n) * 784), [n, 1, 28, 28]));
    argmaxRows(logits).forEach((c, i) => c === y[start + i] && correct++);
  }
  return correct / count;
}

Deno.test("quantize: attention rounding recovers accuracy that round-to-nearest loses (tiny_cnn, W3A4)", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const calib = calibration();
  const settings = { weightBits: 3, activationBits: 4, iterations: 300, seed: 1 };
  const nearest = await quantize(model, calib, { ...settings, rounding: "nearest" });
  const attention = await quantize(model, calib, { ...settings, rounding: "attention" });
  const n = 3000;
  const float = accuracy((input) => model.run({ input }).logits, n);
  const accNearest = accuracy((input) => nearest.run({ input }).logits, n);
  const accAttention = accuracy((input) => attention.run({ input }).logits, n);
  assert.ok(accNearest < float - 0.02, `nearest ${accNearest} should lose accuracy against float ${float}`);
  assert.ok(accAttention > accNearest + 0.02, `attention ${accAttention} should beat nearest ${accNearest}`);
  // The report says what was done, and its fidelity check saw the improvement too.
  const r = attention.report;
  assert.equal(r.layers.length, 3);
  assert.deepEqual(r.layers.map((l) => l.weightBits), [8, 3, 8]);
  // The first losses are of the Gaussian-smoothed weights, which for 8-bit layers are as good as float, so
  // the loss must fall only in the blocks that hold the 3-bit layer.
  const threeBit = new Set(r.layers.filter((l) => l.weightBits === 3).map((l) => l.name));
  const learning = r.blocks.filter((b) => b.layers.some((name) => threeBit.has(name)));
  assert.ok(learning.length > 0 && r.blocks.every((b) => b.losses.length > 0));
  assert.ok(learning.every((b) => b.losses.at(-1)! < b.losses[0]), "losses should fall");
  assert.ok(r.fidelity!.snrDb > nearest.report.fidelity!.snrDb);
  JSON.parse(JSON.stringify(r));
  nearest.dispose();
  attention.dispose();
});

Deno.test("quantize: the quantized weights lie on the per-channel grid with the asked bit widths", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const q = await quantize(model, calibration(), {
    weightBits: 2,
    activationBits: 32,
    iterations: 20,
    rounding: "attention",
  });
  const exported = q.quantizedWeights();
  for (const [index, w] of q.weights.entries()) {
    const ints = toRows(exported[index].levels, w.layer.weightShape, w.layer.channelAxis);
    const rows = q.finalRows.get(w.layer.weight)!;
    const m = w.rowsShape[0], k = rows.length / m;
    for (let i = 0; i < ints.length; i++) {
      assert.ok(ints[i] >= w.qmin && ints[i] <= w.qmax, `level ${ints[i]} outside [${w.qmin}, ${w.qmax}]`);
      const r = Math.floor(i / k);
      assert.ok(Math.abs(rows[i] - w.scale[r] * (ints[i] - w.zero[r])) <= 1e-6 * Math.abs(w.scale[r]) * 8);
    }
    assert.equal(w.qmax - w.qmin + 1, 2 ** w.bits);
  }
  assert.equal(q.report.activations.length, 1, "only the model input stays quantized (at 8 bits) with A32");
  q.dispose();
});

Deno.test("quantize: the same seed gives the same model; another seed another one", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const calib = calibration();
  const settings = { weightBits: 3, activationBits: 4, iterations: 60, seed: 7 };
  const a = await quantize(model, calib, settings);
  const b = await quantize(model, calib, settings);
  const c = await quantize(model, calib, { ...settings, seed: 8 });
  for (const w of a.weights) {
    assert.deepEqual(a.finalRows.get(w.layer.weight), b.finalRows.get(w.layer.weight));
  }
  assert.ok(
    a.weights.some((w) =>
      a.finalRows.get(w.layer.weight)!.some((v, i) => v !== c.finalRows.get(w.layer.weight)![i])
    ),
  );
  a.dispose(), b.dispose(), c.dispose();
});

Deno.test("quantize: an option left out takes its value from defaultOptions, which no caller can change", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const q = await quantize(model, calibration(), { iterations: 2 });
  // exportForm, left out, is chosen from the widths: W4A4 has no integer kernels, so "exact".
  assert.deepEqual(q.report.settings, { ...defaultOptions, iterations: 2, exportForm: "exact" });
  q.dispose();
  model.dispose();
  assert.throws(() => Object.assign(defaultOptions, { iterations: 1 }), TypeError);
  assert.throws(() => Object.assign(defaultOptions.attention, { sigma0: 1 }), TypeError);
  assert.equal(defaultOptions.iterations, 2000);
});

Deno.test("quantize: bad options and bad calibration data are clear errors", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const calib = calibration();
  const rejects = (options: object, code: string, message: RegExp, data: unknown = calib) =>
    assert.rejects(() => quantize(model, data as Tensor, options), (e: unknown) => {
      assert.ok(e instanceof AttnroundError, String(e));
      assert.equal(e.code, code);
      assert.match(e.message, message);
      return true;
    });
  await rejects({ weightBits: 1 }, "INVALID_ARGUMENT", /weightBits must be an integer from 2 to 8/);
  await rejects({ activationBits: 9 }, "INVALID_ARGUMENT", /activationBits/);
  await rejects({ rounding: "floor" }, "INVALID_ARGUMENT", /rounding must be/);
  await rejects({}, "INVALID_DATA", /empty/, []);
  const nan = new Tensor(calib.data.slice(0, 784 * 4), [4, 1, 28, 28]);
  (nan.data as Float32Array)[900] = NaN;
  await rejects({}, "INVALID_DATA", /NaN at element 900 \(sample 1\)/, nan);
  await rejects({}, "INVALID_DATA", /shape \[4,28,28\]/, new Tensor(new Float32Array(4 * 784), [4, 28, 28]));
  await rejects({}, "INVALID_DATA", /uint8/, new Tensor(new Uint8Array(784), [1, 1, 28, 28]));
  const controller = new AbortController();
  controller.abort();
  await rejects({ signal: controller.signal }, "ABORTED", /aborted/);
});

Deno.test("a run split into resumed slices ends with exactly the model of an uninterrupted run", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const calib = calibration();
  // With QDrop, whose random drops must resume at the same position too.
  // One thread, as in an edge function (tests/threads.test.ts resumes on several).
  const settings = {
    weightBits: 3,
    activationBits: 4,
    iterations: 30,
    seed: 3,
    batchSize: 16,
    activationDrop: 0.5,
    threads: 1,
  };
  const whole = await quantize(model, calib, settings);
  const withoutDrop = await quantize(model, calib, { ...settings, activationDrop: 0 });
  assert.notDeepEqual(
    whole.report.blocks[0].losses,
    withoutDrop.report.blocks[0].losses,
    "drop changes training",
  );
  withoutDrop.dispose();
  // Each slice: resume from bytes, work a little, save. As an edge function with a CPU budget would.
  const { result: sliced, slices } = await quantizeInSlices(model, calib, settings, 15);
  for (const w of whole.weights) {
    assert.deepEqual(sliced.finalRows.get(w.layer.weight), whole.finalRows.get(w.layer.weight), w.layer.name);
  }
  assert.deepEqual(sliced.report.activations, whole.report.activations);
  assert.deepEqual(sliced.report.blocks.map((b) => b.losses), whole.report.blocks.map((b) => b.losses));
  assert.equal(await modelDigest(sliced), await modelDigest(whole));
  sliced.dispose();
  assert.ok(slices > 3, `expected several slices, got ${slices}`);
  whole.dispose();
});

Deno.test("a saved state is refused for another calibration set, and garbage is a clear error", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const calib = calibration();
  const run = await QuantizationRun.start(model, calib, { iterations: 5 });
  const state = run.state();
  run.dispose();
  const other = new Tensor(calib.data.slice(0, 784 * 100), [100, 1, 28, 28]);
  await assert.rejects(() => QuantizationRun.resume(model, other, state), {
    code: "INVALID_DATA",
    message: /another model, calibration set or settings/,
  });
  await assert.rejects(() => QuantizationRun.resume(model, calib, state.slice(0, 40)), {
    code: "INVALID_DATA",
  });
  await assert.rejects(() => QuantizationRun.resume(model, calib, new Uint8Array(64)), {
    code: "INVALID_DATA",
  });
});
