// The mixed-precision allocation of a quantize() run (SPEC §6): the costs of
// each candidate width for each layer the allocation sets (measured
// sensitivity or the coding length), the bytes the export stores for it, the
// byte budget, and the knapsack's choice (mixed.ts).
//
// Sensitivity of layer l at b bits: the output loss of the float model with
// layer l alone rounded to nearest at b bits (its own Lp-searched scales, as
// quantize starts from), against the float model's outputs, on the held-back
// calibration samples: mean KL(softmax(y) ‖ softmax(ŷ)) per sample for
// classifiers (outputs [N, C]), mean squared error otherwise. The float model
// against itself has loss 0, so this is the increase.
//
// A size budget (sizeBytes) covers the whole file: everything the export
// writes besides the allocated layers' levels, zero points and scales is
// measured by exporting a skeleton of the model (the same graph, quantizers
// and metadata, zero weights) with every allocated layer at the smallest
// candidate of each container width, and taking the largest remainder; a
// margin covers the protobuf length prefixes that grow with the payloads.
import { AttnroundError } from "../errors.ts";
import { attrTensor, type Graph, isOnnxOp } from "../graph/ir.ts";
import { WasmBuffer } from "../kernels/memory.ts";
import { fakeQuantNearest, quantLevels } from "../kernels/quant.ts";
import { fromRows } from "../layout.ts";
import type { Model } from "../model.ts";
import { Engine } from "../engine/engine.ts";
import { Tensor } from "../tensor.ts";
import { planOutputQuantizers } from "./deploy.ts";
import {
  type ActivationQuantizer,
  type MeasuredLayer,
  planActivationQuantizers,
  planLayerBits,
  searchScales,
  type WeightQuantizer,
} from "./layers.ts";
import {
  allocateBytes,
  averageBitsBytes,
  codingLengthCosts,
  layerStoredBytes,
  type MixedAllocation,
  type MixedLayer,
  resolveMixedPrecision,
  storedBits,
} from "./mixed.ts";
import { type QuantizeOptions, settingsOf } from "./options.ts";
import { exportedSize } from "./quantized-model.ts";

/** Bytes of slack a size budget keeps for the length prefixes that grow with the weights (per layer, and the graph's). */
const PREFIX_MARGIN_PER_LAYER = 4, PREFIX_MARGIN = 8;

/** The graph with `weight` (an initializer or a Constant's output) replaced by `value`. */
export function withWeight(graph: Graph, weight: string, value: Tensor): Graph {
  if (graph.initializers.has(weight)) {
    return { ...graph, initializers: new Map(graph.initializers).set(weight, value) };
  }
  return {
    ...graph,
    nodes: graph.nodes.map((n) =>
      isOnnxOp(n, "Constant") && n.outputs[0] === weight && attrTensor(n, "value")
        ? { ...n, attributes: new Map(n.attributes).set("value", value) }
        : n
    ),
  };
}

/** Round-to-nearest weight of a layer at `bits`, in its own layout. */
export function nearestWeight(
  l: MeasuredLayer,
  bits: number,
  o: Pick<QuantizeOptions, "symmetricWeights" | "perChannelWeights">,
): Tensor {
  const m = l.rowsShape[0], k = l.rows.length / m;
  const { qmin, qmax } = quantLevels(bits, o.symmetricWeights);
  const { scale, zero } = searchScales(l.rows, m, bits, o);
  const w = WasmBuffer.from(l.rows), s = WasmBuffer.from(scale), z = WasmBuffer.from(zero);
  try {
    fakeQuantNearest(w.ptr, m, k, s.ptr, z.ptr, qmin, qmax, w.ptr);
    return new Tensor(fromRows(w.read(), l.layer.weightShape, l.layer.channelAxis), l.layer.weightShape);
  } finally {
    w.dispose(), s.dispose(), z.dispose();
  }
}

/** Samples per engine run while measuring: a model whose batch is fixed to 1 runs one at a time. */
function chunkOf(graph: Graph): number {
  return graph.inputs[0].shape?.[0] === 1 ? 1 : 32;
}

/** The graph's first output on `held`, chunk by chunk. */
export function outputsOf(graph: Graph, held: Tensor): Tensor {
  const engine = new Engine(graph);
  try {
    const n = held.shape[0], per = held.size / n, chunk = chunkOf(graph);
    const parts: Tensor[] = [];
    for (let start = 0; start < n; start += chunk) {
      const count = Math.min(chunk, n - start);
      const x = (held.data as Float32Array).slice(start * per, (start + count) * per);
      parts.push(
        engine.run({ [graph.inputs[0].name]: new Tensor(x, [count, ...held.shape.slice(1)]) })[
          graph.outputs[0].name
        ],
      );
    }
    const data = new Float32Array(parts.reduce((a, t) => a + t.size, 0));
    let at = 0;
    for (const t of parts) data.set(t.data as Float32Array, at), (at += t.size);
    return new Tensor(data, [n, ...parts[0].shape.slice(1)]);
  } finally {
    engine.dispose();
  }
}

function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const log = Math.log(sum) + max;
  return Float64Array.from(row, (v) => v - log);
}

/** Whether the loss is the classifiers' KL divergence: outputs [N, C], C > 1. */
export function isClassifierOutput(y: Tensor): boolean {
  return y.shape.length === 2 && y.shape[1] > 1;
}

/** Output loss of ŷ against y: mean KL(softmax(y) ‖ softmax(ŷ)) per sample for classifiers, else the MSE. */
export function outputLoss(y: Tensor, yq: Tensor): number {
  const a = y.data as Float32Array, b = yq.data as Float32Array;
  if (!isClassifierOutput(y)) {
    let sum = 0;
    for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
    return sum / a.length;
  }
  const [n, c] = y.shape;
  let kl = 0;
  for (let r = 0; r < n; r++) {
    const p = logSoftmax(a.subarray(r * c, (r + 1) * c)), q = logSoftmax(b.subarray(r * c, (r + 1) * c));
    for (let j = 0; j < c; j++) kl += Math.exp(p[j]) * (p[j] - q[j]);
  }
  return Math.max(0, kl / n);
}

/**
 * Sensitivity of each layer at each candidate width: the output loss on
 * `held` with that layer alone rounded to nearest at that width.
 */
export function measureSensitivity(
  graph: Graph,
  layers: readonly MeasuredLayer[],
  candidates: readonly number[],
  held: Tensor,
  o: Pick<QuantizeOptions, "symmetricWeights" | "perChannelWeights" | "signal">,
): { cost: number[][]; classifier: boolean } {
  const y = outputsOf(graph, held);
  const cost = layers.map((l) =>
    candidates.map((bits) => {
      if (o.signal?.aborted) {
        throw new AttnroundError("ABORTED", "quantization aborted while measuring sensitivity");
      }
      return outputLoss(y, outputsOf(withWeight(graph, l.layer.weight, nearestWeight(l, bits, o)), held));
    })
  );
  return { cost, classifier: isClassifierOutput(y) };
}

/** Weight quantizers with every value 0, for sizing the export: the bytes do not depend on the values. */
function skeletonWeights(plan: ReturnType<typeof planLayerBits>, bits: number[], o: QuantizeOptions) {
  return plan.layers.map((l, i): WeightQuantizer => ({
    layer: l.layer,
    bits: bits[i],
    symmetric: o.symmetricWeights,
    ...quantLevels(bits[i], o.symmetricWeights),
    rows: new Float32Array(l.rows.length),
    rowsShape: l.rowsShape,
    scale: new Float32Array(l.rowsShape[0]).fill(1),
    zero: new Float32Array(l.rowsShape[0]),
    codingLength: l.codingLength,
    codingLengthPerWeight: l.codingLengthPerWeight,
    bitsSource: plan.source[i],
    firstLayer: l.layer === plan.first,
  }));
}

/** The exported file's bytes other than the allocated layers' weights, at most, over the container widths. */
function fixedBytes(model: Model, o: QuantizeOptions, plan: ReturnType<typeof planLayerBits>): number {
  const deploy = o.exportForm === "deploy";
  const free = plan.source.map((s) => s === "mixed");
  const widths = new Map<number, number>(); // container → smallest candidate stored in it
  for (const b of [...o.mixedPrecision!.candidates!].reverse()) widths.set(storedBits(b, deploy), b);
  let most = 0;
  for (const b of widths.values()) {
    const bits = plan.bits.map((x, i) => (free[i] ? b : x));
    const weights = skeletonWeights(plan, bits, o);
    const acts: ActivationQuantizer[] = planActivationQuantizers(weights, o);
    if (deploy) planOutputQuantizers(model.graph, weights, acts);
    const total = exportedSize(model, weights, acts, settingsOf(o));
    const allocated = plan.layers.reduce(
      (a, l, i) => a + (free[i] ? layerStoredBytes(l.parameters, l.rowsShape[0], b, deploy) : 0),
      0,
    );
    most = Math.max(most, total - allocated);
  }
  return most;
}

/**
 * The mixed-precision allocation for a run with options `o`: bits by layer
 * name for planWeightQuantizers, and what the report shows. `held` are the
 * held-back calibration samples (the sensitivity criterion needs some).
 */
export function allocateMixedPrecision(
  model: Model,
  o: QuantizeOptions,
  held: Tensor | undefined,
  /** A sensitivity allocation of the same layers and candidates whose costs to reuse (another budget). */
  reuse?: MixedAllocation,
): { bits: Map<string, number>; report: MixedAllocation } {
  const mp = resolveMixedPrecision(o.mixedPrecision!);
  const { candidates, criterion } = mp;
  const deploy = o.exportForm === "deploy";
  const plan = planLayerBits(model.graph, o);
  const free = plan.layers.filter((_, i) => plan.source[i] === "mixed");
  const bytes = free.map((l) =>
    candidates.map((b) => layerStoredBytes(l.parameters, l.rowsShape[0], b, deploy))
  );
  let budget: number;
  if ("averageBits" in mp) {
    budget = free.reduce((a, l) => a + averageBitsBytes(l.parameters, l.rowsShape[0], mp.averageBits), 0);
  } else {
    const fixed = fixedBytes(model, o, plan);
    budget = mp.sizeBytes - fixed - PREFIX_MARGIN - PREFIX_MARGIN_PER_LAYER * free.length;
    if (budget < 0) {
      throw new AttnroundError(
        "INVALID_ARGUMENT",
        `mixedPrecision.sizeBytes ${mp.sizeBytes} is below what the file holds besides the allocated layers ` +
          `(${fixed} bytes: the graph, the first and last layer, the other tensors)`,
      );
    }
  }
  const least = bytes.reduce((a, b) => a + Math.min(...b), 0);
  if (least > budget) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `mixedPrecision: the budget leaves ${
        Math.floor(budget)
      } bytes for the ${free.length} allocated layers, ` +
        `and their smallest widths take ${least}${
          deploy ? ' (the deploy form stores every width as int8: use exportForm "exact")' : ""
        }: give a larger averageBits or sizeBytes, or smaller candidates`,
    );
  }
  let cost: number[][], costMeasure: string, samples: number | undefined;
  if (
    // The coding length's costs depend on the budget (its targets), sensitivity's do not.
    reuse && criterion === "sensitivity" && reuse.criterion === criterion &&
    reuse.candidates.join() === candidates.join() &&
    reuse.layers.map((l) => l.name).join("\0") === free.map((l) => l.name).join("\0")
  ) {
    cost = reuse.layers.map((l) => l.cost);
    costMeasure = reuse.costMeasure;
    samples = reuse.samples;
  } else if (criterion === "sensitivity") {
    if (!held || held.shape[0] === 0) {
      throw new AttnroundError(
        "INVALID_ARGUMENT",
        `mixedPrecision's sensitivity criterion measures on held-back calibration samples, and this run holds ` +
          `none back (holdout is ${o.holdout}, at most a quarter of the samples): give holdout > 0 and more ` +
          `samples, or criterion: "coding-length"`,
      );
    }
    const measured = measureSensitivity(model.graph, free, candidates, held, o);
    cost = measured.cost;
    samples = held.shape[0];
    costMeasure = measured.classifier ? "KL divergence of the outputs" : "mean squared error of the outputs";
  } else {
    // The average bits the budget buys (stored as exactly that many bits, scales aside) set the targets.
    const params = free.reduce((a, l) => a + l.parameters + l.rowsShape[0], 0);
    const scales = free.reduce((a, l) => a + 4 * l.rowsShape[0], 0);
    const average = "averageBits" in mp ? mp.averageBits : (8 * (budget - scales)) / Math.max(params, 1);
    const clamped = Math.min(Math.max(average, candidates[0]), candidates[candidates.length - 1]);
    cost = codingLengthCosts(free, clamped, candidates);
    costMeasure = "P·(b − t)², t = B + κ·(ρ − ρ̄)";
  }
  // Feasible: the smallest widths fit (checked above).
  const choice = allocateBytes(free.map((_, i) => ({ cost: cost[i], bytes: bytes[i] })), budget)!;
  const layers = free.map((l, i): MixedLayer => ({
    name: l.name,
    parameters: l.parameters,
    bits: candidates[choice[i]],
    bytes: bytes[i][choice[i]],
    cost: cost[i],
  }));
  return {
    bits: new Map(layers.map((l) => [l.name, l.bits])),
    report: {
      criterion,
      candidates,
      ...("averageBits" in mp ? { averageBits: mp.averageBits } : { sizeBytes: mp.sizeBytes }),
      budgetBytes: Math.floor(budget),
      storedBytes: layers.reduce((a, l) => a + l.bytes, 0),
      costMeasure,
      ...(samples !== undefined ? { samples } : {}),
      layers,
    },
  };
}
