// Normalisations beyond BatchNormalization and LayerNormalization (nn.ts):
// InstanceNormalization, MeanVarianceNormalization and LRN, as plain loops.
import { attrFloat, attrInt, attrInts } from "../../graph/ir.ts";
import { opError, registerOps, required } from "../registry.ts";
import type { OpRun } from "../registry.ts";
import { broadcastIndex, normalizeAxis, product } from "./util.ts";

const instanceNormalization: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const [x, scale, bias] = [0, 1, 2].map((i) => required(node, inputs, i));
  const eps = attrFloat(node, "epsilon", 1e-5);
  const [n, c] = x.shape, inner = product(x.shape.slice(2));
  const out = ctx.output(x.shape, x.dtype);
  const xd = x.data as Float32Array, od = out.data as Float32Array;
  const sd = scale.data as Float32Array, bd = bias.data as Float32Array;
  for (let plane = 0; plane < n * c; plane++) {
    const base = plane * inner, ch = plane % c;
    let mean = 0;
    for (let i = 0; i < inner; i++) mean += xd[base + i];
    mean /= inner;
    let variance = 0;
    for (let i = 0; i < inner; i++) variance += (xd[base + i] - mean) ** 2;
    const s = sd[ch] / Math.sqrt(variance / inner + eps);
    for (let i = 0; i < inner; i++) od[base + i] = (xd[base + i] - mean) * s + bd[ch];
  }
  return [out];
};

const meanVarianceNormalization: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const x = required(node, inputs, 0);
  const axes = new Set(attrInts(node, "axes", [0, 2, 3]).map((a) => normalizeAxis(node, a, x.shape.length)));
  const kept = x.shape.map((d, i) => (axes.has(i) ? 1 : d));
  const out = ctx.output(x.shape, x.dtype);
  const xd = x.data as Float32Array, od = out.data as Float32Array;
  // index[i] is the statistics slot of element i.
  const index = broadcastIndex(kept, x.shape);
  const slots = product(kept), count = xd.length / slots;
  const mean = new Float64Array(slots), squares = new Float64Array(slots);
  for (let i = 0; i < xd.length; i++) mean[index[i]] += xd[i] / count;
  for (let i = 0; i < xd.length; i++) squares[index[i]] += (xd[i] - mean[index[i]]) ** 2 / count;
  // As the ONNX function body: (X − E[X]) / (√Var[X] + 1e-9).
  for (let i = 0; i < xd.length; i++) {
    od[i] = (xd[i] - mean[index[i]]) / (Math.sqrt(squares[index[i]]) + 1e-9);
  }
  return [out];
};

const lrn: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const x = required(node, inputs, 0);
  const size = attrInt(node, "size");
  if (size === undefined) throw opError(node, "size is required");
  const alpha = attrFloat(node, "alpha", 1e-4), beta = attrFloat(node, "beta", 0.75);
  const bias = attrFloat(node, "bias", 1);
  const [n, c] = x.shape, inner = product(x.shape.slice(2));
  const out = ctx.output(x.shape, x.dtype);
  const xd = x.data as Float32Array, od = out.data as Float32Array;
  const before = Math.floor((size - 1) / 2), after = Math.ceil((size - 1) / 2);
  for (let img = 0; img < n; img++) {
    for (let ch = 0; ch < c; ch++) {
      const lo = Math.max(0, ch - before), hi = Math.min(c - 1, ch + after);
      for (let i = 0; i < inner; i++) {
        let sum = 0;
        for (let k = lo; k <= hi; k++) sum += xd[(img * c + k) * inner + i] ** 2;
        const at = (img * c + ch) * inner + i;
        od[at] = xd[at] / (bias + (alpha / size) * sum) ** beta;
      }
    }
  }
  return [out];
};

registerOps({
  InstanceNormalization: instanceNormalization,
  MeanVarianceNormalization: meanVarianceNormalization,
  LRN: lrn,
});
