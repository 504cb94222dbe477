import assert from "node:assert/strict";
import { readNpz } from "../mod.ts";
import {
  inOtherRuntime,
  otherRuntime,
  quantizationDigest,
  SAME_RUNS,
  sameRunNpz,
  sha256Hex,
} from "./determinism.ts";

// The same seed must give bit-identical results in Deno and in Node: computed
// here, and in the other runtime as a child process.
Deno.test("quantization is bit-identical in Deno and Node (tiny_cnn_fmnist: weights, steps, losses)", async () => {
  const here = await quantizationDigest();
  const { digest: there } = inOtherRuntime(["digest"]);
  assert.equal(there, here, `${otherRuntime} gives ${there}, this runtime ${here}`);
});

Deno.test("a short resnet18_fmnist run exports byte-identical .npz files in Deno and Node", async () => {
  const npz = await sameRunNpz(SAME_RUNS.resnet18);
  // The control: the export holds all 21 quantized layers (20 Conv, 1 Gemm), not an empty archive.
  const layers = Object.keys(readNpz(npz)).filter((k) => k.endsWith(".weight_int"));
  assert.equal(layers.length, 21, `the .npz holds ${layers.length} layers`);
  const here = await sha256Hex(npz);
  const there = inOtherRuntime(["npz:resnet18"])["npz:resnet18"];
  assert.equal(there, here, `${otherRuntime} exports ${there}, this runtime ${here}`);
});
