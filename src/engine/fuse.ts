// Fuses a Relu or Clip into the Conv before it when the Conv's output feeds
// nothing else: the conv kernel clamps as it writes, saving a pass over memory.
// Works on copies of the nodes; the graph itself is left as it was (the
// quantizer needs the activations as separate nodes).
import { attrFloat, attrTensor, type Graph, type Node } from "../graph/ir.ts";
import type { Tensor } from "../tensor.ts";
import { FUSED_ACTIVATION, FUSED_MAX, FUSED_MIN } from "./ops/nn.ts";

function scalarOf(t: Tensor | undefined): number | undefined {
  return t && t.size === 1 ? Number(t.data[0]) : undefined;
}

export function fuseConvActivations(order: Node[], graph: Graph): Node[] {
  const constants = new Map<string, Tensor>(graph.initializers);
  for (const node of order) {
    const value = node.opType === "Constant" ? attrTensor(node, "value") : undefined;
    if (value) constants.set(node.outputs[0], value);
  }
  const readers = new Map<string, number>();
  for (const node of order) for (const name of node.inputs) readers.set(name, (readers.get(name) ?? 0) + 1);
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const producer = new Map<string, number>();
  const result = order.map((n) => ({ ...n, attributes: new Map(n.attributes) }));
  const dropped = new Set<number>();
  result.forEach((node, i) => {
    node.outputs.forEach((o) => producer.set(o, i));
    if (node.opType !== "Relu" && node.opType !== "Clip") return;
    const convIndex = producer.get(node.inputs[0]);
    if (convIndex === undefined) return;
    const conv = result[convIndex];
    const between = conv.outputs[0];
    if (conv.opType !== "Conv" || conv.attributes.has(FUSED_ACTIVATION)) return;
    if (readers.get(between) !== 1 || outputs.has(between)) return;
    let lo = 0, hi = Infinity;
    if (node.opType === "Clip") {
      if (graph.opset < 11) {
        lo = attrFloat(node, "min", -Infinity);
        hi = attrFloat(node, "max", Infinity);
      } else {
        const min = node.inputs[1] ? scalarOf(constants.get(node.inputs[1])) : -Infinity;
        const max = node.inputs[2] ? scalarOf(constants.get(node.inputs[2])) : Infinity;
        if (min === undefined || max === undefined) return;
        lo = min;
        hi = max;
      }
    }
    conv.attributes.set(FUSED_ACTIVATION, node.opType === "Relu" ? "relu" : "clip");
    conv.attributes.set(FUSED_MIN, lo);
    conv.attributes.set(FUSED_MAX, hi);
    conv.outputs = [node.outputs[0]];
    producer.set(node.outputs[0], convIndex);
    dropped.add(i);
  });
  return result.filter((_, i) => !dropped.has(i));
}
