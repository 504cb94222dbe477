// The deployment form (SPEC §7): the QDQ layout onnxruntime runs with integer
// kernels, and the arithmetic of those kernels, for the simulated model
// (q.run) and for reconstruction.
//
// Quantizer positions. Besides the input of every quantized layer, each
// Conv's output is quantized: onnxruntime turns DequantizeLinear → Conv →
// QuantizeLinear into QLinearConv only when a QuantizeLinear follows the Conv.
// Not a head's, though (a Conv whose output reaches no quantized layer): it
// stays float, as the model's outputs do, and runs as a float Conv.
// A Relu or Clip that alone reads the Conv's output is folded in as
// onnxruntime folds it: the quantizer sits after it and its range stays
// within the Relu's or Clip's (the step is capped), so the runtime drops the
// Relu or Clip and the quantizer's clamp does its work. Gemm and MatMul need
// no output quantizer: onnxruntime runs them on integers with a float output
// (QGemm, MatMulIntegerToFloat). Every consumer of a quantized tensor reads
// it quantized (a residual Add too), as in any QDQ graph.
//
// Arithmetic. A bias is int32 on the grid s_x·s_w[c] of its layer's input and
// weight scales, as the runtime holds it. A layer with a quantized input runs
// on integers, acc = Σ (q_x − z_x)·q_w + q_b, which float32 holds exactly
// while |acc| < 2^24; a Conv with an output quantizer then gives
// q_y = clamp(round_half_even(acc·M[c]) + z_y) with M[c] = s_x·s_w[c] / s_y
// in float32, as QLinearConv computes it (MlasRequantizeOutput), and a Gemm
// or MatMul gives acc·(s_x·s_w[c]). The simulated graph (integerGraph) does
// the same with float ops on integer values, so export and q.run agree to the
// last bit on those layers. An Add of two quantized tensors of one shape,
// quantized itself, becomes QLinearAdd, whose float arithmetic differs
// between runtimes and platforms; q.run follows onnxruntime's x86-64 kernel
// (AVX2, as onnxruntime-node runs it here: runtimeAdd), from which the ONNX
// formula lands one level away now and then, and a deep network carries
// such a one-level flip on to its outputs. What remains apart is the
// float arithmetic of other ops (pooling, other platforms' Add).
// Reconstruction trains on the fake-quantized float form of the same model,
// with the biases rounded (QuantizeBias); the two differ by float rounding.
import { attrFloat, consumers, type Graph, isOnnxDomain, type Node, producers } from "../graph/ir.ts";
import { quantLevels, roundHalfEven } from "../kernels/quant.ts";
import { fromRows } from "../layout.ts";
import { Tensor } from "../tensor.ts";
import type { ActivationQuantizer, WeightQuantizer } from "./layers.ts";
import { TRAINING_DOMAIN } from "../engine/registry.ts";

const INT32_MAX = 2147483647;

function constantTensor(graph: Graph, name: string | undefined): Tensor | undefined {
  if (!name) return undefined;
  const init = graph.initializers.get(name);
  if (init) return init;
  const constant = graph.nodes.find((n) => n.opType === "Constant" && n.outputs[0] === name);
  const value = constant?.attributes.get("value");
  return value && typeof value === "object" && "dtype" in value ? value as Tensor : undefined;
}

function constantScalar(graph: Graph, name: string | undefined, fallback: number): number | undefined {
  if (!name) return fallback;
  const t = constantTensor(graph, name);
  return t && t.size === 1 ? Number(t.data[0]) : undefined;
}

/** The Relu or Clip (constant bounds) that is the only reader of `tensor`, with its range. */
export function foldedActivation(
  graph: Graph,
  tensor: string,
): { node: Node; bounds: [number, number] } | undefined {
  const readers = consumers(graph, tensor);
  if (readers.length !== 1 || graph.outputs.some((o) => o.name === tensor)) return undefined;
  const node = readers[0];
  if (!isOnnxDomain(node) || node.inputs[0] !== tensor) return undefined;
  if (node.opType === "Relu") return { node, bounds: [0, Infinity] };
  if (node.opType !== "Clip") return undefined;
  const lo = graph.opset < 11
    ? attrFloat(node, "min", -Infinity)
    : constantScalar(graph, node.inputs[1], -Infinity);
  const hi = graph.opset < 11
    ? attrFloat(node, "max", Infinity)
    : constantScalar(graph, node.inputs[2], Infinity);
  return lo === undefined || hi === undefined ? undefined : { node, bounds: [lo, hi] };
}

/**
 * The largest step at which a quantizer with zero point `zero` represents
 * only values inside `bounds` (float32, as the runtime checks it), so that a
 * Relu or Clip before it changes nothing; undefined when no step does.
 */
export function foldedStepCap(a: ActivationQuantizer): number | undefined {
  if (!a.bounds) return Infinity;
  const [lo, hi] = a.bounds;
  // Lowest and highest value: (qmin − z)·s ≥ lo and (qmax − z)·s ≤ hi.
  const below = a.zero - a.qmin, above = a.qmax - a.zero;
  if (lo > 0 || hi < 0 || (below > 0 && lo === 0) || (above > 0 && hi === 0)) return undefined;
  let cap = Infinity;
  if (below > 0 && lo > -Infinity) cap = largestStep(-lo, below);
  if (above > 0 && hi < Infinity) cap = Math.min(cap, largestStep(hi, above));
  return cap > 0 ? cap : undefined;
}

/** The largest float32 s with fround(s·levels) ≤ limit. */
function largestStep(limit: number, levels: number): number {
  const view = new Float32Array(1), bits = new Uint32Array(view.buffer);
  view[0] = limit / levels;
  while (view[0] > 0 && Math.fround(view[0] * levels) > limit) bits[0]--;
  return view[0];
}

/**
 * Adds the deploy form's output quantizers (8-bit) to `acts`: one after each
 * Conv, or after the Relu or Clip that alone reads it (recording the range
 * it folds in). None on a graph output, where the runtime fuses none, and
 * none on a head whose output reaches no quantized layer: there 8 bits would
 * only coarsen what the model returns (a detector's score map, whose peaks
 * an Equal against MaxPool picks, gains ties), and the runtime runs that one
 * Conv in float.
 */
export function planOutputQuantizers(
  graph: Graph,
  weights: WeightQuantizer[],
  acts: ActivationQuantizer[],
): void {
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const feeding = feedingLayers(graph, weights);
  for (const w of weights) {
    if (w.layer.kind !== "Conv") continue;
    const conv = w.layer.node.outputs[0];
    const folded = foldedActivation(graph, conv);
    const tensor = folded ? folded.node.outputs[0] : conv;
    if (outputs.has(conv) || outputs.has(tensor) || !feeding.has(tensor)) continue;
    let a = acts.find((x) => x.tensor === tensor);
    if (!a) {
      a = { tensor, bits: 8, ...quantLevels(8, false), zero: 0, step: 1 };
      acts.push(a);
    }
    if (folded) a.bounds = folded.bounds;
  }
}

/** The tensors some quantized layer reads, directly or through other nodes. */
function feedingLayers(graph: Graph, weights: WeightQuantizer[]): Set<string> {
  const producerOf = producers(graph);
  const seen = new Set<string>();
  const pending = weights.flatMap((w) => w.layer.node.inputs);
  while (pending.length > 0) {
    const tensor = pending.pop()!;
    if (seen.has(tensor)) continue;
    seen.add(tensor);
    pending.push(...(producerOf.get(tensor)?.inputs ?? []));
  }
  return seen;
}

/** A layer's constant bias: Conv's and ConvTranspose's input 2, Gemm's C (beta 1), one value per output channel. */
export function layerBias(
  graph: Graph,
  q: WeightQuantizer,
): { name: string; values: Float32Array } | undefined {
  const node = q.layer.node;
  if (q.layer.kind === "MatMul") return undefined;
  const name = node.inputs[2];
  const t = constantTensor(graph, name);
  const perChannel = t?.dtype === "float32" && t.shape.length === 1 && t.size === q.layer.m;
  if (!t || !perChannel || q.scale.length !== t.size) return undefined;
  if (q.layer.kind === "Gemm" && attrFloat(node, "beta", 1) !== 1) return undefined;
  return { name, values: t.data as Float32Array };
}

/**
 * A bias as int32 levels on the grid s_x·s_w[c] (float32 products), and the
 * float32 values those levels stand for.
 */
export function biasLevels(
  bias: ArrayLike<number>,
  inputStep: number,
  weightScale: ArrayLike<number>,
): { levels: Int32Array; scale: Float32Array; values: Float32Array } {
  const n = bias.length;
  const levels = new Int32Array(n), scale = new Float32Array(n), values = new Float32Array(n);
  for (let c = 0; c < n; c++) {
    scale[c] = Math.fround(Math.fround(inputStep) * weightScale[c]);
    const q = roundHalfEven(Math.fround(bias[c] / scale[c]));
    levels[c] = Math.min(Math.max(q, -INT32_MAX - 1), INT32_MAX);
    values[c] = Math.fround(levels[c] * scale[c]);
  }
  return { levels, scale, values };
}

function node(
  name: string,
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: [string, unknown][] = [],
  domain = "",
): Node {
  return { name, opType, domain, inputs, outputs, attributes: new Map(attributes) as Node["attributes"] };
}

/** (level − zero) of each weight, as float32, in the weight's own layout. */
function weightLevels(q: WeightQuantizer, rows: Float32Array): Float32Array {
  const m = q.rowsShape[0], k = rows.length / m;
  const levels = new Float32Array(rows.length);
  for (let r = 0; r < m; r++) {
    for (let i = r * k; i < (r + 1) * k; i++) levels[i] = roundHalfEven(Math.fround(rows[i] / q.scale[r]));
  }
  return fromRows(levels, q.layer.weightShape, q.layer.channelAxis) as Float32Array;
}

/**
 * The deploy form's layers with their runtime arithmetic, on the simulated
 * graph before its activation quantizers are inserted (those then feed the
 * Div → Round that recover each input's integer levels): layers whose input
 * is quantized run on integers as described above; the others (ConvTranspose,
 * a Conv whose output is not quantized) keep float arithmetic with the
 * rounded bias. `rows` holds each layer's final weights (rows layout).
 */
export function integerGraph(
  graph: Graph,
  layers: WeightQuantizer[],
  rows: Map<string, Float32Array>,
  acts: ActivationQuantizer[],
): Graph {
  const byTensor = new Map(acts.map((a) => [a.tensor, a]));
  const initializers = new Map(graph.initializers);
  const replaced = new Map<Node, Node[]>();
  const levelsOf = new Set<string>();
  for (const q of layers) {
    const n = q.layer.node;
    const input = byTensor.get(n.inputs[0]);
    if (!input || !graph.nodes.includes(n)) continue;
    const bias = layerBias(graph, q);
    const b = bias && biasLevels(bias.values, input.step, q.scale);
    const out = outputQuantizer(graph, q, byTensor);
    const gemmLike = q.layer.kind === "Gemm" && attrFloat(n, "alpha", 1) === 1;
    const biasKnown = !n.inputs[2] || b !== undefined;
    if (!biasKnown || !(out || q.layer.kind === "MatMul" || gemmLike)) {
      // Float arithmetic, rounded bias.
      if (b) {
        initializers.set(`${n.name}:bias`, new Tensor(b.values, [b.values.length]));
        replaced.set(n, [{ ...n, inputs: [n.inputs[0], n.inputs[1], `${n.name}:bias`] }]);
      }
      continue;
    }
    const x = n.inputs[0], xLevels = `${x}:levels`;
    const nodes: Node[] = [];
    if (!levelsOf.has(x)) {
      levelsOf.add(x);
      initializers.set(`${x}:input_step`, new Tensor(new Float32Array([input.step]), [1]));
      nodes.push(
        node(`${x}:to_levels`, "Div", [x, `${x}:input_step`], [`${x}:divided`]),
        node(`${x}:round`, "Round", [`${x}:divided`], [xLevels]),
      );
    }
    const w = `${n.name}:weight_levels`;
    initializers.set(w, new Tensor(weightLevels(q, rows.get(q.layer.weight)!), q.layer.weightShape));
    const inputs = [xLevels, w];
    if (b) {
      initializers.set(`${n.name}:bias_levels`, new Tensor(Float32Array.from(b.levels), [b.levels.length]));
      inputs.push(`${n.name}:bias_levels`);
    }
    nodes.push({ ...n, inputs, outputs: [`${n.name}:acc`] });
    // Per output channel: axis 1 of a Conv's output, the last axis of a Gemm's or MatMul's.
    const m = q.layer.m;
    const shape = q.layer.kind === "Conv" ? [m, ...q.layer.weightShape.slice(2).map(() => 1)] : [m];
    const sxw = q.scale.map((s) => Math.fround(Math.fround(input.step) * s));
    if (out) {
      const multiplier = sxw.map((v) => Math.fround(v / Math.fround(out.step)));
      initializers.set(`${n.name}:multiplier`, new Tensor(multiplier, shape));
      initializers.set(`${n.name}:unit`, new Tensor(new Float32Array([1]), [1]));
      initializers.set(`${n.name}:output_step`, new Tensor(new Float32Array([out.step]), [1]));
      nodes.push(
        node(`${n.name}:scale`, "Mul", [`${n.name}:acc`, `${n.name}:multiplier`], [`${n.name}:scaled`]),
        node(
          `${n.name}:requantize`,
          "FakeQuantActivation",
          [`${n.name}:scaled`, `${n.name}:unit`],
          [
            `${n.name}:output_levels`,
          ],
          [["zero", out.zero], ["qmin", out.qmin], ["qmax", out.qmax]],
          TRAINING_DOMAIN,
        ),
        node(`${n.name}:dequantize`, "Mul", [`${n.name}:output_levels`, `${n.name}:output_step`], n.outputs),
      );
    } else {
      initializers.set(`${n.name}:multiplier`, new Tensor(sxw, shape));
      nodes.push(node(`${n.name}:scale`, "Mul", [`${n.name}:acc`, `${n.name}:multiplier`], n.outputs));
    }
    replaced.set(n, nodes);
  }
  const nodes = graph.nodes.flatMap((n) => replaced.get(n) ?? [n]);
  return { ...graph, nodes, initializers };
}

/** An activation quantizer's grid, as QuantizeLinear holds it. */
export type Grid = Pick<ActivationQuantizer, "step" | "zero">;

/**
 * onnxruntime's QLinearAdd on x86-64 (MlasQLinearAddKernelAvx2Helper), on
 * levels a and b of equal length: c = round_half_even(a·r_a + (b·r_b + f))
 * with r_a = s_a / s_c, r_b = s_b / s_c and f = z_c − (r_a·z_a + r_b·z_b),
 * each step a float32 fused multiply-add (as the compiler contracts the
 * constant part too), then clamped to [qmin, qmax]. A product of a level and a
 * ratio plus a float32 is exact in a double at these magnitudes, so rounding
 * the double to float32 is the fused operation.
 */
export function runtimeAdd(
  a: ArrayLike<number>,
  gridA: Grid,
  b: ArrayLike<number>,
  gridB: Grid,
  gridC: Grid,
  qmin: number,
  qmax: number,
  out: { [i: number]: number; length: number },
): void {
  const f = Math.fround;
  const ra = f(f(gridA.step) / f(gridC.step)), rb = f(f(gridB.step) / f(gridC.step));
  const fixed = f(gridC.zero - f(ra * gridA.zero + f(rb * gridB.zero)));
  for (let i = 0; i < out.length; i++) {
    const c = roundHalfEven(f(a[i] * ra + f(b[i] * rb + fixed)));
    out[i] = Math.min(Math.max(c, qmin), qmax);
  }
}

/**
 * The quantizer of a Conv's output (after the Relu or Clip folded into it) when
 * the runtime fuses the Conv into QLinearConv, i.e. when any folded range holds.
 */
function outputQuantizer(
  graph: Graph,
  q: WeightQuantizer,
  byTensor: Map<string, ActivationQuantizer>,
): ActivationQuantizer | undefined {
  if (q.layer.kind !== "Conv") return undefined;
  const conv = q.layer.node.outputs[0];
  const folded = foldedActivation(graph, conv);
  const a = byTensor.get(folded ? folded.node.outputs[0] : conv);
  if (!a || !(a.step <= (foldedStepCap(a) ?? -Infinity))) return undefined;
  return a;
}
