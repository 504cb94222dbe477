// The quantized model as ONNX in QDQ form (SPEC §7), for onnxruntime.
//
// The graph is the original model's, as the quantizer saw it: BatchNorm
// folded into the Conv/Gemm before it (the folded weights are what was
// quantized), dead nodes dropped, and raised to the opset the Q/DQ ops need
// (13 for per-channel DequantizeLinear, 21 when a 4-bit type is used, 25
// when a 2-bit one is; see ./opset.ts). Graph inputs, outputs, their names and the model's metadata
// stay; the method, bits per layer and settings are added to metadata_props.
//
// Two forms, as the model was quantized (QuantizeOptions.exportForm, see
// src/quant/deploy.ts). The deploy form is onnxruntime's usual QDQ layout,
// which its QDQ transformers fuse into integer kernels (QLinearConv, QGemm,
// MatMulIntegerToFloat, QLinearAdd, …): weights as int8 (any width up to 8
// bits; onnxruntime's CPU kernels take no 4-bit Conv weight; 8-bit signed
// grids as uint8 with zero point 128, see weightShift), each quantized
// activation as QuantizeLinear → DequantizeLinear (uint8) read by every
// consumer, biases as int32 on the grid input scale × weight scale feeding a
// DequantizeLinear. The rest of this comment is the exact form, for widths
// no runtime executes natively.
//
// Weights: the integer levels q of each quantized weight, in the weight's own
// layout, feeding DequantizeLinear(q, scale, zero_point, axis = output-channel
// axis), whose output keeps the weight's name. Signed grids (symmetric
// weights) are stored as int8, int4 at 3 and 4 bits, int2 at 2 bits (opset
// 25; onnxruntime 1.30 runs DequantizeLinear on it); unsigned grids
// (asymmetric weights) as uint8, uint4 or uint2. So 2-, 4- and 8-bit weights
// take 2, 4 and 8 bits in the file; 3 bits take 4, and 5 to 7 take 8
// (src/quant/mixed.ts counts them so). Every level of a b-bit grid fits its
// container, so DequantizeLinear gives back exactly the library's weights:
// (q − z)·s in float32 is how both compute them. A weight held in a Constant
// node is quantized where it stands: the Constant then holds the integers.
//
// Activations: at each tensor the library quantizes (the data input of a
// quantized layer), QuantizeLinear → DequantizeLinear → Clip with the learned
// step s and zero point z, read by the quantized layers only (other
// consumers, such as a residual Add, read the float tensor, as in the
// simulated model). Containers: a 4-bit grid (levels 0…15, or −8…7) uses
// uint4 (int4), an 8-bit grid uint8 (int8); onnxruntime has no 2-, 3-, 5-,
// 6- or 7-bit type, so those grids use the 8-bit type. So does a 4-bit grid
// on a tensor that a data-movement op (MaxPool, Reshape, Slice, …) produces:
// onnxruntime's optimizer moves the Q/DQ pair up across such ops and runs
// them on the integers, and MaxPool and most others have no 4-bit kernel
// ("Type 'tensor(uint4)' of input parameter … of operator (MaxPool) … is
// invalid" at session creation, onnxruntime 1.30). And so does a 4-bit grid
// on the output of a Relu or Clip: onnxruntime folds those into the
// QuantizeLinear after them, and its Clip rule knows only 8-bit zero points
// ("Unexpected data type for QuantizeLinear input y_zero_point of 21" at
// session creation, onnxruntime-node and -web 1.30, on MobileNetV2's ReLU6).
//
// The Clip(min = (qmin − z)·s, max = (qmax − z)·s), bounds in float32, gives
// the library's grid exactly in any container: clamping the level to
// [qmin, qmax] and clamping its dequantized value to those bounds give the
// same float32 value, because (q − z)·s is monotonic in q. It stays on full
// 4- and 8-bit grids too, where it changes no value, because it also keeps
// the layer's float bias as it is: onnxruntime's WeightBiasQuantization
// (optimization level "basic" and up) rounds the float bias of a Conv, Gemm
// or ConvTranspose whose input comes straight from a DequantizeLinear to
// int32 on the grid input scale × weight scale. That moves the outputs by up
// to half a bias step per channel, which the library's model does not do;
// measured on resnet18_fmnist W2A4 (20 iterations, 2,000 test images), the
// arg-max then agreed with the library's on 78 % of the images, against 100 %
// with the Clip. Together with round-half-to-even in QuantizeLinear (which the
// library's quantizers also use) and x / s as a float32 division in both,
// the exported activations take exactly the library's levels.
//
// Biases stay float, and the layers run in float on the dequantized values,
// as in the simulated model (no QLinearConv-style integer kernels, which
// would requantize with an int32 bias and their own rounding). For the same
// reason a 2-D weight quantized along its last axis (MatMul, Gemm with
// transB = 0) passes through a Clip to its own smallest and largest value,
// which changes nothing: onnxruntime (extended level) otherwise turns
// DequantizeLinear → MatMul into MatMulNBits, whose default accuracy level 4
// quantizes the activations to int8 on the fly (outputs off by ~1e-2 on a
// small test model, against 3e-8 with the Clip).
import { AttnroundError } from "../errors.ts";
import { graphFromModel } from "../graph/from-onnx.ts";
import {
  type AttributeValue,
  type Graph,
  isOnnxDomain,
  isOnnxOp,
  type Node,
  topologicalOrder,
} from "../graph/ir.ts";
import { prepareGraph } from "../graph/passes.ts";
import { encodeModel } from "../onnx/codec.ts";
import { tensorToProto } from "../onnx/tensor-proto.ts";
import {
  type AttributeProto,
  AttributeType,
  type ModelProto,
  type NodeProto,
  type StringStringEntryProto,
  type TensorProto,
} from "../onnx/types.ts";
import type { ActivationQuantizer } from "../quant/layers.ts";
import type { Model } from "../model.ts";
import type { QuantizeOptions } from "../quant/options.ts";
import type { QuantizedModel, QuantizedWeight } from "../quant/quantized-model.ts";
import { type DType, Tensor } from "../tensor.ts";
import { Names } from "./names.ts";
import { upgradeOpset } from "./opset.ts";
import { attributeProto, nodeProto } from "./proto.ts";

/** Opset of per-axis DequantizeLinear, of the int4/uint4 types and of int2/uint2. */
const PER_AXIS_OPSET = 13, INT4_OPSET = 21, INT2_OPSET = 25;
/** Lowest IR version that goes with an opset (onnx/helper.py VERSION_TABLE). */
const IR_VERSION_FOR_OPSET: [number, bigint][] = [[25, 12n], [21, 10n], [19, 9n], [15, 8n], [13, 7n]];

/** Metadata keys the export writes (an existing entry with the same key is replaced). */
export const METADATA_KEYS = {
  method: "attnround.method",
  weightBits: "attnround.weight_bits",
  activationBits: "attnround.activation_bits",
  settings: "attnround.settings",
} as const;

/** Attributes whose numbers are FLOAT(S) when the export adds them to a node. */
const FLOAT_ATTRIBUTES = new Set([
  "alpha",
  "beta",
  "gamma",
  "epsilon",
  "momentum",
  "bias",
  "lambd",
  "ratio",
  "min",
  "max",
  "value",
  "scale",
  "spatial_scale",
  "extrapolation_value",
  "cubic_coeff_a",
  "threshold",
]);

type IntType = "int8" | "uint8" | "int4" | "uint4" | "int2" | "uint2";

const RANGES: Record<IntType, [number, number]> = {
  int2: [-2, 1],
  uint2: [0, 3],
  int4: [-8, 7],
  uint4: [0, 15],
  int8: [-128, 127],
  uint8: [0, 255],
};

/** The smallest ONNX integer type holding the levels [qmin, qmax] (4-bit only for 4-bit grids when `exact4`). */
function containerOf(qmin: number, qmax: number, exact4: boolean, allow4 = true): IntType | undefined {
  const signed = qmin < 0;
  const four: IntType = signed ? "int4" : "uint4", eight: IntType = signed ? "int8" : "uint8";
  const fits = (t: IntType) => qmin >= RANGES[t][0] && qmax <= RANGES[t][1];
  const full = (t: IntType) => qmin === RANGES[t][0] && qmax === RANGES[t][1];
  if (allow4 && (exact4 ? full(four) : fits(four))) return four;
  return fits(eight) ? eight : undefined;
}

/**
 * Deploy form: what a signed weight grid's levels and zero points are shifted
 * by, 128 for grids reaching beyond ±64 (8-bit), stored as uint8 then. On
 * x86-64 CPUs without VNNI (AVX2, plain AVX-512), onnxruntime's uint8 × int8
 * kernels add two adjacent products in int16 (vpmaddubsw), which saturates
 * once 255·(|w₁| + |w₂|) passes 32,767: an 8-bit model's outputs there came
 * out at 19–25 dB SNR against `q.run`. Its uint8 × uint8 kernels do not
 * saturate, and (q + 128) − (z + 128) is the same level. Grids within ±64
 * cannot saturate and stay int8.
 */
function weightShift(w: QuantizedWeight, deploy: boolean): number {
  return deploy && w.qmin < -64 ? 128 : 0;
}

/** Weights: int2/uint2 for 2-bit grids and int4/uint4 for 3- and 4-bit ones (exact form), int8/uint8 above. */
function weightType(w: QuantizedWeight, deploy: boolean): IntType {
  if (weightShift(w, deploy)) return "uint8";
  const two: IntType = w.qmin < 0 ? "int2" : "uint2";
  if (!deploy && w.qmin >= RANGES[two][0] && w.qmax <= RANGES[two][1]) return two;
  const t = containerOf(w.qmin, w.qmax, false, !deploy);
  if (!t) {
    throw new AttnroundError(
      "UNSUPPORTED_MODEL",
      `layer "${w.layer}": weight levels [${w.qmin}, ${w.qmax}] fit no 8-bit ONNX type`,
    );
  }
  return t;
}

/**
 * Ops that onnxruntime's QDQ optimizer runs on quantized integers when a Q/DQ
 * pair follows them (QDQ propagation and its drop-Q/DQ rules).
 */
const RUN_ON_INTEGERS = new Set([
  "MaxPool",
  "Reshape",
  "Flatten",
  "Transpose",
  "Squeeze",
  "Unsqueeze",
  "Gather",
  "GatherElements",
  "Slice",
  "Split",
  "Expand",
  "Tile",
  "Resize",
  "Upsample",
  "SpaceToDepth",
  "DepthToSpace",
  "Identity",
]);

/** Ops that onnxruntime folds into a QuantizeLinear right after them, for 8-bit types only. */
const FOLDED_INTO_QUANTIZE = new Set(["Relu", "Clip"]);

/** Activations: a 4-bit type for 4-bit grids (unless `allow4` is false), else an 8-bit one. */
function activationType(a: ActivationQuantizer, allow4 = true): IntType {
  const type = containerOf(a.qmin, a.qmax, true, allow4);
  if (!type) {
    throw new AttnroundError(
      "UNSUPPORTED_MODEL",
      `activation "${a.tensor}": levels [${a.qmin}, ${a.qmax}] fit no 8-bit ONNX type`,
    );
  }
  return type;
}

/** `values` + `shift` as a tensor of `type`. */
function intTensor(values: ArrayLike<number>, shape: readonly number[], type: IntType, shift = 0): Tensor {
  const shifted = (v: number) => v + shift;
  const data = type.startsWith("int") ? Int8Array.from(values, shifted) : Uint8Array.from(values, shifted);
  return new Tensor(data, shape, type as DType);
}

function isQuantizedLayer(n: Node): boolean {
  return isOnnxOp(n, "Conv", "ConvTranspose", "Gemm", "MatMul");
}

function newNode(
  name: string,
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: Record<string, AttributeValue> = {},
): Node {
  return { name, opType, domain: "", inputs, outputs, attributes: new Map(Object.entries(attributes)) };
}

/** The float model's graph as the quantizer saw it, each node tied to the NodeProto it came from. */
interface SourceGraph {
  graph: Graph;
  origin: Map<Node, NodeProto>;
  /** Each original node's attributes as decoded, to tell which ones the export changed. */
  attributes: Map<Node, Map<string, AttributeValue>>;
  /** The decoded initializers, to tell which ones the export changed. */
  initializers: Map<string, Tensor>;
}

function sourceGraph(proto: ModelProto): SourceGraph {
  const graph = graphFromModel(proto);
  const origin = new Map(graph.nodes.map((n, i) => [n, proto.graph.node[i]]));
  const attributes = new Map(graph.nodes.map((n) => [n, new Map(n.attributes)]));
  const initializers = new Map(graph.initializers);
  prepareGraph(graph);
  return { graph, origin, attributes, initializers };
}

class QdqBuilder {
  private readonly names: Names;
  private readonly deploy: boolean;
  /** Nodes to place right after a tensor's producer (or first, for graph inputs and constants). */
  private readonly after = new Map<string, Node[]>();
  private readonly first: Node[] = [];
  constructor(
    private readonly q: QuantizedModel,
    private readonly weights: QuantizedWeight[],
    private readonly src: SourceGraph,
  ) {
    this.names = new Names(src.graph);
    this.deploy = q.report.settings.exportForm === "deploy";
  }

  private get graph(): Graph {
    return this.src.graph;
  }

  private place(tensor: string, nodes: Node[]): void {
    const producer = this.graph.nodes.find((n) => n.outputs.includes(tensor));
    if (!producer) this.first.push(...nodes);
    else this.after.set(tensor, [...(this.after.get(tensor) ?? []), ...nodes]);
  }

  build(): Graph {
    const { graph } = this;
    for (const w of this.weights) {
      const node = graph.nodes.find((n) => n.name === w.layer);
      if (!node || node.inputs[1] !== w.weight) {
        throw new AttnroundError(
          "INTERNAL",
          `layer "${w.layer}" reading "${w.weight}" is not in the model's graph`,
        );
      }
    }
    const needs2 = this.weights.some((w) => weightType(w, this.deploy).endsWith("2"));
    const needs4 = this.weights.some((w) => weightType(w, this.deploy).endsWith("4")) ||
      this.q.activations.some((a) => this.activationType(a).endsWith("4"));
    upgradeOpset(graph, needs2 ? INT2_OPSET : needs4 ? INT4_OPSET : PER_AXIS_OPSET, this.names);
    const done = new Set<string>();
    for (const w of this.weights) {
      if (w.correctedBias) this.correctBias(w);
      if (w.bias) this.quantizeBias(w);
      if (done.has(w.weight)) continue;
      done.add(w.weight);
      this.quantizeWeight(w);
    }
    const present = new Set([...graph.nodes.flatMap((n) => n.outputs), ...graph.inputs.map((i) => i.name)]);
    for (const a of this.q.activations) if (present.has(a.tensor)) this.quantizeActivation(a);
    const nodes: Node[] = [...this.first];
    for (const n of graph.nodes) {
      nodes.push(n);
      for (const out of n.outputs) nodes.push(...(this.after.get(out) ?? []));
    }
    graph.nodes = nodes;
    graph.nodes = topologicalOrder(graph);
    return graph;
  }

  private quantizeWeight(w: QuantizedWeight): void {
    const { graph, names } = this;
    const name = w.weight;
    const type = weightType(w, this.deploy), shift = weightShift(w, this.deploy);
    const levels = intTensor(w.levels, w.shape, type, shift);
    const scale = new Tensor(Float32Array.from(w.scale), [w.scale.length]);
    const zero = intTensor(w.zero, [w.zero.length], type, shift);
    const qName = names.fresh(`${name}_quantized`);
    const sName = names.fresh(`${name}_scale`), zName = names.fresh(`${name}_zero_point`);
    // Exact form: a MatMul-style weight [k, m] gets a Clip to its own range after the DequantizeLinear (see above).
    const matmulLike = !this.deploy && w.shape.length === 2 && w.axis === 1;
    const dqOut = matmulLike ? names.fresh(`${name}_dequantized`) : name;
    const dq = newNode(names.fresh(`${name}_DequantizeLinear`), "DequantizeLinear", [qName, sName, zName], [
      dqOut,
    ], {
      axis: w.axis,
    });
    const nodes = [dq];
    if (matmulLike) {
      const lo = names.fresh(`${name}_min`), hi = names.fresh(`${name}_max`);
      graph.initializers.set(lo, new Tensor(new Float32Array([w.range[0]]), []));
      graph.initializers.set(hi, new Tensor(new Float32Array([w.range[1]]), []));
      nodes.push(newNode(names.fresh(`${name}_Clip`), "Clip", [dqOut, lo, hi], [name]));
    }
    if (graph.initializers.has(name)) {
      graph.initializers.delete(name);
      graph.initializers.set(qName, levels);
      graph.initializers.set(sName, scale);
      graph.initializers.set(zName, zero);
      this.first.push(...nodes);
      return;
    }
    const constant = graph.nodes.find((n) => isOnnxOp(n, "Constant") && n.outputs[0] === name);
    if (!constant) {
      throw new AttnroundError("INTERNAL", `weight "${name}" is neither an initializer nor a Constant node`);
    }
    constant.outputs = [qName];
    constant.attributes.set("value", levels);
    this.after.set(qName, [
      newNode(names.fresh(`${name}_scale_Constant`), "Constant", [], [sName], { value: scale }),
      newNode(names.fresh(`${name}_zero_point_Constant`), "Constant", [], [zName], { value: zero }),
      ...nodes,
    ]);
  }

  private activationType(a: ActivationQuantizer): IntType {
    const producer = this.graph.nodes.find((n) => n.outputs.includes(a.tensor));
    const eightBitOnly = producer && isOnnxDomain(producer) &&
      (RUN_ON_INTEGERS.has(producer.opType) || FOLDED_INTO_QUANTIZE.has(producer.opType));
    return activationType(a, !eightBitOnly);
  }

  /** biasCorrection: the layer's float bias takes its corrected values, where it stands. */
  private correctBias(w: QuantizedWeight): void {
    const { graph } = this;
    const { name, values } = w.correctedBias!;
    const t = new Tensor(values, [values.length]);
    if (graph.initializers.has(name)) {
      graph.initializers.set(name, t);
      return;
    }
    const constant = graph.nodes.find((n) => isOnnxOp(n, "Constant") && n.outputs[0] === name);
    if (!constant) {
      throw new AttnroundError("INTERNAL", `bias "${name}" is neither an initializer nor a Constant node`);
    }
    constant.attributes.set("value", t);
  }

  /** Deploy form: the layer reads its bias as int32 levels through a DequantizeLinear (axis 0). */
  private quantizeBias(w: QuantizedWeight): void {
    const { graph, names } = this;
    const { name, levels, scale } = w.bias!;
    const layer = graph.nodes.find((n) => n.name === w.layer)!;
    const qName = names.fresh(`${name}_quantized`), sName = names.fresh(`${name}_scale`);
    const out = names.fresh(`${name}_dequantized`);
    graph.initializers.set(qName, new Tensor(levels, [levels.length], "int32"));
    graph.initializers.set(sName, new Tensor(scale, [scale.length]));
    layer.inputs = [layer.inputs[0], layer.inputs[1], out, ...layer.inputs.slice(3)];
    this.first.push(
      newNode(names.fresh(`${name}_DequantizeLinear`), "DequantizeLinear", [qName, sName], [out], {
        axis: 0,
      }),
    );
    // The float bias goes when nothing else reads it.
    if (!graph.nodes.some((n) => n.inputs.includes(name))) {
      graph.initializers.delete(name);
      graph.nodes = graph.nodes.filter((n) => !(n.opType === "Constant" && n.outputs[0] === name));
    }
  }

  private quantizeActivation(a: ActivationQuantizer): void {
    if (this.deploy) return this.quantizeActivationDeploy(a);
    const { graph, names } = this;
    const type = this.activationType(a);
    const t = a.tensor;
    const sName = names.fresh(`${t}_scale`), zName = names.fresh(`${t}_zero_point`);
    graph.initializers.set(sName, new Tensor(new Float32Array([a.step]), []));
    graph.initializers.set(zName, intTensor([a.zero], [], type));
    const qName = names.fresh(`${t}_quantized`), dqName = names.fresh(`${t}_dequantized`);
    // float32 bounds computed as the library computes a level's value: (q − z)·s.
    const step = Math.fround(a.step);
    const lo = names.fresh(`${t}_clip_min`), hi = names.fresh(`${t}_clip_max`);
    graph.initializers.set(lo, new Tensor(new Float32Array([(a.qmin - a.zero) * step]), []));
    graph.initializers.set(hi, new Tensor(new Float32Array([(a.qmax - a.zero) * step]), []));
    const out = names.fresh(`${t}_clipped`);
    const nodes = [
      newNode(names.fresh(`${t}_QuantizeLinear`), "QuantizeLinear", [t, sName, zName], [qName]),
      newNode(names.fresh(`${t}_DequantizeLinear`), "DequantizeLinear", [qName, sName, zName], [dqName]),
      newNode(names.fresh(`${t}_Clip`), "Clip", [dqName, lo, hi], [out]),
    ];
    for (const n of graph.nodes) {
      if (isQuantizedLayer(n) && n.inputs[0] === t) n.inputs = [out, ...n.inputs.slice(1)];
    }
    this.place(t, nodes);
  }

  /** Deploy form: QuantizeLinear → DequantizeLinear (uint8), read by every consumer of the tensor. */
  private quantizeActivationDeploy(a: ActivationQuantizer): void {
    const { graph, names } = this;
    const t = a.tensor;
    const sName = names.fresh(`${t}_scale`), zName = names.fresh(`${t}_zero_point`);
    graph.initializers.set(sName, new Tensor(new Float32Array([a.step]), []));
    graph.initializers.set(zName, intTensor([a.zero], [], activationType(a)));
    const qName = names.fresh(`${t}_quantized`), dqName = names.fresh(`${t}_dequantized`);
    for (const n of graph.nodes) {
      if (n.inputs.includes(t)) n.inputs = n.inputs.map((i) => (i === t ? dqName : i));
    }
    this.place(t, [
      newNode(names.fresh(`${t}_QuantizeLinear`), "QuantizeLinear", [t, sName, zName], [qName]),
      newNode(names.fresh(`${t}_DequantizeLinear`), "DequantizeLinear", [qName, sName, zName], [dqName]),
    ]);
  }
}

function numberType(original: number): number | undefined {
  return original === AttributeType.FLOAT || original === AttributeType.FLOATS ||
      original === AttributeType.INT || original === AttributeType.INTS
    ? original
    : undefined;
}

function hint(name: string, value: AttributeValue): number | undefined {
  if (!FLOAT_ATTRIBUTES.has(name)) return undefined;
  return Array.isArray(value) ? AttributeType.FLOATS : AttributeType.FLOAT;
}

/** A node as a NodeProto: an original node keeps its proto, with what the export changed re-encoded. */
function encodeNode(node: Node, src: SourceGraph): NodeProto {
  const original = src.origin.get(node);
  if (!original) {
    const attributes = [...node.attributes].map(([name, v]) => attributeProto(name, v, hint(name, v)));
    return nodeProto(node.opType, node.name, node.inputs, node.outputs, attributes, node.domain);
  }
  const decoded = src.attributes.get(node)!;
  const attribute: AttributeProto[] = [];
  for (const a of original.attribute) {
    if (!decoded.has(a.name)) attribute.push(a); // not read into the IR (e.g. a subgraph): kept as it was
    else if (node.attributes.has(a.name)) {
      const v = node.attributes.get(a.name)!;
      attribute.push(v === decoded.get(a.name) ? a : attributeProto(a.name, v, numberType(a.type)));
    }
  }
  for (const [name, v] of node.attributes) {
    if (!original.attribute.some((a) => a.name === name)) {
      attribute.push(attributeProto(name, v, hint(name, v)));
    }
  }
  // The name as loadModel made it unique (a duplicate gets a suffix).
  return {
    ...original,
    name: node.name,
    input: node.inputs,
    output: node.outputs,
    opType: node.opType,
    attribute,
  };
}

function metadata(q: QuantizedModel, weights: QuantizedWeight[]): StringStringEntryProto[] {
  const { settings } = q.report;
  const entry = (key: string, value: unknown): StringStringEntryProto => ({
    key,
    value: typeof value === "string" ? value : JSON.stringify(value),
  });
  return [
    entry(METADATA_KEYS.method, settings.rounding),
    entry(METADATA_KEYS.weightBits, Object.fromEntries(weights.map((w) => [w.layer, w.bits]))),
    entry(METADATA_KEYS.activationBits, Object.fromEntries(q.activations.map((a) => [a.tensor, a.bits]))),
    entry(METADATA_KEYS.settings, settings),
  ];
}

/** The oldest opset the export converts from (README, "Export"): older ops changed in ways it does not rewrite. */
const OLDEST_OPSET = 9;

/**
 * Throws what qdqModel would throw for a model quantized with options `o`,
 * before the run: a default opset older than the export converts, or a node
 * the opset conversion refuses (tried on a copy of the graph, to 21 when a
 * 4-bit type may be needed).
 */
export function checkQdq(model: Model, o: QuantizeOptions): void {
  const opset = model.graph.opset;
  if (opset < OLDEST_OPSET) {
    throw new AttnroundError(
      "UNSUPPORTED_MODEL",
      `the model imports opset ${opset}; the export converts models from opset ${OLDEST_OPSET} on: ` +
        `export the float model at a newer opset first`,
    );
  }
  const fourBit = o.weightBits <= 4 || o.activationBits === 4 ||
    (o.mixedPrecision?.candidates ?? []).some((b) => b <= 4) ||
    Object.values(o.layers).some((l) => (l.weightBits ?? 8) <= 4 || l.activationBits === 4);
  const { graph } = sourceGraph(model.proto);
  // Opsets 22 to 25 need no rewrite, so 21 stands for them.
  upgradeOpset(graph, fourBit ? INT4_OPSET : PER_AXIS_OPSET, new Names(graph));
}

/** The QDQ ModelProto of a quantized model. */
export function qdqModel(q: QuantizedModel): ModelProto {
  const proto = q.float.proto;
  const src = sourceGraph(proto);
  const weights = q.quantizedWeights();
  const graph = new QdqBuilder(q, weights, src).build();

  const initializerProtos = new Map(proto.graph.initializer.map((t) => [t.name, t]));
  const initializer: TensorProto[] = [...graph.initializers].map(([name, t]) =>
    t === src.initializers.get(name) ? initializerProtos.get(name)! : tensorToProto(name, t)
  );
  const inputs = new Set(graph.inputs.map((i) => i.name));
  const unchanged = (name: string) =>
    graph.initializers.has(name) && graph.initializers.get(name) === src.initializers.get(name);
  const produced = new Set(graph.nodes.flatMap((n) => n.outputs));
  const opset = graph.opset;
  const irVersion = IR_VERSION_FOR_OPSET.find(([o]) => opset >= o)?.[1] ?? proto.irVersion;
  const ours = new Set<string>(Object.values(METADATA_KEYS));
  const opsetImport = proto.opsetImport.some((o) => o.domain === "" || o.domain === "ai.onnx")
    ? proto.opsetImport.map((o) => (o.domain === "" || o.domain === "ai.onnx" ? { ...o, version: opset } : o))
    : [...proto.opsetImport, { domain: "", version: opset }];
  return {
    ...proto,
    irVersion: irVersion > proto.irVersion ? irVersion : proto.irVersion,
    opsetImport,
    metadataProps: [...proto.metadataProps.filter((e) => !ours.has(e.key)), ...metadata(q, weights)],
    graph: {
      ...proto.graph,
      node: graph.nodes.map((n) => encodeNode(n, src)),
      initializer,
      // Initializers listed as inputs (older exporters) stay listed only while unchanged.
      input: proto.graph.input.filter((v) => inputs.has(v.name) || unchanged(v.name)),
      valueInfo: proto.graph.valueInfo.filter((v) => produced.has(v.name)),
    },
  };
}

/** The QDQ model's bytes. */
export function qdqBytes(q: QuantizedModel): Uint8Array {
  return encodeModel(qdqModel(q));
}
