// Bias correction (option biasCorrection; Nagel et al., 2019, "Data-Free
// Quantization", §4.2, with the input means measured on the calibration set).
// A layer's rounded weights ŵ take Σ (w − ŵ)·E[x] off each output channel's
// mean. Where a filter's weights nearly cancel on an input with a large mean
// (an edge detector with a BatchNorm folded in, after a Relu6), that offset
// is of the output's own size, and rounding cannot remove it. The corrected
// bias b + Σ w·μ − Σ ŵ·μ does, with μ the mean of the input channel each
// weight reads. Reconstruction trains with the correction in its graph
// (qgraph.ts), so the rounding is chosen for the corrected layer.
import { attrInt, consumers, type Graph } from "../graph/ir.ts";
import { toRows } from "../layout.ts";
import { layerBias } from "./deploy.ts";
import type { WeightQuantizer } from "./layers.ts";

/** A corrected layer: its bias, the tensor whose channel means it needs and that tensor's channel axis. */
export interface CorrectedLayer {
  q: WeightQuantizer;
  bias: { name: string; values: Float32Array };
  input: string;
  axis: number;
}

export interface BiasCorrection extends CorrectedLayer {
  /** Each weight's input-channel mean, rows layout (q.rowsShape). */
  means: Float32Array;
  /** Σ w·μ per output channel, over the float weights: what the rounded weights' share must come back to. */
  offset: Float32Array;
}

/**
 * The layers a correction applies to: Conv, ConvTranspose with one group and
 * Gemm whose bias is a constant of one value per output channel that no
 * other node reads (the correction rewrites it).
 */
export function correctableLayers(graph: Graph, weights: WeightQuantizer[]): CorrectedLayer[] {
  const out: CorrectedLayer[] = [];
  for (const q of weights) {
    const { kind, node, group } = q.layer;
    if (kind === "MatMul" || (kind === "ConvTranspose" && group !== 1)) continue;
    const bias = layerBias(graph, q);
    if (!bias || consumers(graph, bias.name).length !== 1) continue;
    const axis = kind === "Gemm" && attrInt(node, "transA", 0) === 1 ? 0 : 1;
    out.push({ q, bias, input: node.inputs[0], axis });
  }
  return out;
}

/** The corrections, from each corrected layer's input channel means (by tensor). */
export function biasCorrections(
  layers: CorrectedLayer[],
  channelMeans: Map<string, Float64Array>,
): BiasCorrection[] {
  return layers.map((l) => {
    const mu = channelMeans.get(l.input)!;
    const means = toRows(weightMeans(l, mu), l.q.layer.weightShape, l.q.layer.channelAxis);
    return { ...l, means, offset: rowDots(l.q.rows, means, l.q.rowsShape[0]) };
  });
}

/** Each weight's input-channel mean, in the weight's own layout. */
function weightMeans(l: CorrectedLayer, mu: Float64Array): Float32Array {
  const { kind, weightShape, group, node } = l.q.layer;
  const size = weightShape.reduce((a, b) => a * b, 1), out = new Float32Array(size);
  if (kind === "Gemm") {
    // [k, n], or [n, k] with transB.
    const transB = attrInt(node, "transB", 0) === 1, n = transB ? weightShape[0] : weightShape[1];
    const k = size / n;
    for (let i = 0; i < size; i++) out[i] = mu[transB ? i % k : Math.floor(i / n)];
    return out;
  }
  const spatial = weightShape.slice(2).reduce((a, b) => a * b, 1);
  if (kind === "ConvTranspose") {
    // [c, m, ...], one group.
    const perInput = weightShape[1] * spatial;
    for (let i = 0; i < size; i++) out[i] = mu[Math.floor(i / perInput)];
    return out;
  }
  // Conv [m, c/g, ...]: output channel o of group ⌊o / (m/g)⌋ reads input channels from that group's first.
  const [m, perGroup] = weightShape, outputsPerGroup = m / group;
  for (let i = 0; i < size; i++) {
    const o = Math.floor(i / (perGroup * spatial)), c = Math.floor(i / spatial) % perGroup;
    out[i] = mu[Math.floor(o / outputsPerGroup) * perGroup + c];
  }
  return out;
}

/** The bias corrected for the final rounded weights (rows layout): b + Σ w·μ − Σ ŵ·μ. */
export function correctedBias(c: BiasCorrection, rows: Float32Array): Float32Array {
  return rowDots(rows, c.means, c.offset.length).map((s, r) => c.bias.values[r] + c.offset[r] - s);
}

/** Per row of `m` rows, Σ a·b over the row (float64 sums). */
function rowDots(a: Float32Array, b: Float32Array, m: number): Float32Array {
  const k = a.length / m, out = new Float32Array(m);
  for (let r = 0; r < m; r++) {
    let s = 0;
    for (let i = r * k; i < (r + 1) * k; i++) s += a[i] * b[i];
    out[r] = s;
  }
  return out;
}
