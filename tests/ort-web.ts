// Reference runs with onnxruntime-web (its wasm backend, one thread), for
// tests and benches in Deno and Node: the runtime a browser page uses, with
// its default session options.
// deno-lint-ignore no-import-prefix
import * as ort from "npm:onnxruntime-web@1.30.0";
import { Tensor, type TensorData } from "../src/tensor.ts";

ort.env.wasm.numThreads = 1; // no worker threads: the single-thread wasm path
ort.env.logLevel = "error";

/** Session options for every run: the wasm backend, one thread; everything else onnxruntime's defaults. */
export const ortWebOptions: ort.InferenceSession.SessionOptions = {
  executionProviders: ["wasm"],
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
};

const sessions = new WeakMap<Uint8Array, Promise<ort.InferenceSession>>();

/** An onnxruntime-web session for the model, created once per Uint8Array. */
export function ortWebSession(modelBytes: Uint8Array): Promise<ort.InferenceSession> {
  let session = sessions.get(modelBytes);
  if (!session) {
    session = ort.InferenceSession.create(modelBytes, ortWebOptions);
    sessions.set(modelBytes, session);
  }
  return session;
}

/** Runs the model with onnxruntime-web and returns every float32 graph output. */
export async function ortWebRun(
  modelBytes: Uint8Array,
  feeds: Record<string, Tensor>,
): Promise<Record<string, Tensor>> {
  const session = await ortWebSession(modelBytes);
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) {
    ortFeeds[name] = new ort.Tensor("float32", t.data as Float32Array, [...t.shape]);
  }
  const results = await session.run(ortFeeds);
  const out: Record<string, Tensor> = {};
  for (const name of session.outputNames) {
    const t = results[name] as ort.Tensor;
    if (t.type !== "float32") throw new Error(`output "${name}" has type ${t.type}; expected float32`);
    out[name] = new Tensor((t.data as TensorData).slice(), [...t.dims]);
  }
  return out;
}
