// A block of the model as a graph of its own: its nodes, the initializers
// and Constant nodes they read, its entering tensors as inputs and its
// leaving tensors as outputs. Reconstruction trains and runs blocks this way.
// A block that writes several tensors (a detector's heads, say) writes them
// packed into one, each flattened per sample, so that it has one output to
// cache and to match (the loss weighs the parts; see reconstruct.ts).
import { Tensor } from "../tensor.ts";
import type { Graph, Node } from "./ir.ts";

/** The one output of a block graph that packs several. */
export const PACKED_OUTPUTS = "attnround:packed_outputs";

export interface BlockLike {
  nodes: Node[];
  inputs: string[];
  outputs: string[];
}

export function blockGraph(graph: Graph, block: BlockLike): Graph {
  const own = new Set(block.nodes);
  const produced = new Set(block.nodes.flatMap((n) => n.outputs));
  const producer = new Map(graph.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  // Values computed from constants alone are no block's input (the partition places their nodes
  // where their inputs are): the nodes outside the block that compute the ones it reads come along.
  const constant = new Map<string, boolean>();
  const isConstant = (name: string): boolean => {
    if (name === "" || graph.initializers.has(name)) return true;
    if (!constant.has(name)) {
      const p = producer.get(name);
      constant.set(name, p !== undefined && p.inputs.every(isConstant));
    }
    return constant.get(name)!;
  };
  const carried = new Set<Node>();
  const initializers = new Map<string, Tensor>();
  const bring = (name: string) => {
    if (!name || produced.has(name)) return;
    const init = graph.initializers.get(name);
    if (init) return void initializers.set(name, init);
    const p = producer.get(name);
    if (!p || own.has(p) || carried.has(p) || !isConstant(name)) return;
    p.inputs.forEach(bring);
    carried.add(p);
  };
  block.nodes.forEach((n) => n.inputs.forEach(bring));
  const constants = graph.nodes.filter((n) => carried.has(n));
  const subgraph: Graph = {
    nodes: [...constants, ...block.nodes],
    initializers,
    inputs: block.inputs.map((name) => ({ name, dtype: "float32" })),
    outputs: block.outputs.map((name) => ({ name })),
    opset: graph.opset,
  };
  return block.outputs.length > 1 ? packOutputs(subgraph) : subgraph;
}

/** The flattened outputs a block graph packs, in packing order; none for a block with one output. */
export function packedParts(block: BlockLike): string[] {
  return block.outputs.length > 1 ? block.outputs.map(packedPart) : [];
}

const packedPart = (output: string) => `${PACKED_OUTPUTS}/${output}`;

/** The graph with its outputs flattened per sample ([N, …] → [N, k]) and concatenated into PACKED_OUTPUTS. */
function packOutputs(graph: Graph): Graph {
  const node = (name: string, opType: string, inputs: string[], outputs: string[], axis?: number): Node => ({
    name,
    opType,
    domain: "",
    inputs,
    outputs,
    attributes: new Map(axis === undefined ? [] : [["axis", axis]]),
  });
  const shape = `${PACKED_OUTPUTS}/shape`;
  const flat = graph.outputs.map((o) => packedPart(o.name));
  return {
    ...graph,
    // [0, -1]: keep the batch, flatten the rest.
    initializers: new Map([...graph.initializers, [shape, new Tensor(new BigInt64Array([0n, -1n]), [2])]]),
    nodes: [
      ...graph.nodes,
      ...graph.outputs.map((o, i) => node(`${flat[i]}/Reshape`, "Reshape", [o.name, shape], [flat[i]])),
      node(`${PACKED_OUTPUTS}/Concat`, "Concat", flat, [PACKED_OUTPUTS], 1),
    ],
    outputs: [{ name: PACKED_OUTPUTS }],
  };
}
