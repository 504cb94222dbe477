// Op kernels keyed by ONNX op type. Each op file registers its kernels here;
// the engine looks them up, and nothing else knows how an op computes.
import type { Node } from "../graph/ir.ts";
import type { DType } from "../tensor.ts";
import { AttnroundError } from "../errors.ts";
import { type Value, WasmValue } from "./value.ts";

export interface OpContext {
  readonly node: Node;
  /** Version of the default operator set the model imports. */
  readonly opset: number;
  /** A new output tensor; float32 lives in wasm memory. Allocate every output before reading any `data`. */
  output(shape: readonly number[], dtype: DType): Value;
  /** A float32 output in wasm memory. */
  outputF32(shape: readonly number[]): WasmValue;
  /** Byte address of `bytes` bytes of scratch memory, valid until the op returns. */
  scratch(bytes: number): number;
}

export type OpRun = (ctx: OpContext, inputs: (Value | undefined)[]) => Value[];

/** Says why a node, judged by its attributes alone, cannot run; checked at load. */
export type OpCheck = (node: Node, opset: number) => string | undefined;

/** Whose gradient an op computes: the ONNX op's inputs and outputs, and the gradients of its outputs. */
export interface GradContext extends OpContext {
  /** Whether the gradient of forward input `index` is wanted (unwanted ones are returned as undefined). */
  wants(index: number): boolean;
}

/**
 * The backward of an op: given the forward inputs and outputs and the loss
 * gradients of the outputs (undefined where nothing downstream needs them),
 * returns the gradients of the inputs, float32, one per input.
 */
export type OpGrad = (
  ctx: GradContext,
  inputs: (Value | undefined)[],
  outputs: (Value | undefined)[],
  gradOutputs: (WasmValue | undefined)[],
) => (WasmValue | undefined)[];

/** Domain of the library's own training ops (losses, quantizers). */
export const TRAINING_DOMAIN = "attnround";

/** Domain of the nodes autodiff adds: op type = the forward op's type, attributes = the forward node's. */
export const GRAD_DOMAIN = "attnround.grad";
/** Attribute on a gradient node: how many of its inputs are forward inputs, then forward outputs. */
export const GRAD_INPUT_COUNT = "attnround.forward_inputs";
export const GRAD_OUTPUT_COUNT = "attnround.forward_outputs";

// Helpers for writing an op, here or outside the engine (src/quant/ops.ts).

export function opError(node: Node, message: string): AttnroundError {
  return new AttnroundError("INVALID_MODEL", `node "${node.name}" (${node.opType}): ${message}`);
}

/** A valid model that uses something the engine does not implement. */
export function opUnsupported(node: Node, message: string): AttnroundError {
  return new AttnroundError("UNSUPPORTED_MODEL", `node "${node.name}" (${node.opType}): ${message}`);
}

export function required(node: Node, inputs: (Value | undefined)[], index: number): Value {
  const v = inputs[index];
  if (!v) throw opError(node, `input ${index} is required`);
  return v;
}

/** A required float32 input, which lives in wasm memory. */
export function wasmInput(node: Node, inputs: (Value | undefined)[], index: number): WasmValue {
  const v = required(node, inputs, index);
  if (!(v instanceof WasmValue)) throw opError(node, `input ${index} must be float32 (got ${v.dtype})`);
  return v;
}

const kernels = new Map<string, OpRun>();
const checks = new Map<string, OpCheck>();
const grads = new Map<string, OpGrad>();

const key = (domain: string, type: string) => `${domain === "ai.onnx" ? "" : domain}:${type}`;

// Two registrations of one op would silently make the later one win.
function once<T>(table: Map<string, T>, k: string, value: T, what: string): void {
  if (table.has(k)) throw new AttnroundError("INTERNAL", `op ${k} has its ${what} registered twice`);
  table.set(k, value);
}

/** Registers op kernels (and load-time checks) of a domain: "" is ONNX's default operator set. */
export function registerOps(
  ops: Record<string, OpRun>,
  loadChecks: Record<string, OpCheck> = {},
  domain = "",
): void {
  for (const [type, run] of Object.entries(ops)) once(kernels, key(domain, type), run, "kernel");
  for (const [type, check] of Object.entries(loadChecks)) {
    once(checks, key(domain, type), check, "load check");
  }
}

/** Registers the backward of ops of a domain, keyed by the forward op type. */
export function registerGradients(ops: Record<string, OpGrad>, domain = ""): void {
  for (const [type, grad] of Object.entries(ops)) once(grads, key(domain, type), grad, "backward");
}

/** The backward of a forward node, if the op has one. */
export function gradientFor(node: Node): OpGrad | undefined {
  return grads.get(key(node.domain, node.opType));
}

export function kernelFor(node: Node): OpRun | undefined {
  if (node.domain === GRAD_DOMAIN) return gradKernel(node);
  return kernels.get(key(node.domain, node.opType));
}

// A gradient node runs its op's OpGrad: inputs are [forward inputs…, forward
// outputs…, output gradients…], outputs the input gradients ("" = not wanted).
function gradKernel(node: Node): OpRun | undefined {
  const forwardDomain = node.attributes.get("attnround.forward_domain");
  const grad = grads.get(key(typeof forwardDomain === "string" ? forwardDomain : "", node.opType));
  if (!grad) return undefined;
  return (ctx, values) => {
    const n = node.attributes.get(GRAD_INPUT_COUNT) as number;
    const m = node.attributes.get(GRAD_OUTPUT_COUNT) as number;
    const gradCtx: GradContext = { ...ctx, wants: (i) => (node.outputs[i] ?? "") !== "" };
    const result = grad(
      gradCtx,
      values.slice(0, n),
      values.slice(n, n + m),
      values.slice(n + m) as (WasmValue | undefined)[],
    );
    // The engine binds outputs by position; unwanted gradients have "" as their name and are dropped.
    return node.outputs.map((_, i) => result[i] as Value);
  };
}

/** Why this supported op type still cannot run this node, if it cannot. */
export function unsupportedVariant(node: Node, opset: number): string | undefined {
  return checks.get(key(node.domain, node.opType))?.(node, opset);
}

export function supportedOps(): string[] {
  return [...kernels.keys()].filter((k) => k.startsWith(":")).map((k) => k.slice(1)).sort();
}
