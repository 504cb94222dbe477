// Graphs with quantizers in them. quantizedGraph: the simulated-quantized
// model (fake-quantized weights as constants, FakeQuantActivation before each
// quantized layer). trainingGraph: one block with its weights computed from
// latent tensors by a rounding op, activation steps as inputs, and the
// reconstruction loss against a target — ready for autodiff.
import { type Graph, isOnnxOp, type Node } from "../graph/ir.ts";
import { Tensor } from "../tensor.ts";
import { type ActivationQuantizer, type WeightQuantizer } from "./layers.ts";
import type { RoundingMode } from "./options.ts";
import { inversePerm, toRowsPerm } from "../layout.ts";
import { TRAINING_DOMAIN } from "../engine/registry.ts";

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
export const latentName = (weight: string) => `${weight}:latent`;
export const rngName = (weight: string) => `${weight}:rng`;
export const dropRngName = (tensor: string) => `${tensor}:drop_rng`;
export const SIGMA = "attnround:sigma";
export const TARGET = "attnround:target";
export const LOSS = "attnround:loss";
/** int64 [first sample, batch size]: which part of the mini-batch a training run holds (see BlockTrainer). */
export const SHARD = "attnround:shard";

/**
 * Inserts FakeQuantActivation nodes. For training, `trainingDrop` makes each
 * step a graph input instead of a constant, and with a probability > 0 turns
 * on QDrop with a drop-rng graph input per quantizer.
 */
function withActivationQuantizers(
  graph: Graph,
  acts: ActivationQuantizer[],
  trainingDrop?: number,
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
    const reads = isQuantizedLayer(n) && layerInputs.has(n.inputs[0]);
    nodes.push(reads ? { ...n, inputs: [quantized.get(n.inputs[0])!, ...n.inputs.slice(1)] } : n);
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

/** Drops the Constant nodes or initializers that held the given weights. */
function withoutWeights(graph: Graph, names: Set<string>): Graph {
  const initializers = new Map([...graph.initializers].filter(([name]) => !names.has(name)));
  const nodes = graph.nodes.filter((n) => !(isOnnxOp(n, "Constant") && names.has(n.outputs[0])));
  return { ...graph, nodes, initializers };
}

/** The simulated-quantized graph: fake-quantized weights (original layout) replace the float ones. */
export function quantizedGraph(
  graph: Graph,
  weights: Map<string, Tensor>,
  acts: ActivationQuantizer[],
): Graph {
  const base = withoutWeights(graph, new Set(weights.keys()));
  const initializers = new Map(base.initializers);
  for (const [name, t] of weights) initializers.set(name, t);
  return withActivationQuantizers({ ...base, initializers }, acts);
}

export interface TrainingLayer {
  quantizer: WeightQuantizer;
  /** Seed of this layer's Gaussian stream. */
  seed: number;
}

/**
 * A block's training graph: weights of `layers` = rounding(latent) (rows layout,
 * transposed back where needed), activation steps as inputs, loss =
 * MSE(block output, target). Graph inputs: the block input, TARGET, SIGMA,
 * each latent and rng, each step (and drop rng with QDrop).
 */
export function trainingGraph(
  block: Graph,
  layers: WeightQuantizer[],
  acts: ActivationQuantizer[],
  rounding: Exclude<RoundingMode, "nearest">,
  variant: "stochastic" | "expectation",
  activationDrop: number,
): Graph {
  const base = withoutWeights(block, new Set(layers.map((l) => l.layer.weight)));
  const nodes: Node[] = [];
  const initializers = new Map(base.initializers);
  const inputs = [...base.inputs, { name: TARGET, dtype: "float32" as const }, {
    name: SIGMA,
    dtype: "float32" as const,
  }];
  for (const q of layers) {
    const w = q.layer.weight;
    const perm = toRowsPerm(q.layer.weightShape.length, q.layer.channelAxis);
    const back = inversePerm(perm);
    const identity = back.every((p, i) => p === i);
    const rowsOut = identity ? w : `${w}:rows`;
    initializers.set(`${w}:scale`, new Tensor(q.scale, [q.scale.length]));
    initializers.set(`${w}:zero`, new Tensor(q.zero, [q.zero.length]));
    inputs.push({ name: latentName(w), dtype: "float32" });
    const levels: [string, unknown][] = [["qmin", q.qmin], ["qmax", q.qmax]];
    if (rounding === "attention") {
      inputs.push({ name: rngName(w), dtype: "int64" });
      nodes.push(
        node(`${w}:round`, "AttentionRound", [latentName(w), `${w}:scale`, `${w}:zero`, SIGMA, rngName(w)], [
          rowsOut,
          `${w}:slope`,
        ], [...levels, ["variant", variant]]),
      );
    } else {
      initializers.set(`${w}:float_rows`, new Tensor(q.rows, q.rowsShape));
      nodes.push(
        node(`${w}:round`, "AdaRound", [`${w}:float_rows`, latentName(w), `${w}:scale`, `${w}:zero`], [
          rowsOut,
          `${w}:slope`,
        ], levels),
      );
    }
    if (!identity) nodes.push(node(`${w}:unrows`, "Transpose", [rowsOut], [w], [["perm", back]], ""));
  }
  const withWeights: Graph = { ...base, nodes: [...nodes, ...base.nodes], initializers, inputs };
  const withActs = withActivationQuantizers(withWeights, acts, activationDrop);
  const output = block.outputs[0].name;
  return {
    ...withActs,
    nodes: [...withActs.nodes, node("reconstruction_loss", "MeanSquaredError", [output, TARGET], [LOSS])],
    outputs: [{ name: LOSS }],
  };
}
