import assert from "node:assert/strict";
import { init, Tensor } from "../mod.ts";
import { addGradients } from "../src/engine/autodiff.ts";
import { Engine } from "../src/engine/engine.ts";
import { registerGradients, registerOps } from "../src/engine/registry.ts";
import type { Graph, Node } from "../src/graph/ir.ts";
import { randomFloats } from "./helpers.ts";

// Two test-only ops with hand-written backward: Scale(x) = k·x and Plus(a, b) = a + b.
const domain = "attnround.test";
registerOps(
  {
    Scale: (ctx, [x]) => {
      const y = ctx.outputF32(x!.shape);
      const k = ctx.node.attributes.get("k") as number;
      const xd = x!.data as Float32Array, yd = y.data;
      for (let i = 0; i < yd.length; i++) yd[i] = k * xd[i];
      return [y];
    },
    Plus: (ctx, [a, b]) => {
      const y = ctx.outputF32(a!.shape);
      const ad = a!.data as Float32Array, bd = b!.data as Float32Array, yd = y.data;
      for (let i = 0; i < yd.length; i++) yd[i] = ad[i] + bd[i];
      return [y];
    },
  },
  {},
  domain,
);
registerGradients({
  Scale: (ctx, _inputs, _outputs, [dy]) => {
    const dx = ctx.outputF32(dy!.shape);
    const k = ctx.node.attributes.get("k") as number;
    const dyd = dy!.data, dxd = dx.data;
    for (let i = 0; i < dxd.length; i++) dxd[i] = k * dyd[i];
    return [dx];
  },
  Plus: (ctx, _inputs, _outputs, [dy]) => [ctx.wants(0) ? dy : undefined, ctx.wants(1) ? dy : undefined],
}, domain);

function node(
  name: string,
  opType: string,
  domainName: string,
  inputs: string[],
  outputs: string[],
  k?: number,
): Node {
  return {
    name,
    opType,
    domain: domainName,
    inputs,
    outputs,
    attributes: new Map(k === undefined ? [] : [["k", k]]),
  };
}

// loss = mean((Plus(Scale_2(x), Scale_-0.5(x)) + c − t)²) with c a constant: x is used twice, c not trained.
const graph: Graph = {
  nodes: [
    node("double", "Scale", domain, ["x"], ["a"], 2),
    node("negHalf", "Scale", domain, ["x"], ["b"], -0.5),
    node("sum", "Plus", domain, ["a", "b"], ["s"]),
    node("shift", "Plus", domain, ["s", "c"], ["y"]),
    node("loss", "MeanSquaredError", "attnround", ["y", "t"], ["loss"]),
  ],
  initializers: new Map([["c", new Tensor(randomFloats(6, 9), [2, 3])]]),
  inputs: [{ name: "x" }, { name: "t" }],
  outputs: [{ name: "loss" }],
  opset: 13,
};

function lossAt(x: Float64Array, t: Float32Array, c: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += (1.5 * x[i] + c[i] - t[i]) ** 2;
  return sum / x.length;
}

Deno.test("autodiff: gradients of a graph with a shared input match central finite differences", async () => {
  await init();
  const { graph: training, gradients } = addGradients(graph, "loss", ["x", "t"]);
  assert.deepEqual([...gradients.keys()], ["x", "t"]);
  const engine = new Engine(training);
  const x = randomFloats(6, 1), t = randomFloats(6, 2), c = graph.initializers.get("c")!.data as Float32Array;
  for (let run = 0; run < 3; run++) { // planning run, then replays
    const out = engine.run({ x: new Tensor(x, [2, 3]), t: new Tensor(t, [2, 3]) });
    const gx = out[gradients.get("x")!].data as Float32Array;
    const gt = out[gradients.get("t")!].data as Float32Array;
    assert.ok(Math.abs((out.loss.data[0] as number) - lossAt(Float64Array.from(x), t, c)) < 1e-5);
    for (let i = 0; i < 6; i++) {
      const h = 1e-4, up = Float64Array.from(x), down = Float64Array.from(x);
      up[i] += h;
      down[i] -= h;
      const numeric = (lossAt(up, t, c) - lossAt(down, t, c)) / (2 * h);
      assert.ok(
        Math.abs(gx[i] - numeric) < 1e-4,
        `dL/dx[${i}] = ${gx[i]}, finite differences give ${numeric}`,
      );
      assert.ok(Math.abs(gt[i] + numeric / 1.5) < 1e-4, `dL/dt[${i}]`);
    }
  }
  engine.dispose();
});

Deno.test("autodiff: only what depends on the trained tensors is differentiated", async () => {
  await init();
  const { graph: training, gradients } = addGradients(graph, "loss", ["x"]);
  assert.deepEqual([...gradients.keys()], ["x"]);
  const gradNodes = training.nodes.filter((n) => n.domain === "attnround.grad");
  // loss, shift, sum, double, negHalf and one Add joining x's two contributions.
  assert.deepEqual(gradNodes.map((n) => n.opType).sort(), [
    "MeanSquaredError",
    "Plus",
    "Plus",
    "Scale",
    "Scale",
  ]);
  const shift = gradNodes.find((n) => n.name.endsWith(":shift"))!;
  assert.equal(shift.outputs[1], "", "the constant c gets no gradient");
  assert.equal(training.nodes.filter((n) => n.opType === "Add").length, 1);
});

Deno.test("autodiff: shape arithmetic on a trained tensor gets no gradient", async () => {
  await init();
  // y = Reshape(x, Shape(x)) feeds the loss: Shape's integer output must not ask for a gradient.
  const g: Graph = {
    nodes: [
      node("shape", "Shape", "", ["x"], ["s"]),
      node("reshape", "Reshape", "", ["x", "s"], ["y"]),
      node("loss", "MeanSquaredError", "attnround", ["y", "t"], ["loss"]),
    ],
    initializers: new Map(),
    inputs: [{ name: "x" }, { name: "t" }],
    outputs: [{ name: "loss" }],
    opset: 13,
  };
  const { graph: training, gradients } = addGradients(g, "loss", ["x"]);
  assert.ok(!training.nodes.some((n) => n.domain === "attnround.grad" && n.opType === "Shape"));
  const x = randomFloats(6, 4), t = randomFloats(6, 5);
  const out = new Engine(training).run({ x: new Tensor(x, [2, 3]), t: new Tensor(t, [2, 3]) });
  const gx = out[gradients.get("x")!].data as Float32Array;
  gx.forEach((v, i) => assert.ok(Math.abs(v - (2 / 6) * (x[i] - t[i])) < 1e-6));
});

Deno.test("autodiff: integer, boolean and piecewise-constant results are constants to the backward pass", async () => {
  await init();
  // A ViT's class-token chain (Shape → Equal → Where → Expand of a constant), Floor, a Cast to int64 and back,
  // and TopK whose indices feed a GatherElements: only the float paths from x get gradient nodes.
  const i64 = (values: number[]) => new Tensor(BigInt64Array.from(values, BigInt), [values.length]);
  const nodes: Node[] = [
    node("shape", "Shape", "", ["x"], ["s"]),
    node("equal", "Equal", "", ["s", "expected"], ["eq"]),
    node("where", "Where", "", ["eq", "s", "ones"], ["target"]),
    node("expand", "Expand", "", ["cls", "target"], ["clsRows"]),
    node("floor", "Floor", "", ["x"], ["fl"]),
    node("times", "Mul", "", ["fl", "x"], ["fx"]),
    { ...node("toInt", "Cast", "", ["x"], ["ix"]), attributes: new Map([["to", 7]]) },
    { ...node("toFloat", "Cast", "", ["ix"], ["ixf"]), attributes: new Map([["to", 1]]) },
    node("add1", "Add", "", ["clsRows", "fx"], ["a1"]),
    node("add2", "Add", "", ["a1", "ixf"], ["a2"]),
    { ...node("topk", "TopK", "", ["x", "k"], ["values", "indices"]), attributes: new Map([["axis", 1]]) },
    {
      ...node("pick", "GatherElements", "", ["x", "indices"], ["picked"]),
      attributes: new Map([["axis", 1]]),
    },
    { ...node("cat", "Concat", "", ["a2", "values", "picked"], ["y"]), attributes: new Map([["axis", 1]]) },
    node("loss", "MeanSquaredError", "attnround", ["y", "t"], ["loss"]),
  ];
  const g: Graph = {
    nodes,
    initializers: new Map([
      ["expected", i64([2, 3])],
      ["ones", i64([1, 1])],
      ["cls", new Tensor(randomFloats(3, 7), [1, 3])],
      ["k", i64([2])],
    ]),
    inputs: [{ name: "x" }, { name: "t" }],
    outputs: [{ name: "loss" }],
    opset: 13,
  };
  const { graph: training, gradients } = addGradients(g, "loss", ["x"]);
  const differentiated = training.nodes.filter((n) => n.domain === "attnround.grad").map((n) => n.opType);
  for (const op of ["Shape", "Equal", "Where", "Expand", "Floor", "Cast"]) {
    assert.ok(!differentiated.includes(op), `${op} got a gradient node`);
  }
  const x = randomFloats(6, 8).map((v) => 2 * v), t = randomFloats(14, 9);
  const engine = new Engine(training);
  const out = engine.run({ x: new Tensor(x, [2, 3]), t: new Tensor(t, [2, 7]) });
  const gx = out[gradients.get("x")!].data as Float32Array;
  // Expected: dy = 2(y − t)/14; x gets floor(x)·dy from the product and dy at each selected element twice.
  const cls = g.initializers.get("cls")!.data as Float32Array;
  const expected = new Float64Array(6);
  for (let r = 0; r < 2; r++) {
    const row = Array.from(x.slice(3 * r, 3 * r + 3));
    const order = [0, 1, 2].sort((p, q) => row[q] - row[p]).slice(0, 2);
    const cat = [
      ...row.map((v, j) => cls[j] + Math.floor(v) * v + Math.trunc(v)),
      ...order.map((j) => row[j]),
      ...order.map((j) => row[j]),
    ];
    const dy = cat.map((v, j) => (2 * (v - t[7 * r + j])) / 14);
    row.forEach((v, j) => (expected[3 * r + j] = dy[j] * Math.floor(v)));
    order.forEach((j, k) => (expected[3 * r + j] += dy[3 + k] + dy[5 + k]));
  }
  gx.forEach((v, i) =>
    assert.ok(Math.abs(v - expected[i]) < 1e-5, `dL/dx[${i}] = ${v}, expected ${expected[i]}`)
  );
  engine.dispose();
});
