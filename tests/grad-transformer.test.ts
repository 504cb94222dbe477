// A transformer block as exporters write it, differentiated end to end:
// LayerNorm written out (ReduceMean, Sub, Pow, Sqrt, Div), two-head attention
// (MatMul, Reshape, Transpose, MatMul of two activations, Softmax) and an MLP
// with GELU written with Erf. autodiff adds the registered op backwards, the
// engine plans and replays forward and backward as one graph, and the
// gradients of the input and of every parameter match float64 finite
// differences on every run.
import assert from "node:assert/strict";
import { init, Tensor } from "../mod.ts";
import { addGradients } from "../src/engine/autodiff.ts";
import { Engine } from "../src/engine/engine.ts";
import type { AttributeValue, Graph, Node } from "../src/graph/ir.ts";
import { uniform } from "./grad-helpers.ts";

const batch = 2, tokens = 4, width = 6, heads = 2, headWidth = 3, hidden = 8;

function node(
  name: string,
  opType: string,
  inputs: string[],
  attributes: Record<string, AttributeValue> = {},
): Node {
  return {
    name,
    opType,
    domain: "",
    inputs,
    outputs: [name],
    attributes: new Map(Object.entries(attributes)),
  };
}

const scalar = (v: number) => new Tensor(new Float32Array([v]), []);
const ints = (values: number[]) => new Tensor(BigInt64Array.from(values, BigInt), [values.length]);

const graph: Graph = {
  nodes: [
    // LayerNorm, written out (opset 18: ReduceMean takes its axes as an input).
    node("mean", "ReduceMean", ["x", "lastAxis"]),
    node("centered", "Sub", ["x", "mean"]),
    node("squared", "Pow", ["centered", "two"]),
    node("variance", "ReduceMean", ["squared", "lastAxis"]),
    node("varianceEps", "Add", ["variance", "eps"]),
    node("std", "Sqrt", ["varianceEps"]),
    node("normalized", "Div", ["centered", "std"]),
    node("scaled", "Mul", ["normalized", "gamma"]),
    node("ln", "Add", ["scaled", "beta"]),
    // Attention, two heads.
    node("q", "MatMul", ["ln", "wq"]),
    node("k", "MatMul", ["ln", "wk"]),
    node("v", "MatMul", ["ln", "wv"]),
    node("qSplit", "Reshape", ["q", "headShape"]),
    node("kSplit", "Reshape", ["k", "headShape"]),
    node("vSplit", "Reshape", ["v", "headShape"]),
    node("qHeads", "Transpose", ["qSplit"], { perm: [0, 2, 1, 3] }),
    node("kHeadsT", "Transpose", ["kSplit"], { perm: [0, 2, 3, 1] }),
    node("vHeads", "Transpose", ["vSplit"], { perm: [0, 2, 1, 3] }),
    node("scores", "MatMul", ["qHeads", "kHeadsT"]),
    node("scaledScores", "Mul", ["scores", "invSqrtHead"]),
    node("attention", "Softmax", ["scaledScores"], { axis: -1 }),
    node("context", "MatMul", ["attention", "vHeads"]),
    node("contextT", "Transpose", ["context"], { perm: [0, 2, 1, 3] }),
    node("merged", "Reshape", ["contextT", "tokenShape"]),
    node("projected", "MatMul", ["merged", "wo"]),
    node("residual", "Add", ["x", "projected"]),
    // MLP with GELU(h) = h·(1 + erf(h/√2))/2.
    node("h", "MatMul", ["residual", "w1"]),
    node("hb", "Add", ["h", "b1"]),
    node("hScaled", "Div", ["hb", "sqrt2"]),
    node("erf", "Erf", ["hScaled"]),
    node("erfPlusOne", "Add", ["erf", "one"]),
    node("gated", "Mul", ["hb", "erfPlusOne"]),
    node("gelu", "Mul", ["gated", "half"]),
    node("down", "MatMul", ["gelu", "w2"]),
    node("downb", "Add", ["down", "b2"]),
    node("out", "Add", ["residual", "downb"]),
    { ...node("loss", "MeanSquaredError", ["out", "t"]), domain: "attnround" },
  ],
  initializers: new Map([
    ["lastAxis", ints([-1])],
    ["two", scalar(2)],
    ["eps", scalar(1e-5)],
    ["headShape", ints([batch, tokens, heads, headWidth])],
    ["tokenShape", ints([batch, tokens, width])],
    ["invSqrtHead", scalar(1 / Math.sqrt(headWidth))],
    ["sqrt2", scalar(Math.SQRT2)],
    ["one", scalar(1)],
    ["half", scalar(0.5)],
  ]),
  inputs: ["x", "t", "gamma", "beta", "wq", "wk", "wv", "wo", "w1", "b1", "w2", "b2"].map((name) => ({
    name,
  })),
  outputs: [{ name: "loss" }],
  opset: 18,
};

const shapes: Record<string, number[]> = {
  x: [batch, tokens, width],
  t: [batch, tokens, width],
  gamma: [width],
  beta: [width],
  wq: [width, width],
  wk: [width, width],
  wv: [width, width],
  wo: [width, width],
  w1: [width, hidden],
  b1: [hidden],
  w2: [hidden, width],
  b2: [width],
};

/** erf to float64 precision, from its Taylor series (the arguments here are small). */
function erf(x: number): number {
  assert.ok(Math.abs(x) < 5, `erf(${x}): the series needs a small argument`);
  let sum = 0, term = x;
  for (let n = 0; n < 100; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/** [rows, k] · [k, n] (b given row-major as k × n). */
function matmul(a: Float64Array, b: Float64Array, rows: number, k: number, n: number): Float64Array {
  const y = new Float64Array(rows * n);
  for (let i = 0; i < rows; i++) {
    for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) y[i * n + j] += a[i * k + p] * b[p * n + j];
  }
  return y;
}

/** The block and its loss in float64, written from the definitions. */
function lossOf(v: Record<string, Float64Array>): number {
  const rows = batch * tokens;
  const ln = new Float64Array(rows * width);
  for (let r = 0; r < rows; r++) {
    const row = v.x.subarray(r * width, (r + 1) * width);
    const mean = row.reduce((a, b) => a + b, 0) / width;
    const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / width;
    const std = Math.sqrt(variance + 1e-5);
    row.forEach((e, j) => (ln[r * width + j] = ((e - mean) / std) * v.gamma[j] + v.beta[j]));
  }
  const [q, k, val] = [v.wq, v.wk, v.wv].map((w) => matmul(ln, w, rows, width, width));
  const merged = new Float64Array(rows * width);
  // Token i of head h reads columns h·headWidth … of q, k, v.
  const at = (m: Float64Array, b: number, i: number, h: number, d: number) =>
    m[(b * tokens + i) * width + h * headWidth + d];
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < tokens; i++) {
        const scores = Array.from({ length: tokens }, (_, j) => {
          let s = 0;
          for (let d = 0; d < headWidth; d++) s += at(q, b, i, h, d) * at(k, b, j, h, d);
          return s / Math.sqrt(headWidth);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max)), sum = e.reduce((a, c) => a + c, 0);
        for (let d = 0; d < headWidth; d++) {
          let c = 0;
          for (let j = 0; j < tokens; j++) c += (e[j] / sum) * at(val, b, j, h, d);
          merged[(b * tokens + i) * width + h * headWidth + d] = c;
        }
      }
    }
  }
  const projected = matmul(merged, v.wo, rows, width, width);
  const residual = v.x.map((e, i) => e + projected[i]);
  const h = matmul(residual, v.w1, rows, width, hidden).map((e, i) => e + v.b1[i % hidden]);
  const gelu = h.map((e) => 0.5 * e * (1 + erf(e / Math.SQRT2)));
  const down = matmul(gelu, v.w2, rows, hidden, width);
  let sum = 0;
  for (let i = 0; i < rows * width; i++) sum += (residual[i] + down[i] + v.b2[i % width] - v.t[i]) ** 2;
  return sum / (rows * width);
}

Deno.test("a transformer block's gradients (LayerNorm written out, attention, Erf GELU) match finite differences, planned and replayed", async () => {
  await init();
  const trained = Object.keys(shapes).filter((name) => name !== "t");
  const { graph: training, gradients } = addGradients(graph, "loss", trained);
  const engine = new Engine(training);
  const feeds = Object.fromEntries(
    Object.entries(shapes).map(([name, shape], i) => {
      const t = uniform(shape, 20 + i);
      // LayerNorm's scale near 1 and weights of variance about 1/fan-in, as trained models have them.
      const d = t.data as Float32Array;
      if (name === "gamma") d.forEach((e, j) => (d[j] = 1 + 0.3 * e));
      if (name.startsWith("w")) d.forEach((e, j) => (d[j] = (1.5 * e) / Math.sqrt(shape[0])));
      return [name, t];
    }),
  ) as Record<string, Tensor>;
  const v64 = Object.fromEntries(
    Object.entries(feeds).map(([name, t]) => [name, Float64Array.from(t.data as Float32Array)]),
  );
  const numeric = new Map<string, Float64Array>();
  for (const name of trained) {
    const values = v64[name], g = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const keep = values[i];
      values[i] = keep + 1e-6;
      const up = lossOf(v64);
      values[i] = keep - 1e-6;
      const down = lossOf(v64);
      values[i] = keep;
      g[i] = (up - down) / 2e-6;
    }
    numeric.set(name, g);
  }
  let first: Record<string, Float32Array> | undefined;
  for (let run = 0; run < 3; run++) {
    const out = engine.run(feeds);
    assert.ok(
      Math.abs((out.loss.data[0] as number) - lossOf(v64)) < 1e-5,
      `loss ${out.loss.data[0]} vs ${lossOf(v64)}`,
    );
    for (const name of trained) {
      const g = out[gradients.get(name)!].data as Float32Array, expected = numeric.get(name)!;
      const scale = expected.reduce((m, e) => Math.max(m, Math.abs(e)), 0);
      for (let i = 0; i < g.length; i++) {
        assert.ok(
          Math.abs(g[i] - expected[i]) <= 1e-3 * Math.abs(expected[i]) + 1e-4 * scale + 1e-7,
          `run ${run}: d loss / d ${name}[${i}] is ${g[i]}, finite differences give ${expected[i]}`,
        );
      }
      if (first) {
        assert.deepEqual(g, first[name], `run ${run}: ${name}'s gradient differs from the first run`);
      }
    }
    first ??= Object.fromEntries(
      trained.map((name) => [name, out[gradients.get(name)!].data as Float32Array]),
    );
  }
  engine.dispose();
});
