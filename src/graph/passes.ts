// Graph rewrites applied at load: BatchNormalization folded into the Conv or
// Gemm before it (the folded weights are what gets quantized), and removal of
// nodes that no graph output depends on.
import { Tensor } from "../tensor.ts";
import { attrFloat, attrInt, consumers, type Graph, isOnnxOp, type Node, topologicalOrder } from "./ir.ts";

function floatInitializer(graph: Graph, name: string | undefined): Float32Array | undefined {
  const t = name ? graph.initializers.get(name) : undefined;
  return t?.dtype === "float32" ? (t.data as Float32Array) : undefined;
}

/**
 * What loadModel does to a freshly decoded graph before running it: nodes in
 * topological order, BatchNorm folded, dead nodes dropped. Node objects keep
 * their identity (the export maps them back to the ONNX nodes they came from).
 */
export function prepareGraph(graph: Graph): void {
  graph.nodes = topologicalOrder(graph);
  foldBatchNorm(graph);
  removeDeadNodes(graph);
}

/** Folds every inference-mode BatchNormalization whose input comes only from a Conv or Gemm with constant weights. */
export function foldBatchNorm(graph: Graph): number {
  let folded = 0;
  for (const bn of graph.nodes.filter((n) => isOnnxOp(n, "BatchNormalization"))) {
    if (attrInt(bn, "training_mode", 0) === 1 || bn.outputs.slice(1).some((o) => o !== "")) continue;
    const producer = graph.nodes.find((n) => n.outputs[0] === bn.inputs[0]);
    if (!producer || !isOnnxOp(producer, "Conv", "Gemm")) continue;
    if (consumers(graph, bn.inputs[0]).length !== 1 || graph.outputs.some((o) => o.name === bn.inputs[0])) {
      continue;
    }
    const [scale, beta, mean, variance] = bn.inputs.slice(1, 5).map((name) => floatInitializer(graph, name));
    const weightName = producer.inputs[1];
    const weight = graph.initializers.get(weightName);
    if (!scale || !beta || !mean || !variance || weight?.dtype !== "float32") continue;
    if (consumers(graph, weightName).length !== 1) continue;
    const isGemm = producer.opType === "Gemm";
    if (isGemm && (attrInt(producer, "transA", 0) !== 0 || attrFloat(producer, "alpha", 1) !== 1)) continue;
    const channels = scale.length;
    const eps = attrFloat(bn, "epsilon", 1e-5);
    const factor = scale.map((s, c) => s / Math.sqrt(variance[c] + eps));

    // Conv weight [M, C/g, kh, kw] and Gemm transB weight [N, K] scale rows; Gemm [K, N] scales columns.
    const w = (weight.data as Float32Array).slice();
    const columns = isGemm && attrInt(producer, "transB", 0) === 0;
    if (columns) {
      for (let i = 0; i < w.length; i++) w[i] *= factor[i % channels];
    } else {
      const per = w.length / channels;
      for (let i = 0; i < w.length; i++) w[i] *= factor[Math.floor(i / per)];
    }
    const oldBias = floatInitializer(graph, producer.inputs[2]);
    if (isGemm && oldBias && oldBias.length !== channels) continue;
    const beta2 = isGemm ? attrFloat(producer, "beta", 1) : 1;
    const bias = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      bias[c] = ((oldBias ? beta2 * oldBias[c] : 0) - mean[c]) * factor[c] + beta[c];
    }

    graph.initializers.set(weightName, new Tensor(w, weight.shape));
    const biasName = `${producer.name}.folded_bias`;
    graph.initializers.set(biasName, new Tensor(bias, [channels]));
    producer.inputs[2] = biasName;
    if (isGemm) producer.attributes.set("beta", 1);
    producer.outputs[0] = bn.outputs[0];
    graph.nodes.splice(graph.nodes.indexOf(bn), 1);
    folded++;
  }
  if (folded > 0) removeDeadNodes(graph);
  return folded;
}

/** Drops nodes no graph output depends on, and initializers nothing reads. */
export function removeDeadNodes(graph: Graph): number {
  const live = new Set(graph.outputs.map((o) => o.name));
  const kept: Node[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i];
    if (node.outputs.some((o) => live.has(o))) {
      kept.push(node);
      for (const input of node.inputs) live.add(input);
    }
  }
  const removed = graph.nodes.length - kept.length;
  graph.nodes = kept.reverse();
  for (const name of [...graph.initializers.keys()]) if (!live.has(name)) graph.initializers.delete(name);
  return removed;
}
