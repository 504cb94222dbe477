// Mixed precision (SPEC §6): weight bits per layer chosen under a budget on
// the bytes the exported file stores, by a multiple-choice knapsack solved
// exactly by dynamic programming (allocateBytes). Each layer l and candidate
// width b has a cost; the allocation minimises Σ cost under Σ bytes ≤ budget.
// Two criteria give the costs:
//
// - "sensitivity" (the default; src/quant/sensitivity.ts): the increase of
//   the output loss on held-back calibration samples when layer l alone is
//   rounded to nearest at b bits.
// - "coding-length" (the paper's): each layer's weight W [m × n] (rows
//   layout: m output channels, n = fan-in) gets a lossy coding length L(W)
//   (src/kernels/coding-length.ts) at a distortion ε set relative to the
//   layer's own weights, and a target of bits that grows with ρ = L / (m·n),
//   the coding length per weight: t_l = B + κ·(ρ_l − ρ̄), with ρ̄ the
//   parameter-weighted mean of ρ over the layers in the budget, κ = 1/2 and
//   B the budget's average bits. The cost of b bits is P_l·(b − t_l)², so
//   the knapsack comes as close to the targets as the bytes allow.
//
// The ε rule: ε² = δ²·n·mean(W²), i.e. a mean squared error of δ² times the
// mean squared weight in every coordinate of a row, δ = 1/16. Scaling W
// scales ε with it, so L measures how much there is to code (the spread of
// W's spectrum and its shape), not the magnitude of the weights.
// bench/mixed-epsilon.ts chose the rule, δ and κ on training images, never
// the test set (README, "Mixed precision").
//
// Bytes (layerStoredBytes): the export stores a layer's levels and zero
// points in an ONNX integer type, packed, and a float32 scale per channel.
// In the exact form 2-bit grids are int2/uint2, 3- and 4-bit ones int4/uint4,
// wider ones int8/uint8; the deploy form stores every width as int8. So
// 3 bits cost what 4 cost, and 5 to 7 what 8 cost, and the knapsack sees it.
import { AttnroundError, closest } from "../errors.ts";
import { codingLength } from "../kernels/coding-length.ts";

export const defaultCandidates: readonly number[] = Object.freeze([2, 3, 4, 5, 6, 8]);

/** κ in the targets B + κ·(ρ − ρ̄): bits per bit of coding length per weight (README, "Mixed precision"). */
export const defaultSpread = 0.5;

/**
 * How ε follows the layer. "coordinate": ε² = δ²·n·mean(W²); "spectrum": ε
 * such that c = n/(ε²m) times the mean eigenvalue of the smaller Gram matrix
 * is 1/δ² (ε² = δ²·n·‖W‖² / (m·min(m, n))).
 */
export interface EpsilonRule {
  scale: "coordinate" | "spectrum";
  delta: number;
}

/** The rule bench/mixed-epsilon.ts chose (README, "Mixed precision"). */
export const defaultEpsilonRule: Readonly<EpsilonRule> = Object.freeze({
  scale: "coordinate",
  delta: 0.0625,
});

export function describeEpsilonRule(rule: EpsilonRule): string {
  return rule.scale === "coordinate"
    ? `ε² = δ²·n·mean(W²), δ = ${rule.delta}`
    : `ε² = δ²·n·‖W‖² / (m·min(m, n)), δ = ${rule.delta}`;
}

/** ε of a weight W [m × n] under `rule`; an all-zero weight gets ε = 1 (its L is 0 whatever ε). */
export function layerEpsilon(rows: Float32Array, m: number, rule: EpsilonRule = defaultEpsilonRule): number {
  const n = rows.length / m;
  let sumSquares = 0;
  for (let i = 0; i < rows.length; i++) sumSquares += rows[i] * rows[i];
  if (!(sumSquares > 0)) return 1;
  const epsilon2 = rule.scale === "coordinate"
    ? rule.delta ** 2 * n * (sumSquares / rows.length)
    : (rule.delta ** 2 * n * sumSquares) / (m * Math.min(m, n));
  return Math.sqrt(epsilon2);
}

export interface LayerCodingLength {
  /** L(W) in bits. */
  codingLength: number;
  /** ρ = L / (m·n). */
  codingLengthPerWeight: number;
}

/**
 * Coding length of a weight in rows layout (W [m × n], n = rows.length / m)
 * under `rule`. Throws INVALID_DATA naming `what` if W holds NaN or ±Infinity.
 */
export function layerCodingLength(
  rows: Float32Array,
  m: number,
  what: string,
  rule: EpsilonRule = defaultEpsilonRule,
): LayerCodingLength {
  const n = rows.length / m;
  for (let i = 0; i < rows.length; i++) {
    if (!Number.isFinite(rows[i])) {
      throw new AttnroundError(
        "INVALID_DATA",
        `${what}: the weight holds ${rows[i]} at channel ${Math.floor(i / n)}, value ${i % n}; ` +
          "mixed precision and quantization need finite weights",
      );
    }
  }
  const l = codingLength(rows, m, layerEpsilon(rows, m, rule));
  return { codingLength: l, codingLengthPerWeight: l / rows.length };
}

function invalid(message: string): never {
  throw new AttnroundError("INVALID_ARGUMENT", message);
}

export type MixedCriterion = "sensitivity" | "coding-length";

export interface MixedPrecisionOptions {
  /** How each layer's bits are priced: measured "sensitivity" (default) or the paper's "coding-length". */
  criterion?: MixedCriterion;
  /**
   * The budget as the average bits per weight the file stores over the layers
   * the allocation sets (with their scales and zero points): uniform 2, 4 or 8
   * bits meet it exactly. Give this or sizeBytes.
   */
  averageBits?: number;
  /** The budget as the size of the whole exported ONNX file, in bytes. Give this or averageBits. */
  sizeBytes?: number;
  /** Bit widths a layer may get (integers from 2 to 8); default [2, 3, 4, 5, 6, 8]. */
  candidates?: number[];
}

/** Options as resolved: the criterion and candidates filled in, exactly one budget. */
export type ResolvedMixedPrecision =
  & { criterion: MixedCriterion; candidates: number[] }
  & ({ averageBits: number } | { sizeBytes: number });

const MIXED_KEYS = ["criterion", "averageBits", "sizeBytes", "candidates"];

/** Checks the option and fills in the default criterion and candidates (sorted, without repeats). */
export function resolveMixedPrecision(option: MixedPrecisionOptions): ResolvedMixedPrecision {
  if (typeof option !== "object" || option === null || Array.isArray(option)) {
    invalid(
      `mixedPrecision must be an object such as { averageBits: 3 } or { sizeBytes: 400000 }, got ${option}`,
    );
  }
  for (const key of Object.keys(option)) {
    if (!MIXED_KEYS.includes(key)) {
      const guess = closest(key, MIXED_KEYS);
      invalid(
        `mixedPrecision has no option "${key}"${
          guess ? `; did you mean "${guess}"?` : ` (its options: ${MIXED_KEYS.join(", ")})`
        }`,
      );
    }
  }
  const criterion = option.criterion ?? "sensitivity";
  if (criterion !== "sensitivity" && criterion !== "coding-length") {
    invalid(
      `mixedPrecision.criterion must be "sensitivity" or "coding-length", got ${JSON.stringify(criterion)}`,
    );
  }
  const raw = option.candidates ?? defaultCandidates;
  if (!Array.isArray(raw) || raw.length === 0) {
    invalid(`mixedPrecision.candidates must be a non-empty array of bit widths, got ${JSON.stringify(raw)}`);
  }
  for (const b of raw) {
    if (!Number.isInteger(b) || b < 2 || b > 8) {
      invalid(`mixedPrecision.candidates must hold integers from 2 to 8, got ${JSON.stringify(raw)}`);
    }
  }
  const candidates = [...new Set(raw)].sort((a, b) => a - b);
  const lo = candidates[0], hi = candidates[candidates.length - 1];
  const { averageBits: b, sizeBytes: size } = option;
  if ((b === undefined) === (size === undefined)) {
    invalid(
      `mixedPrecision needs one budget: averageBits (stored bits per weight, e.g. 3) or sizeBytes ` +
        `(the exported file's size), ${b === undefined ? "got neither" : "not both"}`,
    );
  }
  if (size !== undefined) {
    if (!Number.isSafeInteger(size) || size <= 0) {
      invalid(`mixedPrecision.sizeBytes must be a positive whole number of bytes, got ${size}`);
    }
    return { criterion, candidates, sizeBytes: size };
  }
  if (typeof b !== "number" || !(b >= lo && b <= hi)) {
    invalid(
      `mixedPrecision.averageBits must be a number within the candidates' range [${lo}, ${hi}], got ${b}`,
    );
  }
  return { criterion, candidates, averageBits: b };
}

/** One allocated layer in the report. */
export interface MixedLayer {
  name: string;
  parameters: number;
  bits: number;
  /** Bytes the export stores for its weight (levels, zero points, scales). */
  bytes: number;
  /** The criterion's cost of each candidate (sensitivity: the output-loss increase), in candidate order. */
  cost: number[];
}

export interface MixedAllocation {
  criterion: MixedCriterion;
  candidates: number[];
  averageBits?: number;
  sizeBytes?: number;
  /** Bytes the allocated layers may take, and take. */
  budgetBytes: number;
  storedBytes: number;
  /** What the costs are: "KL divergence" or "mean squared error" of the outputs (sensitivity), or the coding length's. */
  costMeasure: string;
  /** Held-back samples the sensitivity was measured on. */
  samples?: number;
  layers: MixedLayer[];
}

/** Bits per value the export stores a weight of `bits` bits in: its ONNX container (see the top of this file). */
export function storedBits(bits: number, deploy: boolean): number {
  if (deploy) return 8;
  return bits <= 2 ? 2 : bits <= 4 ? 4 : 8;
}

/** Bytes the export stores for a layer's weight at `bits`: packed levels and zero points, float32 scales. */
export function layerStoredBytes(
  parameters: number,
  channels: number,
  bits: number,
  deploy: boolean,
): number {
  const c = storedBits(bits, deploy);
  return Math.ceil((parameters * c) / 8) + Math.ceil((channels * c) / 8) + 4 * channels;
}

/** The bytes `averageBits` B allows a layer: its levels and zero points at B bits each, and its scales. */
export function averageBitsBytes(parameters: number, channels: number, averageBits: number): number {
  return Math.ceil((parameters * averageBits) / 8) + Math.ceil((channels * averageBits) / 8) + 4 * channels;
}

/** One layer's choices: the cost and the bytes of each candidate width. */
export interface KnapsackItem {
  cost: readonly number[];
  bytes: readonly number[];
}

/**
 * Cells of the byte grid: a byte each while the choice table (a byte per
 * item and cell) stays within 16 MiB, and at least 2^15 cells.
 */
const CHOICE_TABLE_BYTES = 1 << 24, MIN_CELLS = 1 << 15;

/**
 * The choice (an index into each item's options) minimising Σ cost under
 * Σ bytes ≤ budget, or undefined when even the smallest options exceed it.
 * Multiple-choice knapsack by dynamic programming over a byte grid: bytes
 * above each item's smallest option are counted in cells, rounded up, so the
 * choice always fits the budget. A cell is one byte while the slack is under
 * 2^24 / items bytes (the fixture models: exact); beyond, it is optimal on the
 * grid, which wastes under one cell per item. Deterministic: on equal cost
 * the earlier option wins.
 */
export function allocateBytes(items: readonly KnapsackItem[], budget: number): number[] | undefined {
  const least = items.map((it) => Math.min(...it.bytes));
  const floor = least.reduce((a, b) => a + b, 0);
  if (floor > budget) return undefined;
  const slack = budget - floor;
  const unit = Math.max(
    1,
    Math.ceil(slack / Math.max(MIN_CELLS, Math.floor(CHOICE_TABLE_BYTES / items.length))),
  );
  const cells = Math.floor(slack / unit);
  const weights = items.map((it, i) => it.bytes.map((b) => Math.ceil((b - least[i]) / unit)));
  // best[c]: least cost of the items so far within c cells; choice[i][c]: item i's option there.
  let best = new Float64Array(cells + 1);
  const choice = items.map(() => new Uint8Array(cells + 1));
  for (let i = 0; i < items.length; i++) {
    const next = new Float64Array(cells + 1).fill(Infinity);
    const { cost } = items[i], w = weights[i], pick = choice[i];
    for (let k = 0; k < cost.length; k++) {
      const wk = w[k], ck = cost[k];
      for (let c = wk; c <= cells; c++) {
        const v = best[c - wk] + ck;
        if (v < next[c]) next[c] = v, pick[c] = k;
      }
    }
    best = next;
  }
  const chosen = new Array<number>(items.length);
  let c = cells;
  for (let i = items.length - 1; i >= 0; i--) {
    chosen[i] = choice[i][c];
    c -= weights[i][chosen[i]];
  }
  return chosen;
}

export interface BudgetLayer {
  parameters: number;
  codingLengthPerWeight: number;
}

/**
 * The coding-length criterion's cost of each candidate for each layer:
 * P·(b − t)² with t = B + κ·(ρ − ρ̄) (see the top of this file).
 */
export function codingLengthCosts(
  layers: readonly BudgetLayer[],
  averageBits: number,
  candidates: readonly number[],
  spread = defaultSpread,
): number[][] {
  const total = layers.reduce((s, l) => s + l.parameters, 0);
  const meanRho = total > 0
    ? layers.reduce((s, l) => s + l.parameters * l.codingLengthPerWeight, 0) / total
    : 0;
  return layers.map((l) => {
    const target = averageBits + spread * (l.codingLengthPerWeight - meanRho);
    return candidates.map((b) => l.parameters * (b - target) ** 2);
  });
}

/** Why a layer has its bits. */
export type BitsSource = "uniform" | "first-last" | "override" | "mixed";

export interface PlannedLayer {
  name: string;
}

export interface BitPlan {
  bits: number[];
  source: BitsSource[];
}

/**
 * Bits of every quantizable layer, in order: a per-layer weightBits override
 * wins; otherwise the first and the last layer get 8 (SPEC §3); the others
 * get weightBits, or with mixedPrecision the bits `allocated` gives them by
 * name (source "mixed"; without `allocated`, weightBits until the allocation
 * sets them). The budget of the allocation covers only the layers it sets:
 * the first and last layer and overridden ones stay outside it.
 */
export function planBits(
  layers: readonly PlannedLayer[],
  o: {
    weightBits: number;
    layers: Record<string, { weightBits?: number }>;
    mixedPrecision?: MixedPrecisionOptions;
  },
  allocated?: ReadonlyMap<string, number>,
): BitPlan {
  // An override for a layer the model lacks (a typo) would be silently ignored.
  const names = new Set(layers.map((l) => l.name));
  for (const name of Object.keys(o.layers)) {
    if (names.has(name)) continue;
    const guess = closest(name, names);
    invalid(
      `layers["${name}"] names no quantizable layer of the model${
        guess
          ? `; did you mean "${guess}"?`
          : ` (its layers: ${[...names].slice(0, 8).map((n) => `"${n}"`).join(", ")}${
            names.size > 8 ? ", …" : ""
          })`
      }`,
    );
  }
  const override = (name: string) => (Object.hasOwn(o.layers, name) ? o.layers[name] : undefined);
  const source: BitsSource[] = layers.map((l, i) =>
    override(l.name)?.weightBits !== undefined
      ? "override"
      : i === 0 || i === layers.length - 1
      ? "first-last"
      : o.mixedPrecision
      ? "mixed"
      : "uniform"
  );
  const bits = layers.map((l, i) =>
    source[i] === "override"
      ? override(l.name)!.weightBits!
      : source[i] === "first-last"
      ? 8
      : source[i] === "mixed"
      ? allocated?.get(l.name) ?? o.weightBits
      : o.weightBits
  );
  return { bits, source };
}
