// Load-time checks of what the engine would otherwise trust: the graph's
// structure (outputs that exist, one writer per tensor) and the attributes and
// constant weights of the sliding-window ops, whose sizes go straight into
// allocations and loops. An invalid model fails here, naming the node, instead
// of mid-run with an error that blames the input, or in the allocator.
import { AttnroundError } from "../errors.ts";
import type { Tensor } from "../tensor.ts";
import { attrInt, attrInts, attrString, attrTensor, type Graph, isOnnxOp, type Node } from "./ir.ts";

function invalid(message: string): AttnroundError {
  return new AttnroundError("INVALID_MODEL", message);
}

function nodeError(node: Node, message: string): AttnroundError {
  return invalid(`node "${node.name}" (${node.opType}): ${message}`);
}

/** Throws INVALID_MODEL naming the first node, tensor or output at fault. */
export function validateGraph(graph: Graph): void {
  if (graph.outputs.length === 0) {
    throw invalid("the graph declares no outputs (graph.output is empty): there is nothing to compute");
  }
  const inputs = new Set(graph.inputs.map((i) => i.name));
  const writer = new Map<string, Node>();
  for (const node of graph.nodes) {
    for (const out of node.outputs) {
      if (!out) continue;
      if (graph.initializers.has(out)) {
        throw nodeError(node, `writes "${out}", which is also an initializer; each tensor has one source`);
      }
      if (inputs.has(out)) {
        throw nodeError(node, `writes "${out}", which is also a graph input; each tensor has one source`);
      }
      const other = writer.get(out);
      if (other) {
        throw invalid(
          other === node
            ? `node "${node.name}" (${node.opType}) writes "${out}" twice`
            : `nodes "${other.name}" and "${node.name}" both write "${out}"; each tensor has one source`,
        );
      }
      writer.set(out, node);
    }
  }
  for (const o of graph.outputs) {
    if (!writer.has(o.name) && !inputs.has(o.name) && !graph.initializers.has(o.name)) {
      throw invalid(`graph output "${o.name}" is never computed: no node writes it`);
    }
  }
  const constants = new Map<string, Tensor>(graph.initializers);
  for (const node of graph.nodes) {
    const value = isOnnxOp(node, "Constant") ? attrTensor(node, "value") : undefined;
    if (value) constants.set(node.outputs[0], value);
  }
  for (const node of graph.nodes) {
    if (isOnnxOp(node, "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool")) {
      checkWindow(node, constants);
    }
  }
}

const positive = (values: number[]) => values.every((v) => Number.isInteger(v) && v >= 1);

/** Kernel, strides, dilations, pads and group of a Conv, ConvTranspose or pooling node, and its constant weight. */
function checkWindow(node: Node, constants: Map<string, Tensor>): void {
  const conv = node.opType === "Conv" || node.opType === "ConvTranspose";
  const weight = conv ? constants.get(node.inputs[1] ?? "") : undefined;
  if (weight && weight.shape.length < 3) {
    throw nodeError(
      node,
      `weight "${node.inputs[1]}" has shape [${weight.shape}]; a ${node.opType} weight has rank 3 or more ` +
        `([${node.opType === "Conv" ? "M, C/group" : "C, M/group"}, kernel…])`,
    );
  }
  const given = attrInts(node, "kernel_shape");
  const kernel = given ?? weight?.shape.slice(2);
  if (!kernel) {
    if (!conv) throw nodeError(node, "has no kernel_shape");
    return; // a weight computed at run time: the kernels check it then
  }
  const rank = kernel.length;
  if (!positive(kernel)) throw nodeError(node, `kernel_shape [${kernel}] must hold integers ≥ 1`);
  if (weight && given && given.join() !== weight.shape.slice(2).join()) {
    throw nodeError(node, `kernel_shape [${given}] is not the weight's [${weight.shape.slice(2)}]`);
  }
  const strides = attrInts(node, "strides") ?? new Array(rank).fill(1);
  const dilations = attrInts(node, "dilations") ?? new Array(rank).fill(1);
  const pads = attrInts(node, "pads") ?? new Array(2 * rank).fill(0);
  const lengths: [string, number[], number][] = [["strides", strides, rank], ["dilations", dilations, rank], [
    "pads",
    pads,
    2 * rank,
  ]];
  for (const [name, values, length] of lengths) {
    if (values.length !== length) {
      throw nodeError(
        node,
        `${name} [${values}] has ${values.length} values; a ${rank}-D kernel takes ${length}`,
      );
    }
  }
  if (!positive(strides)) throw nodeError(node, `strides [${strides}] must hold integers ≥ 1`);
  if (!positive(dilations)) throw nodeError(node, `dilations [${dilations}] must hold integers ≥ 1`);
  if (!pads.every((p) => Number.isInteger(p) && p >= 0)) {
    throw nodeError(node, `pads [${pads}] must hold integers ≥ 0`);
  }
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  if (!["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"].includes(autoPad)) {
    throw nodeError(node, `auto_pad "${autoPad}" is none of NOTSET, SAME_UPPER, SAME_LOWER, VALID`);
  }
  if (node.opType !== "ConvTranspose" && autoPad === "NOTSET") {
    // A pad as wide as the dilated kernel adds windows that see nothing but padding: no exporter writes one,
    // and a huge one would only allocate. onnxruntime refuses it for pooling too.
    const extent = kernel.map((k, i) => dilations[i] * (k - 1) + 1);
    if (pads.some((p, i) => p >= extent[i % rank])) {
      throw nodeError(
        node,
        `pads [${pads}] reach past the kernel's extent [${extent}]: each pad must be smaller than it`,
      );
    }
  }
  if (!conv) return;
  const group = attrInt(node, "group", 1);
  if (!Number.isInteger(group) || group < 1) throw nodeError(node, `group ${group} must be an integer ≥ 1`);
  if (node.opType === "ConvTranspose") {
    const outputPadding = attrInts(node, "output_padding") ?? new Array(rank).fill(0);
    if (
      outputPadding.length !== rank ||
      outputPadding.some((p, i) => !Number.isInteger(p) || p < 0 || p >= Math.max(strides[i], dilations[i]))
    ) {
      throw nodeError(
        node,
        `output_padding [${outputPadding}] must hold ${rank} integers ≥ 0, each below its stride or dilation`,
      );
    }
  }
  if (!weight) return;
  if (weight.shape[0] % group !== 0) {
    throw nodeError(
      node,
      `group ${group} does not divide the ${weight.shape[0]} ${
        node.opType === "Conv" ? "output" : "input"
      } channels of weight [${weight.shape}]`,
    );
  }
  const channels = node.opType === "Conv" ? weight.shape[0] : weight.shape[1] * group;
  const bias = constants.get(node.inputs[2] ?? "");
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== channels)) {
    throw nodeError(node, `bias "${node.inputs[2]}" has shape [${bias.shape}]; it needs [${channels}]`);
  }
}
