import assert from "node:assert/strict";
import { init, Tensor } from "../mod.ts";
import { Engine } from "../src/engine/engine.ts";
import type { Graph, Node } from "../src/graph/ir.ts";
import { blockGraph, packedParts } from "../src/graph/subgraph.ts";
import { ActivationCache } from "../src/quant/cache.ts";
import { LOSS, TARGET, trainingGraph } from "../src/quant/qgraph.ts";
import { partWeights } from "../src/quant/reconstruct.ts";
import { randomFloats } from "./helpers.ts";

const onnxNode = (opType: string, inputs: string[], output: string): Node => ({
  name: output,
  opType,
  domain: "",
  inputs,
  outputs: [output],
  attributes: new Map(),
});

Deno.test("a block with two outputs weighs each by its float mean square in its loss, whatever its units", async () => {
  await init();
  // "scores" near 0.01 and "offsets" in the hundreds, as a detector's heads.
  const graph: Graph = {
    nodes: [
      onnxNode("MatMul", ["x", "w"], "scores"),
      onnxNode("MatMul", ["x", "v"], "raw"),
      onnxNode("Mul", ["raw", "pixels"], "offsets"),
    ],
    initializers: new Map([
      ["w", new Tensor(randomFloats(6, 1).map((a) => 0.01 * a), [3, 2])],
      ["v", new Tensor(randomFloats(12, 2), [3, 4])],
      ["pixels", new Tensor(new Float32Array([300]), [1])],
    ]),
    inputs: [{ name: "x", dtype: "float32", shape: ["N", 3] }],
    outputs: [{ name: "scores" }, { name: "offsets" }],
    opset: 13,
  };
  const block = { nodes: graph.nodes, inputs: ["x"], outputs: ["scores", "offsets"] };
  const packed = blockGraph(graph, block);
  const n = 5, x = new Tensor(randomFloats(n * 3, 3), [n, 3]);

  const float = new Engine({
    ...packed,
    outputs: [...packed.outputs, ...packedParts(block).map((name) => ({ name }))],
  });
  const out = float.run({ x });
  float.dispose();
  const targets = new ActivationCache([6], n);
  targets.write(0, out[packed.outputs[0].name].data as Float32Array);
  const sizes = packedParts(block).map((name) => out[name].size / n);
  assert.deepEqual(sizes, [2, 4]);

  // Compared with targets away from the block's own output.
  const target = (out[packed.outputs[0].name].data as Float32Array).map((t, i) =>
    t * (1 + 0.1 * Math.sin(i))
  );
  const training = trainingGraph(packed, [], [], 0, false, partWeights(targets, sizes));
  const engine = new Engine(training);
  const loss = engine.run({ x, [TARGET]: new Tensor(target, [n, 6]) })[LOSS].data[0] as number;
  engine.dispose();
  targets.dispose();

  // Each output's MSE over its targets' mean square, averaged over the two outputs.
  const y = out[packed.outputs[0].name].data as Float32Array;
  let expected = 0;
  for (const [at, size] of [[0, 2], [2, 4]]) {
    let error = 0, square = 0;
    for (let s = 0; s < n; s++) {
      for (let k = at; k < at + size; k++) {
        error += (y[s * 6 + k] - target[s * 6 + k]) ** 2;
        square += y[s * 6 + k] ** 2;
      }
    }
    expected += error / square / 2;
  }
  // The cache holds float16: the weights carry its rounding. Unweighed, the loss would be ~10⁴ times this.
  assert.ok(Math.abs(loss - expected) <= 1e-3 * expected, `loss ${loss}, expected ${expected}`);
});
