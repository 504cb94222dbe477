// A block of the model as a graph of its own: its nodes, the initializers
// and Constant nodes they read, its entering tensors as inputs and its
// leaving tensors as outputs. Reconstruction trains and runs blocks this way.
import { type Graph, isOnnxOp, type Node } from "./ir.ts";

export interface BlockLike {
  nodes: Node[];
  inputs: string[];
  outputs: string[];
}

export function blockGraph(graph: Graph, block: BlockLike): Graph {
  const own = new Set(block.nodes);
  const produced = new Set(block.nodes.flatMap((n) => n.outputs));
  const needed = new Set(block.nodes.flatMap((n) => n.inputs).filter((name) => name && !produced.has(name)));
  // Constant nodes outside the block whose values it reads come along.
  const constants = graph.nodes.filter((n) =>
    !own.has(n) && isOnnxOp(n, "Constant") && needed.has(n.outputs[0])
  );
  const initializers = new Map([...graph.initializers].filter(([name]) => needed.has(name)));
  return {
    nodes: [...constants, ...block.nodes],
    initializers,
    inputs: block.inputs.map((name) => ({ name, dtype: "float32" })),
    outputs: block.outputs.map((name) => ({ name })),
    opset: graph.opset,
  };
}
