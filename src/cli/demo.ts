// attnround demo: the main job end to end on the bundled fixtures. Quantizes
// resnet18_fmnist with the library's defaults (W4A4, Attention Round) on the
// 1,024-image calibration set (the settings of `deno task bench:accuracy`, so
// the top-1 it prints is the accuracy table's), evaluates float and quantized
// top-1 on the bundled test images, re-runs the exported ONNX, and writes
// ONNX, npz, JSON and HTML.
import {
  type BatchedRunOptions,
  defaultOptions,
  init,
  type Model,
  quantize,
  type QuantizedModel,
  reportToHtml,
  type RoundingMode,
  Tensor,
} from "../../mod.ts";
import type { CommandSpec, FlagValue } from "./args.ts";
import {
  type Console,
  EVAL_BATCH,
  loadModelFile,
  loadSamples,
  predictClasses,
  threadsFlag,
} from "./common.ts";
import { CliError } from "./errors.ts";
import { checkOutputs, joinPath, writeOutput } from "./files.ts";
import { formatDuration, ProgressPrinter } from "./progress.ts";
import type { Runtime } from "./runtime.ts";
import { fileURLToPath } from "node:url";

const MODEL = "resnet18_fmnist";
const OUT_DIR = "demo-out";
const FIXTURES = "tests/fixtures";
/** Iterations per block and test images with --fast; without it, the library's iterations and all images. */
const FAST_ITERATIONS = 200;
const FAST_TEST_IMAGES = 2000;
const TEST_IMAGES = 10000;

const roundingNames: Record<RoundingMode, string> = {
  attention: "Attention Round",
  adaround: "AdaRound",
  nearest: "round-to-nearest",
};
/** What the demo runs, named from the defaults: "W4A4", "Attention Round". */
const SETTING = `W${defaultOptions.weightBits}A${defaultOptions.activationBits}`;
const ROUNDING = roundingNames[defaultOptions.rounding];
const count = (n: number) => n.toLocaleString("en-US");

export const demoSpec: CommandSpec = {
  name: "demo",
  summary:
    `Quantize the bundled ResNet-18 (Fashion-MNIST) at ${SETTING} with ${ROUNDING} and compare it with the float model.`,
  positionals: [],
  flags: {
    fast: {
      type: "boolean",
      help: `${FAST_ITERATIONS} iterations per block and ${count(FAST_TEST_IMAGES)} test images ` +
        `(under 3 minutes on a 2-core machine) instead of ${count(defaultOptions.iterations)} and ${
          count(TEST_IMAGES)
        }`,
    },
    out: {
      type: "string",
      value: "DIR",
      default: OUT_DIR,
      help: "where to write the ONNX, npz, JSON and HTML",
    },
    fixtures: {
      type: "string",
      value: "DIR",
      default: FIXTURES,
      help: `where ${MODEL}.onnx, calib.npz and test.npz are`,
    },
    ...threadsFlag,
  },
  examples: ["deno task demo --fast", "npm run demo"],
};

/**
 * tests/fixtures under the current directory (a clone of the repository), or
 * else the copy the npm package ships beside this module: src/cli/ in the
 * sources, dist/ in the bundle that `npx attnround` runs.
 */
async function defaultFixtures(rt: Runtime): Promise<string> {
  const holds = async (dir: string) => (await rt.stat(joinPath(dir, `${MODEL}.onnx`)))?.kind === "file";
  if (await holds(FIXTURES)) return FIXTURES;
  if (!import.meta.url.startsWith("file:")) return FIXTURES;
  for (const relative of ["../../tests/fixtures", "../tests/fixtures"]) {
    const dir = fileURLToPath(new URL(relative, import.meta.url));
    if (await holds(dir)) return dir;
  }
  return FIXTURES;
}

export async function demo(rt: Runtime, flags: Record<string, FlagValue>, out: Console): Promise<number> {
  const fast = flags.fast === true;
  const iterations = fast ? FAST_ITERATIONS : defaultOptions.iterations;
  const evalCount = fast ? FAST_TEST_IMAGES : TEST_IMAGES;
  const dir = (flags.out as string | undefined) ?? OUT_DIR;
  const fixtures = (flags.fixtures as string | undefined) ?? await defaultFixtures(rt);
  const started = performance.now();
  const files = {
    onnx: joinPath(dir, `${MODEL}.${SETTING.toLowerCase()}.onnx`),
    npz: joinPath(dir, `${MODEL}.${SETTING.toLowerCase()}.npz`),
    json: joinPath(dir, "report.json"),
    html: joinPath(dir, "report.html"),
  };
  try {
    await rt.mkdir(dir);
  } catch (e) {
    throw new CliError(
      `cannot create the output directory ${dir} (${(e as Error).message}); choose another with --out`,
    );
  }
  const modelPath = joinPath(fixtures, `${MODEL}.onnx`);
  await checkOutputs(rt, "demo", Object.values(files).map((path) => ["--out", path]), [
    ["the demo model", modelPath],
    ["the calibration set", joinPath(fixtures, "calib.npz")],
    ["the test set", joinPath(fixtures, "test.npz")],
  ]);

  await init();
  const { model, bytes: modelBytes } = await loadModelFile(
    rt,
    modelPath,
    "the demo model (run the demo from the repository's root or the installed package, or pass --fixtures DIR)",
  );
  const calib = await loadSamples(rt, joinPath(fixtures, "calib.npz"), model, "the calibration set");
  const test = await loadSamples(rt, joinPath(fixtures, "test.npz"), model, "the test set");
  const n = Math.min(evalCount, test.x.shape[0]);
  const x = test.x;
  const xs = new Tensor(
    (x.data as Float32Array).subarray(0, n * (x.size / x.shape[0])),
    [n, ...x.shape.slice(1)],
  );
  const labels = test.y!;
  const top1 = (c: Int32Array) => c.filter((v, i) => v === labels[i]).length / n;
  const threads = flags.threads as number | undefined;
  const runs: BatchedRunOptions = threads === undefined
    ? { batchSize: EVAL_BATCH }
    : { batchSize: EVAL_BATCH, threads };
  const classesOf = async (m: Model | QuantizedModel, what: string) =>
    predictClasses((await m.runBatched({ [model.inputs[0].name]: xs }, runs))[model.outputs[0].name], what);

  out.info(
    `attnround demo: ${MODEL} at ${SETTING} with ${ROUNDING}, ${iterations} iterations per block, ` +
      `${calib.x.shape[0]} calibration images; top-1 on ${n} test images${fast ? " (--fast)" : ""}`,
  );
  const floatClasses = await classesOf(model, modelPath);
  const floatTop1 = top1(floatClasses);
  out.info(`float top-1: ${(100 * floatTop1).toFixed(2)} %`);

  const printer = out.json || out.quiet ? undefined : new ProgressPrinter(rt.stdout, rt.stdout.isTTY);
  const quantStarted = performance.now();
  const q = await quantize(model, calib.x, {
    iterations,
    ...(threads === undefined ? {} : { threads }),
    onProgress: printer && ((e) => printer.event(e)),
  }).finally(() => printer?.finish());
  const quantSeconds = (performance.now() - quantStarted) / 1000;
  const quantClasses = await classesOf(q, "the quantized model");
  const quantTop1 = top1(quantClasses);
  const agreement = quantClasses.filter((v, i) => v === floatClasses[i]).length / n;

  const onnx = q.toOnnx();
  const npz = q.toNpz();
  await writeOutput(rt, files.onnx, onnx);
  await writeOutput(rt, files.npz, npz);
  // The exported file, loaded back and run by the engine: what a user of the ONNX gets.
  const { model: exported } = await loadModelFile(rt, files.onnx, "the exported model");
  const exportedTop1 = top1(
    predictClasses(
      (await exported.runBatched({ [exported.inputs[0].name]: xs }, runs))[exported.outputs[0].name],
      files.onnx,
    ),
  );
  const report = q.report;
  await writeOutput(rt, files.json, JSON.stringify(report, null, 2) + "\n");
  await writeOutput(
    rt,
    files.html,
    reportToHtml(report, {
      title: `attnround demo: ${MODEL} at ${SETTING}`,
      model: `${MODEL}.onnx`,
      accuracy: { samples: n, float: floatTop1, quantized: quantTop1 },
      sizes: { floatModel: modelBytes.length, quantizedModel: onnx.length, npz: npz.length },
    }),
  );
  const mib = (b: number) => `${(b / 1024 ** 2).toFixed(2)} MiB`;
  const pct = (v: number) => `${(100 * v).toFixed(2)} %`;
  out.info("");
  out.info(`                           top-1 (${n} test images)   size`);
  out.info(
    `float                      ${pct(floatTop1).padStart(8)}                 ${mib(modelBytes.length)} ONNX`,
  );
  const quantized = `quantized ${SETTING} ${defaultOptions.rounding}`.padEnd(27);
  out.info(
    `${quantized}${pct(quantTop1).padStart(8)}                 ${mib(onnx.length)} ONNX, ${
      mib(npz.length)
    } npz`,
  );
  out.info(`exported ONNX, re-run      ${pct(exportedTop1).padStart(8)}`);
  out.info(
    `agreement with float       ${
      pct(agreement).padStart(8)
    }  (on the ${n} test images; the report's is on held-back calibration samples)`,
  );
  out.info(
    `time: quantization ${formatDuration(quantSeconds)}, whole demo ${
      formatDuration((performance.now() - started) / 1000)
    }`,
  );
  out.info(`wrote ${Object.values(files).join(", ")}`);
  out.result({
    model: MODEL,
    iterations,
    testImages: n,
    top1: { float: floatTop1, quantized: quantTop1, exportedOnnx: exportedTop1 },
    agreement,
    bytes: { floatModel: modelBytes.length, quantizedModel: onnx.length, npz: npz.length },
    seconds: { quantization: quantSeconds, total: (performance.now() - started) / 1000 },
    files,
  });
  q.dispose();
  exported.dispose();
  model.dispose();
  return 0;
}
