import assert from "node:assert/strict";
import { readNpz } from "../src/data/npy.ts";
import { Tensor } from "../src/tensor.ts";
import { argmaxRows, imagesToInput, readFixture } from "./fixtures.ts";
import { ortNodeRun } from "./ort.ts";

function countCorrect(logits: Tensor, labels: Uint8Array): number {
  return argmaxRows(logits).filter((c, n) => c === labels[n]).length;
}

Deno.test("onnxruntime-node runs tiny_cnn_fmnist to the README's 85.40% top-1 on the test set", async () => {
  const model = readFixture("tiny_cnn_fmnist.onnx");
  const { x, y } = readNpz(readFixture("test.npz"));
  const out = await ortNodeRun(model, { input: imagesToInput(x) });
  assert.deepEqual(Object.keys(out), ["logits"]);
  assert.equal(out.logits.dtype, "float32");
  assert.deepEqual(out.logits.shape, [10000, 10]);
  assert.equal(countCorrect(out.logits, y.data as Uint8Array), 8540);
  // The batch axis is dynamic: one image gives the same logits as its row of the batch.
  const one = new Tensor(imagesToInput(x).data.slice(0, 784), [1, 1, 28, 28]);
  const single = await ortNodeRun(model, { input: one });
  const batched = out.logits.data.slice(0, 10) as Float32Array;
  (single.logits.data as Float32Array).forEach((v, i) =>
    assert.ok(Math.abs(v - batched[i]) < 1e-4, `logit ${i}`)
  );
});
