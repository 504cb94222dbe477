// A residual block differentiated end to end: autodiff adds the registered op
// backwards, the engine plans and replays forward and backward together, and
// the weight and input gradients match float64 finite differences on every
// run (the planning run and the replays, whose scratch and outputs come from
// the arena).
import assert from "node:assert/strict";
import { init, Tensor } from "../mod.ts";
import { addGradients } from "../src/engine/autodiff.ts";
import { Engine } from "../src/engine/engine.ts";
import { gemmReference } from "../src/kernels/gemm.ts";
import type { Graph, Node } from "../src/graph/ir.ts";
import { type Conv2dParams, conv2dReference } from "../src/kernels/conv2d.ts";
import { globalAveragePoolReference, maxPool2dReference } from "../src/kernels/pool.ts";
import { uniform } from "./grad-helpers.ts";

const n = 2, c = 4, size = 6, classes = 3;

function node(
  name: string,
  opType: string,
  inputs: string[],
  attributes: Record<string, number | number[]> = {},
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

// x → Conv 3×3 → Relu → depthwise Conv 3×3 → + x → MaxPool 2×2 → Conv 1×1 s2 →
// GlobalAveragePool → Flatten → Gemm (transB) → mean squared error against t.
const graph: Graph = {
  nodes: [
    node("conv1", "Conv", ["x", "w1", "b1"], { pads: [1, 1, 1, 1] }),
    node("relu", "Relu", ["conv1"]),
    node("dw", "Conv", ["relu", "w2"], { pads: [1, 1, 1, 1], group: c }),
    node("res", "Add", ["dw", "x"]),
    node("pool", "MaxPool", ["res"], { kernel_shape: [2, 2], strides: [2, 2] }),
    node("pw", "Conv", ["pool", "w3", "b3"], { strides: [2, 2] }),
    node("gap", "GlobalAveragePool", ["pw"]),
    node("flat", "Flatten", ["gap"]),
    node("fc", "Gemm", ["flat", "wf", "bf"], { transB: 1 }),
    { ...node("loss", "MeanSquaredError", ["fc", "t"]), domain: "attnround" },
  ],
  initializers: new Map(),
  inputs: ["x", "t", "w1", "b1", "w2", "w3", "b3", "wf", "bf"].map((name) => ({ name })),
  outputs: [{ name: "loss" }],
  opset: 17,
};

const shapes: Record<string, number[]> = {
  x: [n, c, size, size],
  t: [n, classes],
  w1: [c, c, 3, 3],
  b1: [c],
  w2: [c, 1, 3, 3],
  w3: [6, c, 1, 1],
  b3: [6],
  wf: [classes, 6],
  bf: [classes],
};

function conv(
  p: Partial<Conv2dParams> & { c: number; m: number; h: number; kh: number; pad: number },
): Conv2dParams {
  const out = Math.floor((p.h + 2 * p.pad - p.kh) / (p.strideH ?? 1)) + 1;
  return {
    n,
    w: p.h,
    kw: p.kh,
    strideH: 1,
    strideW: p.strideH ?? 1,
    padTop: p.pad,
    padLeft: p.pad,
    padBottom: p.pad,
    padRight: p.pad,
    dilationH: 1,
    dilationW: 1,
    group: 1,
    outH: out,
    outW: out,
    ...p,
  } as Conv2dParams;
}

/** The block and its loss in float64. */
function lossOf(v: Record<string, Float64Array>): number {
  const p1 = conv({ c, m: c, h: size, kh: 3, pad: 1 });
  const a = new Float64Array(n * c * size * size);
  conv2dReference(p1, v.x, v.w1, v.b1, a);
  const r = a.map((e) => Math.max(e, 0));
  const b = new Float64Array(a.length);
  conv2dReference(conv({ c, m: c, h: size, kh: 3, pad: 1, group: c }), r, v.w2, null, b);
  const s = b.map((e, i) => e + v.x[i]);
  const half = size / 2;
  const pooled = new Float64Array(n * c * half * half);
  maxPool2dReference(
    {
      n,
      c,
      h: size,
      w: size,
      kh: 2,
      kw: 2,
      strideH: 2,
      strideW: 2,
      padTop: 0,
      padLeft: 0,
      padBottom: 0,
      padRight: 0,
      outH: half,
      outW: half,
    },
    s,
    pooled,
  );
  const p3 = conv({ c, m: 6, h: half, kh: 1, pad: 0, strideH: 2 });
  const q = new Float64Array(n * 6 * p3.outH * p3.outW);
  conv2dReference(p3, pooled, v.w3, v.b3, q);
  const g = new Float64Array(n * 6);
  globalAveragePoolReference({ n, c: 6, size: p3.outH * p3.outW }, q, g);
  const y = new Float64Array(n * classes);
  gemmReference(
    { transA: false, transB: true, m: n, n: classes, k: 6, lda: 6, ldb: 6, ldc: classes, accumulate: false },
    g,
    v.wf,
    y,
  );
  let sum = 0;
  for (let i = 0; i < y.length; i++) sum += (y[i] + v.bf[i % classes] - v.t[i]) ** 2;
  return sum / y.length;
}

Deno.test("a residual block's gradients through autodiff and the engine match finite differences, planned and replayed", async () => {
  await init();
  const trained = ["x", "w1", "b1", "w2", "w3", "b3", "wf", "bf"];
  const { graph: training, gradients } = addGradients(graph, "loss", trained);
  const engine = new Engine(training);
  const feeds = Object.fromEntries(
    Object.entries(shapes).map(([name, shape], i) => [name, uniform(shape, 10 + i)]),
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
    assert.ok(Math.abs((out.loss.data[0] as number) - lossOf(v64)) < 1e-5, "loss");
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
