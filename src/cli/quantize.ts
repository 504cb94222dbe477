// attnround quantize: a float model and calibration data in, a QDQ ONNX model
// (and, if asked, npz, JSON and HTML) out, with progress on the terminal.
import {
  type AttentionOptions,
  AttnroundError,
  defaultOptions,
  type ExportForm,
  init,
  inspectModel,
  type MixedCriterion,
  quantize,
  type QuantizedModel,
  type QuantizeOptionsInput,
  reportToHtml,
  type RoundingMode,
} from "../../mod.ts";
import { atLeast, type CommandSpec, type FlagValue } from "./args.ts";
import {
  Console,
  fmtBytes,
  limitFlags,
  loadModelFile,
  loadSamples,
  onlyInput,
  sampleLimits,
  threadsFlag,
} from "./common.ts";
import { CliError, UsageError } from "./errors.ts";
import { loadImages, type Preprocessing } from "./images.ts";
import { basename, checkOutputs, readInput, writeOutputs } from "./files.ts";
import { formatDuration, ProgressPrinter } from "./progress.ts";
import type { Runtime } from "./runtime.ts";

const bitsCheck = (allowFloat: boolean) => (v: number) =>
  (v >= 2 && v <= 8) || (allowFloat && v === 32)
    ? undefined
    : `must be 2 to 8${allowFloat ? " (or 32 for float)" : ""}`;

export const quantizeSpec: CommandSpec = {
  name: "quantize",
  summary: "Quantize an ONNX model with a calibration set and write a QDQ ONNX model.",
  positionals: [{ name: "MODEL.onnx", help: "the float model" }],
  flags: {
    calib: {
      type: "string",
      value: "CALIB.npz|.npy|DIR",
      required: true,
      help: "calibration inputs: a .npz (array x, or the first array), a .npy (uint8 is scaled by 1/255), " +
        "or a folder of PNG/JPEG images (see --resize, --mean, --std, --channels, --layout)",
    },
    out: { type: "string", value: "OUT.onnx", required: true, help: "the quantized model (QDQ ONNX)" },
    w: {
      type: "int",
      value: "BITS",
      default: String(defaultOptions.weightBits),
      check: bitsCheck(false),
      help: "weight bits (first and last layer keep 8)",
    },
    a: {
      type: "int",
      value: "BITS",
      default: String(defaultOptions.activationBits),
      check: bitsCheck(true),
      help: "activation bits, 32 for float activations",
    },
    rounding: {
      type: "string",
      value: "MODE",
      default: defaultOptions.rounding,
      choices: ["attention", "adaround", "nearest"],
      help: "weight rounding",
    },
    variant: {
      type: "string",
      value: "V",
      default: defaultOptions.attention.variant,
      choices: ["expectation", "stochastic"],
      help: "Attention Round's variant: the Gaussian-weighted mean level, or the paper's sampled level",
    },
    export: {
      type: "string",
      value: "FORM",
      choices: ["exact", "deploy"],
      help: "deploy: the QDQ layout onnxruntime runs on integers (needs 8-bit activations and symmetric " +
        "weights); exact: any widths, float arithmetic. By default deploy wherever it applies",
    },
    asymmetric: {
      type: "boolean",
      help: "asymmetric weights, a zero point per output channel (as BRECQ); symmetric by default",
    },
    "per-tensor": {
      type: "boolean",
      help: "one weight scale per layer instead of one per output channel (perChannelWeights: false)",
    },
    "bias-correction": {
      type: "boolean",
      help: "correct each layer's bias for the mean its rounded weights take off its output (biasCorrection)",
    },
    iters: {
      type: "int",
      value: "N",
      default: String(defaultOptions.iterations),
      check: (v) => v >= 0 && v <= 1_000_000 ? undefined : "must be from 0 to 1000000",
      help: "reconstruction iterations per block",
    },
    batch: {
      type: "int",
      value: "N",
      default: String(defaultOptions.batchSize),
      check: atLeast(1),
      help: "mini-batch size",
    },
    memory: {
      type: "size",
      value: "SIZE",
      default: `${defaultOptions.memoryBudget / 2 ** 30}GiB`,
      help:
        "memory budget for the run's activations, e.g. 2GiB or 512MiB; a mini-batch that does not fit trains in parts",
    },
    mixed: {
      type: "number",
      value: "AVG_BITS",
      check: (v) => v >= 2 && v <= 8 ? undefined : "must be an average bit width from 2 to 8",
      help: "mixed precision: per-layer weight bits whose stored weights average AVG_BITS bits " +
        "(first and last layer at 8, outside the budget)",
    },
    size: {
      type: "size",
      value: "SIZE",
      help:
        "mixed precision: per-layer weight bits so that the exported model takes at most SIZE, e.g. 400KiB",
    },
    "mixed-criterion": {
      type: "string",
      value: "NAME",
      choices: ["sensitivity", "coding-length"],
      help:
        "how --mixed and --size price each layer's bits: measured sensitivity (default) or the coding length",
    },
    seed: {
      type: "int",
      value: "N",
      default: String(defaultOptions.seed),
      check: (v) => v >= 0 && v <= 2 ** 32 - 1 ? undefined : "must be from 0 to 4294967295",
      help: "random seed (same seed, same result)",
    },
    npz: {
      type: "string",
      value: "OUT.npz",
      help: "also write the integer weights, scales and zero points as .npz",
    },
    report: { type: "string", value: "REPORT.json", help: "write the quantization report as JSON" },
    html: {
      type: "string",
      value: "REPORT.html",
      help: "write the report as a standalone HTML page with plots",
    },
    exclude: {
      type: "string",
      value: "LIST",
      help: "layers to leave in float, comma-separated: node names, globs over them ('head*', '/layer4/*') " +
        "or op types (Gemm)",
    },
    "op-types": {
      type: "string",
      value: "LIST",
      help: "quantize only layers of these op types, comma-separated (of Conv, ConvTranspose, Gemm, MatMul)",
    },
    resize: {
      type: "string",
      value: "WxH",
      help: "images: resize each to W×H (bilinear, half-pixel centres); default: the model input's size",
    },
    mean: {
      type: "string",
      value: "M[,M,M]",
      help: "images: subtract per channel after scaling to [0, 1], e.g. 0.485,0.456,0.406; default 0",
    },
    std: {
      type: "string",
      value: "S[,S,S]",
      help: "images: then divide per channel, e.g. 0.229,0.224,0.225; default 1",
    },
    channels: {
      type: "string",
      value: "ORDER",
      choices: ["rgb", "bgr"],
      default: "rgb",
      help: "images: colour channel order (a 1-channel model gets the gray level)",
    },
    layout: {
      type: "string",
      value: "L",
      choices: ["nchw", "nhwc"],
      help: "images: tensor layout; default: as the model's input shape says (NCHW if it cannot tell)",
    },
    config: {
      type: "string",
      value: "FILE.json",
      help:
        "quantize's options as JSON, any option of the API's quantize() (holdout, layers, learningRate, " +
        "activationLearningRate, activationDrop, attention, mixedPrecision, …); flags given beside it override it, " +
        "and the same options give the same bytes as the API",
    },
    ...threadsFlag,
    ...limitFlags,
  },
  examples: [
    "attnround quantize model.onnx --calib calib.npz --out model.w4a4.onnx --html report.html",
    "attnround quantize model.onnx --calib calib.npz --out m.onnx --w 2 --a 4 --iters 500 --json",
    "attnround quantize model.onnx --calib calib.npy --limit 256 --config options.json --out m.onnx",
    "attnround quantize model.onnx --calib calib.npz --exclude 'head*,Gemm' --out m.onnx",
    "attnround quantize model.onnx --calib images/ --resize 224x224 --mean 0.485,0.456,0.406 " +
    "--std 0.229,0.224,0.225 --out m.onnx",
  ],
};

function withInterrupt<T>(rt: Runtime, out: Console, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const stop = rt.onInterrupt(() => {
    if (controller.signal.aborted) rt.exit(130);
    out.warn("interrupted: stopping at the end of this iteration (Ctrl-C again to quit now)");
    controller.abort();
  });
  return work(controller.signal).finally(stop);
}

/** A list of numbers such as "0.485,0.456,0.406" for `flag`. */
function numbers(flag: string, text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const values = text.split(",").map((v) => v.trim() === "" ? NaN : Number(v));
  if (values.some((v) => !Number.isFinite(v))) {
    throw new UsageError(
      `--${flag} takes numbers separated by commas, such as 0.485,0.456,0.406, got "${text}"`,
      "quantize",
    );
  }
  if (flag === "std" && values.some((v) => v === 0)) {
    throw new UsageError(`--std must not be 0, got "${text}"`, "quantize");
  }
  return values;
}

/** The image preprocessing the flags ask for. */
function preprocessing(flags: Record<string, FlagValue>): Preprocessing {
  let size: [number, number] | undefined;
  if (flags.resize !== undefined) {
    const match = /^(\d+)x(\d+)$/i.exec(String(flags.resize).trim());
    if (!match || Number(match[1]) < 1 || Number(match[2]) < 1) {
      throw new UsageError(`--resize takes WIDTHxHEIGHT such as 224x224, got "${flags.resize}"`, "quantize");
    }
    size = [Number(match[1]), Number(match[2])];
  }
  return {
    size,
    mean: numbers("mean", flags.mean as string | undefined),
    std: numbers("std", flags.std as string | undefined),
    channels: flags.channels as Preprocessing["channels"],
    layout: flags.layout as Preprocessing["layout"],
  };
}

/** The options of --config FILE.json: a JSON object of quantize()'s options (functions and stores excepted). */
async function readConfig(rt: Runtime, path: string): Promise<QuantizeOptionsInput> {
  const text = new TextDecoder().decode(await readInput(rt, path, "--config"));
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw new CliError(`--config ${path} is not JSON (${(e as Error).message})`);
  }
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new CliError(
      `--config ${path} must hold a JSON object of quantize's options, such as {"weightBits": 4}`,
    );
  }
  for (const key of ["onProgress", "signal", "spill"]) {
    if (key in config) {
      throw new CliError(`--config ${path}: ${key} cannot be given in JSON; the command sets it`);
    }
  }
  return config as QuantizeOptionsInput;
}

export async function quantizeCommand(
  rt: Runtime,
  flags: Record<string, FlagValue>,
  [modelPath]: string[],
  out: Console,
) {
  const outPath = flags.out as string;
  const npzPath = flags.npz as string | undefined;
  const reportPath = flags.report as string | undefined;
  const htmlPath = flags.html as string | undefined;
  const memoryBudget = flags.memory as number | undefined;
  await checkOutputs(
    rt,
    "quantize",
    [["--out", outPath], ["--npz", npzPath], ["--report", reportPath], ["--html", htmlPath]],
    [
      ["the model", modelPath],
      ["--calib", flags.calib as string],
      ...(flags.config === undefined ? [] : [["--config", flags.config as string] as [string, string]]),
    ],
  );
  await init();
  const { model, bytes: modelBytes } = await loadModelFile(rt, modelPath);
  onlyInput(model, modelPath);
  const calibPath = flags.calib as string;
  const calib = (await rt.stat(calibPath).catch(() => undefined))?.kind === "directory"
    ? {
      x: await loadImages(
        rt,
        calibPath,
        model.inputs[0],
        preprocessing(flags),
        flags.limit as number | undefined,
      ),
    }
    : await loadSamples(rt, calibPath, model, "--calib", sampleLimits(flags));
  out.info(
    `${basename(modelPath)}: ${inspectModel(model).layers.length} layers to quantize; ` +
      `${flags.calib}: ${calib.x.shape[0]} samples of [${calib.x.shape.slice(1)}]`,
  );
  const configPath = flags.config as string | undefined;
  const config = configPath === undefined ? {} : await readConfig(rt, configPath);
  // The flags given on the command line override the file; the rest are quantize's defaults.
  const given: QuantizeOptionsInput = {};
  if (flags.w !== undefined) given.weightBits = flags.w as number;
  if (flags.a !== undefined) given.activationBits = flags.a as number;
  if (flags.rounding !== undefined) given.rounding = flags.rounding as RoundingMode;
  if (flags.iters !== undefined) given.iterations = flags.iters as number;
  if (flags.batch !== undefined) given.batchSize = flags.batch as number;
  if (flags.seed !== undefined) given.seed = flags.seed as number;
  if (memoryBudget !== undefined) given.memoryBudget = memoryBudget;
  if (flags.threads !== undefined) given.threads = flags.threads as number;
  if (flags.asymmetric === true) given.symmetricWeights = false;
  if (flags["per-tensor"] === true) given.perChannelWeights = false;
  if (flags["bias-correction"] === true) given.biasCorrection = true;
  if (flags.export !== undefined) given.exportForm = flags.export as ExportForm;
  if (flags.mixed !== undefined && flags.size !== undefined) {
    throw new UsageError(
      "give one mixed-precision budget: --mixed AVG_BITS or --size SIZE, not both",
      "quantize",
    );
  }
  if (flags["mixed-criterion"] !== undefined && flags.mixed === undefined && flags.size === undefined) {
    throw new UsageError("--mixed-criterion goes with a budget: --mixed AVG_BITS or --size SIZE", "quantize");
  }
  const criterion = flags["mixed-criterion"] as MixedCriterion | undefined;
  if (flags.mixed !== undefined) given.mixedPrecision = { criterion, averageBits: flags.mixed as number };
  if (flags.size !== undefined) given.mixedPrecision = { criterion, sizeBytes: flags.size as number };
  const list = (v: FlagValue) => String(v).split(",").map((x) => x.trim()).filter((x) => x !== "");
  if (flags.exclude !== undefined) given.exclude = list(flags.exclude);
  if (flags["op-types"] !== undefined) given.opTypes = list(flags["op-types"]);
  const options: QuantizeOptionsInput = { ...config, ...given };
  if (flags.variant !== undefined) {
    options.attention = { ...config.attention, variant: flags.variant as AttentionOptions["variant"] };
  }
  const printer = out.json || out.quiet ? undefined : new ProgressPrinter(rt.stdout, rt.stdout.isTTY);
  let q: QuantizedModel;
  try {
    q = await withInterrupt(
      rt,
      out,
      (signal) =>
        quantize(model, calib.x, {
          ...options,
          signal,
          spill: rt.spill,
          onProgress: printer && ((e) => printer.event(e)),
        }),
    );
  } catch (e) {
    // quantize checks its options first: with a --config, an option it refuses is most likely the file's.
    if (configPath !== undefined && e instanceof AttnroundError && e.code === "INVALID_ARGUMENT") {
      throw new AttnroundError(e.code, `--config ${configPath}: ${e.message}`, { cause: e });
    }
    throw e;
  } finally {
    printer?.finish();
  }
  // Every output is made before any is written: a failure leaves none of them half-updated.
  const report = q.report;
  const onnx = q.toOnnx();
  const files: [string, Uint8Array | string][] = [[outPath, onnx]];
  const npz = npzPath ? q.toNpz() : undefined;
  const npzBytes = npz?.length;
  if (npz) files.push([npzPath!, npz]);
  if (reportPath) files.push([reportPath, JSON.stringify(report, null, 2) + "\n"]);
  if (htmlPath) {
    const html = reportToHtml(report, {
      model: basename(modelPath),
      sizes: { floatModel: modelBytes.length, quantizedModel: onnx.length, npz: npzBytes },
    });
    files.push([htmlPath, html]);
  }
  await writeOutputs(rt, files);
  const written = files.map(([path]) => path);
  const fid = report.fidelity;
  if (fid && !fid.ok) {
    out.warn(
      `the quantized model departs from the float one (top-1 agreement ${
        fid.top1Agreement === undefined ? "n/a" : (100 * fid.top1Agreement).toFixed(1) + " %"
      }, SNR ${
        fid.snrDb.toFixed(1)
      } dB on ${fid.samples} held-back samples): try more --iters or bits (--w, --a)${
        report.settings.rounding === "attention" ? "" : ", or --rounding attention"
      }`,
    );
  }
  out.info(`wrote ${written.join(", ")}`);
  out.info(
    report.settings.exportForm === "deploy"
      ? "form: deploy (onnxruntime runs its layers on integers)"
      : "form: exact (Q/DQ at layer inputs, float arithmetic; --export deploy needs 8-bit activations)",
  );
  out.info(
    `size: ${fmtBytes(modelBytes.length)} float model → ${fmtBytes(onnx.length)} quantized ONNX ` +
      `(weights ${fmtBytes(report.totals.floatBytes)} → ${fmtBytes(report.totals.quantizedWeightBytes)})`,
  );
  if (fid) {
    out.info(
      `fidelity on ${fid.samples} held-back samples: ` +
        (fid.top1Agreement !== undefined
          ? `top-1 agreement ${(100 * fid.top1Agreement).toFixed(2)} %, `
          : "") +
        `SNR ${fid.snrDb.toFixed(1)} dB${fid.ok ? "" : " (NOT OK)"}`,
    );
  }
  if (report.mixedPrecision) {
    const mp = report.mixedPrecision;
    const bits = report.layers.map((l) => l.weightBits).join(" ");
    const asked = mp.averageBits !== undefined ? `${mp.averageBits} bits` : `a file of ${mp.sizeBytes} bytes`;
    out.info(
      `mixed precision (${mp.criterion}): ${mp.storedBytes} of ${mp.budgetBytes} bytes for ${mp.budgetLayers} layers, ` +
        `${mp.achievedAverageBits.toFixed(3)} bits on average (asked ${asked}; first and last layer at 8); ` +
        `bits per layer: ${bits}`,
    );
  }
  out.info(`time: ${formatDuration(report.totals.seconds)}`);
  out.result({
    model: modelPath,
    out: outPath,
    npz: npzPath,
    report: reportPath,
    html: htmlPath,
    settings: {
      weightBits: report.settings.weightBits,
      activationBits: report.settings.activationBits,
      rounding: report.settings.rounding,
      iterations: report.settings.iterations,
      batchSize: report.settings.batchSize,
      seed: report.settings.seed,
      symmetricWeights: report.settings.symmetricWeights,
      exportForm: report.settings.exportForm,
      attentionVariant: report.settings.attention.variant,
      mixedPrecision: options.mixedPrecision,
      memoryBudget: report.settings.memoryBudget,
    },
    layers: report.layers.length,
    blocks: report.blocks.length,
    bytes: {
      floatModel: modelBytes.length,
      quantizedModel: onnx.length,
      npz: npzBytes,
      floatWeights: report.totals.floatBytes,
      quantizedWeights: report.totals.quantizedWeightBytes,
    },
    fidelity: fid,
    mixedPrecision: report.mixedPrecision,
    seconds: report.totals.seconds,
  });
  q.dispose();
  model.dispose();
  return 0;
}
