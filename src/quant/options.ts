// quantize()'s options: the caller's Partial options merged with Readonly
// defaults in one place, and checked there.
import { AttnroundError, closest, isOptions } from "../errors.ts";
import { defaultThreads, MAX_THREADS } from "../engine/parallel/pool.ts";
import type { SpillStore } from "./cache.ts";
import { type MixedPrecisionOptions, resolveMixedPrecision } from "./mixed.ts";

export type RoundingMode = "attention" | "adaround" | "nearest";

export type ExportForm = "exact" | "deploy";

export interface ProgressEvent {
  /** "calibrate" while collecting activations, "reconstruct" per block, "evaluate" for the fidelity check. */
  phase: "calibrate" | "reconstruct" | "evaluate";
  /** 0-based block index and the block count (reconstruct only). */
  block?: number;
  blocks?: number;
  iteration?: number;
  iterations?: number;
  /** Reconstruction loss of the last mini-batch. */
  loss?: number;
}

export interface AttentionOptions {
  /** σ at the first iteration, in quantization steps. */
  sigma0: number;
  /** Fraction of the iterations over which σ decays (cosine) to 0. */
  decay: number;
  /**
   * "expectation" (default): the Gaussian-weighted mean level, differentiated exactly;
   * "stochastic" (the paper): q = round(v + σε), straight-through. Chosen by the
   * accuracy table (README, "Choosing the defaults").
   */
  variant: "stochastic" | "expectation";
}

export interface QuantizeOptions {
  weightBits: number;
  /** 32 keeps activations in float. */
  activationBits: number;
  rounding: RoundingMode;
  /** Reconstruction iterations per block. */
  iterations: number;
  batchSize: number;
  seed: number;
  /** Adam learning rate on the latent weights. */
  learningRate: number;
  /** Adam learning rate on the activation steps (LSQ). */
  activationLearningRate: number;
  /**
   * QDrop (Wei et al., 2022): during reconstruction each activation value
   * skips its quantizer with this probability, drawn afresh every iteration;
   * 0 turns it off. The final model quantizes every value. 0.5 as in QDrop;
   * chosen on the validation split (README, "Choosing the defaults").
   */
  activationDrop: number;
  symmetricWeights: boolean;
  /**
   * The form of the quantized model and of its export (SPEC §7). "deploy":
   * the QDQ layout onnxruntime runs with integer kernels — activations
   * quantized at the inputs and outputs of each convolution, int32 biases,
   * every consumer reading the quantized tensor — simulated with the
   * runtime's arithmetic; it needs 8-bit activations and symmetric weights.
   * "exact": activations quantized at the inputs of quantized layers only,
   * float biases, any widths. Left out, "deploy" wherever it applies.
   */
  exportForm?: ExportForm;
  attention: AttentionOptions;
  /** Calibration samples held back for the fidelity check (taken from the end). */
  holdout: number;
  /** Per-layer overrides of the bit widths, by node name. */
  layers: Record<string, { weightBits?: number; activationBits?: number }>;
  /**
   * Weight bits per layer from each layer's lossy coding length, averaging
   * `averageBits` (parameter-weighted) over the layers it sets: all but the
   * first and last layer (8 bits) and those with a weightBits override.
   * Replaces weightBits for those layers. Candidates default to [2, 3, 4, 5, 6, 8].
   */
  mixedPrecision?: MixedPrecisionOptions;
  /**
   * Layers left in float (neither their weights nor their inputs quantized),
   * each entry a node name, a glob over node names (`*` any run of
   * characters, `?` one), or an op type (`"Gemm"`): ONNX Runtime's
   * `nodes_to_exclude`, NNCF's `IgnoredScope`. An entry that matches no layer
   * is an error. The first and last layer keep their place in the 8-bit
   * convention: excluding the first does not move it to the second.
   */
  exclude?: string[];
  /**
   * false: one weight scale (and zero point) per layer instead of one per
   * output channel, as onnxruntime's default per_channel=False. Default true.
   */
  perChannelWeights?: boolean;
  /**
   * true: each quantized Conv, ConvTranspose (one group) or Gemm with a bias
   * adds to it the mean its rounded weights take off its output, Σ (w − ŵ)·E[x]
   * over the input channels' float means on the calibration set (Nagel et al.,
   * 2019, "Data-Free Quantization", §4.2), during reconstruction as well. A
   * filter whose weights nearly cancel on a large input mean (a BatchNorm
   * folded into an edge detector) otherwise turns its rounding into an offset
   * of the output's own size. Default false.
   */
  biasCorrection?: boolean;
  /** Only layers of these op types are quantized (`["Conv"]`; of Conv, ConvTranspose, Gemm, MatMul); default all. */
  opTypes?: string[];
  /**
   * Bytes the run may hold: its copy of the calibration set, the engines'
   * memory (inside the wasm heap) and the cached block inputs and targets
   * (outside it). One engine run's arena takes an eighth of it, at most 256
   * MiB: forward passes take as many samples at once as fit there, and a
   * mini-batch that does not fit one training run is split into shards whose
   * gradients are summed. A run that cannot fit fails before it starts,
   * saying what would.
   */
  memoryBudget: number;
  /**
   * Where caches that do not fit the budget go (a file the runtime opens; the
   * command line gives one): without it, such a run fails before it starts.
   */
  spill?: SpillStore;
  /**
   * Threads for the reconstruction and the forward passes: workers with a
   * wasm instance each (SPEC §13), as many as the memory budget holds. The
   * result is the same for any number. Default: the cores the runtime
   * reports; one where it has no workers (edge runtimes).
   */
  threads: number;
  onProgress?: (event: ProgressEvent) => void;
  signal?: AbortSignal;
}

/** Options that belong to the caller's runtime, not to the result: never saved in a run's state nor reported. */
export type RuntimeOptions = Partial<Pick<QuantizeOptions, "onProgress" | "signal" | "spill" | "threads">>;

/** The options that make the result: what the report and a saved state record. */
export type QuantizeSettings = Omit<QuantizeOptions, keyof RuntimeOptions>;

/** The settings of resolved options, without the runtime's. */
export function settingsOf(o: QuantizeOptions): QuantizeSettings {
  const { onProgress: _p, signal: _s, spill: _f, threads: _t, ...settings } = o;
  return settings;
}

/** What quantize() takes: any of the options, and any of attention's fields (the rest are defaults). */
export type QuantizeOptionsInput = Partial<Omit<QuantizeOptions, "attention">> & {
  attention?: Partial<AttentionOptions>;
};

/**
 * The settings quantize() uses for every option the caller leaves out
 * (frozen). The command line's defaults are these too.
 */
export const defaultOptions: Readonly<QuantizeSettings> = Object.freeze({
  weightBits: 4,
  activationBits: 4,
  rounding: "attention",
  iterations: 2000,
  batchSize: 32,
  seed: 0,
  learningRate: 1e-3,
  activationLearningRate: 4e-5,
  activationDrop: 0.5,
  symmetricWeights: true,
  attention: Object.freeze({ sigma0: 0.5, decay: 0.8, variant: "expectation" as const }),
  holdout: 64,
  layers: Object.freeze({}),
  memoryBudget: 2 * 2 ** 30,
});

function invalid(message: string): never {
  throw new AttnroundError("INVALID_ARGUMENT", message);
}

function checkBits(name: string, bits: unknown, allowFloat: boolean): void {
  const ok = Number.isInteger(bits) && (bits as number) >= 2 && (bits as number) <= 8;
  if (!ok && !(allowFloat && bits === 32)) {
    invalid(`${name} must be an integer from 2 to 8${allowFloat ? " (or 32 for float)" : ""}, got ${bits}`);
  }
}

/** Iterations per block at most: 50 times the paper's 20,000, and a bound on a run's length. */
export const MAX_ITERATIONS = 1_000_000;
/** Seeds are 32-bit: a larger one would alias a smaller. */
export const MAX_SEED = 2 ** 32 - 1;

const optionNames = [
  ...Object.keys(defaultOptions),
  "mixedPrecision",
  "exclude",
  "exportForm",
  "opTypes",
  "perChannelWeights",
  "biasCorrection",
  "onProgress",
  "signal",
  "spill",
  "threads",
];

/** The op types that can be quantized layers. */
export const LAYER_OP_TYPES = ["Conv", "ConvTranspose", "Gemm", "MatMul"];

/** Refuses keys of `value` that are not `known` (a typo would otherwise be ignored), with a did-you-mean. */
function knownKeys(what: string, value: object, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const guess = closest(key, known);
    invalid(
      `${what} has no option "${key}"${
        guess ? `; did you mean "${guess}"?` : ` (its options: ${known.join(", ")})`
      }`,
    );
  }
}

export function resolveOptions(options: QuantizeOptionsInput = {}): QuantizeOptions {
  if (!isOptions(options)) {
    invalid(`quantize's options must be an object such as { weightBits: 4 }, got ${options}`);
  }
  knownKeys("quantize", options, optionNames);
  if (!isOptions(options.attention)) invalid(`attention must be an object such as { variant: "stochastic" }`);
  knownKeys("attention", options.attention ?? {}, Object.keys(defaultOptions.attention));
  if (!isOptions(options.layers)) {
    invalid(
      `layers must be an object of overrides by node name, such as { "/conv2/Conv": { weightBits: 8 } }`,
    );
  }
  for (const [name, layer] of Object.entries(options.layers ?? {})) {
    if (!isOptions(layer) || layer === undefined) {
      invalid(`layers["${name}"] must be an object such as { weightBits: 8 }`);
    }
    knownKeys(`layers["${name}"]`, layer, ["weightBits", "activationBits"]);
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== "function") {
    invalid("onProgress must be a function that takes progress events");
  }
  if (options.signal !== undefined && typeof (options.signal as AbortSignal)?.aborted !== "boolean") {
    invalid("signal must be an AbortSignal (new AbortController().signal)");
  }
  if (options.spill !== undefined && (typeof options.spill !== "object" || options.spill === null)) {
    invalid("spill must be a SpillStore");
  }
  const o: QuantizeOptions = {
    ...defaultOptions,
    threads: defaultThreads(),
    ...options,
    attention: { ...defaultOptions.attention, ...options.attention },
    layers: { ...options.layers },
  };
  checkBits("weightBits", o.weightBits, false);
  checkBits("activationBits", o.activationBits, true);
  for (const [name, layer] of Object.entries(o.layers)) {
    if (layer.weightBits !== undefined) checkBits(`layers["${name}"].weightBits`, layer.weightBits, false);
    if (layer.activationBits !== undefined) {
      checkBits(`layers["${name}"].activationBits`, layer.activationBits, true);
    }
  }
  if (o.mixedPrecision !== undefined) o.mixedPrecision = resolveMixedPrecision(o.mixedPrecision);
  if (!["attention", "adaround", "nearest"].includes(o.rounding)) {
    invalid(`rounding must be "attention", "adaround" or "nearest", got "${o.rounding}"`);
  }
  if (!["stochastic", "expectation"].includes(o.attention.variant)) {
    invalid(`attention.variant must be "stochastic" or "expectation", got "${o.attention.variant}"`);
  }
  const integer = (name: keyof QuantizeOptions, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const v = o[name] as number;
    if (!Number.isInteger(v) || v < min || v > max) {
      invalid(
        `${name} must be an integer ${
          max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`
        }, got ${v}`,
      );
    }
  };
  integer("iterations", 0, MAX_ITERATIONS);
  integer("batchSize", 1);
  integer("seed", 0, MAX_SEED);
  integer("holdout", 0);
  integer("threads", 1, MAX_THREADS);
  if (!(o.memoryBudget >= 2 ** 24)) {
    invalid(`memoryBudget must be at least 16 MiB (in bytes), got ${o.memoryBudget}`);
  }
  const finite = (v: number) => typeof v === "number" && Number.isFinite(v);
  if (
    !(finite(o.learningRate) && o.learningRate > 0) ||
    !(finite(o.activationLearningRate) && o.activationLearningRate > 0)
  ) {
    invalid("learning rates must be positive finite numbers");
  }
  if (!(finite(o.activationDrop) && o.activationDrop >= 0 && o.activationDrop < 1)) {
    invalid(`activationDrop must be in [0, 1), got ${o.activationDrop}`);
  }
  if (
    !(finite(o.attention.sigma0) && o.attention.sigma0 >= 0) ||
    !(o.attention.decay > 0 && o.attention.decay <= 1)
  ) {
    invalid("attention.sigma0 must be a finite number ≥ 0 and attention.decay in (0, 1]");
  }
  if (typeof o.symmetricWeights !== "boolean") {
    invalid(`symmetricWeights must be true or false, got ${o.symmetricWeights}`);
  }
  if (o.perChannelWeights !== undefined && typeof o.perChannelWeights !== "boolean") {
    invalid(`perChannelWeights must be true or false, got ${o.perChannelWeights}`);
  }
  if (o.biasCorrection !== undefined && typeof o.biasCorrection !== "boolean") {
    invalid(`biasCorrection must be true or false, got ${o.biasCorrection}`);
  }
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === "string" && x !== "");
  if (o.exclude !== undefined) {
    if (!strings(o.exclude)) {
      invalid(`exclude must be an array of node names, globs or op types, such as ["/fc/Gemm", "head*"]`);
    }
    o.exclude = [...o.exclude];
  }
  if (o.opTypes !== undefined) {
    if (!strings(o.opTypes)) invalid(`opTypes must be an array of op types, such as ["Conv", "Gemm"]`);
    for (const t of o.opTypes) {
      if (!LAYER_OP_TYPES.includes(t)) {
        invalid(`opTypes: "${t}" is not an op type quantized layers have (${LAYER_OP_TYPES.join(", ")})`);
      }
    }
    o.opTypes = [...o.opTypes];
  }
  const notDeployable = whyNotDeployable(o);
  if (o.exportForm === undefined) o.exportForm = notDeployable ? "exact" : "deploy";
  else if (!["exact", "deploy"].includes(o.exportForm)) {
    invalid(`exportForm must be "exact" or "deploy", got "${o.exportForm}"`);
  } else if (o.exportForm === "deploy" && notDeployable) {
    invalid(`exportForm "deploy" needs ${notDeployable}; use "exact"`);
  }
  return o;
}

/** Why onnxruntime would not run every quantized layer with integer kernels, or undefined if it would. */
function whyNotDeployable(o: QuantizeOptions): string | undefined {
  const other = Object.entries(o.layers).find(([, l]) =>
    l.activationBits !== undefined && l.activationBits !== 8
  );
  if (o.activationBits !== 8 || other) {
    const bits = other
      ? `layers["${other[0]}"].activationBits is ${other[1].activationBits}`
      : `activationBits is ${o.activationBits}`;
    return `8-bit activations everywhere (${bits})`;
  }
  // QLinearConv takes one weight zero point for all channels.
  if (!o.symmetricWeights) return "symmetric weights (symmetricWeights is false)";
  return undefined;
}

/** σ at iteration t: cosine decay from σ0 to 0 over the first `decay` fraction, then 0. */
export function sigmaAt(o: AttentionOptions, t: number, iterations: number): number {
  const span = o.decay * iterations;
  if (t >= span || span === 0) return 0;
  return 0.5 * o.sigma0 * (1 + Math.cos((Math.PI * t) / span));
}
