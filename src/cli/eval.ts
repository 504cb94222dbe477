// attnround eval: top-1 of a classifier on labelled data, and its agreement
// with another model, as one JSON line.
import { type BatchedRunOptions, init, type Model, type Tensor } from "../../mod.ts";
import { atLeast, type CommandSpec, type FlagValue } from "./args.ts";
import {
  Console,
  EVAL_BATCH,
  limitFlags,
  loadModelFile,
  loadSamples,
  onlyInput,
  predictClasses,
  sampleLimits,
  threadsFlag,
} from "./common.ts";
import type { Runtime } from "./runtime.ts";

export const evalSpec: CommandSpec = {
  name: "eval",
  summary:
    "Top-1 of a classifier on labelled data (and its agreement with another model); prints one JSON line.",
  positionals: [{ name: "MODEL.onnx", help: "the model to evaluate (float or quantized)" }],
  flags: {
    data: {
      type: "string",
      value: "TEST.npz",
      required: true,
      help: "inputs x (or the first array) and labels y",
    },
    compare: {
      type: "string",
      value: "OTHER.onnx",
      help: "also run OTHER and report how often the two agree on top-1",
    },
    batch: {
      type: "int",
      value: "N",
      default: String(EVAL_BATCH),
      check: atLeast(1),
      help: "samples per forward pass",
    },
    ...threadsFlag,
    ...limitFlags,
  },
  examples: ["attnround eval model.w4a4.onnx --data test.npz --compare model.onnx"],
};

/** The arg-max class of every sample of `x` through `model`, in runs spread over the threads. */
async function classesOf(
  model: Model,
  x: Tensor,
  options: BatchedRunOptions,
  what: string,
): Promise<Int32Array> {
  const outputs = await model.runBatched({ [model.inputs[0].name]: x }, options);
  return predictClasses(outputs[model.outputs[0].name], what);
}

export async function evalCommand(
  rt: Runtime,
  flags: Record<string, FlagValue>,
  [modelPath]: string[],
  out: Console,
) {
  await init();
  const { model } = await loadModelFile(rt, modelPath);
  onlyInput(model, modelPath);
  const other = flags.compare
    ? (await loadModelFile(rt, flags.compare as string, "--compare")).model
    : undefined;
  if (other) onlyInput(other, flags.compare as string);
  const data = await loadSamples(rt, flags.data as string, model, "--data", sampleLimits(flags));
  const options: BatchedRunOptions = { batchSize: (flags.batch as number) ?? EVAL_BATCH };
  if (flags.threads !== undefined) options.threads = flags.threads as number;
  const n = data.x.shape[0];
  const classes = await classesOf(model, data.x, options, modelPath);
  const top1 = (c: Int32Array) => data.y ? c.filter((v, i) => v === data.y![i]).length / n : null;
  const result: Record<string, unknown> = { top1: top1(classes), n };
  if (other) {
    const theirs = await classesOf(other, data.x, options, flags.compare as string);
    result.agreement = classes.filter((v, i) => v === theirs[i]).length / n;
    result.compareTop1 = top1(theirs);
  }
  if (!data.y) out.warn(`${flags.data} has no labels (array y): top1 is null`);
  // The one line eval prints, with or without --json.
  rt.stdout.write(JSON.stringify(result) + "\n");
  model.dispose();
  other?.dispose();
  return 0;
}
