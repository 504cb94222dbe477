// Block partition for reconstruction, from the graph's structure alone (op
// types and edges, never names).
//
// 1. Cuts. A tensor is a cut when every path from the graph inputs to the
//    graph outputs passes through it. Paths follow data edges only: an edge
//    into Shape/Size carries no values, and initializers, Constant nodes and
//    what is computed from them alone are not on any path. Several inputs or
//    outputs are joined by a virtual source and sink, so with two inputs the
//    first cut is where both have merged, and an intermediate tensor that is
//    also a graph output admits no cut after it. In any topological order of
//    the nodes and tensors on input→output paths, a tensor is a cut exactly
//    when no edge jumps over its position (an edge that did would start a
//    path around it), so one sweep finds them all. Cuts split those nodes into
//    segments: a ResNet gives one per residual block (convs … Add) and one
//    per op between them (the Relu after each Add, the stem's and head's ops);
//    a plain chain gives one per op.
// 2. Units. A segment without a quantizable layer joins a neighbour: if it
//    holds only pointwise ops (activations, arithmetic) it joins the one
//    before, so that a block's output is what the next layer reads, after the
//    Relu/Clip; otherwise (pooling, reshaping) it joins the one after, so that
//    the loss is taken on the richer tensor before the reduction. Weightless
//    segments before the first layer join the first unit (normalisation Sub/
//    Div → stem), ones after the last layer join the last unit.
// 3. Blocks. The first unit is a block (the stem: the conventions give the
//    first layer and the model input 8 bits). A unit with two or more layers
//    (a residual block) is a block. Consecutive one-layer units (a plain
//    chain) group into one block that closes after a unit ending in a linear
//    layer (no nonlinearity after its layer: MobileNetV2's projection, a
//    classifier) or on reaching `maxChainLayers` layers. MobileNetV2's
//    non-residual inverted-residual blocks (expand → depthwise → linear
//    projection) become one block each; its final 1×1 conv, pooling and
//    classifier form one block, which also spares caching the 1280-channel
//    map.
//
// Nodes off the input→output paths: Constant and shape-arithmetic nodes go to
// the block of their first consumer (the tensors a Shape node reads then enter
// that block as inputs, although only their shapes are used); dead ends go to
// the block where the last of their inputs is available. Constant tensors
// (initializers and values computed from constants alone) are never listed as
// block inputs, even when the node computing them sits in another block.
import type { Graph, Node } from "./ir.ts";
import { attrInt, attrTensor, isOnnxDomain, isOnnxOp, topologicalOrder } from "./ir.ts";

export interface Block {
  index: number;
  /** The block's nodes in topological order. */
  nodes: Node[];
  /** Non-constant tensors the block reads from outside: graph inputs or earlier blocks' outputs. */
  inputs: string[];
  /** Tensors produced here that later blocks read or that are graph outputs (a chain: the cut tensor). */
  outputs: string[];
  /** Names of the quantizable layers among `nodes`. */
  layers: string[];
}

export interface PartitionOptions {
  /** Largest number of layers a plain chain of one-layer units groups into one block. */
  maxChainLayers: number;
}

const defaults: Readonly<PartitionOptions> = { maxChainLayers: 3 };

export type LayerKind = "Conv" | "ConvTranspose" | "Gemm" | "MatMul";

export interface QuantizableLayer {
  node: Node;
  name: string;
  kind: LayerKind;
  /** The constant weight: an initializer or a Constant node's output. */
  weight: string;
  weightShape: number[];
  /** Output channels (one quantization scale each). */
  m: number;
  /** Fan-in of one output channel. */
  k: number;
  /**
   * Axis of `weightShape` that indexes output channels: 0 for Conv [m, c/g, kh, kw] and Gemm with
   * transB=1 [m, k]; 1 for Gemm with transB=0 and MatMul ([k, m]) and for ConvTranspose
   * [c, m/g, kh, kw], where with groups > 1 the axis holds m/g channels and output channel
   * g·(m/g)+j reads W[g·(c/g) … (g+1)·(c/g)−1, j].
   */
  channelAxis: number;
  group: number;
}

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** Conv, ConvTranspose, Gemm and MatMul whose weight (second input) is an initializer or a Constant node. */
export function quantizableLayers(graph: Graph): QuantizableLayer[] {
  const constantShapes = new Map<string, readonly number[]>();
  for (const [name, t] of graph.initializers) constantShapes.set(name, t.shape);
  for (const node of graph.nodes) {
    const value = isOnnxOp(node, "Constant") ? attrTensor(node, "value") : undefined;
    if (value) constantShapes.set(node.outputs[0], value.shape);
  }
  const layers: QuantizableLayer[] = [];
  for (const node of topologicalOrder(graph)) {
    const kind = node.opType as LayerKind;
    const weight = node.inputs[1];
    const shape = weight ? constantShapes.get(weight) : undefined;
    if (node.domain !== "" && node.domain !== "ai.onnx") continue;
    if (!shape) continue;
    const group = attrInt(node, "group", 1);
    const base = { node, name: node.name, kind, weight, weightShape: [...shape], group };
    if (kind === "Conv" && shape.length >= 3) {
      layers.push({ ...base, m: shape[0], k: product(shape.slice(1)), channelAxis: 0 });
    } else if (kind === "ConvTranspose" && shape.length >= 3) {
      layers.push({
        ...base,
        m: shape[1] * group,
        k: (shape[0] / group) * product(shape.slice(2)),
        channelAxis: 1,
      });
    } else if (kind === "Gemm" && shape.length === 2) {
      const transposed = attrInt(node, "transB", 0) === 1;
      const [m, k] = transposed ? shape : [shape[1], shape[0]];
      layers.push({ ...base, m, k, channelAxis: transposed ? 0 : 1 });
    } else if (kind === "MatMul" && shape.length === 2) {
      layers.push({ ...base, m: shape[1], k: shape[0], channelAxis: 1 });
    }
  }
  return layers;
}

// Ops that act element by element (with broadcasting): a weightless segment of
// these alone stays with the layer before it.
const POINTWISE = new Set([
  "Relu",
  "Clip",
  "LeakyRelu",
  "PRelu",
  "Sigmoid",
  "HardSigmoid",
  "HardSwish",
  "Tanh",
  "Elu",
  "Selu",
  "Celu",
  "Softplus",
  "Softsign",
  "Mish",
  "Gelu",
  "Erf",
  "Exp",
  "Log",
  "Sqrt",
  "Reciprocal",
  "Pow",
  "Abs",
  "Neg",
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Max",
  "Min",
  "Identity",
  "Cast",
  "Dropout",
  "BatchNormalization",
  "QuantizeLinear",
  "DequantizeLinear",
]);

// Pointwise ops that are not affine: after one, a layer's output is no longer "linear".
const NONLINEAR = new Set([
  "Relu",
  "Clip",
  "LeakyRelu",
  "PRelu",
  "Sigmoid",
  "HardSigmoid",
  "HardSwish",
  "Tanh",
  "Elu",
  "Selu",
  "Celu",
  "Softplus",
  "Softsign",
  "Mish",
  "Gelu",
  "Erf",
  "Exp",
  "Log",
  "Sqrt",
  "Reciprocal",
  "Pow",
  "Abs",
  "Max",
  "Min",
  "Softmax",
  "MaxPool",
  "QuantizeLinear",
]);

// Edges into these carry a shape, not values.
const SHAPE_ONLY = new Set(["Shape", "Size"]);

interface Flow {
  order: Node[];
  /** Inputs that carry values derived from the graph inputs. Empty: the node is static. */
  dataInputs: Map<Node, string[]>;
  /** Initializers and tensors computed from constants alone. */
  constants: Set<string>;
  /** Cut tensors in path order. */
  cuts: string[];
  /** Segment index of each on-path node (0, 1, … in order), and each segment's closing cut, if any. */
  segmentOf: Map<Node, number>;
  segmentCut: (string | undefined)[];
}

function analyseFlow(graph: Graph): Flow {
  const order = topologicalOrder(graph);
  const graphInputs = [...new Set(graph.inputs.map((i) => i.name))].filter((n) => !graph.initializers.has(n));
  const data = new Set(graphInputs);
  const constants = new Set(graph.initializers.keys());
  const dataInputs = new Map<Node, string[]>();
  for (const node of order) {
    const ins = isOnnxDomain(node) && SHAPE_ONLY.has(node.opType)
      ? []
      : node.inputs.filter((name) => data.has(name));
    dataInputs.set(node, ins);
    if (ins.length > 0) {
      for (const out of node.outputs) if (out) data.add(out);
    } else if (node.inputs.every((name) => name === "" || constants.has(name))) {
      for (const out of node.outputs) if (out) constants.add(out);
    }
  }

  // Backwards from the outputs along data edges.
  const live = new Set(graph.outputs.map((o) => o.name).filter((n) => data.has(n)));
  const onPath = new Set<Node>();
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    const ins = dataInputs.get(node)!;
    if (ins.length === 0 || !node.outputs.some((o) => live.has(o))) continue;
    onPath.add(node);
    for (const name of ins) live.add(name);
  }

  // Positions: source, inputs, then each node followed by its on-path outputs, then sink.
  const position = new Map<string, number>();
  const nodePosition = new Map<Node, number>();
  let next = 1;
  for (const name of graphInputs) if (live.has(name)) position.set(name, next++);
  for (const node of order) {
    if (!onPath.has(node)) continue;
    nodePosition.set(node, next++);
    for (const out of node.outputs) if (live.has(out) && !position.has(out)) position.set(out, next++);
  }
  const sink = next;
  const jumps = new Int32Array(sink + 2);
  const edge = (from: number, to: number) => {
    if (to > from + 1) {
      jumps[from + 1]++;
      jumps[to]--;
    }
  };
  for (const name of graphInputs) if (position.has(name)) edge(0, position.get(name)!);
  for (const [node, at] of nodePosition) {
    for (const name of dataInputs.get(node)!) edge(position.get(name)!, at);
    for (const out of node.outputs) if (position.has(out)) edge(at, position.get(out)!);
  }
  const outputNames = new Set(graph.outputs.map((o) => o.name));
  for (const name of outputNames) if (position.has(name)) edge(position.get(name)!, sink);
  const jumped = new Uint8Array(sink + 1);
  for (let p = 0, open = 0; p <= sink; p++) {
    open += jumps[p];
    jumped[p] = open > 0 ? 1 : 0;
  }
  const reachesSink = [...outputNames].some((n) => position.has(n));
  const cuts = reachesSink ? [...position].filter(([, p]) => !jumped[p]).map(([name]) => name) : [];

  // Segments: on-path nodes between consecutive cuts.
  const cutAt = new Set(cuts.map((name) => position.get(name)!));
  const segmentOf = new Map<Node, number>();
  const segmentCut: (string | undefined)[] = [];
  let segment = -1;
  let open = false;
  const cutNames = new Map(cuts.map((name) => [position.get(name)!, name]));
  const nodeAt = new Map([...nodePosition].map(([node, p]) => [p, node]));
  for (let p = 1; p < sink; p++) {
    if (cutAt.has(p)) {
      if (open) segmentCut[segment] = cutNames.get(p);
      open = false;
      continue;
    }
    const node = nodeAt.get(p);
    if (!node) continue;
    if (!open) {
      segment++;
      segmentCut.push(undefined);
      open = true;
    }
    segmentOf.set(node, segment);
  }
  return { order, dataInputs, constants, cuts, segmentOf, segmentCut };
}

/** The tensors every path from the graph inputs to the graph outputs passes through, in order. */
export function cutTensors(graph: Graph): string[] {
  return analyseFlow(graph).cuts;
}

interface Unit {
  segments: number[];
  layers: number;
  /** No nonlinearity after the unit's last layer. */
  linear: boolean;
}

/** Splits the graph into blocks for reconstruction; see the rule at the top of this file. */
export function partitionBlocks(graph: Graph, options: Partial<PartitionOptions> = {}): Block[] {
  const { maxChainLayers } = { ...defaults, ...options };
  const flow = analyseFlow(graph);
  const { order, segmentOf } = flow;
  if (order.length === 0) return [];
  const layerNames = new Set(quantizableLayers(graph).map((l) => l.name));
  const isLayer = (n: Node) => layerNames.has(n.name);

  const segmentNodes: Node[][] = flow.segmentCut.map(() => []);
  for (const node of order) if (segmentOf.has(node)) segmentNodes[segmentOf.get(node)!].push(node);

  // Units: weightless segments join a neighbour.
  const units: Unit[] = [];
  let pending: number[] = [];
  segmentNodes.forEach((nodes, s) => {
    const layers = nodes.filter(isLayer).length;
    if (layers > 0) {
      units.push({ segments: [...pending, s], layers, linear: false });
      pending = [];
    } else if (
      pending.length === 0 && units.length > 0 &&
      nodes.every((n) => isOnnxDomain(n) && POINTWISE.has(n.opType))
    ) {
      units[units.length - 1].segments.push(s);
    } else {
      pending.push(s);
    }
  });
  if (units.length === 0) units.push({ segments: [], layers: 0, linear: false });
  units[units.length - 1].segments.push(...pending);
  for (const unit of units) {
    const nodes = unit.segments.flatMap((s) => segmentNodes[s]);
    const last = nodes.findLastIndex(isLayer);
    unit.linear = last >= 0 &&
      !nodes.slice(last + 1).some((n) => !isOnnxDomain(n) || NONLINEAR.has(n.opType));
  }

  // Blocks: the stem, multi-layer units, and chains of one-layer units.
  const groups: number[][] = [];
  let chain: number[] = [];
  let chainLayers = 0;
  const closeChain = () => {
    if (chain.length > 0) groups.push(chain);
    chain = [];
    chainLayers = 0;
  };
  units.forEach((unit, u) => {
    if (u === 0 || unit.layers !== 1) {
      closeChain();
      groups.push([u]);
      return;
    }
    chain.push(u);
    chainLayers += unit.layers;
    if (unit.linear || chainLayers >= maxChainLayers) closeChain();
  });
  closeChain();
  const count = groups.length;
  const blockOfSegment: number[] = [];
  groups.forEach((group, b) => {
    for (const u of group) for (const s of units[u].segments) blockOfSegment[s] = b;
  });

  // Every node: on-path nodes by segment; dead ends where their inputs are ready;
  // static nodes with their first consumer.
  const blockOf = new Map<Node, number>();
  const ready = new Map<string, number>();
  const readyOf = (name: string) => ready.get(name) ?? 0;
  for (const node of order) {
    const inputsReady = Math.max(0, ...node.inputs.filter((n) => n).map(readyOf));
    let b: number | undefined;
    if (segmentOf.has(node)) b = blockOfSegment[segmentOf.get(node)!];
    else if (flow.dataInputs.get(node)!.length > 0) b = inputsReady;
    if (b !== undefined) blockOf.set(node, b);
    for (const out of node.outputs) if (out) ready.set(out, b ?? inputsReady);
  }
  const consumers = new Map<string, Node[]>();
  for (const node of order) {
    for (const name of node.inputs) {
      if (!consumers.has(name)) consumers.set(name, []);
      consumers.get(name)!.push(node);
    }
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    if (blockOf.has(node)) continue;
    const readers = node.outputs.flatMap((o) => (o ? consumers.get(o) ?? [] : []));
    const first = readers.length > 0 ? Math.min(...readers.map((r) => blockOf.get(r)!)) : undefined;
    blockOf.set(
      node,
      first ?? Math.min(count - 1, Math.max(0, ...node.inputs.filter((n) => n).map(readyOf))),
    );
  }

  const result: Block[] = Array.from({ length: count }, (_, index) => ({
    index,
    nodes: [],
    inputs: [],
    outputs: [],
    layers: [],
  }));
  for (const node of order) result[blockOf.get(node)!].nodes.push(node);
  const producerBlock = new Map<string, number>();
  for (const node of order) {
    for (const out of node.outputs) if (out) producerBlock.set(out, blockOf.get(node)!);
  }
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  const leaving = new Set<string>();
  for (const block of result) {
    const seen = new Set<string>();
    for (const node of block.nodes) {
      if (isLayer(node)) block.layers.push(node.name);
      for (const name of node.inputs) {
        if (!name || flow.constants.has(name) || seen.has(name)) continue;
        const from = producerBlock.get(name);
        if (from === block.index) continue;
        seen.add(name);
        block.inputs.push(name);
        if (from !== undefined) leaving.add(name);
      }
    }
  }
  for (const block of result) {
    for (const node of block.nodes) {
      for (const out of node.outputs) {
        if (out && (leaving.has(out) || graphOutputs.has(out))) block.outputs.push(out);
      }
    }
  }
  return result;
}
