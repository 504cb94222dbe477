// What the commands share: their console, and models and .npz samples read
// from files with errors that name the file.
import { UsageError } from "./errors.ts";
import {
  AttnroundError,
  inputsFromNpz,
  loadModel,
  type Model,
  readNpz,
  Tensor,
  type ValueInfo,
} from "../../mod.ts";
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

const UNITS: Record<string, number> = {
  "": 1,
  B: 1,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
};

/** A size such as "2GiB", "512MiB", "1.5GB" or "1048576" (bytes), for `flag`. */
export function parseSize(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2].toUpperCase()] : undefined;
  if (!m || unit === undefined) {
    throw new UsageError(
      `${flag} takes a size such as 2GiB, 512MiB or a number of bytes, got "${text}"`,
      "quantize",
    );
  }
  return Math.round(Number(m[1]) * unit);
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

/** A .npz as model inputs and labels (SPEC §8, through inputsFromNpz); errors name the file. */
export function samplesFromNpz(bytes: Uint8Array, input: ValueInfo, file: string): Samples {
  try {
    const { x, y } = inputsFromNpz(readNpz(bytes), input);
    return { x, y: y && Int32Array.from(y.data as ArrayLike<number | bigint>, Number) };
  } catch (e) {
    if (e instanceof AttnroundError) throw new AttnroundError(e.code, `${file}: ${e.message}`, { cause: e });
    throw e;
  }
}

export async function loadSamples(rt: Runtime, path: string, model: Model, flag: string): Promise<Samples> {
  const bytes = await readInput(rt, path, flag);
  try {
    return samplesFromNpz(bytes, model.inputs[0], path);
  } catch (e) {
    if (e instanceof AttnroundError && !e.message.includes(path)) {
      throw new AttnroundError(e.code, `${flag} ${path}: ${e.message}`, { cause: e });
    }
    throw e;
  }
}

/** Samples per forward pass when eval and the demo predict classes. */
export const EVAL_BATCH = 250;

/** Arg-max class of each row of every batch of `x` through `run`. */
export function predictClasses(
  run: (x: Tensor) => Tensor,
  x: Tensor,
  batch: number,
  what: string,
): Int32Array {
  const n = x.shape[0], per = x.size / n;
  const classes = new Int32Array(n);
  for (let start = 0; start < n; start += batch) {
    const count = Math.min(batch, n - start);
    const input = new Tensor((x.data as Float32Array).subarray(start * per, (start + count) * per), [
      count,
      ...x.shape.slice(1),
    ]);
    const y = run(input);
    if (y.shape.length !== 2 || y.shape[0] !== count) {
      throw new CliError(
        `${what}: its first output has shape [${y.shape}]; eval needs class scores [N, classes]`,
      );
    }
    const c = y.shape[1], v = y.data as Float32Array;
    for (let r = 0; r < count; r++) {
      let best = 0;
      for (let k = 1; k < c; k++) if (v[r * c + k] > v[r * c + best]) best = k;
      classes[start + r] = best;
    }
  }
  return classes;
}
