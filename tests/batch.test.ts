// freeBatch: a graph exported with its batch fixed to 1 (in its input and in
// the constant shapes of Reshape, Expand and ConstantOfShape) takes any batch
// once rewritten, giving each sample the output the original gives it alone.
import assert from "node:assert/strict";
import { init, Tensor } from "../mod.ts";
import { Engine } from "../src/engine/engine.ts";
import { freeBatch, hasFixedBatch } from "../src/graph/batch.ts";
import type { Graph, Node } from "../src/graph/ir.ts";
import { randomFloats } from "./helpers.ts";

const int64 = (values: number[]) => new Tensor(BigInt64Array.from(values.map(BigInt)), [values.length]);

function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attrs: Record<string, unknown> = {},
): Node {
  return {
    name: `${opType}_${outputs[0]}`,
    opType,
    domain: "",
    inputs,
    outputs,
    attributes: new Map(Object.entries(attrs)) as Node["attributes"],
  };
}

/** BlazeFace's habits in miniature: NHWC input [1, 2, 2, 3], channel padding from ConstantOfShape, a Reshape to [1, 4, 4]. */
function fixedBatchGraph(): Graph {
  return {
    nodes: [
      node("Transpose", ["x"], ["nchw"], { perm: [0, 3, 1, 2] }),
      node("ConstantOfShape", ["pad_shape"], ["pad"]),
      node("Concat", ["nchw", "pad"], ["padded"], { axis: 1 }),
      node("Expand", ["bias", "bias_shape"], ["bias_full"]),
      node("Add", ["padded", "bias_full"], ["biased"]),
      node("Transpose", ["biased"], ["nhwc"], { perm: [0, 2, 3, 1] }),
      node("Reshape", ["nhwc", "out_shape"], ["y"]),
    ],
    initializers: new Map([
      ["pad_shape", int64([1, 1, 2, 2])],
      ["bias", new Tensor(Float32Array.from([0.5, -1, 2, 0.25]), [4, 1, 1])],
      ["bias_shape", int64([1, 4, 2, 2])],
      ["out_shape", int64([1, 4, 4])],
    ]),
    inputs: [{ name: "x", dtype: "float32", shape: [1, 2, 2, 3] }],
    outputs: [{ name: "y", dtype: "float32", shape: [1, 4, 4] }],
    opset: 13,
  };
}

Deno.test("freeBatch: a batch-1 graph runs at batch 5 and gives each sample its batch-1 output", async () => {
  await init();
  const original = fixedBatchGraph();
  assert.ok(hasFixedBatch(original));
  const freed = freeBatch(original)!;
  assert.equal(freed.inputs[0].shape![0], "batch");
  const x = randomFloats(5 * 12, 3);
  const one = new Engine(original), many = new Engine(freed);
  try {
    assert.throws(() => one.run({ x: new Tensor(x, [5, 2, 2, 3]) }), "the original cannot take a batch of 5");
    const y = many.run({ x: new Tensor(x, [5, 2, 2, 3]) }).y;
    assert.deepEqual(y.shape, [5, 4, 4]);
    for (let s = 0; s < 5; s++) {
      const alone = one.run({ x: new Tensor(x.slice(s * 12, (s + 1) * 12), [1, 2, 2, 3]) }).y;
      assert.deepEqual(
        Array.from((y.data as Float32Array).subarray(s * 16, (s + 1) * 16)),
        Array.from(alone.data as Float32Array),
      );
    }
  } finally {
    one.dispose(), many.dispose();
  }
});

Deno.test("freeBatch: nothing to free in a graph whose batch is already dynamic", () => {
  const graph = fixedBatchGraph();
  graph.inputs[0].shape = ["N", 2, 2, 3];
  assert.equal(hasFixedBatch(graph), false);
  assert.equal(freeBatch(graph), undefined);
});
