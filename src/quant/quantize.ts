// quantize(): calibration data → weight and activation quantizers → block by
// block reconstruction (float targets, quantized inputs) → a QuantizedModel
// that runs the simulated-quantized graph, with a report and a fidelity check.
import { Engine } from "../engine/engine.ts";
import { WasmValue } from "../engine/value.ts";
import { AttnroundError } from "../errors.ts";
import type { Graph } from "../graph/ir.ts";
import { fakeQuantNearest, searchActivationScale } from "../kernels/quant.ts";
import type { Model } from "../model.ts";
import { Tensor } from "../tensor.ts";
import { alloc, f32, free } from "../wasm.ts";
import { ActivationCache } from "./cache.ts";
import { type CalibrationInput, type CalibrationSet, collectCalibration } from "./calibration.ts";
import {
  type ActivationQuantizer,
  inversePerm,
  permute,
  planActivationQuantizers,
  planWeightQuantizers,
  toRowsPerm,
  type WeightQuantizer,
} from "./layers.ts";
import { type QuantizeOptions, resolveOptions } from "./options.ts";
import { partitionBlocks } from "./partition.ts";
import { quantizedGraph } from "./qgraph.ts";
import "./ops.ts";
import { reconstructBlock } from "./reconstruct.ts";
import { blockGraph } from "./subgraph.ts";
import {
  type Fidelity,
  measureFidelity,
  type QuantizationReport,
  QuantizedModel,
} from "./quantized-model.ts";

/** Samples used to initialise the activation steps. */
const STEP_INIT_SAMPLES = 256;
/** Samples per forward pass while filling caches. */
const CHUNK = 64;

function runChunks(engine: Engine, inputName: string, source: ActivationCache, sink: ActivationCache): void {
  const staging = alloc(Math.min(CHUNK, source.length) * source.sampleSize * 4);
  try {
    for (let start = 0; start < source.length; start += CHUNK) {
      const n = Math.min(CHUNK, source.length - start);
      source.gather(Array.from({ length: n }, (_, i) => start + i), staging);
      const out = engine.runInPlace({ [inputName]: new WasmValue(staging, [n, ...source.sampleShape]) });
      const v = Object.values(out)[0] as WasmValue;
      sink.write(start, { ptr: v.ptr, length: v.size });
    }
  } finally {
    free(staging);
  }
}

/** Steps of the activation quantizers from the float model's activations (Lp search). */
function initActivationSteps(graph: Graph, acts: ActivationQuantizer[], calib: CalibrationSet): void {
  if (acts.length === 0) return;
  const engine = new Engine({ ...graph, outputs: acts.map((a) => ({ name: a.tensor })) });
  try {
    const count = Math.min(STEP_INIT_SAMPLES, calib.count);
    const sampleSize = calib.data.length / calib.count;
    const collected = acts.map(() => [] as Float32Array[]);
    for (let start = 0; start < count; start += CHUNK) {
      const n = Math.min(CHUNK, count - start);
      const input = new Tensor(calib.data.subarray(start * sampleSize, (start + n) * sampleSize), [
        n,
        ...calib.sampleShape,
      ]);
      const out = engine.run({ [graph.inputs[0].name]: input });
      acts.forEach((a, i) => collected[i].push(out[a.tensor].data as Float32Array));
    }
    acts.forEach((a, i) => {
      const total = collected[i].reduce((s, c) => s + c.length, 0);
      const ptr = alloc(total * 4);
      try {
        let offset = 0;
        for (const c of collected[i]) {
          f32(ptr + offset * 4, c.length).set(c);
          offset += c.length;
        }
        const q = searchActivationScale(ptr, total, a.bits);
        Object.assign(a, { step: q.scale, zero: q.zero, qmin: q.qmin, qmax: q.qmax });
      } finally {
        free(ptr);
      }
    });
  } finally {
    engine.dispose();
  }
}

function nearestRows(q: WeightQuantizer): Float32Array {
  const m = q.rowsShape[0], size = q.rows.length;
  const w = alloc(size * 4), s = alloc(m * 4), z = alloc(m * 4);
  try {
    f32(w, size).set(q.rows);
    f32(s, m).set(q.scale);
    f32(z, m).set(q.zero);
    fakeQuantNearest(w, m, size / m, s, z, q.qmin, q.qmax, w);
    return f32(w, size).slice();
  } finally {
    free(w), free(s), free(z);
  }
}

export async function quantize(
  model: Model,
  calibration: CalibrationInput,
  options: Partial<QuantizeOptions> = {},
): Promise<QuantizedModel> {
  const o = resolveOptions(options);
  const started = performance.now();
  const graph = model.graph;
  if (graph.inputs.length !== 1) {
    throw new AttnroundError(
      "UNSUPPORTED_MODEL",
      `quantize supports models with one input; this one has ${graph.inputs.length}`,
    );
  }
  const input = graph.inputs[0];
  const calib = await collectCalibration(calibration, input);
  const holdout = Math.min(o.holdout, Math.floor(calib.count / 4));
  const trainCount = calib.count - holdout;
  const sampleSize = calib.data.length / calib.count;

  const weights = planWeightQuantizers(graph, o);
  const acts = planActivationQuantizers(weights, o);
  o.onProgress?.({ phase: "calibrate" });
  initActivationSteps(graph, acts, calib);

  const blocks = partitionBlocks(graph);
  const finalRows = new Map<string, Float32Array>();
  const blockReports: QuantizationReport["blocks"] = [];
  let floatIn = new ActivationCache(calib.sampleShape, trainCount);
  floatIn.write(0, calib.data.subarray(0, trainCount * sampleSize));
  let quantIn = floatIn;
  try {
    for (const block of blocks) {
      if (o.signal?.aborted) {
        throw new AttnroundError("ABORTED", `quantization aborted before block ${block.index + 1}`);
      }
      if (block.inputs.length !== 1 || block.outputs.length !== 1) {
        throw new AttnroundError(
          "UNSUPPORTED_MODEL",
          `block ${
            block.index + 1
          } has ${block.inputs.length} inputs and ${block.outputs.length} outputs; reconstruction needs one of each`,
        );
      }
      const bg = blockGraph(graph, block);
      const layersHere = weights.filter((q) => block.nodes.includes(q.layer.node));
      const actsHere = acts.filter((a) =>
        block.nodes.some((n) => n.inputs[0] === a.tensor && layersHere.some((l) => l.layer.node === n))
      );
      const floatEngine = new Engine(bg);
      const probe = floatEngine.run({
        [block.inputs[0]]: new Tensor(new Float32Array(floatIn.sampleSize), [
          1,
          ...floatIn.sampleShape,
        ]),
      });
      const targets = new ActivationCache(probe[block.outputs[0]].shape.slice(1), trainCount);
      runChunks(floatEngine, block.inputs[0], floatIn, targets);
      floatEngine.dispose();

      let result: ReturnType<typeof reconstructBlock> | undefined;
      if (o.rounding !== "nearest" && o.iterations > 0 && (layersHere.length > 0 || actsHere.length > 0)) {
        result = reconstructBlock({
          block: bg,
          blockIndex: block.index,
          blocks: blocks.length,
          layers: layersHere,
          acts: actsHere,
          inputs: quantIn,
          targets,
          options: o,
        });
      }
      const blockWeights = new Map<string, Tensor>();
      for (const q of layersHere) {
        const rows = result?.weights.get(q.layer.weight) ?? nearestRows(q);
        finalRows.set(q.layer.weight, rows);
        const back = inversePerm(toRowsPerm(q.layer.weightShape.length, q.layer.channelAxis));
        blockWeights.set(q.layer.weight, new Tensor(permute(rows, q.rowsShape, back), q.layer.weightShape));
      }
      const quantEngine = new Engine(quantizedGraph(bg, blockWeights, actsHere));
      const quantOut = new ActivationCache(targets.sampleShape, trainCount);
      runChunks(quantEngine, block.inputs[0], quantIn, quantOut);
      quantEngine.dispose();
      blockReports.push({
        index: block.index,
        layers: layersHere.map((q) => q.layer.name),
        losses: result?.losses ?? [],
        lossEvery: result?.lossEvery ?? 1,
        msPerIteration: result?.msPerIteration ?? 0,
      });
      if (quantIn !== floatIn) quantIn.dispose();
      floatIn.dispose();
      floatIn = targets;
      quantIn = quantOut;
    }
  } finally {
    if (quantIn !== floatIn) quantIn.dispose();
    floatIn.dispose();
  }

  const finalWeights = new Map<string, Tensor>();
  for (const q of weights) {
    const back = inversePerm(toRowsPerm(q.layer.weightShape.length, q.layer.channelAxis));
    finalWeights.set(
      q.layer.weight,
      new Tensor(permute(finalRows.get(q.layer.weight)!, q.rowsShape, back), q.layer.weightShape),
    );
  }
  const quantized = new QuantizedModel(
    model,
    quantizedGraph(graph, finalWeights, acts),
    weights,
    finalRows,
    acts,
  );
  let fidelity: Fidelity | undefined;
  if (holdout > 0) {
    o.onProgress?.({ phase: "evaluate" });
    const held = new Tensor(calib.data.slice(trainCount * sampleSize), [holdout, ...calib.sampleShape]);
    fidelity = measureFidelity(model, quantized, input.name, held);
  }
  quantized.report = quantized.buildReport(o, blockReports, fidelity, (performance.now() - started) / 1000);
  return quantized;
}
