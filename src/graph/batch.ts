// Models exported with their batch fixed to 1 (TensorFlow and Barracuda
// exports, many ONNX zoo files) write that 1 into the input's shape and into
// the constant shapes their Reshape, Expand, ConstantOfShape and Resize nodes
// take. freeBatch rewrites such a graph so that it takes any batch: the input's
// first dimension becomes symbolic, and each constant shape whose first entry
// is 1 gets that entry from the input's own batch (Shape → Gather → Concat,
// which the engine folds away for a given input shape).
//
// Whether the 1 really was the batch is a guess; the caller checks it on real
// samples (batched outputs equal to the samples run one by one) and otherwise
// keeps the original graph and runs it sample by sample.
import { Tensor } from "../tensor.ts";
import { attrTensor, type Graph, isOnnxDomain, isOnnxOp, type Node, topologicalOrder } from "./ir.ts";

/** The input that takes a constant shape, by op type. */
const SHAPE_INPUTS: Record<string, number> = { Reshape: 1, Expand: 1, ConstantOfShape: 0, Resize: 3 };

/** The symbolic name the freed batch dimension gets. */
export const FREE_BATCH = "batch";

/** Whether the model's only input has its first dimension fixed to 1. */
export function hasFixedBatch(graph: Graph): boolean {
  const input = graph.inputs.filter((i) => !graph.initializers.has(i.name));
  return input.length === 1 && (input[0].shape?.length ?? 0) > 0 && input[0].shape![0] === 1;
}

function constantValue(graph: Graph, name: string): Tensor | undefined {
  const init = graph.initializers.get(name);
  if (init) return init;
  const constant = graph.nodes.find((n) => isOnnxOp(n, "Constant") && n.outputs[0] === name);
  return constant && attrTensor(constant, "value");
}

function node(name: string, opType: string, inputs: string[], outputs: string[], axis?: number): Node {
  const attributes = new Map<string, number>(axis === undefined ? [] : [["axis", axis]]);
  return { name, opType, domain: "", inputs, outputs, attributes };
}

/**
 * A copy of `graph` that takes any batch, or undefined when it has no fixed
 * batch to free. Node objects of the original are shared where unchanged.
 */
export function freeBatch(graph: Graph): Graph | undefined {
  if (!hasFixedBatch(graph)) return undefined;
  const input = graph.inputs.find((i) => !graph.initializers.has(i.name))!;
  const taken = new Set([
    ...graph.nodes.flatMap((n) => [n.name, ...n.outputs]),
    ...graph.initializers.keys(),
    ...graph.inputs.map((i) => i.name),
  ]);
  const fresh = (base: string) => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };
  const initializers = new Map(graph.initializers);
  const zero = fresh(`${input.name}/free_batch/zero`);
  initializers.set(zero, new Tensor(new BigInt64Array([0n]), [1]));
  const constant = (name: string) => name === "" || constantValue(graph, name) !== undefined;
  // Where a node finds the batch: a batched tensor at hand, so that blocks stay self-contained.
  const batchSource = (n: Node): string => {
    if (isOnnxOp(n, "Reshape", "Resize")) return n.inputs[0];
    for (const c of graph.nodes) {
      if (!c.inputs.includes(n.outputs[0])) continue;
      const other = c.inputs.find((i) => i !== n.outputs[0] && !constant(i));
      if (other) return other;
    }
    return input.name;
  };
  const added: Node[] = [];
  const nodes = graph.nodes.flatMap((n) => {
    const at = isOnnxDomain(n) && Object.hasOwn(SHAPE_INPUTS, n.opType) ? SHAPE_INPUTS[n.opType] : undefined;
    const name = at === undefined ? undefined : n.inputs[at];
    const value = name ? constantValue(graph, name) : undefined;
    if (
      at === undefined || !value || value.dtype !== "int64" || value.shape.length !== 1 ||
      value.data[0] !== 1n
    ) return [n];
    const shape = fresh(`${name}/free_batch/source_shape`), batch = fresh(`${name}/free_batch/batch`);
    const rest = fresh(`${name}/free_batch/rest`), joined = fresh(`${name}/free_batch/shape`);
    initializers.set(rest, new Tensor((value.data as BigInt64Array).slice(1), [value.size - 1]));
    const inputs = [...n.inputs];
    inputs[at] = joined;
    const rewritten = { ...n, inputs };
    const batchNodes = [
      node(fresh(`${name}/free_batch/Shape`), "Shape", [batchSource(n)], [shape]),
      node(fresh(`${name}/free_batch/Gather`), "Gather", [shape, zero], [batch], 0),
      node(fresh(`${name}/free_batch/Concat`), "Concat", [batch, rest], [joined], 0),
    ];
    // The batch source may be computed after this node (a consumer's other input): place both later.
    added.push(...batchNodes, rewritten);
    return [];
  });
  const free = <T extends { shape?: (number | string | undefined)[] }>(v: T): T =>
    v.shape?.[0] === 1 ? { ...v, shape: [FREE_BATCH, ...v.shape.slice(1)] } : v;
  return {
    nodes: topologicalOrder({ ...graph, nodes: [...nodes, ...added], initializers }),
    initializers,
    inputs: graph.inputs.map((i) => (i === input ? free(i) : i)),
    outputs: graph.outputs.map(free),
    opset: graph.opset,
  };
}
