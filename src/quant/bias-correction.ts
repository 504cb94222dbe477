// Bias correction (option biasCorrection; Nagel et al., 2019, "Data-Free
// Quantization", §4.2, with the input means measured on the calibration set).
// A layer's rounded weights ŵ take Σ (w − ŵ)·E[x] off each output channel's
// mean. Where a filter's weights nearly cancel on an input with a large mean
// (an edge detector with a BatchNorm folded in, after a Relu6), that offset
// is of the output's own size, and rounding cannot remove it. The corrected
// bias b + Σ w·μ − Σ ŵ·μ does, with μ the mean of the input channel each
// weight reads. Reconstruction trains with the correction in its graph, so
// the rounding is chosen for the corrected layer.
import { attrInt, type Graph, type Node } from "../graph/ir.ts";
import { toRows } from "../layout.ts";
import { Tensor } from "../tensor.ts";
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
  const readers = new Map<string, number>();
  for (const n of graph.nodes) for (const i of n.inputs) readers.set(i, (readers.get(i) ?? 0) + 1);
  const out: CorrectedLayer[] = [];
  for (const q of weights) {
    const { kind, node, group } = q.layer;
    if (kind === "MatMul" || (kind === "ConvTranspose" && group !== 1)) continue;
    const bias = layerBias(graph, q);
    if (!bias || readers.get(bias.name) !== 1) continue;
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
    const m = l.q.rowsShape[0], k = means.length / m, w = l.q.rows;
    const offset = new Float32Array(m);
    for (let r = 0; r < m; r++) {
      let s = 0;
      for (let i = r * k; i < (r + 1) * k; i++) s += w[i] * means[i];
      offset[r] = s;
    }
    return { ...l, means, offset };
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
  const m = c.offset.length, k = rows.length / m, out = new Float32Array(m);
  for (let r = 0; r < m; r++) {
    let s = 0;
    for (let i = r * k; i < (r + 1) * k; i++) s += rows[i] * c.means[i];
    out[r] = c.bias.values[r] + c.offset[r] - s;
  }
  return out;
}

function onnxNode(name: string, opType: string, inputs: string[], outputs: string[]): Node {
  return { name, opType, domain: "", inputs, outputs, attributes: new Map() };
}

/**
 * A training graph with each corrected layer's output followed by the
 * correction of its rounded weight (the graph input `roundedOf(q)`, rows
 * layout): y + (Σ w·μ − Σ ŵ·μ), broadcast along the output's channel axis,
 * differentiable in ŵ.
 */
export function withCorrections(
  graph: Graph,
  corrections: BiasCorrection[],
  roundedOf: (q: WeightQuantizer) => string,
): Graph {
  if (corrections.length === 0) return graph;
  const initializers = new Map(graph.initializers);
  const after = new Map<string, Node[]>();
  const renamed = new Map<string, string>();
  for (const c of corrections) {
    const { q } = c, w = q.layer.weight, m = q.rowsShape[0], k = c.means.length / m;
    const y = q.layer.node.outputs[0], raw = `${y}:uncorrected`, name = (s: string) => `${w}:correction_${s}`;
    // Conv and ConvTranspose outputs [n, m, ...spatial], Gemm's [n, m].
    const rank = q.layer.kind === "Gemm" ? 2 : q.layer.weightShape.length;
    const shape = Array.from({ length: rank }, (_, i) => (i === 1 ? m : 1));
    initializers.set(name("means"), new Tensor(c.means, q.rowsShape));
    initializers.set(name("ones"), new Tensor(new Float32Array(k).fill(1), [k, 1]));
    initializers.set(name("offset"), new Tensor(c.offset, [m, 1]));
    initializers.set(name("matrix_shape"), new Tensor(new BigInt64Array([BigInt(m), BigInt(k)]), [2]));
    initializers.set(name("shape"), new Tensor(BigInt64Array.from(shape, BigInt), [rank]));
    renamed.set(q.layer.node.name, raw);
    after.set(q.layer.node.name, [
      onnxNode(name("mul"), "Mul", [roundedOf(q), name("means")], [name("products")]),
      onnxNode(name("matrix"), "Reshape", [name("products"), name("matrix_shape")], [name("matrix_out")]),
      onnxNode(name("sum"), "MatMul", [name("matrix_out"), name("ones")], [name("sums")]),
      onnxNode(name("sub"), "Sub", [name("offset"), name("sums")], [name("column")]),
      onnxNode(name("reshape"), "Reshape", [name("column"), name("shape")], [name("value")]),
      onnxNode(name("add"), "Add", [raw, name("value")], [y]),
    ]);
  }
  const nodes = graph.nodes.flatMap((n) => {
    const raw = renamed.get(n.name);
    if (!raw) return [n];
    return [{ ...n, outputs: [raw, ...n.outputs.slice(1)] }, ...after.get(n.name)!];
  });
  return { ...graph, nodes, initializers };
}
