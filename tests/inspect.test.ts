// inspectModel against what is known of the fixture models without it: their
// architectures (tests/fixtures/README.md) and the initializers of the ONNX
// files as decoded, before any graph pass.
import assert from "node:assert/strict";
import { init, inspectModel, loadModel } from "../mod.ts";
import { decodeModel } from "../src/onnx/codec.ts";
import { readFixture } from "./fixtures.ts";

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** Sizes of the file's float initializers by name, and the weights (second inputs) of its Conv and Gemm nodes. */
function fileFacts(name: string) {
  const proto = decodeModel(readFixture(name));
  const sizes = new Map(
    proto.graph.initializer.filter((t) => t.dataType === 1).map((t) => [t.name, product(t.dims)]),
  );
  const weights = proto.graph.node.filter((n) => n.opType === "Conv" || n.opType === "Gemm").map((n) =>
    n.input[1]
  );
  return { sizes, weights };
}

Deno.test("inspectModel: tiny_cnn's layers, parameters and blocks are those of its architecture and its file", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const info = inspectModel(model);
  model.dispose();
  // conv 1→8 3×3, conv 8→16 3×3, linear 16→10 (BatchNorm already folded by the export).
  assert.deepEqual(info.layers.map((l) => l.shape), [[8, 1, 3, 3], [16, 8, 3, 3], [10, 16]]);
  const { sizes, weights } = fileFacts("tiny_cnn_fmnist.onnx");
  assert.equal(info.quantizableParameters, weights.reduce((a, w) => a + sizes.get(w)!, 0));
  assert.equal(info.quantizableParameters, 72 + 1152 + 160);
  // Every float initializer: weights, biases 8 + 16 + 10, and the 0-d normalize.mean and normalize.std.
  assert.equal(info.parameters, [...sizes.values()].reduce((a, b) => a + b, 0));
  assert.equal(info.parameters, 1384 + 34 + 2);
  assert.equal(info.blocks.length, 2);
  assert.deepEqual(info.blocks.flatMap((b) => b.layers), info.layers.map((l) => l.name));
  assert.equal(info.opset, 13);
  assert.deepEqual(info.inputs, [{ name: "input", dtype: "float32", shape: ["batch", 1, 28, 28] }]);
  assert.deepEqual(info.outputs, [{ name: "logits", dtype: "float32", shape: ["batch", 10] }]);
  // The first and last layer stay at 8 bits whatever the budget.
  assert.deepEqual(info.layers.map((l) => l.bitsFrom), ["first-last", "mixed", "first-last"]);
  assert.deepEqual(info.layers[0].mixedBits, { 2: 8, 3: 8, 4: 8 });
  // Plain JSON: it survives a round trip unchanged.
  assert.deepEqual(JSON.parse(JSON.stringify(info)), info);
});

Deno.test("inspectModel: resnet18 has 20 convs and a linear layer in 10 blocks; budgets choose the columns", async () => {
  await init();
  const model = loadModel(readFixture("resnet18_fmnist.onnx"));
  const info = inspectModel(model, { budgets: [3, 6] });
  model.dispose();
  // Stem, 8 BasicBlocks of two convs, 3 downsampling 1×1 convs, the classifier.
  assert.equal(info.ops.Conv, 1 + 8 * 2 + 3);
  assert.equal(info.ops.Add, 8);
  assert.deepEqual(info.layers.map((l) => l.kind), [...Array(20).fill("Conv"), "Gemm"]);
  assert.equal(info.blocks.length, 1 + 8 + 1);
  const { sizes, weights } = fileFacts("resnet18_fmnist.onnx");
  assert.equal(info.quantizableParameters, weights.reduce((a, w) => a + sizes.get(w)!, 0));
  assert.equal(info.parameters, [...sizes.values()].reduce((a, b) => a + b, 0));
  for (const l of info.layers) {
    assert.equal(l.parameters, product(l.shape));
    assert.ok(l.codingLength > 0 && l.codingLengthPerWeight > 0, l.name);
    assert.deepEqual(Object.keys(l.mixedBits), ["3", "6"]);
  }
});
