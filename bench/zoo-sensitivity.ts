// Which layers and activations of a zoo model cost its output the most: each
// layer's weights alone rounded to nearest at --weight-bits (its own searched
// per-channel scales), and each activation quantizer alone at
// --activation-bits (steps as quantize sets them, from the calibration
// samples), each scored by the SNR of the model's first output against float
// on a few evaluation samples. Prints the worst of each, worst first.
//   deno task bench:zoo-sensitivity --model mlsd_tiny_320 [--weight-bits 8] [--activation-bits 8]
//     [--calibration 32] [--eval 4] [--top 8]
import { init, loadModel, QuantizationRun } from "../mod.ts";
import type { Graph } from "../src/graph/ir.ts";
import { planLayerBits } from "../src/quant/layers.ts";
import { nearestWeight, outputsOf, withWeight } from "../src/quant/mixed-plan.ts";
import { resolveOptions } from "../src/quant/options.ts";
import { quantizedGraph } from "../src/quant/qgraph.ts";
import { flagValue, selectModels, zooDir } from "../zoo/manifest.ts";
import { lineImages } from "./zoo-cell.ts";

const args = Deno.args;
const number = (name: string, fallback: number) => Number(flagValue(args, name) ?? fallback);
const weightBits = number("weight-bits", 8), activationBits = number("activation-bits", 8);
const top = number("top", 8);
const model = selectModels(["--only", flagValue(args, "model") ?? "mlsd_tiny_320"])[0];
const input = model.inputs[0];

await init();
const m = loadModel(await Deno.readFile(`${zooDir(flagValue(args, "dir"))}/${model.file}`));
const calibration = lineImages(input, 0, number("calibration", 32)).input;
const evaluation = lineImages(input, 2000, number("eval", 4)).input;

/** The graph's first output on the evaluation samples. */
const outputOf = (graph: Graph) => outputsOf(graph, evaluation).data as Float32Array;

const float = outputOf(m.graph);
function snrDb(y: Float32Array): number {
  let signal = 0, noise = 0;
  for (let i = 0; i < float.length; i++) signal += float[i] ** 2, noise += (y[i] - float[i]) ** 2;
  return 10 * Math.log10(signal / noise);
}

function printWorst(title: string, rows: [number, string][]): void {
  console.log(`\n${title}: ${rows.length}, the ${Math.min(top, rows.length)} worst\n`);
  console.log("| output SNR | where |\n| ---: | --- |");
  for (const [snr, what] of rows.sort((a, b) => a[0] - b[0]).slice(0, top)) {
    console.log(`| ${snr.toFixed(1)} dB | ${what} |`);
  }
}

const o = resolveOptions({ weightBits, activationBits: 32 });
const layers = planLayerBits(m.graph, o).layers;
printWorst(
  `${model.name}, each layer's weights alone at ${weightBits} bits (nearest)`,
  layers.map((l) => [
    snrDb(outputOf(withWeight(m.graph, l.layer.weight, nearestWeight(l, weightBits, o)))),
    `${l.name} (${l.layer.node.opType} ${l.layer.weightShape.join("×")})`,
  ]),
);

const run = await QuantizationRun.prepare(m, calibration, {
  weightBits,
  activationBits,
  exportForm: "exact",
  threads: 1,
});
await run.calibrate();
printWorst(
  `${model.name}, each activation quantizer alone at ${activationBits} bits`,
  // The run's activation quantizers are private to it; read here only to measure them one by one.
  run["acts"].map((a) => [
    snrDb(outputOf(quantizedGraph(m.graph, new Map(), [a]))),
    `${a.tensor} (step ${a.step.toPrecision(3)})`,
  ]),
);
