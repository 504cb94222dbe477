// attnround inspect: a model's ops, parameters, reconstruction blocks and,
// per quantizable layer, shape, coding length and the bits mixed precision
// would give it.
import { inspectMixedPrecision } from "../quant/inspect.ts";
import { partitionBlocks, quantizableLayers } from "../quant/partition.ts";
import { init } from "../init.ts";
import type { CommandSpec, FlagValue } from "./args.ts";
import { Console, fmtBytes, loadModelFile } from "./common.ts";
import type { Runtime } from "./runtime.ts";

export const inspectSpec: CommandSpec = {
  name: "inspect",
  summary:
    "Show a model's ops, parameters, reconstruction blocks and, per layer, shape, coding length and mixed bits.",
  positionals: [{ name: "MODEL.onnx", help: "the model to inspect" }],
  flags: {},
  examples: ["attnround inspect model.onnx", "attnround inspect model.onnx --json"],
};

export async function inspectCommand(
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
