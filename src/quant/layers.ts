// What gets quantized and how: every quantizable layer's weight (bits, level
// range, per-channel scales from the Lp search, in "rows" layout: channel axis
// first) and every activation quantizer (at the data input of a quantized layer).
// Conventions (SPEC §3): first and last layer's weights at 8 bits, the first
// layer's input at 8 bits; per-layer overrides win. With mixedPrecision the
// other layers' bits come from the allocation (mixed.ts, mixed-plan.ts).
import { AttnroundError } from "../errors.ts";
import { attrTensor, type Graph, isOnnxOp } from "../graph/ir.ts";
import { WasmBuffer } from "../kernels/memory.ts";
import { quantLevels, searchWeightScales } from "../kernels/quant.ts";
import { Tensor } from "../tensor.ts";
import {
  type BitsSource,
  defaultEpsilonRule,
  type EpsilonRule,
  layerCodingLength,
  planBits,
} from "./mixed.ts";
import type { QuantizeOptions } from "./options.ts";
import { type QuantizableLayer, quantizableLayers } from "../graph/partition.ts";
import { toRows, toRowsPerm } from "../layout.ts";

export interface WeightQuantizer {
  layer: QuantizableLayer;
  bits: number;
  symmetric: boolean;
  qmin: number;
  qmax: number;
  /** The float weight in rows layout [rows, k]: channel axis moved first. */
  rows: Float32Array;
  rowsShape: number[];
  /** Per-row scale and zero point. */
  scale: Float32Array;
  zero: Float32Array;
  /** Lossy coding length of the float weight (rows as samples) in bits, and per weight. */
  codingLength: number;
  codingLengthPerWeight: number;
  /** Where `bits` came from: the uniform setting, the first/last-layer convention, an override or the mixed-precision allocation. */
  bitsSource: BitsSource;
  /** The model's first quantizable layer, whose input (the model input) is quantized at 8 bits. */
  firstLayer: boolean;
}

export interface ActivationQuantizer {
  /** The tensor quantized (a quantized layer's data input). */
  tensor: string;
  bits: number;
  qmin: number;
  qmax: number;
  zero: number;
  /** The step; initialised by the Lp search, learned with LSQ. */
  step: number;
  /**
   * Deploy form: the range of the Relu or Clip folded into this quantizer
   * (its step is capped so that it represents nothing outside it; deploy.ts).
   */
  bounds?: [number, number];
}

/** The weight tensor a layer reads: an initializer or a Constant node's value. */
export function weightValue(graph: Graph, name: string): Tensor {
  const init = graph.initializers.get(name);
  if (init) return init;
  const constant = graph.nodes.find((n) => isOnnxOp(n, "Constant") && n.outputs[0] === name);
  const value = constant && attrTensor(constant, "value");
  if (!value) {
    throw new AttnroundError(
      "INVALID_MODEL",
      `weight "${name}" is neither an initializer nor a Constant node`,
    );
  }
  return value;
}

/** A layer's float weight in rows layout (channel axis first) and that layout's shape. */
export function layerRows(
  graph: Graph,
  layer: QuantizableLayer,
): { rows: Float32Array; rowsShape: number[] } {
  const w = weightValue(graph, layer.weight);
  const perm = toRowsPerm(layer.weightShape.length, layer.channelAxis);
  return {
    rows: toRows(w.data as Float32Array, layer.weightShape, layer.channelAxis),
    rowsShape: perm.map((p) => layer.weightShape[p]),
  };
}

/** Every quantizable layer with its rows and coding length (ε by `rule`), in graph order. */
export function measureLayers(graph: Graph, rule: EpsilonRule = defaultEpsilonRule) {
  return quantizableLayers(graph).map((layer) => {
    const { rows, rowsShape } = layerRows(graph, layer);
    const what = `layer "${layer.name}" (weight "${layer.weight}")`;
    const coding = layerCodingLength(rows, rowsShape[0], what, rule);
    return {
      layer,
      rows,
      rowsShape,
      ...coding,
      key: `${layer.name}\u0000${layer.weight}`,
      name: layer.name,
      parameters: rows.length,
    };
  });
}

/** A glob over node names: `*` any run of characters, `?` one. */
function globPattern(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`, "s");
}

/**
 * Whether each layer (in graph order) is quantized under `exclude` and
 * `opTypes`; an `exclude` entry that matches no layer is an error.
 */
export function selectLayers(
  layers: readonly QuantizableLayer[],
  o: Pick<QuantizeOptions, "exclude" | "opTypes">,
): boolean[] {
  const keep = layers.map((l) => o.opTypes === undefined || o.opTypes.includes(l.kind));
  for (const entry of o.exclude ?? []) {
    const pattern = globPattern(entry);
    let matched = false;
    layers.forEach((l, i) => {
      if (l.name === entry || l.kind === entry || pattern.test(l.name)) keep[i] = false, matched = true;
    });
    if (!matched) {
      const names = layers.map((l) => l.name);
      throw new AttnroundError(
        "INVALID_ARGUMENT",
        `exclude: "${entry}" matches no quantizable layer's name or op type (its layers: ${
          names.slice(0, 8).map((n) => `"${n}"`).join(", ")
        }${names.length > 8 ? ", …" : ""})`,
      );
    }
  }
  return keep;
}

export type MeasuredLayer = ReturnType<typeof measureLayers>[number];

/**
 * The layers quantize() quantizes (in graph order), each with its bits and
 * where they come from; with mixedPrecision, `allocated` gives the bits of
 * the layers the allocation sets, by name.
 */
export function planLayerBits(
  graph: Graph,
  o: QuantizeOptions,
  allocated?: ReadonlyMap<string, number>,
): { layers: MeasuredLayer[]; bits: number[]; source: BitsSource[]; first?: QuantizableLayer } {
  const all = measureLayers(graph);
  const keep = selectLayers(all.map((m) => m.layer), o);
  // Layers left in float are fixed outside any mixed-precision budget, then dropped.
  const fixed = { ...o.layers };
  all.forEach((m, i) => {
    if (!keep[i] && !Object.hasOwn(fixed, m.name)) fixed[m.name] = { weightBits: 8 };
  });
  const plan = planBits(all, { ...o, layers: fixed }, allocated);
  return {
    layers: all.filter((_, i) => keep[i]),
    bits: plan.bits.filter((_, i) => keep[i]),
    source: plan.source.filter((_, i) => keep[i]),
    first: all[0]?.layer,
  };
}

/** Per-row scales and zero points of a weight in rows layout at `bits` (Lp search; one for all rows if not per channel). */
export function searchScales(
  rows: Float32Array,
  m: number,
  bits: number,
  o: Pick<QuantizeOptions, "symmetricWeights" | "perChannelWeights">,
): { scale: Float32Array; zero: Float32Array } {
  const k = rows.length / m;
  const pw = WasmBuffer.from(rows), ps = new WasmBuffer(m), pz = new WasmBuffer(m);
  try {
    if (o.perChannelWeights === false) {
      // One scale and zero point for the whole weight, searched over all of it, repeated per channel.
      searchWeightScales(pw.ptr, 1, m * k, bits, o.symmetricWeights, ps.ptr, pz.ptr);
      const [one, z] = [ps.read()[0], pz.read()[0]];
      return { scale: new Float32Array(m).fill(one), zero: new Float32Array(m).fill(z) };
    }
    searchWeightScales(pw.ptr, m, k, bits, o.symmetricWeights, ps.ptr, pz.ptr);
    return { scale: ps.read(), zero: pz.read() };
  } finally {
    pw.dispose(), ps.dispose(), pz.dispose();
  }
}

export function planWeightQuantizers(
  graph: Graph,
  o: QuantizeOptions,
  allocated?: ReadonlyMap<string, number>,
): WeightQuantizer[] {
  const plan = planLayerBits(graph, o, allocated);
  return plan.layers.map(({ layer, rows, rowsShape, codingLength, codingLengthPerWeight }, index) => {
    const bits = plan.bits[index];
    const { qmin, qmax } = quantLevels(bits, o.symmetricWeights);
    const { scale, zero } = searchScales(rows, rowsShape[0], bits, o);
    return {
      layer,
      bits,
      symmetric: o.symmetricWeights,
      qmin,
      qmax,
      rows,
      rowsShape,
      scale,
      zero,
      codingLength,
      codingLengthPerWeight,
      bitsSource: plan.source[index],
      firstLayer: layer === plan.first,
    };
  });
}

/** One quantizer per distinct data input of a quantized layer (the widest bits asked for it win). */
export function planActivationQuantizers(
  weights: WeightQuantizer[],
  o: QuantizeOptions,
): ActivationQuantizer[] {
  const byTensor = new Map<string, ActivationQuantizer>();
  weights.forEach((wq) => {
    const bits = o.layers[wq.layer.name]?.activationBits ?? (wq.firstLayer ? 8 : o.activationBits);
    if (bits >= 32) return;
    const tensor = wq.layer.node.inputs[0];
    const existing = byTensor.get(tensor);
    if (existing && existing.bits >= bits) return;
    const { qmin, qmax } = quantLevels(bits, false);
    byTensor.set(tensor, { tensor, bits, qmin, qmax, zero: 0, step: 1 });
  });
  return [...byTensor.values()];
}
