// Reference runs with onnxruntime-node (native, CPU, one thread), for tests
// and benches in Deno (--allow-ffi) and Node. Not part of the library: it
// needs the native addon, which no browser or edge runtime has.
// deno-lint-ignore no-import-prefix
import * as ort from "npm:onnxruntime-node@1.30.0";
import { type DType, Tensor, type TensorData } from "../src/tensor.ts";

// onnxruntime's type names are ours, except that bool data is a Uint8Array in both.
const ortTypes = new Set<string>([
  "float32",
  "float64",
  "int8",
  "uint8",
  "int16",
  "uint16",
  "int32",
  "uint32",
  "int64",
  "uint64",
  "bool",
]);

/** Session options for every reference run: CPU, one intra-op and one inter-op thread. */
export const ortNodeOptions: ort.InferenceSession.SessionOptions = {
  executionProviders: ["cpu"],
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
};

// One session per model bytes: building a session costs far more than a small run.
const sessions = new WeakMap<Uint8Array, Promise<ort.InferenceSession>>();

/** An onnxruntime-node session for the model, created once per Uint8Array. */
export function ortNodeSession(modelBytes: Uint8Array): Promise<ort.InferenceSession> {
  let session = sessions.get(modelBytes);
  if (!session) {
    session = ort.InferenceSession.create(modelBytes, ortNodeOptions);
    sessions.set(modelBytes, session);
  }
  return session;
}

export function toOrtTensor(t: Tensor): ort.Tensor {
  return new ort.Tensor(t.dtype as never, t.data as never, [...t.shape]);
}

export function fromOrtTensor(t: ort.Tensor, name: string): Tensor {
  if (!ortTypes.has(t.type)) throw new Error(`output "${name}" has type ${t.type}, which Tensor cannot hold`);
  // A copy: onnxruntime may reuse or free the memory behind its outputs.
  return new Tensor((t.data as TensorData).slice(), [...t.dims], t.type as DType);
}

/** Runs the model with onnxruntime-node (1 thread, CPU) and returns every graph output. */
export async function ortNodeRun(
  modelBytes: Uint8Array,
  feeds: Record<string, Tensor>,
): Promise<Record<string, Tensor>> {
  const session = await ortNodeSession(modelBytes);
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(feeds)) ortFeeds[name] = toOrtTensor(tensor);
  const results = await session.run(ortFeeds);
  const out: Record<string, Tensor> = {};
  for (const name of session.outputNames) out[name] = fromOrtTensor(results[name] as ort.Tensor, name);
  return out;
}
