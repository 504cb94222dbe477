// File sizes of the exports: the float ONNX model against the QDQ models
// q.toOnnx() writes at W8A8, W4A8 (both forms), W4A4, W2A4 and mixed precision
// (3 stored bits on average, by sensitivity), for the fixture models, with the .onnx gzipped (as
// served over HTTP) and the .npz of the integer weights beside it. Sizes do
// not depend on the rounding, so the models are quantized by rounding to
// nearest (no reconstruction) on 256 calibration images. Prints one Markdown
// table and writes the raw numbers as JSON.
//   deno task bench:sizes [--models resnet18_fmnist,mobilenetv2_fmnist] [--out bench/results/sizes.json]
import { init, loadModel, quantize, readNpz, Tensor } from "../mod.ts";
import { gzipSync } from "fflate";
import { option, readFixture, toInput } from "./fmnist.ts";
import type { QuantizeOptionsInput } from "../src/quant/options.ts";

const models = option("models", "resnet18_fmnist,mobilenetv2_fmnist").split(",");
const out = option("out", "bench/results/sizes.json");

await init();
const pixels = readNpz(readFixture("calib.npz")).x.data as Uint8Array;
const calib = toInput(new Tensor(pixels.slice(0, 256 * 784), [256, 28, 28]));

const exports: [string, QuantizeOptionsInput][] = [
  ["W8A8 (deploy)", { weightBits: 8, activationBits: 8 }],
  ["W4A8 (deploy)", { weightBits: 4, activationBits: 8 }],
  ["W4A8 (exact)", { weightBits: 4, activationBits: 8, exportForm: "exact" }],
  ["W4A4 (exact)", { weightBits: 4, activationBits: 4 }],
  ["W2A4 (exact)", { weightBits: 2, activationBits: 4 }],
  // Sensitivity measured on the last 64 of the 256 images.
  ["mixed 3 (A4)", { mixedPrecision: { averageBits: 3 }, activationBits: 4, holdout: 64 }],
];

interface Row {
  model: string;
  export: string;
  /** Weight bits averaged over the quantized weights, by parameter count. */
  averageWeightBits: number;
  onnxBytes: number;
  gzipBytes: number;
  npzBytes?: number;
}

const gzipped = (bytes: Uint8Array) => gzipSync(bytes, { level: 9 }).length;
const rows: Row[] = [];
for (const name of models) {
  const bytes = readFixture(`${name}.onnx`);
  rows.push({
    model: name,
    export: "float",
    averageWeightBits: 32,
    onnxBytes: bytes.length,
    gzipBytes: gzipped(bytes),
  });
  const model = loadModel(bytes);
  for (const [label, options] of exports) {
    const q = await quantize(model, calib, { rounding: "nearest", holdout: 0, ...options });
    const onnx = q.toOnnx();
    const layers = q.report.layers;
    const parameters = layers.reduce((a, l) => a + l.parameters, 0);
    rows.push({
      model: name,
      export: label,
      averageWeightBits: layers.reduce((a, l) => a + l.weightBits * l.parameters, 0) / parameters,
      onnxBytes: onnx.length,
      gzipBytes: gzipped(onnx),
      npzBytes: q.toNpz().length,
    });
    q.dispose();
    console.error(`${name} ${label} done`);
  }
  model.dispose();
}

const kb = (n: number) => (n / 1024).toLocaleString("en-US", { maximumFractionDigits: 0 });
const table = [
  "| model | export | weight bits (avg) | .onnx KiB | vs float | .onnx gzipped KiB | .npz KiB |",
  "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
  ...rows.map((r) => {
    const float = rows.find((f) => f.model === r.model && f.export === "float")!;
    return `| ${r.model} | ${r.export} | ${
      r.averageWeightBits === 32 ? "32" : r.averageWeightBits.toFixed(2)
    } | ${kb(r.onnxBytes)} | ${(r.onnxBytes / float.onnxBytes).toFixed(3)}× | ${kb(r.gzipBytes)} | ${
      r.npzBytes === undefined ? "" : kb(r.npzBytes)
    } |`;
  }),
];
console.log(table.join("\n"));
Deno.writeTextFileSync(out, JSON.stringify(rows, null, 2) + "\n");
