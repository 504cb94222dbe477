// The Fashion-MNIST Vision Transformer (tests/fixtures/vit_fmnist.onnx:
// attention as MatMul/Softmax, LayerNorm written out, GELU as Erf, a class
// token expanded through Shape/Equal/Where/Expand): every block it partitions
// into has a backward, and reconstruction runs through all of them.
import assert from "node:assert/strict";
import { init, loadModel, Tensor } from "../mod.ts";
import { addGradients } from "../src/engine/autodiff.ts";
import { readNpz } from "../src/data/npy.ts";
import { partitionBlocks, quantizableLayers } from "../src/graph/partition.ts";
import { quantize } from "../src/quant/quantize.ts";
import { blockGraph } from "../src/graph/subgraph.ts";
import { imagesToInput, readFixture } from "./fixtures.ts";

Deno.test("vit_fmnist: autodiff finds a backward for every op of every block", async () => {
  await init();
  const graph = loadModel(readFixture("vit_fmnist.onnx")).graph;
  const blocks = partitionBlocks(graph);
  assert.equal(blocks.length, 10);
  for (const block of blocks) {
    const g = blockGraph(graph, block);
    const weights = quantizableLayers(g).map((l) => l.weight);
    const loss = {
      name: "loss",
      opType: "MeanSquaredError",
      domain: "attnround",
      inputs: [block.outputs[0], "target"],
      outputs: ["loss"],
      attributes: new Map(),
    };
    const { gradients } = addGradients(
      { ...g, nodes: [...g.nodes, loss], inputs: [...g.inputs, { name: "target" }] },
      "loss",
      [...block.inputs, ...weights],
    );
    for (const name of [...block.inputs, ...weights]) {
      assert.ok(gradients.has(name), `block ${block.index + 1}: no gradient for ${name}`);
    }
  }
});

Deno.test("vit_fmnist: attention rounding reconstructs all ten blocks (W4A8, a few iterations)", async () => {
  await init();
  const model = loadModel(readFixture("vit_fmnist.onnx"));
  const all = imagesToInput(readNpz(readFixture("calib.npz")).x);
  const calib = new Tensor((all.data as Float32Array).slice(0, 64 * 784), [64, 1, 28, 28]);
  const q = await quantize(model, calib, {
    weightBits: 4,
    activationBits: 8,
    iterations: 10,
    batchSize: 8,
    rounding: "attention",
  });
  const r = q.report;
  assert.equal(r.blocks.length, 10);
  assert.ok(r.blocks.every((b) => b.losses.length > 0 && b.losses.every(Number.isFinite)));
  assert.ok(r.fidelity!.ok, `fidelity: ${JSON.stringify(r.fidelity)}`);
  q.dispose();
});
