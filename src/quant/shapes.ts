// Exporters write shape arithmetic out (PyTorch's `n, c, h, w = x.shape`):
// Shape nodes read tensors, and Gather/Concat/Unsqueeze/… turn their values
// into the shapes Reshape, Expand and the like take. Such a value computed in
// one block and used in a later one ties the later block to a tensor it does
// not otherwise read, so it could not be reconstructed from one cached input.
//
// For one run every sample has the same shape, so each such value is either a
// constant or depends on the batch alone. localizeShapes runs the graph at
// batches 1 and 2, replaces every value that is the same at both by a constant
// and every one that scales with the batch by the batch read, where it is
// used, from a tensor the using node itself holds.
import { Engine } from "../engine/engine.ts";
import { type Graph, isOnnxDomain, isOnnxOp, type Node } from "../graph/ir.ts";
import { removeDeadNodes } from "../graph/passes.ts";
import { topologicalOrder } from "../graph/ir.ts";
import { Tensor } from "../tensor.ts";

/** Ops through which a value stays shape arithmetic (small integers and scalars computed from shapes). */
const SHAPE_ARITHMETIC = new Set([
  "Shape",
  "Size",
  "Gather",
  "Slice",
  "Concat",
  "Unsqueeze",
  "Squeeze",
  "Cast",
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Floor",
  "Ceil",
  "Neg",
  "Reshape",
  "Identity",
  "Equal",
  "Where",
  "Not",
  "ReduceProd",
  "Sqrt",
  "Min",
  "Max",
]);

function node(name: string, opType: string, inputs: string[], outputs: string[], axis?: number): Node {
  const attributes = new Map<string, number>(axis === undefined ? [] : [["axis", axis]]);
  return { name, opType, domain: "", inputs, outputs, attributes };
}

/**
 * The graph with its shape values that cross from where they are computed to
 * where they are used made local (see the file comment); `samples` holds two
 * samples (batch 2), and their first alone is batch 1. Unchanged if there are none.
 */
export function localizeShapes(graph: Graph, samples: Tensor): Graph {
  const constant = new Set<string>(["", ...graph.initializers.keys()]);
  for (const n of graph.nodes) if (isOnnxOp(n, "Constant")) constant.add(n.outputs[0]);
  // Shape values: outputs of Shape/Size, and of shape arithmetic on shape values and constants.
  const shaped = new Set<string>();
  for (const n of topologicalOrder(graph)) {
    if (!isOnnxDomain(n) || !SHAPE_ARITHMETIC.has(n.opType)) continue;
    const reads = n.inputs.filter((i) => !constant.has(i));
    if (
      isOnnxOp(n, "Shape", "Size") || (reads.length > 0 && reads.every((i) => shaped.has(i)))
    ) {
      n.outputs.forEach((o) => o && shaped.add(o));
    }
  }
  // The values a node outside shape arithmetic takes.
  const used = [...new Set(graph.nodes.flatMap((n) => shaped.has(n.outputs[0]) ? [] : n.inputs))]
    .filter((name) => shaped.has(name));
  if (used.length === 0) return graph;
  // Where each user of such a value finds the batch: a tensor it reads anyway.
  const sourceOf = new Map<Node, string>();
  for (const n of graph.nodes) {
    if (shaped.has(n.outputs[0]) || !n.inputs.some((i) => shaped.has(i))) continue;
    const source = n.inputs.find((i) => !constant.has(i) && !shaped.has(i));
    if (source) sourceOf.set(n, source);
  }
  const input = graph.inputs[0].name;
  const per = samples.size / samples.shape[0];
  const batchOf = (b: number) =>
    new Tensor((samples.data as Float32Array).slice(0, b * per), [b, ...samples.shape.slice(1)]);
  const probed = [...new Set([...used, ...sourceOf.values()])];
  const probe = new Engine({ ...graph, outputs: probed.map((name) => ({ name })) });
  let one: Record<string, Tensor>, two: Record<string, Tensor>;
  try {
    one = probe.run({ [input]: batchOf(1) });
    two = probe.run({ [input]: batchOf(2) });
  } finally {
    probe.dispose();
  }

  const initializers = new Map(graph.initializers);
  const taken = new Set([...graph.nodes.flatMap((n) => [n.name, ...n.outputs]), ...initializers.keys()]);
  const fresh = (base: string) => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };
  const added: Node[] = [];
  const replaced = new Map<string, Map<Node, string>>();
  for (const name of used) {
    const a = one[name], b = two[name];
    const same = a.dtype === b.dtype && a.shape.join() === b.shape.join();
    if (!same) continue;
    const x = Array.from(a.data as ArrayLike<number | bigint>, Number),
      y = Array.from(b.data as ArrayLike<number | bigint>, Number);
    if (x.every((v, i) => v === y[i])) {
      const c = fresh(`${name}/constant`);
      initializers.set(c, a);
      for (const n of graph.nodes) {
        if (!shaped.has(n.outputs[0]) && n.inputs.includes(name)) rewire(n, name, c);
      }
      continue;
    }
    // Batch-dependent: every element the same or twice as large at batch 2 (n, or n times a constant).
    const scales = x.every((v, i) => y[i] === v || (v !== 0 && y[i] === 2 * v));
    if (!scales || a.dtype !== "int64" || a.shape.length > 1) continue;
    for (const n of graph.nodes) {
      const source = sourceOf.get(n);
      if (!source || !n.inputs.includes(name)) continue;
      // The source's batch axis: the one that doubles from batch 1 to 2.
      const axis = one[source].shape.findIndex((d, i) => 2 * d === two[source].shape[i]);
      if (axis < 0) continue;
      const shape = fresh(`${name}/local_shape`), batch = fresh(`${name}/local_batch`);
      const index = fresh(`${name}/batch_axis`);
      initializers.set(index, new Tensor(new BigInt64Array([BigInt(axis)]), a.shape.length === 0 ? [] : [1]));
      // That axis holds the batch times its size at batch 1 (heads, say): divide it out.
      const size = one[source].shape[axis], sized = size === 1 ? batch : fresh(`${name}/local_axis`);
      added.push(
        node(fresh(`${name}/local_Shape`), "Shape", [source], [shape]),
        node(fresh(`${name}/local_Gather`), "Gather", [shape, index], [sized], 0),
      );
      if (size !== 1) {
        const divisor = fresh(`${name}/axis_at_batch_1`);
        initializers.set(divisor, new Tensor(new BigInt64Array([BigInt(size)]), []));
        added.push(node(fresh(`${name}/local_Div`), "Div", [sized, divisor], [batch]));
      }
      // value = where(scales, batch · x, x), x being the value at batch 1.
      const f = fresh(`${name}/at_batch_1`), m = fresh(`${name}/scales`);
      initializers.set(f, a);
      initializers.set(m, new Tensor(Uint8Array.from(x, (v, i) => (y[i] === v ? 0 : 1)), a.shape, "bool"));
      const product = fresh(`${name}/scaled`), local = fresh(`${name}/local`);
      added.push(
        node(fresh(`${name}/local_Mul`), "Mul", [batch, f], [product]),
        node(fresh(`${name}/local_Where`), "Where", [m, product, f], [local]),
      );
      rewire(n, name, local);
    }
  }
  function rewire(n: Node, from: string, to: string) {
    if (!replaced.has(from)) replaced.set(from, new Map());
    replaced.get(from)!.set(n, to);
  }
  if (replaced.size === 0) return graph;
  const nodes = graph.nodes.map((n) => {
    let inputs = n.inputs;
    for (const [from, by] of replaced) {
      const to = by.get(n);
      if (to) inputs = inputs.map((i) => (i === from ? to : i));
    }
    return inputs === n.inputs ? n : { ...n, inputs };
  });
  const result: Graph = { ...graph, nodes: [...nodes, ...added], initializers };
  result.nodes = topologicalOrder(result);
  removeDeadNodes(result);
  return result;
}
