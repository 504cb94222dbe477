// attnround quantize | eval | inspect (| demo): the commands, their flags
// and what each prints. runCli returns the exit code: 0 success, 1 failure,
// 2 bad usage.
import { AttnroundError } from "../errors.ts";
import type { Model } from "../model.ts";
import {
  type AttentionOptions,
  defaultOptions,
  type QuantizeOptions,
  type QuantizeOptionsInput,
} from "../quant/options.ts";
import { inspectMixedPrecision } from "../quant/inspect.ts";
import { partitionBlocks, quantizableLayers } from "../graph/partition.ts";
import { quantize } from "../../mod.ts";
import type { QuantizedModel } from "../quant/quantized-model.ts";
import { reportToHtml } from "../report/html.ts";
import type { Tensor } from "../tensor.ts";
import { init } from "../init.ts";
import { type CommandSpec, type FlagValue, helpText, parseArgs, suggest } from "./args.ts";
import { Console, loadModelFile, loadSamples, predictClasses } from "./common.ts";
import { demo, demoSpec } from "./demo.ts";
import { CliError, UsageError } from "./errors.ts";
import { basename, checkWritable, writeOutput } from "./files.ts";
import { formatDuration, ProgressPrinter } from "./progress.ts";
import type { Runtime } from "./runtime.ts";

const bitsCheck = (allowFloat: boolean) => (v: number) =>
  (v >= 2 && v <= 8) || (allowFloat && v === 32)
    ? undefined
    : `must be 2 to 8${allowFloat ? " (or 32 for float)" : ""}`;
const atLeast = (min: number) => (v: number) => v >= min ? undefined : `must be ≥ ${min}`;

export const quantizeSpec: CommandSpec = {
  name: "quantize",
  summary: "Quantize an ONNX model with a calibration set and write a QDQ ONNX model.",
  positionals: [{ name: "MODEL.onnx", help: "the float model" }],
  flags: {
    calib: {
      type: "string",
      value: "CALIB.npz",
      required: true,
      help: "calibration inputs: array x (or the first array); uint8 is scaled by 1/255",
    },
    out: { type: "string", value: "OUT.onnx", required: true, help: "the quantized model (QDQ ONNX)" },
    w: {
      type: "int",
      value: "BITS",
      default: "4",
      check: bitsCheck(false),
      help: "weight bits (first and last layer keep 8)",
    },
    a: {
      type: "int",
      value: "BITS",
      default: "4",
      check: bitsCheck(true),
      help: "activation bits, 32 for float activations",
    },
    rounding: {
      type: "string",
      value: "MODE",
      default: "attention",
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
    asymmetric: {
      type: "boolean",
      help: "asymmetric weights, a zero point per output channel (as BRECQ); symmetric by default",
    },
    iters: {
      type: "int",
      value: "N",
      default: "2000",
      check: atLeast(0),
      help: "reconstruction iterations per block",
    },
    batch: { type: "int", value: "N", default: "32", check: atLeast(1), help: "mini-batch size" },
    mixed: {
      type: "number",
      value: "AVG_BITS",
      check: (v) => v >= 2 && v <= 8 ? undefined : "must be an average bit width from 2 to 8",
      help: "mixed precision: per-layer weight bits from the coding length, averaging AVG_BITS",
    },
    seed: {
      type: "int",
      value: "N",
      default: "0",
      check: atLeast(0),
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
  },
  examples: [
    "attnround quantize model.onnx --calib calib.npz --out model.w4a4.onnx --html report.html",
    "attnround quantize model.onnx --calib calib.npz --out m.onnx --w 2 --a 4 --iters 500 --json",
  ],
};

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
    batch: { type: "int", value: "N", default: "250", check: atLeast(1), help: "samples per forward pass" },
  },
  examples: ["attnround eval model.w4a4.onnx --data test.npz --compare model.onnx"],
};

export const inspectSpec: CommandSpec = {
  name: "inspect",
  summary:
    "Show a model's ops, parameters, reconstruction blocks and, per layer, shape, coding length and mixed bits.",
  positionals: [{ name: "MODEL.onnx", help: "the model to inspect" }],
  flags: {},
  examples: ["attnround inspect model.onnx", "attnround inspect model.onnx --json"],
};

const commands: Record<string, CommandSpec> = {
  quantize: quantizeSpec,
  eval: evalSpec,
  inspect: inspectSpec,
  demo: demoSpec,
};

const topHelp = `attnround: post-training quantization of ONNX models (Attention Round)

usage: attnround COMMAND [options]

commands:
  quantize MODEL.onnx --calib CALIB.npz --out OUT.onnx [options]   quantize a model
  eval MODEL.onnx --data TEST.npz [--compare OTHER.onnx]           top-1 (and agreement) as one JSON line
  inspect MODEL.onnx                                               ops, parameters, blocks, coding length per layer
  demo [--fast]                                                    quantize the bundled ResNet-18 (from a clone of the repository)

"attnround COMMAND --help" shows a command's options.
exit status: 0 success, 1 failure, 2 bad usage
`;

/** Output paths must differ from each other and from the inputs, and be writable; checked before any work. */
async function checkOutputs(
  rt: Runtime,
  outputs: [string, string | undefined][],
  inputs: string[],
): Promise<void> {
  const given = outputs.filter((o): o is [string, string] => typeof o[1] === "string");
  for (const [flag, path] of given) {
    const clash = given.find(([f, p]) => f !== flag && p === path);
    if (clash) {
      throw new UsageError(
        `${flag} and ${clash[0]} name the same file ${path}; give each its own path`,
        "quantize",
      );
    }
    if (inputs.includes(path)) {
      throw new UsageError(`${flag} ${path} would overwrite an input; write elsewhere`, "quantize");
    }
  }
  for (const [flag, path] of given) await checkWritable(rt, path, flag);
}

function withInterrupt<T>(rt: Runtime, out: Console, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const stop = rt.onInterrupt(() => {
    if (controller.signal.aborted) rt.exit(130);
    out.warn("interrupted: stopping at the end of this iteration (Ctrl-C again to quit now)");
    controller.abort();
  });
  return work(controller.signal).finally(stop);
}

function fmtBytes(n: number): string {
  return n < 1024
    ? `${n} B`
    : n < 1024 ** 2
    ? `${(n / 1024).toFixed(1)} KiB`
    : `${(n / 1024 ** 2).toFixed(2)} MiB`;
}

async function quantizeCommand(
  rt: Runtime,
  flags: Record<string, FlagValue>,
  [modelPath]: string[],
  out: Console,
) {
  const outPath = flags.out as string;
  const npzPath = flags.npz as string | undefined;
  const reportPath = flags.report as string | undefined;
  const htmlPath = flags.html as string | undefined;
  await checkOutputs(
    rt,
    [["--out", outPath], ["--npz", npzPath], ["--report", reportPath], ["--html", htmlPath]],
    [modelPath, flags.calib as string],
  );
  await init();
  const { model, bytes: modelBytes } = await loadModelFile(rt, modelPath);
  const calib = await loadSamples(rt, flags.calib as string, model, "--calib");
  out.info(
    `${basename(modelPath)}: ${quantizableLayers(model.graph).length} layers to quantize; ` +
      `${flags.calib}: ${calib.x.shape[0]} samples of [${calib.x.shape.slice(1)}]`,
  );
  const options: QuantizeOptionsInput = {
    weightBits: (flags.w as number) ?? 4,
    activationBits: (flags.a as number) ?? 4,
    rounding: (flags.rounding as QuantizeOptions["rounding"]) ?? "attention",
    iterations: (flags.iters as number) ?? 2000,
    batchSize: (flags.batch as number) ?? 32,
    seed: (flags.seed as number) ?? 0,
  };
  if (flags.asymmetric === true) options.symmetricWeights = false;
  if (flags.variant !== undefined) {
    options.attention = { variant: flags.variant as AttentionOptions["variant"] };
  }
  if (flags.mixed !== undefined) options.mixedPrecision = { averageBits: flags.mixed as number };
  const printer = out.json || out.quiet ? undefined : new ProgressPrinter(rt.stdout, rt.stdout.isTTY);
  let q: QuantizedModel;
  try {
    q = await withInterrupt(
      rt,
      out,
      (signal) =>
        quantize(model, calib.x, { ...options, signal, onProgress: printer && ((e) => printer.event(e)) }),
    );
  } finally {
    printer?.finish();
  }
  const report = q.report;
  const onnx = q.toOnnx();
  await writeOutput(rt, outPath, onnx);
  const written = [outPath];
  let npzBytes: number | undefined;
  if (npzPath) {
    const npz = q.toNpz();
    npzBytes = npz.length;
    await writeOutput(rt, npzPath, npz);
    written.push(npzPath);
  }
  if (reportPath) {
    await writeOutput(rt, reportPath, JSON.stringify(report, null, 2) + "\n");
    written.push(reportPath);
  }
  if (htmlPath) {
    const html = reportToHtml(report, {
      model: basename(modelPath),
      sizes: { floatModel: modelBytes.length, quantizedModel: onnx.length, npz: npzBytes },
    });
    await writeOutput(rt, htmlPath, html);
    written.push(htmlPath);
  }
  const fid = report.fidelity;
  if (fid && !fid.ok) {
    out.warn(
      `the quantized model departs from the float one (top-1 agreement ${
        fid.top1Agreement === undefined ? "n/a" : (100 * fid.top1Agreement).toFixed(1) + " %"
      }, SNR ${
        fid.snrDb.toFixed(1)
      } dB on ${fid.samples} held-back samples): try more --iters or bits (--w, --a)${
        options.rounding === "attention" ? "" : ", or --rounding attention"
      }`,
    );
  }
  out.info(`wrote ${written.join(", ")}`);
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
    out.info(
      `mixed precision: ${
        mp.achievedAverageBits.toFixed(3)
      } bits on average over ${mp.budgetLayers} layers ` +
        `(asked ${mp.averageBits}; first and last layer at 8); bits per layer: ${bits}`,
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
      weightBits: options.weightBits,
      activationBits: options.activationBits,
      rounding: options.rounding,
      iterations: options.iterations,
      batchSize: options.batchSize,
      seed: options.seed,
      symmetricWeights: report.settings.symmetricWeights,
      attentionVariant: report.settings.attention.variant,
      mixedPrecision: options.mixedPrecision,
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

function runner(model: Model): (x: Tensor) => Tensor {
  const input = model.inputs[0].name, output = model.outputs[0].name;
  return (x) => model.run({ [input]: x })[output];
}

async function evalCommand(
  rt: Runtime,
  flags: Record<string, FlagValue>,
  [modelPath]: string[],
  out: Console,
) {
  await init();
  const { model } = await loadModelFile(rt, modelPath);
  const other = flags.compare
    ? (await loadModelFile(rt, flags.compare as string, "--compare")).model
    : undefined;
  const data = await loadSamples(rt, flags.data as string, model, "--data");
  const batch = (flags.batch as number) ?? 250;
  const n = data.x.shape[0];
  const classes = predictClasses(runner(model), data.x, batch, modelPath);
  const top1 = (c: Int32Array) => data.y ? c.filter((v, i) => v === data.y![i]).length / n : null;
  const result: Record<string, unknown> = { top1: top1(classes), n };
  if (other) {
    const theirs = predictClasses(runner(other), data.x, batch, flags.compare as string);
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

async function inspectCommand(
  rt: Runtime,
  _flags: Record<string, FlagValue>,
  [modelPath]: string[],
  out: Console,
) {
  await init();
  const { model, bytes } = await loadModelFile(rt, modelPath);
  const graph = model.graph;
  const ops: Record<string, number> = {};
  for (const node of model.proto.graph.node) ops[node.opType] = (ops[node.opType] ?? 0) + 1;
  const parameters = [...graph.initializers.values()].reduce(
    (a, t) => a + (t.dtype === "float32" ? t.size : 0),
    0,
  );
  const layers = quantizableLayers(graph);
  const blocks = partitionBlocks(graph);
  const budgets = [2, 3, 4];
  const coding = inspectMixedPrecision(model, { budgets });
  const codingOf = new Map(coding.layers.map((l) => [l.name, l]));
  const layerInfo = layers.map((l) => {
    const c = codingOf.get(l.name);
    return {
      name: l.name,
      kind: l.kind,
      shape: l.weightShape,
      parameters: l.weightShape.reduce((a, b) => a * b, 1),
      codingLength: c?.codingLength ?? null,
      codingLengthPerWeight: c?.codingLengthPerWeight ?? null,
      mixedBits: Object.fromEntries(budgets.map((b, k) => [b, c?.bits[k] ?? null])),
      bitsFrom: c?.bitsFrom ?? null,
    };
  });
  const opset = model.proto.opsetImport.find((o) => o.domain === "" || o.domain === "ai.onnx")?.version;
  const info = {
    model: modelPath,
    bytes: bytes.length,
    opset,
    inputs: model.inputs.map((i) => ({
      name: i.name,
      dtype: i.dtype,
      shape: i.shape?.map((d) => d ?? null),
    })),
    outputs: model.outputs.map((o) => ({
      name: o.name,
      dtype: o.dtype,
      shape: o.shape?.map((d) => d ?? null),
    })),
    ops,
    parameters,
    quantizableParameters: layerInfo.reduce((a, l) => a + l.parameters, 0),
    blocks: blocks.map((b) => ({ index: b.index, nodes: b.nodes.length, layers: b.layers })),
    codingLengthEpsilon: coding.epsilon,
    layers: layerInfo,
  };
  const shape = (s?: (string | number | null)[]) => `[${(s ?? []).map((d) => d ?? "?").join(", ")}]`;
  out.info(`${modelPath}: ${fmtBytes(bytes.length)}, opset ${opset}`);
  out.info(`inputs:  ${info.inputs.map((i) => `${i.name} ${i.dtype ?? ""} ${shape(i.shape)}`).join("; ")}`);
  out.info(`outputs: ${info.outputs.map((o) => `${o.name} ${o.dtype ?? ""} ${shape(o.shape)}`).join("; ")}`);
  out.info(
    `ops (${model.proto.graph.node.length} nodes): ${
      Object.entries(ops).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}×${v}`).join(" ")
    }`,
  );
  out.info(
    `parameters: ${parameters.toLocaleString("en-US")} (after BatchNorm folding), of which ${
      info.quantizableParameters.toLocaleString("en-US")
    } in ${layers.length} quantizable layers`,
  );
  out.info(`blocks: ${blocks.length}`);
  for (const b of blocks) {
    out.info(
      `  ${String(b.index + 1).padStart(3)}  ${b.nodes.length} nodes  ${
        b.layers.join(", ") || "(no layers)"
      }`,
    );
  }
  const rows = [[
    "#",
    "layer",
    "op",
    "weight shape",
    "params",
    "L (bits)",
    "ρ",
    "bits@2",
    "bits@3",
    "bits@4",
  ]];
  layerInfo.forEach((l, i) =>
    rows.push([
      String(i + 1),
      l.name,
      l.kind,
      `[${l.shape.join("×")}]`,
      String(l.parameters),
      l.codingLength === null ? "–" : l.codingLength.toFixed(0),
      l.codingLengthPerWeight === null ? "–" : l.codingLengthPerWeight.toFixed(3),
      ...budgets.map((b) => String(l.mixedBits[b] ?? "–")),
    ])
  );
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  out.info("layers:");
  for (const r of rows) {
    out.info(
      "  " + r.map((v, c) => (c === 1 || c === 2 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join("  "),
    );
  }
  out.info(`  L: lossy coding length of the weight (${coding.epsilon}); ρ = L per weight`);
  out.info("  bits@B: the weight bits --mixed B gives each layer (first and last layer stay at 8)");
  out.result(info);
  model.dispose();
  return 0;
}

function describeError(e: unknown): string {
  if (e instanceof AttnroundError) return `[${e.code}] ${e.message}`;
  if (e instanceof CliError) return e.message;
  return (e as Error)?.stack ?? String(e);
}

/** Runs one command line; returns the exit code. */
export async function runCli(rt: Runtime, argv: readonly string[] = rt.args): Promise<number> {
  const [name, ...rest] = argv;
  let json = rest.includes("--json");
  try {
    if (name === undefined || name === "--help" || name === "-h" || name === "help") {
      const spec = name === "help" && rest[0] ? commands[rest[0]] : undefined;
      rt.stdout.write(spec ? helpText(spec) : topHelp);
      return name === undefined ? 2 : 0;
    }
    const spec = commands[name];
    if (!spec) {
      const guess = suggest(name, Object.keys(commands));
      throw new UsageError(
        `unknown command "${name}"${guess ? `; did you mean "${guess}"?` : ""} (commands: ${
          Object.keys(commands).join(", ")
        })`,
      );
    }
    const { flags, positionals } = parseArgs(spec, rest);
    if (flags.help) {
      rt.stdout.write(helpText(spec));
      return 0;
    }
    json = flags.json === true;
    const out = new Console(rt, json, flags.quiet === true);
    switch (name) {
      case "quantize":
        return await quantizeCommand(rt, flags, positionals, out);
      case "eval":
        return await evalCommand(rt, flags, positionals, out);
      case "inspect":
        return await inspectCommand(rt, flags, positionals, out);
      default:
        return await demo(rt, flags, out);
    }
  } catch (e) {
    const code = e instanceof CliError
      ? e.exitCode
      : e instanceof AttnroundError && e.code === "ABORTED"
      ? 130
      : 1;
    rt.stderr.write(`attnround: error: ${describeError(e)}\n`);
    if (e instanceof UsageError) {
      rt.stderr.write(
        e.command
          ? `run "attnround ${e.command} --help" for its options\n`
          : `run "attnround --help" for the commands\n`,
      );
    }
    if (json) {
      rt.stdout.write(
        JSON.stringify({
          error: {
            code: (e as AttnroundError).code ?? (code === 2 ? "USAGE" : "FAILED"),
            message: (e as Error)?.message ?? String(e),
          },
        }) + "\n",
      );
    }
    return code;
  }
}
