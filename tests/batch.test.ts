// freeBatch: a graph exported with its batch fixed to 1 (in its input and in
// the constant shapes of Reshape, Expand and ConstantOfShape) takes any batch
// once rewritten, giving each sample the output the original gives it alone.
// localizeShapes: shape values computed at one tensor and used far from it are
// recomputed where they are used, so that blocks read one tensor each.
import assert from "node:assert/strict";
import { init, Tensor } from "../mod.ts";
import { Engine } from "../src/engine/engine.ts";
import { freeBatch, hasFixedBatch } from "../src/graph/batch.ts";
import type { Graph, Node } from "../src/graph/ir.ts";
import { localizeShapes } from "../src/quant/shapes.ts";
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

/** PyTorch-style shape arithmetic: n = x.shape[0] read at the input, used two reshapes later. */
function shapeArithmeticGraph(): Graph {
  return {
    nodes: [
      node("Shape", ["x"], ["x_shape"]),
      node("Gather", ["x_shape", "zero"], ["n"], { axis: 0 }),
      node("Unsqueeze", ["n", "axes"], ["n1"]),
      node("Mul", ["n1", "two"], ["n2"]),
      node("Mul", ["n1", "four"], ["n4"]),
      node("Concat", ["four", "n2", "three"], ["heads_shape"], { axis: 0 }),
      node("Concat", ["n4", "six"], ["flat_shape"], { axis: 0 }),
      node("Transpose", ["x"], ["t"], { perm: [1, 0, 2] }),
      node("Reshape", ["t", "heads_shape"], ["heads"]),
      node("Relu", ["heads"], ["r"]),
      node("Reshape", ["r", "flat_shape"], ["y"]),
    ],
    initializers: new Map([
      ["zero", new Tensor(new BigInt64Array([0n]), [])],
      ["axes", int64([0])],
      ["two", int64([2])],
      ["three", int64([3])],
      ["four", int64([4])],
      ["six", int64([6])],
    ]),
    inputs: [{ name: "x", dtype: "float32", shape: ["N", 4, 6] }],
    outputs: [{ name: "y", dtype: "float32" }],
    opset: 13,
  };
}

Deno.test("localizeShapes: shape values read at the input are taken where they are used, with the same outputs", async () => {
  await init();
  const original = shapeArithmeticGraph();
  const local = localizeShapes(original, new Tensor(randomFloats(2 * 24, 5), [2, 4, 6]));
  const readers = local.nodes.filter((n) => n.inputs.includes("x")).map((n) => n.opType);
  assert.deepEqual(readers, ["Transpose"], "only the data path reads the input");
  const x = new Tensor(randomFloats(3 * 24, 6), [3, 4, 6]);
  const a = new Engine(original), b = new Engine(local);
  try {
    const want = a.run({ x }).y, got = b.run({ x }).y;
    assert.deepEqual(got.shape, [12, 6]);
    assert.deepEqual(Array.from(got.data as Float32Array), Array.from(want.data as Float32Array));
  } finally {
    a.dispose(), b.dispose();
  }
});
