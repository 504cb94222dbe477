import assert from "node:assert/strict";
import { init, loadModel, Tensor } from "../mod.ts";
import { Engine } from "../src/engine/engine.ts";
import { type AttributeValue, type Graph, type Node, topologicalOrder } from "../src/graph/ir.ts";
import { type Block, cutTensors, partitionBlocks, quantizableLayers } from "../src/graph/partition.ts";
import { randomFloats } from "./helpers.ts";
import { imagesToInput, readFixture } from "./fixtures.ts";
import { readNpz } from "../src/data/npy.ts";

// ---------------------------------------------------------------- helpers

/** Builds small graphs by hand: data ops, conv layers with initializer weights, Constant nodes. */
class Builder {
  nodes: Node[] = [];
  initializers = new Map<string, Tensor>();
  private n = 0;

  op(
    opType: string,
    inputs: string[],
    outputs = 1,
    attributes: Record<string, AttributeValue> = {},
  ): string[] {
    const name = `${opType.toLowerCase()}${this.n++}`;
    const outs = Array.from({ length: outputs }, (_, i) => `${name}_out${i}`);
    this.nodes.push({
      name,
      opType,
      domain: "",
      inputs,
      outputs: outs,
      attributes: new Map(Object.entries(attributes)),
    });
    return outs;
  }

  weight(shape: number[]): string {
    const name = `w${this.n++}`;
    this.initializers.set(name, new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape));
    return name;
  }

  conv(x: string, attributes: Record<string, AttributeValue> = {}): string {
    return this.op("Conv", [x, this.weight([4, 4, 3, 3])], 1, attributes)[0];
  }

  constant(): string {
    return this.op("Constant", [], 1, { value: new Tensor(new Float32Array([0.5]), []) })[0];
  }

  graph(inputs: string[], outputs: string[]): Graph {
    return {
      nodes: this.nodes,
      initializers: this.initializers,
      inputs: inputs.map((name) => ({ name })),
      outputs: outputs.map((name) => ({ name })),
      opset: 13,
    };
  }
}

/** The invariants every partition must meet. */
function checkPartition(graph: Graph, blocks: Block[]): void {
  const blockOf = new Map<Node, number>();
  blocks.forEach((b, i) => {
    assert.equal(b.index, i);
    for (const node of b.nodes) {
      assert.ok(!blockOf.has(node), `node ${node.name} is in blocks ${blockOf.get(node)} and ${i}`);
      blockOf.set(node, i);
    }
  });
  assert.equal(blockOf.size, graph.nodes.length, "every node in a block");
  for (const node of graph.nodes) assert.ok(blockOf.has(node), `node ${node.name} in no block`);

  // Concatenated, the blocks' node lists are a valid execution order.
  const producedIn = new Map<string, number>();
  const graphInputs = new Set(graph.inputs.map((i) => i.name));
  const available = new Set(["", ...graph.initializers.keys(), ...graphInputs]);
  for (const b of blocks) {
    for (const node of b.nodes) {
      for (const name of node.inputs) {
        assert.ok(available.has(name), `${node.name} reads ${name} before it exists`);
      }
      for (const out of node.outputs) {
        available.add(out);
        producedIn.set(out, b.index);
      }
    }
  }
  const layers = new Set(quantizableLayers(graph).map((l) => l.name));
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  for (const b of blocks) {
    for (const name of b.inputs) {
      assert.ok(!graph.initializers.has(name), `block ${b.index} lists initializer ${name} as input`);
      const from = producedIn.get(name);
      assert.ok(
        graphInputs.has(name) || (from !== undefined && from < b.index),
        `block ${b.index} input ${name}`,
      );
      if (from !== undefined) assert.ok(blocks[from].outputs.includes(name), `${name} leaves block ${from}`);
    }
    for (const name of b.outputs) {
      assert.equal(producedIn.get(name), b.index);
      const readLater = blocks.some((later) => later.index > b.index && later.inputs.includes(name));
      assert.ok(readLater || graphOutputs.has(name), `block ${b.index} output ${name} is read`);
    }
    assert.deepEqual(b.layers, b.nodes.filter((n) => layers.has(n.name)).map((n) => n.name));
  }
  assert.equal(blocks.reduce((s, b) => s + b.layers.length, 0), layers.size);
}

/** Data reachability by brute force: is some graph output reachable from some input without `removed`? */
function connected(graph: Graph, removed?: string): boolean {
  const reached = new Set(graph.inputs.map((i) => i.name).filter((n) => n !== removed));
  let grew = true;
  while (grew) {
    grew = false;
    for (const node of graph.nodes) {
      if (!node.inputs.some((name) => reached.has(name))) continue;
      for (const out of node.outputs) {
        if (out !== removed && !reached.has(out)) {
          reached.add(out);
          grew = true;
        }
      }
    }
  }
  return graph.outputs.some((o) => reached.has(o.name));
}

/** Tensors on some input→output path, by brute force. */
function onPaths(graph: Graph): Set<string> {
  const forward = new Set(graph.inputs.map((i) => i.name));
  const backward = new Set(graph.outputs.map((o) => o.name));
  for (let pass = 0; pass < graph.nodes.length + 1; pass++) {
    for (const node of graph.nodes) {
      if (node.inputs.some((name) => forward.has(name))) node.outputs.forEach((o) => forward.add(o));
      if (node.outputs.some((name) => backward.has(name))) node.inputs.forEach((i) => backward.add(i));
    }
  }
  return new Set([...forward].filter((t) => backward.has(t)));
}

const opTypes = (b: Block) => b.nodes.filter((n) => n.opType !== "Constant").map((n) => n.opType);

async function fixtureModel(name: string) {
  await init();
  return loadModel(readFixture(`${name}.onnx`));
}

// ---------------------------------------------------------------- fixtures

Deno.test("resnet18_fmnist: stem, 8 residual blocks ending at Add→Relu, head", async () => {
  const model = await fixtureModel("resnet18_fmnist");
  const graph = model.graph;
  const blocks = partitionBlocks(graph);
  checkPartition(graph, blocks);
  assert.equal(blocks.length, 10);
  assert.deepEqual(opTypes(blocks[0]), ["Sub", "Div", "Conv", "Relu"]);
  assert.deepEqual(opTypes(blocks[9]), ["GlobalAveragePool", "Flatten", "Gemm"]);
  assert.deepEqual(blocks.map((b) => b.layers.length), [1, 2, 2, 3, 2, 3, 2, 3, 2, 1]);
  const producer = new Map(graph.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  for (const b of blocks.slice(1, 9)) {
    assert.equal(b.outputs.length, 1);
    assert.equal(b.inputs.length, 1);
    assert.equal(b.inputs[0], blocks[b.index - 1].outputs[0]);
    const relu = producer.get(b.outputs[0])!;
    assert.equal(relu.opType, "Relu");
    assert.equal(producer.get(relu.inputs[0])!.opType, "Add");
    // The skip: the Add reads the block input itself, or a 1×1 downsample conv does.
    const skipReader = b.layers.length === 2 ? "Add" : "Conv";
    assert.equal(b.nodes.filter((n) => n.inputs.includes(b.inputs[0])).length, 2);
    assert.ok(b.nodes.some((n) => n.opType === skipReader && n.inputs.includes(b.inputs[0])));
  }
  assert.deepEqual(blocks[0].inputs, ["input"]);
  assert.deepEqual(blocks[9].outputs, ["logits"]);
  // Cuts include the block boundaries and every tensor of the plain stem and head.
  const cuts = cutTensors(graph);
  for (const b of blocks.slice(0, 9)) assert.ok(cuts.includes(b.outputs[0]));
  assert.equal(cuts[0], "input");
  assert.equal(cuts.at(-1), "logits");
  model.dispose();
});

Deno.test("mobilenetv2_fmnist: stem, 17 inverted-residual blocks, last 1×1 conv with the head", async () => {
  const model = await fixtureModel("mobilenetv2_fmnist");
  const graph = model.graph;
  const blocks = partitionBlocks(graph);
  checkPartition(graph, blocks);
  // torchvision's (t, c, n, s) table: n = 1, 2, 3, 4, 3, 3, 1 → 17 inverted-residual blocks,
  // 10 of them residual (stride 1 and equal widths: every one but the first of each stage).
  assert.equal(blocks.length, 1 + 17 + 1);
  assert.deepEqual(opTypes(blocks[0]), ["Sub", "Div", "Conv", "Clip"]);
  const inverted = blocks.slice(1, 18);
  assert.deepEqual(inverted.map((b) => b.layers.length), [2, ...Array(16).fill(3)]);
  const endsInAdd = inverted.map((b) => b.nodes.at(-1)!.opType === "Add");
  assert.deepEqual(
    endsInAdd.map(Number),
    [0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0],
  );
  for (const b of inverted) {
    // One depthwise conv per block; non-residual blocks end at their linear projection.
    const depthwise = b.nodes.filter((n) =>
      n.opType === "Conv" && (n.attributes.get("group") as number ?? 1) > 1
    );
    assert.equal(depthwise.length, 1, `block ${b.index}`);
    if (!endsInAdd[b.index - 1]) assert.equal(b.nodes.at(-1)!.opType, "Conv");
    assert.equal(b.inputs.length, 1);
    assert.equal(b.outputs.length, 1);
  }
  assert.deepEqual(opTypes(blocks[18]), ["Conv", "Clip", "GlobalAveragePool", "Flatten", "Gemm"]);
  // Clip bounds (Constant nodes) sit with their Clip and are never block inputs.
  for (const b of blocks) {
    for (const clip of b.nodes.filter((n) => n.opType === "Clip")) {
      for (const bound of clip.inputs.slice(1)) {
        assert.ok(b.nodes.some((n) => n.opType === "Constant" && n.outputs[0] === bound));
      }
    }
  }
  model.dispose();
});

Deno.test("tiny_cnn_fmnist: stem, then conv2 with the head", async () => {
  const model = await fixtureModel("tiny_cnn_fmnist");
  const blocks = partitionBlocks(model.graph);
  checkPartition(model.graph, blocks);
  assert.deepEqual(blocks.map(opTypes), [
    ["Sub", "Div", "Conv", "Relu"],
    ["MaxPool", "Conv", "Relu", "GlobalAveragePool", "Flatten", "Gemm"],
  ]);
  // A one-layer cap makes every layer a block of its own.
  assert.deepEqual(partitionBlocks(model.graph, { maxChainLayers: 1 }).map(opTypes), [
    ["Sub", "Div", "Conv", "Relu"],
    ["MaxPool", "Conv", "Relu"],
    ["GlobalAveragePool", "Flatten", "Gemm"],
  ]);
  model.dispose();
});

/** Copies a block into a graph of its own, with the Constant nodes and initializers it reads. */
function blockAsGraph(graph: Graph, block: Block): Graph {
  const own = new Set(block.nodes);
  const read = new Set(block.nodes.flatMap((n) => n.inputs));
  const constants = graph.nodes.filter((n) =>
    !own.has(n) && n.opType === "Constant" && read.has(n.outputs[0])
  );
  return {
    nodes: [...constants, ...block.nodes],
    initializers: new Map([...graph.initializers].filter(([name]) => read.has(name))),
    inputs: block.inputs.map((name) => ({ name })),
    outputs: block.outputs.map((name) => ({ name })),
    opset: graph.opset,
  };
}

Deno.test("running the blocks one after another reproduces the model's logits", async () => {
  const { x } = readNpz(readFixture("calib.npz"));
  const images = imagesToInput(x);
  const input = new Tensor(images.data.slice(0, 4 * 784), [4, 1, 28, 28]);
  for (const name of ["tiny_cnn_fmnist", "resnet18_fmnist", "mobilenetv2_fmnist"]) {
    const model = await fixtureModel(name);
    const expected = model.run({ input }).logits.data as Float32Array;
    const values = new Map<string, Tensor>([["input", input]]);
    for (const block of partitionBlocks(model.graph)) {
      const engine = new Engine(blockAsGraph(model.graph, block));
      const outs = engine.run(Object.fromEntries(block.inputs.map((n) => [n, values.get(n)!])));
      for (const [n, t] of Object.entries(outs)) values.set(n, t);
      engine.dispose();
    }
    const actual = values.get("logits")!.data as Float32Array;
    assert.equal(actual.length, expected.length);
    actual.forEach((v, i) =>
      assert.ok(Math.abs(v - expected[i]) <= 1e-5, `${name} logit ${i}: ${v} vs ${expected[i]}`)
    );
    model.dispose();
  }
});

// ---------------------------------------------------------------- synthetic graphs

/** stem conv → two residual blocks → conv head; `longSkip` adds the stem's output to the second block's output. */
function twoResidualBlocks(longSkip: boolean): Graph {
  const g = new Builder();
  const stem = g.op("Relu", [g.conv("x")])[0];
  const residual = (x: string) => {
    const h = g.op("Relu", [g.conv(x)])[0];
    return g.op("Relu", [g.op("Add", [g.conv(h), x])[0]])[0];
  };
  let out = residual(residual(stem));
  if (longSkip) out = g.op("Add", [out, stem])[0];
  const y = g.conv(out);
  return g.graph(["x"], [y]);
}

Deno.test("a skip connection spanning two residual blocks makes them one block", () => {
  const plainGraph = twoResidualBlocks(false);
  const plain = partitionBlocks(plainGraph);
  checkPartition(plainGraph, plain);
  assert.deepEqual(plain.map((b) => b.layers.length), [1, 2, 2, 1]);
  const graph = twoResidualBlocks(true);
  const skipped = partitionBlocks(graph);
  checkPartition(graph, skipped);
  assert.deepEqual(skipped.map((b) => b.layers.length), [1, 4, 1]);
  assert.equal(skipped[1].nodes.at(-1)!.opType, "Add");
});

Deno.test("two graph inputs: the first block runs until both have merged", () => {
  const g = new Builder();
  const a = g.op("Relu", [g.conv("a")])[0];
  const b = g.op("Relu", [g.conv("b")])[0];
  const merged = g.op("Add", [a, b])[0];
  const h = g.op("Relu", [g.conv(merged)])[0];
  const y = g.conv(g.op("Relu", [g.conv(h)])[0]);
  const graph = g.graph(["a", "b"], [y]);
  const blocks = partitionBlocks(graph);
  checkPartition(graph, blocks);
  assert.deepEqual(cutTensors(graph)[0], merged);
  assert.deepEqual(blocks[0].inputs, ["a", "b"]);
  assert.deepEqual(blocks[0].outputs, [merged]);
  assert.deepEqual(blocks.map((bl) => bl.layers.length), [2, 3]);

  // An input joining late leaves no cut before it: the first block runs up to the join.
  const late = new Builder();
  const f = late.op("Relu", [late.conv(late.op("Relu", [late.conv("a")])[0])])[0];
  const joined = late.op("Add", [f, "b"])[0];
  const z = late.conv(joined);
  const lateGraph = late.graph(["a", "b"], [z]);
  const lateBlocks = partitionBlocks(lateGraph);
  checkPartition(lateGraph, lateBlocks);
  assert.deepEqual(cutTensors(lateGraph), [joined, z]);
  assert.deepEqual(lateBlocks.map((bl) => bl.layers.length), [2, 1]);
  assert.deepEqual(lateBlocks[0].inputs, ["a", "b"]);
});

Deno.test("dead ends, intermediate graph outputs, shared constants and Shape nodes", () => {
  const g = new Builder();
  const s = g.op("Relu", [g.conv("x")])[0];
  const dead = g.op("Sigmoid", [s])[0]; // read by nothing
  const half = g.constant(); // read by two blocks
  const h1 =
    g.op("Mul", [g.op("Relu", [g.op("Add", [g.conv(g.op("Relu", [g.conv(s)])[0]), s])[0]])[0], half])[0];
  const shape = g.op("Shape", [s])[0]; // only its shape matters
  const h2 = g.op("Relu", [g.op("Add", [g.conv(g.op("Relu", [g.conv(h1)])[0]), h1])[0]])[0];
  const deadLate = g.op("Mul", [g.op("Neg", [h1])[0], h2])[0]; // reads two blocks, read by nothing
  const y = g.op("Reshape", [g.op("Mul", [h2, half])[0], shape])[0];
  const graph = g.graph(["x"], [y]);
  const blocks = partitionBlocks(graph);
  checkPartition(graph, blocks);
  assert.equal(blocks.length, 3);
  const blockOf = (t: string) => blocks.findIndex((b) => b.nodes.some((n) => n.outputs.includes(t)));
  assert.equal(blockOf(dead), 0, "a dead end stays where its input is");
  assert.equal(blockOf(deadLate), 2, "…where the last of its inputs is");
  assert.ok(blocks[1].outputs.includes(h1) && blocks[2].inputs.includes(h1));
  assert.equal(blockOf(half), 1, "a Constant goes with its first reader");
  assert.ok(!blocks[2].inputs.includes(half), "constants are never block inputs");
  assert.equal(blockOf(shape), 2, "a Shape node goes with its first reader");
  assert.ok(blocks[2].inputs.includes(s), "the tensor a Shape node reads enters its block");
  assert.ok(cutTensors(graph).includes(h1), "a Shape edge does not spoil a cut");

  // An intermediate tensor that is also a graph output: no cut after it.
  const withOutput = { ...graph, outputs: [{ name: y }, { name: h1 }] };
  const cuts = cutTensors(withOutput);
  assert.ok(!cuts.includes(h2) && !cuts.includes(y) && cuts.includes(h1));
  const b2 = partitionBlocks(withOutput);
  checkPartition(withOutput, b2);
  assert.ok(b2.some((b) => b.outputs.includes(h1)));
});

Deno.test("a graph without quantizable layers or without nodes", () => {
  const g = new Builder();
  const y = g.op("Relu", [g.op("Sub", ["x", g.weight([1])])[0]])[0];
  const graph = g.graph(["x"], [y]);
  const blocks = partitionBlocks(graph);
  checkPartition(graph, blocks);
  assert.equal(blocks.length, 1);
  assert.deepEqual(partitionBlocks(new Builder().graph(["x"], ["x"])), []);
});

// ---------------------------------------------------------------- quantizable layers

Deno.test("quantizableLayers: weights, kinds and m×k for Conv, ConvTranspose, Gemm, MatMul", async () => {
  const g = new Builder();
  const c = g.op("Conv", ["x", g.weight([6, 2, 3, 3])], 1, { group: 2 })[0];
  const t = g.op("ConvTranspose", [c, g.weight([6, 3, 2, 2])], 1, { group: 2 })[0];
  const flat = g.op("Flatten", [t])[0];
  const g1 = g.op("Gemm", [flat, g.weight([10, 24]), g.weight([10])], 1, { transB: 1 })[0];
  const g2 = g.op("Gemm", [g1, g.weight([10, 5])])[0];
  const constW = g.op("Constant", [], 1, { value: new Tensor(new Float32Array(15), [5, 3]) })[0];
  const mm = g.op("MatMul", [g2, constW])[0];
  const activations = g.op("MatMul", [mm, g.op("Transpose", [mm])[0]])[0]; // two activations: not a layer
  const graph = g.graph(["x"], [activations]);
  const layers = quantizableLayers(graph).map(({ kind, weightShape, m, k, channelAxis, group }) => ({
    kind,
    weightShape,
    m,
    k,
    channelAxis,
    group,
  }));
  assert.deepEqual(layers, [
    { kind: "Conv", weightShape: [6, 2, 3, 3], m: 6, k: 18, channelAxis: 0, group: 2 },
    { kind: "ConvTranspose", weightShape: [6, 3, 2, 2], m: 6, k: 12, channelAxis: 1, group: 2 },
    { kind: "Gemm", weightShape: [10, 24], m: 10, k: 24, channelAxis: 0, group: 1 },
    { kind: "Gemm", weightShape: [10, 5], m: 5, k: 10, channelAxis: 1, group: 1 },
    { kind: "MatMul", weightShape: [5, 3], m: 3, k: 5, channelAxis: 1, group: 1 },
  ]);
  assert.equal(quantizableLayers(graph)[4].weight, constW);

  const model = await fixtureModel("resnet18_fmnist");
  const resnet = quantizableLayers(model.graph);
  assert.equal(resnet.length, 21);
  assert.deepEqual([resnet[0].m, resnet[0].k], [16, 9]);
  assert.deepEqual([resnet[20].kind, resnet[20].m, resnet[20].k], ["Gemm", 10, 128]);
  const params = resnet.reduce((s, l) => s + l.m * l.k, 0);
  const weights = resnet.reduce((s, l) => s + model.graph.initializers.get(l.weight)!.size, 0);
  assert.equal(params, weights);
  model.dispose();
});

// ---------------------------------------------------------------- random DAGs

/** A random DAG: mostly chains with skips, joins, splits, constants and dead ends. */
function randomGraph(seed: number): Graph {
  const rnd = randomFloats(4096, seed).map((v) => (v + 1) / 2);
  let r = 0;
  const next = () => rnd[r++ % rnd.length];
  const pick = <T>(xs: T[]) => xs[Math.floor(next() * xs.length)];
  const g = new Builder();
  const inputs = next() < 0.2 ? ["x0", "x1"] : ["x0"];
  const tensors = [...inputs];
  // Recent tensors are likelier, so that the graph has a chain-like spine with cuts.
  const recent = () =>
    tensors[Math.max(0, tensors.length - 1 - Math.floor(-Math.log(1 - next() * 0.999) * 1.5))];
  const count = 4 + Math.floor(next() * 20);
  const shared = g.constant();
  for (let i = 0; i < count; i++) {
    const u = next();
    let outs: string[];
    if (u < 0.3) outs = [g.conv(recent())];
    else if (u < 0.5) outs = g.op(pick(["Relu", "MaxPool", "Flatten"]), [recent()]);
    else if (u < 0.7) outs = g.op("Add", [recent(), recent()]);
    else if (u < 0.78) outs = g.op("Concat", [recent(), recent(), recent()]);
    else if (u < 0.86) outs = g.op("Split", [recent()], 2);
    else if (u < 0.93) outs = g.op("Mul", [recent(), next() < 0.5 ? shared : g.constant()]);
    else outs = g.op("MatMul", [recent(), recent()]);
    tensors.push(...outs);
  }
  const outputs = [tensors[tensors.length - 1]];
  if (next() < 0.15) outputs.push(pick(tensors.slice(inputs.length)));
  return g.graph(inputs, outputs);
}

Deno.test("random DAGs: cuts match brute-force reachability, blocks split only at cuts", () => {
  let graphs = 0, cutsSeen = 0;
  for (let seed = 1; seed <= 400; seed++) {
    const graph = randomGraph(seed);
    if (!connected(graph)) continue;
    graphs++;
    const paths = onPaths(graph);
    const data = [...new Set(graph.nodes.flatMap((n) => n.outputs).concat(graph.inputs.map((i) => i.name)))];
    const bruteCuts = data.filter((t) => paths.has(t) && !connected(graph, t));
    const cuts = cutTensors(graph);
    assert.deepEqual([...cuts].sort(), bruteCuts.sort(), `seed ${seed}`);
    // In path order: each cut's producer comes after the previous cut's.
    const order = topologicalOrder(graph);
    const at = (t: string) => order.findIndex((n) => n.outputs.includes(t));
    for (let i = 1; i < cuts.length; i++) assert.ok(at(cuts[i]) > at(cuts[i - 1]), `seed ${seed}: order`);
    cutsSeen += cuts.length;

    for (const maxChainLayers of [1, 3]) {
      const blocks = partitionBlocks(graph, { maxChainLayers });
      checkPartition(graph, blocks);
      // The boundary: what later blocks' on-path nodes read (dead ends may read more).
      const onPathNode = (n: Node) =>
        n.inputs.some((t) => paths.has(t)) && n.outputs.some((t) => paths.has(t));
      for (const b of blocks.slice(0, -1)) {
        const later = blocks.slice(b.index + 1).flatMap((l) => l.nodes).filter(onPathNode);
        const boundary = b.outputs.filter((t) => later.some((n) => n.inputs.includes(t)));
        assert.equal(boundary.length, 1, `seed ${seed}: block ${b.index} has one boundary tensor`);
        assert.ok(!connected(graph, boundary[0]), `seed ${seed}: ${boundary[0]} is a cut`);
      }
    }
  }
  assert.ok(graphs > 300 && cutsSeen > graphs * 2, `${graphs} graphs, ${cutsSeen} cuts`);
});
