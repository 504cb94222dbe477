// What mixed precision would do to a model, without quantizing it: every
// quantizable layer's coding length and the bits that given average budgets
// would give it (the same planBits that quantize() runs).
import type { Model } from "../model.ts";
import { measureLayers } from "./layers.ts";
import {
  type BitsSource,
  defaultCandidates,
  defaultEpsilonRule,
  describeEpsilonRule,
  planBits,
  resolveMixedPrecision,
} from "./mixed.ts";

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
  /** "first-last" or "override" (fixed, outside the budget) or "mixed". */
  bitsFrom: BitsSource;
}

export interface MixedPrecisionInspection {
  budgets: number[];
  candidates: number[];
  epsilon: string;
  /** The first and last layer stay at 8 bits and outside the budget. */
  firstLastInBudget: false;
  layers: InspectedLayer[];
  /** Per budget: Σ b·P / Σ P over the layers in the budget, and over all layers. */
  averageBits: { budget: number; inBudget: number; all: number }[];
}

/**
 * Coding lengths of a model's quantizable layers and the bits that
 * `mixedPrecision: { averageBits: b, candidates }` would give them, for each
 * b in `budgets` (default 2, 3, 4). `layers` takes the same per-layer
 * overrides as quantize(). Throws INVALID_ARGUMENT for a budget outside the
 * candidates' range.
 */
export function inspectMixedPrecision(
  model: Model,
  options: {
    budgets?: number[];
    candidates?: number[];
    layers?: Record<string, { weightBits?: number }>;
  } = {},
): MixedPrecisionInspection {
  const budgets = options.budgets ?? [2, 3, 4];
  const candidates = resolveMixedPrecision({
    averageBits: budgets[0] ?? 4,
    candidates: options.candidates ?? [...defaultCandidates],
  }).candidates;
  const measured = measureLayers(model.graph);
  const plans = budgets.map((averageBits) =>
    planBits(measured, {
      weightBits: averageBits,
      layers: options.layers ?? {},
      mixedPrecision: { averageBits, candidates },
    })
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
    epsilon: describeEpsilonRule(defaultEpsilonRule),
    firstLastInBudget: false,
    layers,
    averageBits,
  };
}
