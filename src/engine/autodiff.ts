// Reverse-mode autodiff as a graph transformation: for a loss tensor and the
// tensors to differentiate with respect to, append one gradient node per
// forward node on a path between them (domain attnround.grad, running the op's
// registered OpGrad), plus Add nodes where a tensor's gradient has several
// contributions. The planning engine then runs forward and backward as one
// graph, and its lifetime analysis keeps each activation exactly until its
// gradient node has read it.
import { AttnroundError } from "../errors.ts";
import { attrInt, type Graph, type Node, topologicalOrder } from "../graph/ir.ts";
import { Tensor } from "../tensor.ts";
import { GRAD_DOMAIN, GRAD_INPUT_COUNT, GRAD_OUTPUT_COUNT, gradientFor } from "./registry.ts";

export interface GradientGraph {
  graph: Graph;
  /** For each tensor differentiated with respect to, the name of its gradient (absent: the loss does not depend on it). */
  gradients: Map<string, string>;
}

// Ops whose results are integers or booleans (shapes, indices, comparisons,
// logic), or piecewise constant (Floor, Round, Sign, Hardmax, …): no gradient
// flows through them, so what they compute is a constant to the backward pass.
const NO_GRADIENT = new Set([
  "Shape",
  "Size",
  "ArgMax",
  "ArgMin",
  "Equal",
  "Less",
  "Greater",
  "LessOrEqual",
  "GreaterOrEqual",
  "NonZero",
  "Not",
  "And",
  "Or",
  "Xor",
  "IsNaN",
  "IsInf",
  "Floor",
  "Ceil",
  "Round",
  "Sign",
  "Hardmax",
  "OneHot",
  "EyeLike",
  "Range",
  "ConstantOfShape",
]);

// ONNX data types that carry a gradient: float, float16, double, bfloat16.
const FLOAT_TYPES = new Set([1, 10, 11, 16]);

/** Whether output `k` of a node can carry a gradient back to the node's inputs. */
function carriesGradient(graph: Graph, node: Node, k: number): boolean {
  if (node.domain !== "" && node.domain !== "ai.onnx") return true;
  if (NO_GRADIENT.has(node.opType)) return false;
  switch (node.opType) {
    case "Cast":
      return FLOAT_TYPES.has(attrInt(node, "to", 1));
    case "CastLike": {
      const like = graph.initializers.get(node.inputs[1]);
      return !like || like.dtype === "float32" || like.dtype === "float64";
    }
    // Their second outputs are indices (TopK, MaxPool) or a boolean mask (Dropout).
    case "TopK":
    case "MaxPool":
    case "Dropout":
      return k === 0;
  }
  return true;
}

/** Name of the seed gradient dLoss/dLoss = 1, added as an initializer. */
export const LOSS_SEED = "attnround.grad.seed";

export function addGradients(graph: Graph, loss: string, wrt: string[]): GradientGraph {
  const order = topologicalOrder(graph);
  // Tensors that depend on a wrt tensor…
  const dependent = new Set(wrt);
  for (const node of order) {
    if (!node.inputs.some((i) => dependent.has(i))) continue;
    node.outputs.forEach((o, k) => o && carriesGradient(graph, node, k) && dependent.add(o));
  }
  // …and tensors the loss depends on.
  const contributing = new Set([loss]);
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    if (node.outputs.some((o) => contributing.has(o))) node.inputs.forEach((n) => n && contributing.add(n));
  }
  const needsGrad = (name: string) => name !== "" && dependent.has(name) && contributing.has(name);

  const added: Node[] = [];
  const contributions = new Map<string, string[]>([[loss, [LOSS_SEED]]]);
  let counter = 0;
  // The gradient of a tensor: its contributions summed (one Add node per extra term).
  const gradientOf = (name: string): string | undefined => {
    const terms = contributions.get(name);
    if (!terms || terms.length === 0) return undefined;
    let sum = terms[0];
    for (let k = 1; k < terms.length; k++) {
      const out = `${GRAD_DOMAIN}:${name}:sum${counter++}`;
      added.push({
        name: out,
        opType: "Add",
        domain: "",
        inputs: [sum, terms[k]],
        outputs: [out],
        attributes: new Map(),
      });
      sum = out;
    }
    contributions.set(name, [sum]);
    return sum;
  };

  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    if (!node.inputs.some(needsGrad)) continue;
    const gradOutputs = node.outputs.map((o) => (o && needsGrad(o) ? gradientOf(o) ?? "" : ""));
    if (gradOutputs.every((g) => g === "")) continue;
    if (!gradientFor(node)) {
      throw new AttnroundError(
        "UNSUPPORTED_MODEL",
        `node "${node.name}" (${node.opType}) has no backward, so it cannot sit inside a block that is reconstructed (rounding "nearest" needs none)`,
      );
    }
    const outputs = node.inputs.map((input) => {
      if (!needsGrad(input)) return "";
      const name = `${GRAD_DOMAIN}:${input}:from:${node.name}:${counter++}`;
      if (!contributions.has(input)) contributions.set(input, []);
      contributions.get(input)!.push(name);
      return name;
    });
    const attributes = new Map(node.attributes);
    attributes.set(GRAD_INPUT_COUNT, node.inputs.length);
    attributes.set(GRAD_OUTPUT_COUNT, node.outputs.length);
    attributes.set("attnround.forward_domain", node.domain);
    added.push({
      name: `${GRAD_DOMAIN}:${node.name}`,
      opType: node.opType,
      domain: GRAD_DOMAIN,
      inputs: [...node.inputs, ...node.outputs, ...gradOutputs],
      outputs,
      attributes,
    });
  }

  const gradients = new Map<string, string>();
  for (const name of wrt) {
    const g = gradientOf(name);
    if (g) gradients.set(name, g);
  }
  const initializers = new Map(graph.initializers);
  initializers.set(LOSS_SEED, new Tensor(new Float32Array([1]), []));
  return {
    graph: {
      ...graph,
      nodes: [...order, ...added],
      initializers,
      outputs: [...graph.outputs, ...[...gradients.values()].map((name) => ({ name }))],
    },
    gradients,
  };
}
