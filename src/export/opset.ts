// Raises a graph's default-domain opset to the one the export needs (13 for
// per-channel Q/DQ, 21 for 4-bit types), rewriting the ops whose form or
// meaning changed on the way (SPEC §7):
// - attributes that became inputs: Clip min/max (11), Slice starts/ends/axes
//   (10), Pad pads/value (11), TopK k (10), Squeeze/Unsqueeze axes (13),
//   Split split (13), ReduceSum axes (13), the other reductions' axes (18);
// - Split from 18 needs its output count when no split sizes are given;
// - Resize before 11 and Upsample map coordinates asymmetrically and round
//   nearest by flooring: both become a Resize that says so;
// - Softmax, LogSoftmax and Hardmax before 13 work on the input coerced to
//   2-D at `axis`: Flatten → op → Reshape back does exactly that;
// - Dropout loses its ratio/is_test attributes (12: inference is the identity
//   either way), Scatter becomes ScatterElements (11).
// Constant bounds and pads are written as float32, the type of every tensor
// the quantizer works on. Ops whose meaning changed in ways no rewrite
// reproduces are refused with UNSUPPORTED_MODEL.
import { AttnroundError } from "../errors.ts";
import { attrInt, attrInts, attrString, type Graph, type Node } from "../graph/ir.ts";
import { Tensor } from "../tensor.ts";
import type { Names } from "./names.ts";

const REDUCE_AXES_INPUT_SINCE: Record<string, number> = {
  ReduceSum: 13,
  ReduceMean: 18,
  ReduceMax: 18,
  ReduceMin: 18,
  ReduceProd: 18,
  ReduceSumSquare: 18,
  ReduceL1: 18,
  ReduceL2: 18,
  ReduceLogSum: 18,
  ReduceLogSumExp: 18,
};

function int64s(values: number[]): Tensor {
  return new Tensor(BigInt64Array.from(values, (v) => BigInt(v)), [values.length]);
}

function float32Scalar(value: number): Tensor {
  return new Tensor(new Float32Array([value]), []);
}

function newNode(name: string, opType: string, inputs: string[], outputs: string[], attributes = {}): Node {
  return { name, opType, domain: "", inputs, outputs, attributes: new Map(Object.entries(attributes)) };
}

/** Drops trailing omitted ("") inputs. */
function trimInputs(inputs: string[]): string[] {
  let end = inputs.length;
  while (end > 0 && inputs[end - 1] === "") end--;
  return inputs.slice(0, end);
}

class Upgrade {
  constructor(
    private readonly graph: Graph,
    private readonly from: number,
    private readonly to: number,
    private readonly names: Names,
  ) {}

  /** True when `since` (the opset that changed the op) lies in (from, to]. */
  private crosses(since: number): boolean {
    return this.from < since && this.to >= since;
  }

  private constant(node: Node, what: string, value: Tensor): string {
    const name = this.names.fresh(`${node.name}_${what}`);
    this.graph.initializers.set(name, value);
    return name;
  }

  /** Moves an integer-list attribute to input `index` (omitted when the attribute is absent). */
  private attributeToInput(node: Node, attribute: string, index: number): void {
    const values = attrInts(node, attribute);
    node.attributes.delete(attribute);
    const inputs = [...node.inputs];
    while (inputs.length < index) inputs.push("");
    inputs[index] = values ? this.constant(node, attribute, int64s(values)) : "";
    node.inputs = trimInputs(inputs);
  }

  run(): void {
    const replaced = new Map<Node, Node[]>();
    for (const node of this.graph.nodes) {
      if (node.domain !== "" && node.domain !== "ai.onnx") continue;
      const nodes = this.node(node);
      if (nodes) replaced.set(node, nodes);
    }
    this.graph.nodes = this.graph.nodes.flatMap((n) => replaced.get(n) ?? [n]);
    this.graph.opset = this.to;
  }

  /** Rewrites one node in place; returns the nodes that replace it when it becomes several. */
  private node(node: Node): Node[] | undefined {
    switch (node.opType) {
      case "Clip":
        if (this.crosses(11)) {
          const bound = (name: string) => {
            const v = node.attributes.get(name) as number | undefined;
            node.attributes.delete(name);
            return v === undefined ? "" : this.constant(node, name, float32Scalar(v));
          };
          node.inputs = trimInputs([node.inputs[0], bound("min"), bound("max")]);
        }
        return;
      case "Slice":
        if (this.crosses(10)) {
          const starts = attrInts(node, "starts", []), ends = attrInts(node, "ends", []);
          const axes = attrInts(node, "axes");
          for (const a of ["starts", "ends", "axes"]) node.attributes.delete(a);
          node.inputs = [
            node.inputs[0],
            this.constant(node, "starts", int64s(starts)),
            this.constant(node, "ends", int64s(ends)),
            ...(axes ? [this.constant(node, "axes", int64s(axes))] : []),
          ];
        }
        return;
      case "Squeeze":
      case "Unsqueeze":
        if (this.crosses(13)) this.attributeToInput(node, "axes", 1);
        return;
      case "TopK":
        if (this.crosses(10)) {
          const k = attrInt(node, "k", 0);
          node.attributes.delete("k");
          node.inputs = [node.inputs[0], this.constant(node, "k", int64s([k]))];
        }
        return;
      case "Pad":
        if (this.crosses(11)) {
          const pads = attrInts(node, "pads") ?? attrInts(node, "paddings", []);
          const value = (node.attributes.get("value") as number | undefined) ?? 0;
          for (const a of ["pads", "paddings", "value"]) node.attributes.delete(a);
          node.inputs = [
            node.inputs[0],
            this.constant(node, "pads", int64s(pads)),
            this.constant(node, "value", float32Scalar(value)),
          ];
        }
        return;
      case "Split":
        if (this.crosses(13)) this.attributeToInput(node, "split", 1);
        if (this.to >= 18 && !node.inputs[1] && !node.attributes.has("num_outputs")) {
          node.attributes.set("num_outputs", node.outputs.length);
        }
        return;
      case "Dropout":
        if (this.crosses(12)) {
          node.attributes.delete("ratio");
          node.attributes.delete("is_test");
        }
        return;
      case "Scatter":
        if (this.crosses(11)) node.opType = "ScatterElements";
        return;
      case "Upsample":
        if (this.to >= 10) {
          node.opType = "Resize";
          this.legacyResize(node);
        }
        return;
      case "Resize":
        if (this.crosses(11)) this.legacyResize(node);
        else if (
          this.crosses(13) &&
          attrString(node, "coordinate_transformation_mode", "") === "tf_half_pixel_for_nn"
        ) {
          this.refuse(node, `coordinate_transformation_mode "tf_half_pixel_for_nn" was removed in opset 13`);
        }
        return;
      case "Softmax":
      case "LogSoftmax":
      case "Hardmax":
        return this.crosses(13) ? this.coercedTo2d(node) : undefined;
      case "GroupNormalization":
        if (this.crosses(21)) {
          this.refuse(node, "its scale and bias changed from per-group to per-channel in opset 21");
        }
        return;
    }
    const since = REDUCE_AXES_INPUT_SINCE[node.opType];
    if (since !== undefined && this.crosses(since)) this.attributeToInput(node, "axes", 1);
    return undefined;
  }

  private refuse(node: Node, why: string): never {
    throw new AttnroundError(
      "UNSUPPORTED_MODEL",
      `node "${node.name}" (${node.opType}) cannot be converted from opset ${this.from} to ${this.to}: ${why}`,
    );
  }

  /** Upsample and opset-10 Resize: (X, scales) with asymmetric coordinates and floored nearest. */
  private legacyResize(node: Node): void {
    node.inputs = [node.inputs[0], "", node.inputs[1]];
    node.attributes.set("coordinate_transformation_mode", "asymmetric");
    if (attrString(node, "mode", "nearest") === "nearest") node.attributes.set("nearest_mode", "floor");
    else node.attributes.set("mode", "linear"); // Upsample's "bilinear" is Resize's "linear"
  }

  /** x → Flatten(axis) → op along axis 1 → Reshape(Shape(x)): the pre-13 semantics in 13's terms. */
  private coercedTo2d(node: Node): Node[] {
    const axis = attrInt(node, "axis", 1);
    if (axis === -1) return [node]; // the last axis alone: the same in both forms
    const x = node.inputs[0], y = node.outputs[0];
    const flat = this.names.fresh(`${node.name}_2d`), out2d = this.names.fresh(`${node.name}_2d_out`);
    const shape = this.names.fresh(`${node.name}_shape`);
    node.inputs = [flat];
    node.outputs = [out2d];
    node.attributes.set("axis", 1);
    return [
      newNode(this.names.fresh(`${node.name}_flatten`), "Flatten", [x], [flat], { axis }),
      node,
      newNode(this.names.fresh(`${node.name}_input_shape`), "Shape", [x], [shape]),
      newNode(this.names.fresh(`${node.name}_reshape`), "Reshape", [out2d, shape], [y]),
    ];
  }
}

/**
 * Rewrites `graph` (in place) from its default-domain opset to `target`.
 * Does nothing when the graph is already at `target` or above.
 */
export function upgradeOpset(graph: Graph, target: number, names: Names): void {
  if (graph.opset >= target) return;
  new Upgrade(graph, graph.opset, target, names).run();
}
