// What the commands share: their console, and models and .npz/.npy samples
// read from files with errors that name the file.
import {
  AttnroundError,
  inputsFromNpz,
  loadModel,
  type Model,
  readNpy,
  readNpz,
  Tensor,
  type TensorData,
  type ValueInfo,
} from "../../mod.ts";
import { atLeast, type FlagSpec, type FlagValue } from "./args.ts";
import { CliError } from "./errors.ts";
import { readInput } from "./files.ts";
import type { Runtime } from "./runtime.ts";

/** What a command prints: human text unless --json, nothing but errors with --quiet. */
export class Console {
  constructor(readonly rt: Runtime, readonly json: boolean, readonly quiet: boolean) {}
  /** Human-readable output (stdout). */
  info(text: string): void {
    if (!this.json && !this.quiet) this.rt.stdout.write(text + "\n");
  }
  /** The command's result: JSON on stdout with --json. */
  result(value: unknown): void {
    if (this.json) this.rt.stdout.write(JSON.stringify(value) + "\n");
  }
  warn(text: string): void {
    this.rt.stderr.write(`attnround: warning: ${text}\n`);
  }
}

/** A byte count for people: B, KiB or MiB. */
export function fmtBytes(n: number): string {
  return n < 1024
    ? `${n} B`
    : n < 1024 ** 2
    ? `${(n / 1024).toFixed(1)} KiB`
    : `${(n / 1024 ** 2).toFixed(2)} MiB`;
}

/** Loads a model file; errors name the file. */
export async function loadModelFile(
  rt: Runtime,
  path: string,
  what = "the model",
): Promise<{ model: Model; bytes: Uint8Array }> {
  const bytes = await readInput(rt, path, what);
  try {
    return { model: loadModel(bytes), bytes };
  } catch (e) {
    if (e instanceof AttnroundError) throw new AttnroundError(e.code, `${path}: ${e.message}`, { cause: e });
    throw e;
  }
}

export interface Samples {
  /** The model's input tensor, float32, samples along the first axis. */
  x: Tensor;
  /** Class labels, when the file has `y`. */
  y?: Int32Array;
}

/** What an .npz of samples may unpack to (readNpz's options; --max-data and --max-samples), and --limit. */
export interface SampleLimits {
  maxBytes?: number;
  maxSamples?: number;
  /** Only the first `limit` samples are used. */
  limit?: number;
}

/** Samples an .npz may hold unless --max-samples says otherwise: far more than a calibration or test set needs. */
export const MAX_SAMPLES = 1_000_000;

/** The flags that set SampleLimits, for the commands that read .npz samples. */
export const limitFlags: Record<string, FlagSpec> = {
  "max-data": {
    type: "size",
    value: "SIZE",
    default: "1GiB",
    help: "most bytes an .npz may unpack to (e.g. 4GiB); a larger one is refused before it is read",
  },
  "max-samples": {
    type: "int",
    value: "N",
    default: String(MAX_SAMPLES),
    check: atLeast(1),
    help: "most samples an .npz array may hold; checked before its data is read",
  },
  limit: {
    type: "int",
    value: "N",
    check: atLeast(1),
    help: "use only the first N samples of the file",
  },
};

/** --threads, for every command that runs a model. */
export const threadsFlag: Record<string, FlagSpec> = {
  threads: {
    type: "int",
    value: "N",
    default: "the cores the runtime reports",
    check: (v) => v >= 1 && v <= 1024 ? undefined : "must be from 1 to 1024",
    help: "threads to run on (workers); the results are the same for any number",
  },
};

export function sampleLimits(flags: Record<string, FlagValue>): SampleLimits {
  return {
    maxBytes: flags["max-data"] as number | undefined,
    maxSamples: (flags["max-samples"] as number | undefined) ?? MAX_SAMPLES,
    limit: flags.limit as number | undefined,
  };
}

/** Whether `bytes` start as a .npy file does (rather than as a .npz, a zip archive). */
function isNpy(bytes: Uint8Array): boolean {
  return bytes.length >= 6 && bytes[0] === 0x93 && new TextDecoder().decode(bytes.subarray(1, 6)) === "NUMPY";
}

/** One .npy array as the samples `x`, within the limits an .npz would have. */
function readNpyWithin(bytes: Uint8Array, limits: SampleLimits): Record<string, Tensor> {
  if (limits.maxBytes !== undefined && bytes.length > limits.maxBytes) {
    throw new AttnroundError(
      "TOO_LARGE",
      `the .npy file is ${bytes.length} bytes, more than --max-data (${limits.maxBytes})`,
    );
  }
  const x = readNpy(bytes);
  if (limits.maxSamples !== undefined && x.shape.length > 0 && x.shape[0] > limits.maxSamples) {
    throw new AttnroundError(
      "TOO_LARGE",
      `the array has ${x.shape[0]} samples, more than --max-samples (${limits.maxSamples})`,
    );
  }
  return { x };
}

/** The first `n` samples (rows of the first axis) of `t`. */
function firstRows(t: Tensor, n: number): Tensor {
  if (n >= t.shape[0]) return t;
  const per = t.size / t.shape[0];
  return new Tensor(t.data.slice(0, n * per) as TensorData, [n, ...t.shape.slice(1)]);
}

/**
 * A .npz (or a .npy, read as its array `x`) as model inputs and labels
 * (SPEC §8, through inputsFromNpz), read within `limits` and cut to
 * `limits.limit` samples; the inputs must be finite. Errors are prefixed with `label`.
 */
export function samplesFromNpz(
  bytes: Uint8Array,
  input: ValueInfo,
  label: string,
  limits: SampleLimits = {},
): Samples {
  try {
    const arrays = isNpy(bytes) ? readNpyWithin(bytes, limits) : readNpz(bytes, limits);
    const all = inputsFromNpz(arrays, input);
    const n = limits.limit ?? all.x.shape[0];
    const x = firstRows(all.x, n), y = all.y && firstRows(all.y, n);
    const name = "x" in arrays ? "x" : Object.keys(arrays).find((n) => n !== "y");
    const data = x.data as Float32Array, per = data.length / x.shape[0];
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        throw new AttnroundError(
          "INVALID_DATA",
          `array "${name}" holds ${data[i]} at element ${i} (sample ${
            Math.floor(i / per)
          }): inputs must be finite`,
        );
      }
    }
    return { x, y: y && Int32Array.from(y.data as ArrayLike<number | bigint>, Number) };
  } catch (e) {
    if (e instanceof AttnroundError) throw new AttnroundError(e.code, `${label}: ${e.message}`, { cause: e });
    throw e;
  }
}

/** The model's one input; the commands feed models with one input only. */
export function onlyInput(model: Model, path: string): ValueInfo {
  if (model.inputs.length !== 1) {
    throw new AttnroundError(
      "UNSUPPORTED_MODEL",
      `${path}: the model has ${model.inputs.length} inputs; attnround runs models with one input`,
    );
  }
  return model.inputs[0];
}

export async function loadSamples(
  rt: Runtime,
  path: string,
  model: Model,
  flag: string,
  limits: SampleLimits = {},
): Promise<Samples> {
  const bytes = await readInput(rt, path, flag);
  const label = flag.startsWith("--") ? `${flag} ${path}` : path;
  return samplesFromNpz(bytes, model.inputs[0], label, limits);
}

/** Samples per forward pass when eval and the demo predict classes. */
export const EVAL_BATCH = 250;

/** Arg-max class of each row of a model's first output over all samples (from runBatched). */
export function predictClasses(y: Tensor, what: string): Int32Array {
  if (y.shape.length !== 2) {
    throw new CliError(
      `${what}: its first output has shape [${y.shape}]; eval needs class scores [N, classes]`,
    );
  }
  const [n, c] = y.shape, v = y.data as Float32Array;
  const classes = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    let best = 0;
    for (let k = 1; k < c; k++) if (v[r * c + k] > v[r * c + best]) best = k;
    classes[r] = best;
  }
  return classes;
}
