import assert from "node:assert/strict";
import { init, loadModel, Tensor } from "../mod.ts";
import { readNpz } from "../src/data/npy.ts";
import { argmaxRows, imagesToInput, readFixture } from "./fixtures.ts";
import { ortNodeRun } from "./ort.ts";

// Float top-1 on the 10,000 test images, from tests/fixtures/README.md.
const models: [string, number][] = [
  ["tiny_cnn_fmnist", 8540],
  ["resnet18_fmnist", 9217],
  ["mobilenetv2_fmnist", 9013],
];

for (const [name, expectedCorrect] of models) {
  Deno.test(`${name}: the engine agrees with onnxruntime-node on all 10,000 test images`, async () => {
    await init();
    const bytes = readFixture(`${name}.onnx`);
    const { x, y } = readNpz(readFixture("test.npz"));
    const labels = y.data as Uint8Array;
    const images = imagesToInput(x);
    const model = loadModel(bytes);
    const batch = 250;
    let correct = 0, worst = 0, disagreements = 0;
    for (let start = 0; start < labels.length; start += batch) {
      const count = Math.min(batch, labels.length - start);
      const input = new Tensor(images.data.slice(start * 784, (start + count) * 784), [count, 1, 28, 28]);
      const ours = model.run({ input }).logits;
      const reference = (await ortNodeRun(bytes, { input })).logits;
      const a = ours.data as Float32Array, b = reference.data as Float32Array;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
      const predicted = argmaxRows(ours), expected = argmaxRows(reference);
      for (let i = 0; i < count; i++) {
        if (predicted[i] !== expected[i]) disagreements++;
        if (predicted[i] === labels[start + i]) correct++;
      }
    }
    model.dispose();
    assert.equal(disagreements, 0, "top-1 differs from onnxruntime on some images");
    assert.ok(worst <= 1e-3, `max |logit difference| is ${worst}`);
    assert.equal(correct, expectedCorrect);
  });
}
