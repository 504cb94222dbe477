// Mixed precision from the lossy coding length (SPEC §6): each layer's weight
// W [m × n] (rows layout: m output channels, n = fan-in) gets a coding length
// L(W) (src/kernels/coding-length.ts) at a distortion ε set relative to the
// layer's own weights, and bits that grow with ρ = L / (m·n), the coding
// length per weight, under the budget Σ b·P ≤ B·Σ P over the layers the
// allocation sets.
//
// The ε rule: ε² = δ²·n·mean(W²), i.e. a mean squared error of δ² times the
// mean squared weight in every coordinate of a row, δ = 1/16. Scaling W
// scales ε with it, so L measures how much there is to code (the spread of
// W's spectrum and its shape), not the magnitude of the weights.
//
// The mapping: ρ is in bits per weight, the rate at which W is coded at that
// relative distortion, so a layer whose ρ is higher by Δ gets κ·Δ more bits
// than the others: target t_l = B + κ·(ρ_l − ρ̄), with ρ̄ the
// parameter-weighted mean of ρ over the layers in the budget, κ = 1/2.
// bench/mixed-epsilon.ts chose the rule, δ and κ on training images, never
// the test set (README, "Mixed precision"). Each target is
// rounded to the nearest candidate, then a greedy fix-up meets the budget:
// while over it, the layer furthest above its target steps down one
// candidate; then, while some layer can step up within the budget (and stay
// at or below every layer of higher ρ), the one furthest below its target
// does. Ties go by ρ, then by the layer's key, never by position, so the
// allocation does not depend on the order of the layers.
import { AttnroundError, closest } from "../errors.ts";
import { codingLength } from "../kernels/coding-length.ts";

export interface MixedPrecisionOptions {
  /** Average weight bits (parameter-weighted) over the layers the allocation sets. */
  averageBits: number;
  /** Bit widths a layer may get (integers from 2 to 8); default [2, 3, 4, 5, 6, 8]. */
  candidates?: number[];
}

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

/** Checks the option and fills in the default candidates (sorted, without repeats). */
export function resolveMixedPrecision(
  option: MixedPrecisionOptions,
): Required<MixedPrecisionOptions> {
  if (typeof option !== "object" || option === null || Array.isArray(option)) {
    invalid(`mixedPrecision must be an object { averageBits, candidates? }, got ${option}`);
  }
  for (const key of Object.keys(option)) {
    if (key !== "averageBits" && key !== "candidates") {
      invalid(`mixedPrecision has no option "${key}" (its options: averageBits, candidates)`);
    }
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
  const b = option.averageBits;
  if (typeof b !== "number" || !(b >= lo && b <= hi)) {
    invalid(
      `mixedPrecision.averageBits must be a number within the candidates' range [${lo}, ${hi}], got ${b}`,
    );
  }
  return { averageBits: b, candidates };
}

export interface BudgetLayer {
  /** A name that tells the layers apart (ties are broken by it, not by position). */
  key: string;
  parameters: number;
  codingLengthPerWeight: number;
}

/**
 * Bits per layer from coding length per weight: targets B + κ·(ρ − ρ̄) (κ = `spread`), rounded
 * to candidates, then the greedy fix-up (see the top of this file) so that
 * Σ b·P ≤ B·Σ P. Deterministic, and independent of the order of `layers`:
 * result i belongs to layers[i].
 */
export function allocateBits(
  layers: readonly BudgetLayer[],
  averageBits: number,
  candidates: readonly number[] = defaultCandidates,
  spread = defaultSpread,
): number[] {
  const { candidates: c } = resolveMixedPrecision({ averageBits, candidates: [...candidates] });
  const total = layers.reduce((s, l) => s + l.parameters, 0);
  if (layers.length === 0) return [];
  const meanRho = total > 0
    ? layers.reduce((s, l) => s + l.parameters * l.codingLengthPerWeight, 0) / total
    : 0;
  const target = layers.map((l) => averageBits + spread * (l.codingLengthPerWeight - meanRho));
  // Index into c of each layer's bits: the nearest candidate, the lower one on a tie.
  const level = target.map((t) => {
    let best = 0;
    for (let i = 1; i < c.length; i++) if (Math.abs(c[i] - t) < Math.abs(c[best] - t)) best = i;
    return best;
  });
  // Integer bit·parameter sums are exact in float64 far beyond any model; the
  // bound gets a relative 1e-12 so that B = 3.3 over 1000 parameters admits 3300.
  const bound = averageBits * total * (1 + 1e-12);
  let used = layers.reduce((s, l, i) => s + c[level[i]] * l.parameters, 0);
  const order = (a: number, b: number) =>
    layers[a].codingLengthPerWeight - layers[b].codingLengthPerWeight ||
    (layers[a].key < layers[b].key ? -1 : layers[a].key > layers[b].key ? 1 : 0);
  // Over budget: the layer furthest above its target steps down (ties: lower ρ first).
  while (used > bound) {
    let pick = -1;
    for (let i = 0; i < layers.length; i++) {
      if (level[i] === 0) continue;
      const excess = c[level[i]] - target[i];
      if (pick < 0) pick = i;
      else {
        const best = c[level[pick]] - target[pick];
        if (excess > best || (excess === best && order(i, pick) < 0)) pick = i;
      }
    }
    // Unreachable: every layer at the lowest candidate fits, since B >= min(candidates).
    if (pick < 0) break;
    used -= (c[level[pick]] - c[level[pick] - 1]) * layers[pick].parameters;
    level[pick]--;
  }
  // Slack: the layer furthest below its target steps up if it fits and keeps
  // bits non-decreasing in ρ (ties: higher ρ first).
  for (;;) {
    let pick = -1;
    for (let i = 0; i < layers.length; i++) {
      if (level[i] === c.length - 1) continue;
      const up = c[level[i] + 1];
      if (used + (up - c[level[i]]) * layers[i].parameters > bound) continue;
      const rho = layers[i].codingLengthPerWeight;
      if (layers.some((l, k) => l.codingLengthPerWeight > rho && c[level[k]] < up)) continue;
      if (pick < 0) pick = i;
      else {
        const gap = target[i] - c[level[i]], best = target[pick] - c[level[pick]];
        if (gap > best || (gap === best && order(i, pick) > 0)) pick = i;
      }
    }
    if (pick < 0) break;
    used += (c[level[pick] + 1] - c[level[pick]]) * layers[pick].parameters;
    level[pick]++;
  }
  return level.map((i) => c[i]);
}

/** Why a layer has its bits. */
export type BitsSource = "uniform" | "first-last" | "override" | "mixed";

export interface PlannedLayer extends BudgetLayer {
  name: string;
}

export interface BitPlan {
  bits: number[];
  source: BitsSource[];
}

/**
 * Bits of every quantizable layer, in order: a per-layer weightBits override
 * wins; otherwise the first and the last layer get 8 (SPEC §3); the others
 * get the mixed-precision allocation if one is asked for, else weightBits.
 * The budget of the allocation covers only the layers it sets: the first and
 * last layer and overridden ones stay outside it.
 */
export function planBits(
  layers: readonly PlannedLayer[],
  o: {
    weightBits: number;
    layers: Record<string, { weightBits?: number }>;
    mixedPrecision?: MixedPrecisionOptions;
  },
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
    source[i] === "override" ? override(l.name)!.weightBits! : source[i] === "first-last" ? 8 : o.weightBits
  );
  if (o.mixedPrecision) {
    const { averageBits, candidates } = resolveMixedPrecision(o.mixedPrecision);
    const free = layers.map((_, i) => i).filter((i) => source[i] === "mixed");
    const chosen = allocateBits(free.map((i) => layers[i]), averageBits, candidates);
    free.forEach((i, k) => (bits[i] = chosen[k]));
  }
  return { bits, source };
}
