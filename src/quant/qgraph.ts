// Graphs with quantizers in them. quantizedGraph: the simulated-quantized
// model (fake-quantized weights as constants, FakeQuantActivation at each
// quantized tensor; in the deploy form with the runtime's integer arithmetic,
// see deploy.ts). trainingGraph: one block with its rounded weights and its
// activation steps as inputs, and the reconstruction loss against a target —
// ready for autodiff. The rounding itself runs outside it, once per iteration
// (reconstruct.ts), however many runs the mini-batch is split into. In the
// exact form only quantized layers read a quantized tensor; in the deploy form
// every consumer does, and biases are rounded to the runtime's int32 grid.
import { type Graph, isOnnxOp, type Node, producers } from "../graph/ir.ts";
import { Tensor } from "../tensor.ts";
import { type ActivationQuantizer, type WeightQuantizer } from "./layers.ts";
import { inversePerm, toRowsPerm } from "../layout.ts";
import { TRAINING_DOMAIN } from "../engine/registry.ts";
import { foldedActivation, integerGraph, layerBias } from "./deploy.ts";
import type { BiasCorrection } from "./bias-correction.ts";

function node(
  name: string,
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: [string, unknown][] = [],
  domain = TRAINING_DOMAIN,
): Node {
  return { name, opType, domain, inputs, outputs, attributes: new Map(attributes) as Node["attributes"] };
}

export const quantizedName = (tensor: string) => `${tensor}:quantized`;
export const stepName = (tensor: string) => `${tensor}:step`;
export const dropRngName = (tensor: string) => `${tensor}:drop_rng`;
export const TARGET = "attnround:target";
export const LOSS = "attnround:loss";
/** int64 [first sample, batch size]: which part of the mini-batch a training run holds (see BlockTrainer). */
export const SHARD = "attnround:shard";

/**
 * Inserts FakeQuantActivation nodes, read by the quantized layers (or with
 * `allConsumers` by every node). For training, `trainingDrop` makes each
 * step a graph input instead of a constant, and with a probability > 0 turns
 * on QDrop with a drop-rng graph input per quantizer.
 */
function withActivationQuantizers(
  graph: Graph,
  acts: ActivationQuantizer[],
  trainingDrop: number | undefined,
  allConsumers: boolean,
): Graph {
  const stepAsInput = trainingDrop !== undefined, drop = trainingDrop ?? 0;
  const present = new Set([
    ...graph.nodes.flatMap((n) => [...n.inputs, ...n.outputs]),
    ...graph.inputs.map((i) => i.name),
  ]);
  const used = acts.filter((a) => present.has(a.tensor));
  const quantized = new Map(used.map((a) => [a.tensor, quantizedName(a.tensor)]));
  const layerInputs = new Set(used.map((a) => a.tensor));
  const nodes: Node[] = [];
  const initializers = new Map(graph.initializers);
  const inputs = [...graph.inputs];
  for (const a of used) {
    if (stepAsInput) inputs.push({ name: stepName(a.tensor), dtype: "float32" });
    else initializers.set(stepName(a.tensor), new Tensor(new Float32Array([a.step]), [1]));
    if (drop > 0) inputs.push({ name: dropRngName(a.tensor), dtype: "int64" });
  }
  if (stepAsInput && used.length > 0) inputs.push({ name: SHARD, dtype: "int64" });
  const quantizerNode = (a: ActivationQuantizer) => {
    const ins = [a.tensor, stepName(a.tensor)], outs = [quantizedName(a.tensor)];
    const attributes: [string, unknown][] = [["zero", a.zero], ["qmin", a.qmin], ["qmax", a.qmax]];
    if (drop > 0) {
      ins.push(dropRngName(a.tensor));
      outs.push(`${a.tensor}:drop_words`);
      attributes.push(["drop", drop]);
    }
    if (stepAsInput) ins.push(...(drop > 0 ? [] : [""]), SHARD);
    return node(`${a.tensor}:fake_quant`, "FakeQuantActivation", ins, outs, attributes);
  };
  // A quantizer right where its tensor appears: after its producer, or first for graph inputs.
  for (const a of used) if (graph.inputs.some((i) => i.name === a.tensor)) nodes.push(quantizerNode(a));
  for (const n of graph.nodes) {
    if (allConsumers) {
      nodes.push(
        n.inputs.some((i) => quantized.has(i))
          ? { ...n, inputs: n.inputs.map((i) => quantized.get(i) ?? i) }
          : n,
      );
    } else {
      const reads = isQuantizedLayer(n) && layerInputs.has(n.inputs[0]);
      nodes.push(reads ? { ...n, inputs: [quantized.get(n.inputs[0])!, ...n.inputs.slice(1)] } : n);
    }
    for (const out of n.outputs) {
      const a = used.find((q) => q.tensor === out);
      if (a) nodes.push(quantizerNode(a));
    }
  }
  return { ...graph, nodes, initializers, inputs };
}

function isQuantizedLayer(n: Node): boolean {
  return isOnnxOp(n, "Conv", "ConvTranspose", "Gemm", "MatMul");
}

/**
 * The quantizers a block's nodes read: in the exact form those at the data
 * inputs of its quantized layers, in the deploy form every one any node reads.
 */
export function quantizersRead(
  nodes: Node[],
  layers: WeightQuantizer[],
  acts: ActivationQuantizer[],
  deploy: boolean,
): ActivationQuantizer[] {
  const read = deploy
    ? new Set(nodes.flatMap((n) => n.inputs))
    : new Set(layers.filter((q) => nodes.includes(q.layer.node)).map((q) => q.layer.node.inputs[0]));
  return acts.filter((a) => read.has(a.tensor));
}

/** Drops the Constant nodes or initializers that held the given weights. */
function withoutWeights(graph: Graph, names: Set<string>): Graph {
  const initializers = new Map([...graph.initializers].filter(([name]) => !names.has(name)));
  const nodes = graph.nodes.filter((n) => !(isOnnxOp(n, "Constant") && names.has(n.outputs[0])));
  return { ...graph, nodes, initializers };
}

/** The deploy form's layers and their final weights (rows layout, by weight name). */
export interface DeployLayers {
  layers: WeightQuantizer[];
  rows: Map<string, Float32Array>;
}

/**
 * The simulated-quantized graph: fake-quantized weights (original layout)
 * replace the float ones; with `deploy`, the deploy form and its arithmetic.
 */
export function quantizedGraph(
  graph: Graph,
  weights: Map<string, Tensor>,
  acts: ActivationQuantizer[],
  deploy?: DeployLayers,
): Graph {
  const base = withoutWeights(graph, new Set(weights.keys()));
  const initializers = new Map(base.initializers);
  for (const [name, t] of weights) initializers.set(name, t);
  const simulated = { ...base, initializers };
  if (!deploy) return withActivationQuantizers(simulated, acts, undefined, false);
  return withRuntimeAdds(
    withActivationQuantizers(
      integerGraph(simulated, deploy.layers, deploy.rows, acts),
      acts,
      undefined,
      true,
    ),
    acts,
  );
}

/**
 * The deploy form's quantized Adds of two quantized tensors, which the
 * runtime runs as QLinearAdd, with its arithmetic (deploy.ts): each such
 * Add's quantizer (or that of a Relu after it, which the runtime drops when
 * the zero point clamps alike) becomes a RuntimeQuantizedAdd. Not where the
 * sum is a graph output too: the runtime then adds in float.
 */
function withRuntimeAdds(graph: Graph, acts: ActivationQuantizer[]): Graph {
  const byQuantized = new Map(acts.map((a) => [quantizedName(a.tensor), a]));
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const producerOf = producers(graph);
  /** The Add whose sum a quantizer reads, directly or through a Relu that its zero point makes redundant. */
  const addOf = (n: Node): Node | undefined => {
    let m = producerOf.get(n.inputs[0]);
    if (m && isOnnxOp(m, "Relu") && n.attributes.get("zero") === n.attributes.get("qmin")) {
      m = foldedActivation(graph, m.inputs[0])?.node === m ? producerOf.get(m.inputs[0]) : undefined;
    }
    return m && isOnnxOp(m, "Add") ? m : undefined;
  };
  const nodes = graph.nodes.map((n) => {
    const add = n.opType === "FakeQuantActivation" ? addOf(n) : undefined;
    const [a, b] = (add?.inputs ?? []).map((i) => byQuantized.get(i));
    if (!add || !a || !b || outputs.has(n.inputs[0])) return n;
    return node(
      `${n.inputs[0]}:runtime_add`,
      "RuntimeQuantizedAdd",
      [...n.inputs, ...add.inputs],
      n.outputs,
      [
        ...n.attributes,
        ["stepA", Math.fround(a.step)],
        ["zeroA", a.zero],
        ["stepB", Math.fround(b.step)],
        ["zeroB", b.zero],
      ],
    );
  });
  return { ...graph, nodes };
}

/**
 * The training graph's input that holds a layer's rounded weight, in rows
 * layout: the weight itself where that is its own layout, else a tensor a
 * Transpose turns into it.
 */
export function roundedInput(q: WeightQuantizer): string {
  return isRowsLayout(q) ? q.layer.weight : `${q.layer.weight}:rows`;
}

function isRowsLayout(q: WeightQuantizer): boolean {
  return toRowsPerm(q.layer.weightShape.length, q.layer.channelAxis).every((p, i) => p === i);
}

/**
 * Each corrected layer's output followed by the correction of its rounded
 * weight (a graph input, rows layout): y + (Σ w·μ − Σ ŵ·μ), broadcast along
 * the output's channel axis, differentiable in ŵ.
 */
function withCorrections(graph: Graph, corrections: BiasCorrection[]): Graph {
  if (corrections.length === 0) return graph;
  const initializers = new Map(graph.initializers);
  const after = new Map<string, Node[]>();
  for (const c of corrections) {
    const { q } = c, w = q.layer.weight, m = q.rowsShape[0], k = c.means.length / m;
    const y = q.layer.node.outputs[0], name = (s: string) => `${w}:correction_${s}`;
    // Conv and ConvTranspose outputs [n, m, ...spatial], Gemm's [n, m].
    const rank = q.layer.kind === "Gemm" ? 2 : q.layer.weightShape.length;
    const shape = Array.from({ length: rank }, (_, i) => (i === 1 ? m : 1));
    initializers.set(name("means"), new Tensor(c.means, q.rowsShape));
    initializers.set(name("ones"), new Tensor(new Float32Array(k).fill(1), [k, 1]));
    initializers.set(name("offset"), new Tensor(c.offset, [m, 1]));
    initializers.set(name("matrix_shape"), new Tensor(new BigInt64Array([BigInt(m), BigInt(k)]), [2]));
    initializers.set(name("shape"), new Tensor(BigInt64Array.from(shape, BigInt), [rank]));
    const onnx = (op: string, inputs: string[], output: string) =>
      node(`${output}:node`, op, inputs, [output], [], "");
    after.set(q.layer.node.name, [
      onnx("Mul", [roundedInput(q), name("means")], name("products")),
      onnx("Reshape", [name("products"), name("matrix_shape")], name("matrix")),
      onnx("MatMul", [name("matrix"), name("ones")], name("sums")),
      onnx("Sub", [name("offset"), name("sums")], name("column")),
      onnx("Reshape", [name("column"), name("shape")], name("value")),
      onnx("Add", [`${y}:uncorrected`, name("value")], y),
    ]);
  }
  const nodes = graph.nodes.flatMap((n) => {
    const correction = after.get(n.name);
    if (!correction) return [n];
    return [{ ...n, outputs: [`${n.outputs[0]}:uncorrected`, ...n.outputs.slice(1)] }, ...correction];
  });
  return { ...graph, nodes, initializers };
}

/**
 * A block's training graph: the rounded weights of `layers` (rows layout,
 * transposed back where needed) and the activation steps as inputs, loss =
 * MSE(block output, target), each output value and its target first
 * multiplied by its `outputWeights` entry when given, each corrected layer's
 * output followed by its bias correction. Graph inputs: the block
 * input, TARGET, each rounded weight, each step (and drop rng with QDrop, and
 * SHARD).
 */
export function trainingGraph(
  block: Graph,
  layers: WeightQuantizer[],
  acts: ActivationQuantizer[],
  activationDrop: number,
  deploy = false,
  outputWeights?: Float32Array,
  corrections: BiasCorrection[] = [],
): Graph {
  const base = withoutWeights(block, new Set(layers.map((l) => l.layer.weight)));
  const nodes: Node[] = [];
  const inputs = [...base.inputs, { name: TARGET, dtype: "float32" as const }];
  for (const q of layers) {
    const w = q.layer.weight;
    inputs.push({ name: roundedInput(q), dtype: "float32" });
    if (!isRowsLayout(q)) {
      const back = inversePerm(toRowsPerm(q.layer.weightShape.length, q.layer.channelAxis));
      nodes.push(node(`${w}:unrows`, "Transpose", [roundedInput(q)], [w], [["perm", back]], ""));
    }
  }
  let blockNodes = base.nodes;
  const initializers = new Map(base.initializers);
  if (deploy) {
    // Biases on the int32 grid of the (learned) input step and the weight scales.
    const quantizedInputs = new Set(acts.map((a) => a.tensor));
    const rounded = new Map<Node, Node[]>();
    for (const q of layers) {
      const n = q.layer.node, bias = layerBias(block, q);
      if (!bias || !quantizedInputs.has(n.inputs[0])) continue;
      const out = `${n.name}:bias_quantized`, scale = `${q.layer.weight}:scale`;
      initializers.set(scale, new Tensor(q.scale, [q.scale.length]));
      rounded.set(n, [
        node(`${n.name}:quantize_bias`, "QuantizeBias", [bias.name, stepName(n.inputs[0]), scale], [out]),
        { ...n, inputs: [n.inputs[0], n.inputs[1], out, ...n.inputs.slice(3)] },
      ]);
    }
    blockNodes = base.nodes.flatMap((n) => rounded.get(n) ?? [n]);
  }
  const withWeights = withCorrections(
    { ...base, nodes: [...nodes, ...blockNodes], initializers, inputs },
    corrections,
  );
  const withActs = withActivationQuantizers(withWeights, acts, activationDrop, deploy);
  const compared = [block.outputs[0].name, TARGET];
  const loss = (inputs: string[]) => node("reconstruction_loss", "MeanSquaredError", inputs, [LOSS]);
  if (!outputWeights) {
    return { ...withActs, nodes: [...withActs.nodes, loss(compared)], outputs: [{ name: LOSS }] };
  }
  const weights = `${LOSS}/output_weights`, weighed = compared.map((x) => `${x}:weighed`);
  const withLossWeights = new Map(withActs.initializers);
  withLossWeights.set(weights, new Tensor(outputWeights, [outputWeights.length]));
  return {
    ...withActs,
    initializers: withLossWeights,
    nodes: [
      ...withActs.nodes,
      ...compared.map((x, i) => node(`${x}:weigh`, "Mul", [x, weights], [weighed[i]], [], "")),
      loss(weighed),
    ],
    outputs: [{ name: LOSS }],
  };
}
