// Fuses a Relu or Clip into the Conv before it when the Conv's output feeds
// nothing else: the conv kernel clamps as it writes, saving a pass over memory.
// Works on copies of the nodes; the graph itself is left as it was (the
// quantizer needs the activations as separate nodes).
//
// Also fuses QuantizeLinear → DequantizeLinear pairs with one scale and zero
// point (the activation quantizers of QDQ models) into one wasm pass that
// gives the same float32 values, instead of two loops over integers.
import { attrFloat, attrTensor, type Graph, isOnnxOp, type Node } from "../graph/ir.ts";
import type { Tensor } from "../tensor.ts";

/** Attributes the engine sets on a Conv when it fuses the Relu or Clip after it. */
export const FUSED_ACTIVATION = "attnround.activation";
export const FUSED_MIN = "attnround.activation_min";
export const FUSED_MAX = "attnround.activation_max";

/** Set by fuseQuantizePairs on a QuantizeLinear whose DequantizeLinear it took over: output x̂, float32. */
export const FUSED_DEQUANTIZE = "attnround.dequantize";

function scalarOf(t: Tensor | undefined): number | undefined {
  return t && t.size === 1 ? Number(t.data[0]) : undefined;
}

/**
 * What both fusions read: constant values by name, how many nodes read each
 * tensor, the graph outputs, and copies of the nodes to rewrite.
 */
function fusionInputs(order: Node[], graph: Graph) {
  const constants = new Map<string, Tensor>(graph.initializers);
  for (const node of order) {
    const value = isOnnxOp(node, "Constant") ? attrTensor(node, "value") : undefined;
    if (value) constants.set(node.outputs[0], value);
  }
  const readers = new Map<string, number>();
  for (const node of order) for (const name of node.inputs) readers.set(name, (readers.get(name) ?? 0) + 1);
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const result = order.map((n) => ({ ...n, attributes: new Map(n.attributes) }));
  return { constants, readers, outputs, result };
}

export function fuseConvActivations(order: Node[], graph: Graph): Node[] {
  const { constants, readers, outputs, result } = fusionInputs(order, graph);
  const producer = new Map<string, number>();
  const dropped = new Set<number>();
  result.forEach((node, i) => {
    node.outputs.forEach((o) => producer.set(o, i));
    if (!isOnnxOp(node, "Relu", "Clip")) return;
    const convIndex = producer.get(node.inputs[0]);
    if (convIndex === undefined) return;
    const conv = result[convIndex];
    const between = conv.outputs[0];
    if (!isOnnxOp(conv, "Conv") || conv.attributes.has(FUSED_ACTIVATION)) return;
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

const RANGES: Record<string, [number, number]> = {
  uint8: [0, 255],
  int8: [-128, 127],
  uint4: [0, 15],
  int4: [-8, 7],
  uint2: [0, 3],
  int2: [-2, 1],
};

/**
 * QuantizeLinear(x, s, z) → DequantizeLinear(·, s, z) with constant scalar s
 * and z, whose integers nothing else reads: the QuantizeLinear (a copy)
 * takes over the DequantizeLinear's output and computes x̂ directly.
 */
export function fuseQuantizePairs(order: Node[], graph: Graph): Node[] {
  const { constants, readers, outputs, result } = fusionInputs(order, graph);
  const quantizers = new Map<string, number>();
  const dropped = new Set<number>();
  const sameScalar = (a: string | undefined, b: string | undefined) => {
    const ta = a ? constants.get(a) : undefined, tb = b ? constants.get(b) : undefined;
    return ta !== undefined && tb !== undefined && ta.size === 1 && tb.size === 1 && ta.dtype === tb.dtype &&
      Number(ta.data[0]) === Number(tb.data[0]);
  };
  result.forEach((node, i) => {
    if (isOnnxOp(node, "QuantizeLinear")) quantizers.set(node.outputs[0], i);
    if (!isOnnxOp(node, "DequantizeLinear")) return;
    const qIndex = quantizers.get(node.inputs[0]);
    if (qIndex === undefined) return;
    const q = result[qIndex];
    if (readers.get(q.outputs[0]) !== 1 || outputs.has(q.outputs[0]) || q.attributes.has("block_size")) {
      return;
    }
    if (!sameScalar(q.inputs[1], node.inputs[1]) || !sameScalar(q.inputs[2], node.inputs[2])) return;
    const scale = Number(constants.get(q.inputs[1])!.data[0]);
    const zero = constants.get(q.inputs[2])!;
    const range = RANGES[zero.dtype];
    const z = Number(zero.data[0]);
    if (!range || !(scale > 0 && Number.isFinite(scale)) || z < range[0] || z > range[1]) return;
    q.attributes.set(FUSED_DEQUANTIZE, 1);
    q.outputs = [node.outputs[0]];
    dropped.add(i);
  });
  return result.filter((_, i) => !dropped.has(i));
}
