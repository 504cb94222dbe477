// Hand-computed cases for the op semantics that are easiest to get subtly
// wrong: cubic and crop-and-resize interpolation, BatchNormalization's
// training statistics, half-to-even rounding, DepthToSpace's two orders, and
// how the engine treats NonZero's data-dependent output size.
import assert from "node:assert/strict";
import { AttnroundError, init, Tensor } from "../mod.ts";
import { Engine } from "../src/engine/engine.ts";
import { registerOps } from "../src/engine/registry.ts";
import { nodeProto, valueInfoProto } from "../src/export/proto.ts";
import { roundHalfEven } from "../src/kernels/quant.ts";
import { DataType } from "../src/onnx/types.ts";
import { ortNodeRun } from "./ort.ts";
import { modelBytes } from "./helpers.ts";
import type { AttributeValue, Graph, ValueInfo } from "../src/graph/ir.ts";

interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, AttributeValue>;
}

/** A graph of the given nodes; graph inputs are the `feeds`' names, constants come from `weights`. */
function graphOf(
  nodes: NodeSpec[],
  inputs: string[],
  outputs: string[],
  weights: Record<string, Tensor> = {},
  opset = 17,
): Graph {
  const info = (name: string): ValueInfo => ({ name });
  return {
    nodes: nodes.map((n, i) => ({
      name: `${n.op}_${i}`,
      opType: n.op,
      domain: "",
      inputs: n.inputs,
      outputs: n.outputs,
      attributes: new Map(Object.entries(n.attrs ?? {})),
    })),
    initializers: new Map(Object.entries(weights)),
    inputs: inputs.map(info),
    outputs: outputs.map(info),
    opset,
  };
}

function runOnce(graph: Graph, feeds: Record<string, Tensor>): Record<string, Tensor> {
  const engine = new Engine(graph);
  try {
    return engine.run(feeds);
  } finally {
    engine.dispose();
  }
}

const f32 = (values: number[], shape = [values.length]) => new Tensor(Float32Array.from(values), shape);

function assertClose(actual: ArrayLike<number | bigint>, expected: number[], tolerance = 1e-6) {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(
      Math.abs(Number(actual[i]) - expected[i]) <= tolerance * Math.max(1, Math.abs(expected[i])),
      `element ${i}: ${actual[i]} vs ${expected[i]}`,
    );
  }
}

// Keys' cubic kernel with a = −0.75 at the distances of a point 0.75 past a
// tap, worked out by hand: taps at −1.75, −0.75, 0.25, 1.25.
const CUBIC_AT_075 = [-0.03515625, 0.26171875, 0.87890625, -0.10546875];

Deno.test("Resize cubic (half_pixel, a = -0.75) matches the hand-computed weights", async () => {
  await init();
  const resize = (attrs: Record<string, AttributeValue>) =>
    graphOf(
      [{ op: "Resize", inputs: ["x", "", "scales"], outputs: ["y"], attrs: { mode: "cubic", ...attrs } }],
      ["x"],
      ["y"],
      { scales: f32([1, 1, 1, 2]) },
    );
  const x = f32([1, 2, 4, 8], [1, 1, 1, 4]);
  const y = runOnce(resize({}), { x }).y;
  assert.deepEqual(y.shape, [1, 1, 1, 8]);
  // Output 0 maps to −0.25: taps −2…1 clamp to the edge, reading 1, 1, 1, 2.
  // Output 2 maps to 0.75: taps −1…2 read 1, 1, 2, 4.
  const dot = (values: number[], w: number[]) => values.reduce((s, v, i) => s + v * w[i], 0);
  assert.equal(dot([1, 1, 1, 2], CUBIC_AT_075), 0.89453125);
  assertClose([y.data[0], y.data[2]], [0.89453125, 1.5625]);

  // exclude_outside drops the tap at −1 and renormalises the other three.
  const excluded = runOnce(resize({ exclude_outside: 1 }), { x }).y;
  const kept = CUBIC_AT_075.slice(1);
  const sum = kept.reduce((a, b) => a + b, 0);
  assertClose([excluded.data[2]], [dot([1, 2, 4], kept) / sum]);
});

Deno.test("Resize linear with antialias widens the triangle filter when downsampling", async () => {
  await init();
  const graph = graphOf(
    [{ op: "Resize", inputs: ["x", "", "scales"], outputs: ["y"], attrs: { mode: "linear", antialias: 1 } }],
    ["x"],
    ["y"],
    { scales: f32([0.5]) },
    18,
  );
  // Scale ½ stretches the filter to 4 taps around 2o + 0.5 with weights (1, 3, 3, 1)/8;
  // the edge repeats, so output 0 reads 0, 0, 1, 2 and output 3 reads 5, 6, 7, 7.
  const y = runOnce(graph, { x: f32([0, 1, 2, 3, 4, 5, 6, 7]) }).y;
  assertClose(y.data as Float32Array, [0.625, 2.5, 4.5, 6.375]);
});

Deno.test("Resize tf_crop_and_resize samples the roi box and extrapolates outside the input", async () => {
  await init();
  const graph = graphOf(
    [{
      op: "Resize",
      inputs: ["x", "roi", "", "sizes"],
      outputs: ["y"],
      attrs: { mode: "linear", coordinate_transformation_mode: "tf_crop_and_resize", extrapolation_value: 7 },
    }],
    ["x"],
    ["y"],
    { roi: f32([0.5, 1.5]), sizes: new Tensor(new BigInt64Array([3n]), [1]) },
  );
  // Output o reads input 0.5·3 + o·(1.5 − 0.5)·3/2 = 1.5, 3, 4.5; 4.5 lies past the last input.
  const y = runOnce(graph, { x: f32([0, 10, 20, 30]) }).y;
  assertClose(y.data as Float32Array, [15, 30, 7]);
});

Deno.test("BatchNormalization training mode uses batch statistics and updates the running ones", async () => {
  await init();
  const graph = graphOf(
    [{
      op: "BatchNormalization",
      inputs: ["x", "scale", "bias", "mean", "var"],
      outputs: ["y", "running_mean", "running_var"],
      attrs: { training_mode: 1, momentum: 0.9, epsilon: 1e-5 },
    }],
    ["x"],
    ["y", "running_mean", "running_var"],
    { scale: f32([2]), bias: f32([1]), mean: f32([0]), var: f32([1]) },
    15,
  );
  // One channel holding 1, 3, 5, 7 across the batch: mean 4, biased variance (9+1+1+9)/4 = 5.
  const out = runOnce(graph, { x: f32([1, 3, 5, 7], [2, 1, 2]) });
  const s = 2 / Math.sqrt(5 + 1e-5);
  assertClose(out.y.data as Float32Array, [1 - 3 * s, 1 - s, 1 + s, 1 + 3 * s]);
  assertClose(out.running_mean.data as Float32Array, [0.9 * 0 + 0.1 * 4]);
  assertClose(out.running_var.data as Float32Array, [0.9 * 1 + 0.1 * 5]);
});

Deno.test("Round rounds halves to even", async () => {
  await init();
  const graph = graphOf([{ op: "Round", inputs: ["x"], outputs: ["y"] }], ["x"], ["y"]);
  const y = runOnce(graph, { x: f32([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4, -2.6]) }).y;
  assert.deepEqual(Array.from(y.data as Float32Array), [-2, -2, -0, 0, 2, 2, 2, -3]);
});

Deno.test("DepthToSpace: DCR takes channels block-major, CRD channel-major", async () => {
  await init();
  const x = f32([0, 1, 2, 3, 4, 5, 6, 7], [1, 8, 1, 1]);
  const run = (mode: string) =>
    runOnce(
      graphOf(
        [{ op: "DepthToSpace", inputs: ["x"], outputs: ["y"], attrs: { blocksize: 2, mode } }],
        ["x"],
        ["y"],
      ),
      { x },
    ).y;
  const dcr = run("DCR"), crd = run("CRD");
  assert.deepEqual(dcr.shape, [1, 2, 2, 2]);
  assert.deepEqual(Array.from(dcr.data as Float32Array), [0, 2, 4, 6, 1, 3, 5, 7]);
  assert.deepEqual(Array.from(crd.data as Float32Array), [0, 1, 2, 3, 4, 5, 6, 7]);
});

Deno.test("NonZero: data-dependent sizes replay while they fit and fail clearly when they grow", async () => {
  await init();
  // NonZero's int64 output lives on the host; the float32 Cast after it takes arena memory
  // sized by the planning run.
  const graph = graphOf(
    [
      { op: "NonZero", inputs: ["x"], outputs: ["where"] },
      { op: "Cast", inputs: ["where"], outputs: ["y"], attrs: { to: 1 } },
    ],
    ["x"],
    ["where", "y"],
  );
  const engine = new Engine(graph);
  try {
    const ones = (...at: number[]) => {
      const v = new Array(16).fill(0);
      for (const i of at) v[i] = 1;
      return f32(v);
    };
    const first = engine.run({ x: ones(1, 5, 9, 13) });
    assert.deepEqual(Array.from(first.y.data as Float32Array), [1, 5, 9, 13]);
    const fewer = engine.run({ x: ones(2, 3) });
    assert.deepEqual(fewer.where.shape, [1, 2]);
    assert.deepEqual(Array.from(fewer.y.data as Float32Array), [2, 3]);
    assert.throws(
      () => engine.run({ x: ones(0, 1, 2, 3, 4, 5, 6, 7) }),
      (e: unknown) =>
        e instanceof AttnroundError && e.code === "UNSUPPORTED_MODEL" &&
        /Cast_1.*changed its output size/.test(e.message),
    );
  } finally {
    engine.dispose();
  }
});

Deno.test("QuantizeLinear with block_size is refused at load, naming the node", async () => {
  await init();
  const graph = graphOf(
    [{ op: "QuantizeLinear", inputs: ["x", "scale", "zp"], outputs: ["y"], attrs: { block_size: 2 } }],
    ["x"],
    ["y"],
    { scale: f32([0.5, 0.5]), zp: new Tensor(new Uint8Array([0, 0]), [2]) },
    21,
  );
  assert.throws(
    () => new Engine(graph),
    (e: unknown) => e instanceof AttnroundError && /QuantizeLinear_0.*block_size/.test(e.message),
  );
});

Deno.test("roundHalfEven (the engine's Round and the quantizers') matches onnxruntime's Round, ties included", async () => {
  await init();
  const values: number[] = [];
  for (let i = -40; i <= 40; i++) values.push(i / 2, i / 2 + 1e-3, i / 2 - 1e-3);
  values.push(0.49999997, -0.49999997, 8388607.5, -8388607.5, 2 ** 23 + 1, 1e9 + 0.5, -0);
  const x = Float32Array.from(values);
  const bytes = modelBytes(13, {
    node: [nodeProto("Round", "round", ["x"], ["y"])],
    initializer: [],
    input: [valueInfoProto("x", DataType.FLOAT, [x.length])],
    output: [valueInfoProto("y", DataType.FLOAT, [x.length])],
  });
  const reference = (await ortNodeRun(bytes, { x: new Tensor(x, [x.length]) })).y.data as Float32Array;
  assert.deepEqual(Array.from(x, roundHalfEven), Array.from(reference));
});

Deno.test("an op registered twice is an error, not a silent replacement", () => {
  assert.throws(() => registerOps({ Relu: (_ctx, inputs) => [inputs[0]!] }), {
    code: "INTERNAL",
    message: /Relu.*registered twice/,
  });
});
