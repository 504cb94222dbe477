import assert from "node:assert/strict";
import { readNpz } from "../src/data/npy.ts";
import { Tensor } from "../src/tensor.ts";
import { readFixture } from "./fixtures.ts";
import { ortNodeRun } from "./ort.ts";

/** uint8 images [N, 28, 28] → float32 [N, 1, 28, 28] in [0, 1], the models' input contract. */
function imagesToInput(x: Tensor): Tensor {
  const pixels = x.data as Uint8Array;
  const data = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) data[i] = pixels[i] / 255;
  return new Tensor(data, [x.shape[0], 1, x.shape[1], x.shape[2]]);
}

function countCorrect(logits: Tensor, labels: Uint8Array): number {
  const classes = logits.shape[1];
  const values = logits.data as Float32Array;
  let correct = 0;
  for (let n = 0; n < labels.length; n++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (values[n * classes + c] > values[n * classes + best]) best = c;
    if (best === labels[n]) correct++;
  }
  return correct;
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
