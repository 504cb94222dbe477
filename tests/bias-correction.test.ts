// Bias correction (biasCorrection): the corrected bias against one computed
// here from the calibration data and the exported levels, its effect on a
// layer whose filters cancel on a large input mean, and the gradient of the
// training graph's correction against finite differences.
import assert from "node:assert/strict";
import { init, loadModel, quantize, Tensor } from "../mod.ts";
import { addGradients } from "../src/engine/autodiff.ts";
import { Engine } from "../src/engine/engine.ts";
import { DataType } from "../src/onnx/types.ts";
import { nodeProto, valueInfoProto } from "../src/export/proto.ts";
import { tensorToProto } from "../src/onnx/tensor-proto.ts";
import { biasCorrections, correctableLayers } from "../src/quant/bias-correction.ts";
import { planWeightQuantizers } from "../src/quant/layers.ts";
import { resolveOptions } from "../src/quant/options.ts";
import { LOSS, roundedInput, TARGET, trainingGraph } from "../src/quant/qgraph.ts";
import { modelBytes, randomFloats } from "./helpers.ts";

const [CIN, COUT, SIDE] = [3, 4, 6];

/**
 * One 3×3 Conv whose filters sum to zero, as an edge detector's do, with a
 * bias: on an input of mean 3 its output is a small difference of large
 * products, which 4-bit rounding shifts by a sizeable offset. No padding: the
 * zeros at a padded border would lower the mean a border output reads.
 */
function edgeModel(): { bytes: Uint8Array; w: Float32Array; b: Float32Array } {
  const w = randomFloats(COUT * CIN * 9, 7).map((v) => 4 * v);
  for (let o = 0; o < COUT; o++) {
    const filter = w.subarray(o * CIN * 9, (o + 1) * CIN * 9);
    const mean = filter.reduce((a, v) => a + v, 0) / filter.length;
    filter.forEach((v, i) => (filter[i] = v - mean));
  }
  const b = randomFloats(COUT, 8);
  const bytes = modelBytes(13, {
    node: [
      nodeProto("Conv", "conv", ["x", "w", "b"], ["y"]),
    ],
    initializer: [
      tensorToProto("w", new Tensor(w, [COUT, CIN, 3, 3])),
      tensorToProto("b", new Tensor(b, [COUT])),
    ],
    input: [valueInfoProto("x", DataType.FLOAT, ["N", CIN, SIDE, SIDE])],
    output: [valueInfoProto("y", DataType.FLOAT, ["N", COUT, SIDE - 2, SIDE - 2])],
  });
  return { bytes, w, b };
}

/** Inputs of mean 3 per channel, ± 0.5. */
function inputs(count: number, seed: number): Tensor {
  return new Tensor(randomFloats(count * CIN * SIDE * SIDE, seed).map((v) => 3 + 0.5 * v), [
    count,
    CIN,
    SIDE,
    SIDE,
  ]);
}

/** Per output channel, the mean over samples and positions of the quantized output minus the float one. */
function channelOffsets(quantized: Tensor, float: Tensor): number[] {
  const q = quantized.data as Float32Array, f = float.data as Float32Array, plane = (SIDE - 2) ** 2;
  const out = new Array(COUT).fill(0);
  for (let i = 0; i < q.length; i++) out[Math.floor(i / plane) % COUT] += q[i] - f[i];
  return out.map((s) => s / (q.length / COUT));
}

Deno.test("bias correction: the corrected bias is b + Σ (w − ŵ)·μ over the calibration set's channel means, and it removes the offset the rounding leaves", async () => {
  await init();
  const { bytes, w, b } = edgeModel();
  const model = loadModel(bytes);
  const calibration = inputs(64, 9), test = inputs(64, 10);
  const options = {
    rounding: "nearest" as const,
    weightBits: 4,
    activationBits: 8,
    exportForm: "exact" as const,
    layers: { conv: { weightBits: 4 } },
    holdout: 0,
  };
  const plain = await quantize(model, calibration, options);
  const corrected = await quantize(model, calibration, { ...options, biasCorrection: true });

  // The reference: channel means of the calibration inputs, the exported levels' weights.
  const x = calibration.data as Float32Array, plane = SIDE * SIDE;
  const mu = new Array(CIN).fill(0);
  for (let i = 0; i < x.length; i++) mu[Math.floor(i / plane) % CIN] += x[i] / (x.length / CIN);
  const [qw] = corrected.quantizedWeights();
  assert.deepEqual(qw.levels, plain.quantizedWeights()[0].levels, "the correction changes no weight");
  const expected = [...b].map((bias, o) => {
    let s = bias;
    for (let i = o * CIN * 9; i < (o + 1) * CIN * 9; i++) {
      const rounded = qw.scale[o] * (qw.levels[i] - qw.zero[o]);
      s += (w[i] - rounded) * mu[Math.floor(i / 9) % CIN];
    }
    return s;
  });
  const got = corrected.biases.get("b")!;
  expected.forEach((e, o) =>
    assert.ok(Math.abs(got[o] - e) <= 1e-5 * (1 + Math.abs(e)), `bias ${o}: ${got[o]}, ${e}`)
  );

  // On other inputs of the same mean the offsets shrink to the input quantizer's share.
  const float = model.run({ x: test }).y;
  const before = channelOffsets(plain.run({ x: test }).y, float);
  const after = channelOffsets(corrected.run({ x: test }).y, float);
  const total = (v: number[]) => v.reduce((a, e) => a + Math.abs(e), 0);
  assert.ok(total(before) > 0.5, `the rounding leaves offsets ${before}`);
  assert.ok(total(after) < 0.1 * total(before), `offsets ${before} → ${after}`);
  for (const q of [plain, corrected]) q.dispose();
  model.dispose();
});

Deno.test("bias correction: the training graph's gradient in the rounded weight, correction included, matches finite differences", async () => {
  await init();
  const { bytes } = edgeModel();
  const graph = loadModel(bytes).graph;
  const [q] = planWeightQuantizers(graph, resolveOptions({ weightBits: 4, activationBits: 32 }));
  const means = new Map([["x", Float64Array.from({ length: CIN }, (_, c) => 2 + c)]]);
  const corrections = biasCorrections(correctableLayers(graph, [q]), means);
  assert.equal(corrections.length, 1);
  const training = trainingGraph(graph, [q], [], 0, false, undefined, corrections);
  const { graph: withGrads, gradients } = addGradients(training, LOSS, [roundedInput(q)]);
  const gradientName = gradients.get(roundedInput(q))!;
  const lossEngine = new Engine(training), gradEngine = new Engine(withGrads);
  const rounded = randomFloats(q.rows.length, 11).map((v) => 2 * v);
  const feeds = (weight: Float32Array) => ({
    x: inputs(2, 12),
    [TARGET]: new Tensor(randomFloats(2 * COUT * (SIDE - 2) ** 2, 13), [2, COUT, SIDE - 2, SIDE - 2]),
    [roundedInput(q)]: new Tensor(weight, q.rowsShape),
  });
  const out = gradEngine.run(feeds(rounded));
  const analytic = out[gradientName].data as Float32Array;
  const loss = (weight: Float32Array) => lossEngine.run(feeds(weight))[LOSS].data[0] as number;
  // The loss is quadratic in the rounded weight: central differences are exact but for float rounding.
  const h = 0.05;
  for (const i of [0, 5, 31, 60, q.rows.length - 1]) {
    const up = rounded.slice(), down = rounded.slice();
    up[i] += h;
    down[i] -= h;
    const numeric = (loss(up) - loss(down)) / (2 * h);
    assert.ok(
      Math.abs(numeric - analytic[i]) <= 2e-3 * Math.max(1, Math.abs(numeric)),
      `weight ${i}: finite differences ${numeric}, gradient ${analytic[i]}`,
    );
  }
  // The correction is in the graph: without it the gradient differs.
  const plain = addGradients(trainingGraph(graph, [q], [], 0), LOSS, [roundedInput(q)]);
  const plainEngine = new Engine(plain.graph);
  const without = plainEngine.run(feeds(rounded))[plain.gradients.get(roundedInput(q))!].data as Float32Array;
  const largest = analytic.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  assert.ok(analytic.some((v, i) => Math.abs(v - without[i]) > 0.01 * largest));
  for (const e of [lossEngine, gradEngine, plainEngine]) e.dispose();
});
