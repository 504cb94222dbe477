// attnround inspect: a model's ops, parameters, reconstruction blocks and,
// per quantizable layer, shape, coding length, with --calib its sensitivity
// at each candidate width, and the bits mixed precision would give it.
import { init, inspectModel } from "../../mod.ts";
import type { CommandSpec, FlagValue } from "./args.ts";
import { Console, fmtBytes, loadModelFile, loadSamples } from "./common.ts";
import type { Runtime } from "./runtime.ts";

export const inspectSpec: CommandSpec = {
  name: "inspect",
  summary:
    "Show a model's ops, parameters, reconstruction blocks and, per layer, shape, coding length and mixed bits.",
  positionals: [{ name: "MODEL.onnx", help: "the model to inspect" }],
  flags: {
    calib: {
      type: "string",
      value: "CALIB.npz",
      help: "calibration samples: measure each layer's sensitivity on the last quarter (at most 64), " +
        "as quantize --mixed does, and give the bits by it",
    },
  },
  examples: [
    "attnround inspect model.onnx",
    "attnround inspect model.onnx --calib calib.npz",
    "attnround inspect model.onnx --json",
  ],
};

/** The --mixed budgets the table shows, one column each. */
const BUDGETS = [2, 3, 4];

export async function inspectCommand(
  rt: Runtime,
  flags: Record<string, FlagValue>,
  [modelPath]: string[],
  out: Console,
) {
  await init();
  const { model, bytes } = await loadModelFile(rt, modelPath);
  const calibration = flags.calib === undefined
    ? undefined
    : (await loadSamples(rt, flags.calib as string, model, "--calib")).x;
  const info = {
    model: modelPath,
    bytes: bytes.length,
    ...inspectModel(model, { budgets: BUDGETS, calibration }),
  };
  model.dispose();
  const shape = (s?: (string | number | null)[]) => `[${(s ?? []).map((d) => d ?? "?").join(", ")}]`;
  const nodes = Object.values(info.ops).reduce((a, b) => a + b, 0);
  out.info(`${modelPath}: ${fmtBytes(bytes.length)}, opset ${info.opset}`);
  out.info(`inputs:  ${info.inputs.map((i) => `${i.name} ${i.dtype ?? ""} ${shape(i.shape)}`).join("; ")}`);
  out.info(`outputs: ${info.outputs.map((o) => `${o.name} ${o.dtype ?? ""} ${shape(o.shape)}`).join("; ")}`);
  out.info(
    `ops (${nodes} nodes): ${
      Object.entries(info.ops).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}×${v}`).join(" ")
    }`,
  );
  out.info(
    `parameters: ${info.parameters.toLocaleString("en-US")} (after BatchNorm folding), of which ${
      info.quantizableParameters.toLocaleString("en-US")
    } in ${info.layers.length} quantizable layers`,
  );
  out.info(`blocks: ${info.blocks.length}`);
  for (const b of info.blocks) {
    out.info(
      `  ${String(b.index + 1).padStart(3)}  ${b.nodes} nodes  ${b.layers.join(", ") || "(no layers)"}`,
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
    ...BUDGETS.map((b) => `bits@${b}`),
    ...(calibration ? info.candidates.map((b) => `sens@${b}`) : []),
  ]];
  info.layers.forEach((l, i) =>
    rows.push([
      String(i + 1),
      l.name,
      l.kind,
      `[${l.shape.join("×")}]`,
      String(l.parameters),
      l.codingLength.toFixed(0),
      l.codingLengthPerWeight.toFixed(3),
      ...BUDGETS.map((b) => String(l.mixedBits[b])),
      ...(calibration ? info.candidates.map((_, k) => l.sensitivity?.[k].toExponential(2) ?? "–") : []),
    ])
  );
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  out.info("layers:");
  for (const r of rows) {
    out.info(
      "  " + r.map((v, c) => (c === 1 || c === 2 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join("  "),
    );
  }
  out.info(`  L: lossy coding length of the weight (${info.codingLengthEpsilon}); ρ = L per weight`);
  out.info(
    `  bits@B: the weight bits --mixed B gives each layer by ${info.mixedCriterion} ` +
      "(first and last layer stay at 8)",
  );
  if (calibration) {
    out.info(
      `  sens@b: the output-loss increase (KL for classifiers, else MSE) on ${info.sensitivitySamples} ` +
        "held-back samples with that layer alone rounded to nearest at b bits",
    );
  }
  out.result(info);
  return 0;
}
