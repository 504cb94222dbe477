// The result of quantize(): runs the simulated-quantized graph on the same
// engine, and carries the integer weights (for export) and the report.
import { Engine } from "../engine/engine.ts";
import { AttnroundError } from "../errors.ts";
import type { Graph } from "../graph/ir.ts";
import { checkFeeds, inputShapeError, type Model, runBatchedChecked } from "../model.ts";
import type { BatchedRunOptions } from "../engine/parallel/batched.ts";
import { fromRows } from "../layout.ts";
import type { Feeds, GraphRunner } from "../engine/parallel/pool.ts";
import { Tensor } from "../tensor.ts";
import type { ActivationQuantizer, WeightQuantizer } from "./layers.ts";
import {
  type BitsSource,
  defaultEpsilonRule,
  describeEpsilonRule,
  layerStoredBytes,
  type MixedAllocation,
} from "./mixed.ts";
import { biasLevels, layerBias } from "./deploy.ts";
import { type QuantizeOptions, type QuantizeSettings, settingsOf } from "./options.ts";

export interface Fidelity {
  /** Held-back calibration samples compared. */
  samples: number;
  /** Fraction of samples whose arg-max output matches the float model's (outputs [N, C] only). */
  top1Agreement?: number;
  /** 10·log10(Σ y² / Σ (y − ŷ)²) over all outputs, in dB. */
  snrDb: number;
  /** Mean KL(softmax(y) ‖ softmax(ŷ)) per sample (outputs [N, C] only). */
  klDivergence?: number;
  /** False when the quantized model departs badly from the float one (agreement < 0.8 or SNR < 6 dB). */
  ok: boolean;
}

export interface LayerReport {
  name: string;
  kind: string;
  weight: string;
  shape: number[];
  weightBits: number;
  /** Where weightBits came from: uniform setting, first/last-layer convention, override, or mixed precision. */
  bitsFrom: BitsSource;
  parameters: number;
  /** Bytes the export stores for the weight: levels and zero points in their ONNX type, float32 scales. */
  storedBytes: number;
  /** Lossy coding length of the float weight in bits (ε rule in `codingLengthEpsilon`), and per weight (ρ). */
  codingLength: number;
  codingLengthPerWeight: number;
  scale: { min: number; max: number; mean: number };
  /** ‖ŵ − w‖ / ‖w‖ with round-to-nearest and with the final rounding. */
  weightError: { nearest: number; final: number };
}

export interface QuantizationReport {
  settings: QuantizeSettings;
  layers: LayerReport[];
  activations: { tensor: string; bits: number; step: number; zero: number }[];
  blocks: { index: number; layers: string[]; losses: number[]; lossEvery: number; msPerIteration: number }[];
  fidelity?: Fidelity;
  /** How ε of the coding lengths scales with each layer. */
  codingLengthEpsilon: string;
  /**
   * With mixedPrecision: the budget covers only the layers the allocation set
   * (bitsFrom "mixed"); the first and last layer (8 bits) and overridden ones
   * do not count in it. The criterion, the budget in bytes, and each of those
   * layers' bits, stored bytes and cost of every candidate (for
   * "sensitivity", the output-loss increase), with their average bits.
   */
  mixedPrecision?: MixedAllocation & {
    firstLastInBudget: false;
    budgetLayers: number;
    budgetParameters: number;
    /** Σ b·P / Σ P over the allocated layers. */
    achievedAverageBits: number;
  };
  /** quantizedWeightBytes: what the export stores for every quantized weight (levels, zero points, scales). */
  totals: { parameters: number; floatBytes: number; quantizedWeightBytes: number; seconds: number };
  /**
   * Memory: the activation caches (block inputs and targets, outside the wasm
   * heap) at their largest, and the wasm heap (which never shrinks, so this is
   * its peak) when the run ended.
   */
  memory: {
    peakCacheBytes: number;
    wasmHeapBytes: number;
    /** Most samples in one forward run, and in one training run (a larger mini-batch is split into shards). */
    forwardSamples: number;
    trainingSamples: number;
    /** Whether the model's batch is fixed to 1 and could not be freed, so it ran one sample at a time. */
    sampleBySample: boolean;
  };
}

/** A quantized weight as the export writes it: plain data, levels in the weight's own layout. */
export interface QuantizedWeight {
  /** The layer's node name and the weight tensor it reads. */
  layer: string;
  weight: string;
  /** The layer's data input (where its activation quantizer sits, if any). */
  input: string;
  shape: number[];
  /** The axis of `shape` the per-channel scales and zero points run along. */
  axis: number;
  bits: number;
  qmin: number;
  qmax: number;
  /** round(ŵ/s) + z, in [qmin, qmax]. */
  levels: Int32Array;
  scale: Float32Array;
  zero: Float32Array;
  /** The smallest and largest value of the quantized weight s·(q − z). */
  range: [number, number];
  /** Deploy form: the layer's bias as int32 levels on the grid s_x·s_w[c] (one per output channel). */
  bias?: { name: string; levels: Int32Array; scale: Float32Array };
  /** With biasCorrection: the layer's corrected float bias, which replaces its own. */
  correctedBias?: { name: string; values: Float32Array };
}

/** Writers of a quantized model's files; src/export registers them (it depends on quant, not the reverse). */
export interface Exporters {
  onnx(q: QuantizedModel): Uint8Array;
  npz(q: QuantizedModel): Uint8Array;
  /** Throws what onnx() would throw for this model and these options, so that it fails before the run. */
  check(model: Model, o: QuantizeOptions): void;
}

let exporters: Exporters | undefined;

export function registerExporters(e: Exporters): void {
  exporters = e;
}

/** Fails now if the quantized model could not be exported (a conversion the export cannot make). */
export function checkExport(model: Model, o: QuantizeOptions): void {
  exporters?.check(model, o);
}

function exporter(): Exporters {
  if (!exporters) {
    throw new AttnroundError("NOT_INITIALIZED", "no exporters: import the library through mod.ts");
  }
  return exporters;
}

/**
 * Bytes of the ONNX file a model quantized with these weights, activation
 * quantizers and settings exports (the values do not change the size).
 */
export function exportedSize(
  float: Model,
  weights: WeightQuantizer[],
  activations: ActivationQuantizer[],
  settings: QuantizeSettings,
): number {
  const rows = new Map(weights.map((q) => [q.layer.weight, q.rows]));
  const q = new QuantizedModel(float, float.graph, weights, rows, activations);
  q.report = { settings } as QuantizationReport;
  return exporter().onnx(q).length;
}

export class QuantizedModel {
  report!: QuantizationReport;
  private engineOf?: Engine;
  private disposed = false;

  /** @internal quantize() builds it; the fields are the library's own. */
  constructor(
    /** @internal */
    readonly float: Model,
    /** @internal */
    readonly graph: Graph,
    /** @internal */
    readonly weights: WeightQuantizer[],
    /** Final fake-quantized weights, rows layout, by weight name. */
    /** @internal */
    readonly finalRows: Map<string, Float32Array>,
    /** @internal */
    readonly activations: ActivationQuantizer[],
    /** The corrected layers' float biases (biasCorrection), by bias name. */
    /** @internal */
    readonly biases: Map<string, Float32Array> = new Map(),
  ) {}

  /** The engine of the simulated graph, made on first use. */
  private get engine(): Engine {
    return this.engineOf ??= new Engine(this.graph);
  }

  /** The simulated-quantized forward pass. */
  run(feeds: Record<string, Tensor>): Record<string, Tensor> {
    if (this.disposed) throw new AttnroundError("INVALID_ARGUMENT", "the quantized model was disposed");
    checkFeeds(this.graph.inputs, feeds);
    try {
      return this.engine.run(feeds);
    } catch (e) {
      throw inputShapeError(this.graph.inputs, feeds, e);
    }
  }

  /** The simulated-quantized forward pass over many samples, as Model.runBatched. */
  runBatched(
    feeds: Record<string, Tensor>,
    options: BatchedRunOptions = {},
  ): Promise<Record<string, Tensor>> {
    return runBatchedChecked(this.graph, this.disposed, "the quantized model was disposed", feeds, options);
  }

  /** Each quantized weight as export writes it: integer levels in the weight's own layout. */
  quantizedWeights(): QuantizedWeight[] {
    const deploy = this.report.settings.exportForm === "deploy";
    return this.weights.map((q) => {
      const rows = this.finalRows.get(q.layer.weight)!;
      const m = q.rowsShape[0], k = rows.length / m;
      const levels = new Int32Array(rows.length);
      for (let r = 0; r < m; r++) {
        for (let i = r * k; i < (r + 1) * k; i++) {
          levels[i] = Math.round(rows[i] / q.scale[r]) + q.zero[r];
          if (!(levels[i] >= q.qmin && levels[i] <= q.qmax)) {
            throw new AttnroundError(
              "INTERNAL",
              `layer "${q.layer.name}": level ${levels[i]} at ${i} lies outside [${q.qmin}, ${q.qmax}]`,
            );
          }
        }
      }
      return {
        layer: q.layer.name,
        weight: q.layer.weight,
        input: q.layer.node.inputs[0],
        shape: q.layer.weightShape,
        axis: q.layer.channelAxis,
        bits: q.bits,
        qmin: q.qmin,
        qmax: q.qmax,
        levels: fromRows(levels, q.layer.weightShape, q.layer.channelAxis),
        scale: q.scale,
        zero: q.zero,
        range: [rows.reduce((a, b) => Math.min(a, b)), rows.reduce((a, b) => Math.max(a, b))],
        bias: deploy ? this.biasLevels(q) : undefined,
        correctedBias: this.correctedBias(q),
      };
    });
  }

  private correctedBias(q: WeightQuantizer): QuantizedWeight["correctedBias"] {
    const name = layerBias(this.float.graph, q)?.name ?? "";
    const values = this.biases.get(name);
    return values && { name, values };
  }

  private biasLevels(q: WeightQuantizer): QuantizedWeight["bias"] {
    const input = this.activations.find((a) => a.tensor === q.layer.node.inputs[0]);
    const bias = layerBias(this.float.graph, q);
    if (!input || !bias) return undefined;
    const { levels, scale } = biasLevels(this.biases.get(bias.name) ?? bias.values, input.step, q.scale);
    return { name: bias.name, levels, scale };
  }

  /**
   * The model as ONNX in QDQ form for onnxruntime: integer weights (int8,
   * int4 at 3 and 4 bits, int2 at 2) with per-channel scales feeding
   * DequantizeLinear, activations as QuantizeLinear → DequantizeLinear pairs.
   */
  toOnnx(): Uint8Array {
    return exporter().onnx(this);
  }

  /** Integer weights, scales and zero points per layer, as an .npz that numpy.load reads. */
  toNpz(): Uint8Array {
    return exporter().npz(this);
  }

  dispose(): void {
    this.disposed = true;
    this.engineOf?.dispose();
  }

  /** @internal */
  buildReport(
    o: QuantizeOptions,
    blocks: QuantizationReport["blocks"],
    fidelity: Fidelity | undefined,
    seconds: number,
    memory: QuantizationReport["memory"],
    mixed?: MixedAllocation,
  ): QuantizationReport {
    const settings = settingsOf(o);
    const deploy = o.exportForm === "deploy";
    const layers = this.weights.map((q): LayerReport => {
      const rows = this.finalRows.get(q.layer.weight)!;
      const m = q.rowsShape[0], k = rows.length / m;
      let norm = 0, finalErr = 0, nearestErr = 0;
      for (let r = 0; r < m; r++) {
        const s = q.scale[r], z = q.zero[r];
        for (let i = r * k; i < (r + 1) * k; i++) {
          const w = q.rows[i];
          const nearest = s * (Math.min(Math.max(Math.round(w / s) + z, q.qmin), q.qmax) - z);
          norm += w * w;
          finalErr += (rows[i] - w) ** 2;
          nearestErr += (nearest - w) ** 2;
        }
      }
      const rel = (e: number) => (norm > 0 ? Math.sqrt(e / norm) : 0);
      return {
        name: q.layer.name,
        kind: q.layer.kind,
        weight: q.layer.weight,
        shape: q.layer.weightShape,
        weightBits: q.bits,
        bitsFrom: q.bitsSource,
        parameters: rows.length,
        storedBytes: layerStoredBytes(rows.length, m, q.bits, deploy),
        codingLength: q.codingLength,
        codingLengthPerWeight: q.codingLengthPerWeight,
        scale: {
          min: Math.min(...q.scale),
          max: Math.max(...q.scale),
          mean: q.scale.reduce((a, b) => a + b, 0) / q.scale.length,
        },
        weightError: { nearest: rel(nearestErr), final: rel(finalErr) },
      };
    });
    const parameters = layers.reduce((a, l) => a + l.parameters, 0);
    const budget = layers.filter((l) => l.bitsFrom === "mixed");
    const budgetParameters = budget.reduce((a, l) => a + l.parameters, 0);
    return {
      settings,
      layers,
      activations: this.activations.map((a) => ({
        tensor: a.tensor,
        bits: a.bits,
        step: a.step,
        zero: a.zero,
      })),
      blocks,
      fidelity,
      codingLengthEpsilon: describeEpsilonRule(defaultEpsilonRule),
      mixedPrecision: mixed && {
        ...mixed,
        firstLastInBudget: false,
        budgetLayers: budget.length,
        budgetParameters,
        achievedAverageBits: budgetParameters
          ? budget.reduce((a, l) => a + l.weightBits * l.parameters, 0) / budgetParameters
          : 0,
      },
      totals: {
        parameters,
        floatBytes: parameters * 4,
        quantizedWeightBytes: layers.reduce((a, l) => a + l.storedBytes, 0),
        seconds,
      },
      memory,
    };
  }
}

function softmax(row: Float32Array): Float64Array {
  const max = Math.max(...row);
  const e = Float64Array.from(row, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** Parts the fidelity check's samples are split into, whatever the threads, so that they spread over them. */
const FIDELITY_PARTS = 8;

/** Compares the quantized graph with the float graph on held-back samples, at most `most` per run. */
export async function measureFidelity(
  runner: GraphRunner,
  float: Graph,
  quantized: Graph,
  held: Tensor,
  most: number,
): Promise<Fidelity> {
  const inputName = float.inputs[0].name, outName = float.outputs[0].name;
  const n = held.shape[0];
  const per = held.size / n;
  const chunk = Math.max(1, Math.min(most, Math.ceil(n / FIDELITY_PARTS)));
  // The jobs of each model's runs: their buffers move to the workers, so each run gets its own.
  const jobs = (): Feeds[] =>
    Array.from({ length: Math.ceil(n / chunk) }, (_, j) => {
      const start = j * chunk, count = Math.min(chunk, n - start);
      const x = (held.data as Float32Array).slice(start * per, (start + count) * per);
      return { [inputName]: new Tensor(x, [count, ...held.shape.slice(1)]) };
    });
  let signal = 0, noise = 0, agree = 0, kl = 0;
  let classes = 0;
  const floatHandle = await runner.load(float), quantHandle = await runner.load(quantized);
  try {
    const ys = runner.run(floatHandle, {}, jobs(), [outName]),
      yqs = runner.run(quantHandle, {}, jobs(), [outName]);
    for (let j = 0; j < ys.length; j++) {
      const y = (await ys[j])[outName], yq = (await yqs[j])[outName];
      const count = y.shape[0];
      const a = y.data as Float32Array, b = yq.data as Float32Array;
      for (let i = 0; i < a.length; i++) {
        signal += a[i] * a[i];
        noise += (a[i] - b[i]) ** 2;
      }
      if (y.shape.length === 2 && y.shape[1] > 1) {
        classes = y.shape[1];
        for (let r = 0; r < count; r++) {
          const ra = a.subarray(r * classes, (r + 1) * classes),
            rb = b.subarray(r * classes, (r + 1) * classes);
          if (ra.indexOf(Math.max(...ra)) === rb.indexOf(Math.max(...rb))) agree++;
          const p = softmax(ra), q = softmax(rb);
          for (let c = 0; c < classes; c++) if (p[c] > 0) kl += p[c] * Math.log(p[c] / Math.max(q[c], 1e-30));
        }
      }
    }
  } finally {
    runner.unload(floatHandle);
    runner.unload(quantHandle);
  }
  // Capped so that the report stays JSON (identical outputs would give +Infinity).
  const snrDb = noise > 0 ? Math.min(10 * Math.log10(signal / noise), 200) : 200;
  const top1Agreement = classes ? agree / n : undefined;
  return {
    samples: n,
    top1Agreement,
    snrDb,
    klDivergence: classes ? kl / n : undefined,
    ok: snrDb >= 6 && (top1Agreement === undefined || top1Agreement >= 0.8),
  };
}
