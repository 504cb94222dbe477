// A model described without quantizing it: what mixed precision would do to
// it (every quantizable layer's coding length, with calibration samples its
// sensitivity at each candidate width, and the bits that given average
// budgets would give it, by the same allocation that quantize() runs), and its
// ops, parameters and reconstruction blocks (inspectModel, `attnround inspect`).
import type { ValueInfo } from "../graph/ir.ts";
import { partitionBlocks } from "../graph/partition.ts";
import { argument, isOptions } from "../errors.ts";
import { Model } from "../model.ts";
import { type DType, Tensor } from "../tensor.ts";
import { measureLayers } from "./layers.ts";
import {
  type BitsSource,
  defaultCandidates,
  defaultEpsilonRule,
  describeEpsilonRule,
  type MixedAllocation,
  type MixedCriterion,
  planBits,
  resolveMixedPrecision,
} from "./mixed.ts";
import { allocateMixedPrecision } from "./mixed-plan.ts";
import { defaultOptions, resolveOptions } from "./options.ts";

export interface InspectedLayer {
  name: string;
  kind: string;
  weight: string;
  shape: number[];
  /** Output channels m and fan-in n of the weight as the coding length sees it (rows layout). */
  m: number;
  n: number;
  parameters: number;
  codingLength: number;
  codingLengthPerWeight: number;
  /** Bits per budget, in the order of `budgets`. */
  bits: number[];
  /** With calibration samples: the output-loss increase at each candidate width (layers in the budget only). */
  sensitivity?: number[];
  /** "first-last" or "override" (fixed, outside the budget) or "mixed". */
  bitsFrom: BitsSource;
}

export interface MixedPrecisionInspection {
  budgets: number[];
  candidates: number[];
  /** "sensitivity" with calibration samples, else "coding-length". */
  criterion: MixedCriterion;
  /** Held-back samples the sensitivity was measured on: the last quarter of the calibration samples, at most 64. */
  samples?: number;
  epsilon: string;
  /** The first and last layer stay at 8 bits and outside the budget. */
  firstLastInBudget: false;
  layers: InspectedLayer[];
  /** Per budget: Σ b·P / Σ P over the layers in the budget, and over all layers. */
  averageBits: { budget: number; inBudget: number; all: number }[];
}

function checkArguments(fn: string, model: unknown, options: { budgets?: unknown }): void {
  argument(model instanceof Model, `${fn} takes a Model, as loadModel(onnxBytes) returns it`);
  argument(isOptions(options), `${fn}'s options must be an object such as { budgets: [2, 3, 4] }`);
  argument(
    options.budgets === undefined ||
      (Array.isArray(options.budgets) && options.budgets.every((b) => typeof b === "number")),
    `${fn}: budgets must be an array of average bit widths, e.g. [2, 3, 4]`,
  );
}

/**
 * Coding lengths of a model's quantizable layers and the bits that
 * `mixedPrecision: { averageBits: b, candidates }` would give them, for each
 * b in `budgets` (default 2, 3, 4), in the exact export form. With
 * `calibration` (samples, N first) the criterion is "sensitivity", measured
 * on its held-back samples as quantize() would (the last quarter, at most 64),
 * else "coding-length". `layers` takes the same per-layer overrides as
 * quantize(). Throws INVALID_ARGUMENT for a budget outside the candidates' range.
 */
export function inspectMixedPrecision(
  model: Model,
  options: {
    budgets?: number[];
    candidates?: number[];
    layers?: Record<string, { weightBits?: number }>;
    calibration?: Tensor;
  } = {},
): MixedPrecisionInspection {
  checkArguments("inspectMixedPrecision", model, options);
  argument(
    options.candidates === undefined || Array.isArray(options.candidates),
    "inspectMixedPrecision: candidates must be an array of bit widths, e.g. [2, 3, 4, 8]",
  );
  argument(
    isOptions(options.layers) && Object.values(options.layers ?? {}).every((l) => isOptions(l) && l),
    'inspectMixedPrecision: layers must hold overrides by node name, e.g. { "/conv2/Conv": { weightBits: 8 } }',
  );
  const budgets = options.budgets ?? [2, 3, 4];
  const candidates = resolveMixedPrecision({
    averageBits: budgets[0] ?? 4,
    candidates: options.candidates ?? [...defaultCandidates],
  }).candidates;
  argument(
    options.calibration === undefined || options.calibration instanceof Tensor,
    "inspectMixedPrecision: calibration must be a Tensor of samples, N first",
  );
  const criterion: MixedCriterion = options.calibration ? "sensitivity" : "coding-length";
  const held = options.calibration && lastSamples(options.calibration, defaultOptions.holdout);
  const measured = measureLayers(model.graph);
  let reuse: MixedAllocation | undefined;
  const plans = budgets.map((averageBits) => {
    const mixedPrecision = { criterion, averageBits, candidates };
    const o = resolveOptions({ layers: options.layers ?? {}, mixedPrecision, exportForm: "exact" });
    reuse = allocateMixedPrecision(model, o, held, reuse).report;
    return planBits(measured, o, new Map(reuse.layers.map((l) => [l.name, l.bits])));
  });
  const sensitivity = new Map(
    criterion === "sensitivity" ? reuse?.layers.map((l) => [l.name, l.cost]) ?? [] : [],
  );
  const layers = measured.map((l, i): InspectedLayer => ({
    name: l.layer.name,
    kind: l.layer.kind,
    weight: l.layer.weight,
    shape: l.layer.weightShape,
    m: l.rowsShape[0],
    n: l.parameters / l.rowsShape[0],
    parameters: l.parameters,
    codingLength: l.codingLength,
    codingLengthPerWeight: l.codingLengthPerWeight,
    bits: plans.map((p) => p.bits[i]),
    ...(sensitivity.has(l.layer.name) ? { sensitivity: sensitivity.get(l.layer.name) } : {}),
    bitsFrom: plans[0]?.source[i] ?? "mixed",
  }));
  const averageBits = budgets.map((budget, k) => {
    let inBits = 0, inParams = 0, allBits = 0, allParams = 0;
    layers.forEach((l) => {
      allBits += l.bits[k] * l.parameters;
      allParams += l.parameters;
      if (l.bitsFrom === "mixed") (inBits += l.bits[k] * l.parameters), (inParams += l.parameters);
    });
    return { budget, inBudget: inParams ? inBits / inParams : 0, all: allParams ? allBits / allParams : 0 };
  });
  return {
    budgets,
    candidates,
    criterion,
    ...(held ? { samples: held.shape[0] } : {}),
    epsilon: describeEpsilonRule(defaultEpsilonRule),
    firstLastInBudget: false,
    layers,
    averageBits,
  };
}

/** A graph input or output; unknown dimensions are null. */
export interface InspectedTensor {
  name: string;
  dtype?: DType;
  shape?: (number | string | null)[];
}

export interface InspectedModelLayer {
  name: string;
  kind: string;
  shape: number[];
  parameters: number;
  codingLength: number;
  codingLengthPerWeight: number;
  /** The weight bits `mixedPrecision: { averageBits: B }` gives the layer, by budget B. */
  mixedBits: Record<number, number>;
  /** With calibration samples: the output-loss increase at each candidate width. */
  sensitivity?: number[];
  /** "first-last" or "override" (fixed, outside the budget) or "mixed". */
  bitsFrom: BitsSource;
}

/** What `attnround inspect` shows: a plain JSON-serialisable description of a model. */
export interface ModelInspection {
  /** Version of the default ONNX operator set the model imports. */
  opset?: number;
  inputs: InspectedTensor[];
  outputs: InspectedTensor[];
  /** Nodes of the ONNX graph per op type, in order of first appearance. */
  ops: Record<string, number>;
  /** Float32 values of the initializers, after BatchNorm folding. */
  parameters: number;
  /** Weights of the quantizable layers. */
  quantizableParameters: number;
  /** The reconstruction blocks: node count and quantizable layers of each. */
  blocks: { index: number; nodes: number; layers: string[] }[];
  /** How ε of the coding lengths follows each layer. */
  codingLengthEpsilon: string;
  /** How mixedBits were chosen ("sensitivity" with calibration samples), the candidates and the samples. */
  mixedCriterion: MixedCriterion;
  candidates: number[];
  sensitivitySamples?: number;
  /** The quantizable layers in graph order. */
  layers: InspectedModelLayer[];
}

const describeTensor = (v: ValueInfo): InspectedTensor => ({
  name: v.name,
  dtype: v.dtype,
  shape: v.shape?.map((d) => d ?? null),
});

/**
 * Ops, parameters, reconstruction blocks and, per quantizable layer, shape,
 * coding length and the bits mixed precision would give it for each average
 * in `budgets` (default 2, 3, 4), as inspectMixedPrecision computes them.
 */
export function inspectModel(
  model: Model,
  options: { budgets?: number[]; calibration?: Tensor } = {},
): ModelInspection {
  checkArguments("inspectModel", model, options);
  const ops: Record<string, number> = {};
  for (const node of model.proto.graph.node) {
    const op = node.domain === "" || node.domain === "ai.onnx"
      ? node.opType
      : `${node.domain}.${node.opType}`;
    ops[op] = (ops[op] ?? 0) + 1;
  }
  let parameters = 0;
  for (const t of model.graph.initializers.values()) if (t.dtype === "float32") parameters += t.size;
  const mixed = inspectMixedPrecision(model, { budgets: options.budgets, calibration: options.calibration });
  const layers = mixed.layers.map((l): InspectedModelLayer => ({
    name: l.name,
    kind: l.kind,
    shape: l.shape,
    parameters: l.parameters,
    codingLength: l.codingLength,
    codingLengthPerWeight: l.codingLengthPerWeight,
    mixedBits: Object.fromEntries(mixed.budgets.map((b, k) => [b, l.bits[k]])),
    ...(l.sensitivity ? { sensitivity: l.sensitivity } : {}),
    bitsFrom: l.bitsFrom,
  }));
  return {
    opset: model.proto.opsetImport.find((o) => o.domain === "" || o.domain === "ai.onnx")?.version,
    inputs: model.inputs.map(describeTensor),
    outputs: model.outputs.map(describeTensor),
    ops,
    parameters,
    quantizableParameters: layers.reduce((a, l) => a + l.parameters, 0),
    blocks: partitionBlocks(model.graph).map((b) => ({
      index: b.index,
      nodes: b.nodes.length,
      layers: b.layers,
    })),
    codingLengthEpsilon: mixed.epsilon,
    mixedCriterion: mixed.criterion,
    candidates: mixed.candidates,
    ...(mixed.samples !== undefined ? { sensitivitySamples: mixed.samples } : {}),
    layers,
  };
}

/** The last quarter of the samples, at most `most`: the samples quantize() holds back. */
function lastSamples(t: Tensor, most: number): Tensor {
  const n = t.shape[0], count = Math.min(most, Math.floor(n / 4)), per = t.size / n;
  return new Tensor((t.data as Float32Array).slice((n - count) * per), [count, ...t.shape.slice(1)]);
}
