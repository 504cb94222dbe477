import assert from "node:assert/strict";
import { AttnroundError, init, loadModel, Tensor } from "../mod.ts";
import { readNpz } from "../src/data/npy.ts";
import { decodeModel, encodeModel } from "../src/onnx/codec.ts";
import { tensorToProto } from "../src/onnx/tensor-proto.ts";
import { Engine } from "../src/engine/engine.ts";
import { ortNodeRun } from "./ort.ts";
import { imagesToInput, readFixture } from "./fixtures.ts";

function firstImages(count: number): Tensor {
  const { x } = readNpz(readFixture("calib.npz"));
  const all = imagesToInput(x);
  return new Tensor(all.data.slice(0, count * 784), [count, 1, 28, 28]);
}

Deno.test("plans are per input shape: batches of different sizes give each image the same logits", async () => {
  await init();
  const model = loadModel(readFixture("resnet18_fmnist.onnx"));
  const images = firstImages(5);
  const single = [0, 1, 2, 3, 4].map((i) =>
    model.run({ input: new Tensor(images.data.slice(i * 784, (i + 1) * 784), [1, 1, 28, 28]) }).logits.data
  );
  for (const count of [3, 5, 3, 5]) {
    const out =
      model.run({ input: new Tensor(images.data.slice(0, count * 784), [count, 1, 28, 28]) }).logits;
    assert.deepEqual(out.shape, [count, 10]);
    for (let i = 0; i < count; i++) {
      for (let c = 0; c < 10; c++) {
        assert.ok(
          Math.abs(out.data[i * 10 + c] as number - (single[i][c] as number)) < 1e-4,
          `image ${i} class ${c}`,
        );
      }
    }
  }
  // A replay (second run at one shape) returns exactly what the planning run did.
  const first = model.run({ input: images }).logits.data;
  const again = model.run({ input: images }).logits.data;
  assert.deepEqual([...again], [...first]);
  model.dispose();
});

Deno.test("an engine holds one arena at a time: planning keeps none, and a run at a new shape frees the last one's", async () => {
  await init();
  const model = loadModel(readFixture("resnet18_fmnist.onnx"));
  const engine = new Engine(model.graph);
  const images = firstImages(6);
  const batch = (n: number) => ({ input: new Tensor(images.data.slice(0, n * 784), [n, 1, 28, 28]) });
  const arenas = () =>
    [...(engine as unknown as { plans: Map<string, { arena: number }> }).plans.values()].filter((p) =>
      p.arena
    );
  try {
    assert.ok(engine.plannedMemory(batch(6)).arenaBytes > 0);
    assert.equal(arenas().length, 0, "planning keeps no arena");
    for (const n of [6, 5, 6, 5, 6]) {
      const logits = engine.runInPlace(batch(n)).logits.data.slice();
      assert.equal(arenas().length, 1, `one arena after a run at batch ${n}`);
      assert.deepEqual([...logits], [...model.run(batch(n)).logits.data], `batch ${n}`);
    }
  } finally {
    engine.dispose();
    model.dispose();
  }
});

Deno.test("loadModel names every unsupported op type and node at load", async () => {
  await init();
  const proto = decodeModel(readFixture("tiny_cnn_fmnist.onnx"));
  const relus = proto.graph.node.filter((n) => n.opType === "Relu");
  relus[0].opType = "Frobnicate";
  relus[1].opType = "Wobble";
  const bytes = encodeModel(proto);
  assert.throws(() => loadModel(bytes), (e: unknown) => {
    assert.ok(e instanceof AttnroundError);
    assert.equal(e.code, "UNSUPPORTED_MODEL");
    for (const part of ["Frobnicate", "Wobble", relus[0].name, relus[1].name]) {
      assert.ok(e.message.includes(part), e.message);
    }
    return true;
  });
});

Deno.test("run rejects missing, unknown and misshapen inputs with clear errors", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  assert.throws(() => model.run({}), { code: "INVALID_ARGUMENT", message: /missing input "input"/ });
  const image = firstImages(1);
  assert.throws(() => model.run({ input: image, other: image }), {
    code: "INVALID_ARGUMENT",
    message: /no input "other"/,
  });
  assert.throws(
    () => model.run({ input: new Tensor(new Float32Array(28 * 28), [1, 28, 28]) }),
    { code: "SHAPE_MISMATCH" },
  );
  assert.throws(
    () => model.run({ input: new Tensor(new Uint8Array(28 * 28), [1, 1, 28, 28]) }),
    { code: "INVALID_ARGUMENT", message: /must be float32/ },
  );
  model.dispose();
});

Deno.test("BatchNormalization after Conv is folded into the Conv and agrees with onnxruntime", async () => {
  await init();
  // Insert a BatchNormalization with non-trivial statistics after the first conv of tiny_cnn.
  const proto = decodeModel(readFixture("tiny_cnn_fmnist.onnx"));
  const conv = proto.graph.node.find((n) => n.opType === "Conv")!;
  const channels = 8;
  const values = [
    (c: number) => 1 + 0.1 * c,
    (c: number) => 0.05 * c - 0.2,
    (c: number) => 0.3 - 0.07 * c,
    (c: number) => 0.5 + 0.2 * c,
  ];
  const names = ["bn.scale", "bn.bias", "bn.mean", "bn.var"];
  names.forEach((name, k) =>
    proto.graph.initializer.push(
      tensorToProto(
        name,
        new Tensor(Float32Array.from({ length: channels }, (_, c) => values[k](c)), [channels]),
      ),
    )
  );
  const convOut = conv.output[0];
  conv.output = ["conv_before_bn"];
  proto.graph.node.splice(proto.graph.node.indexOf(conv) + 1, 0, {
    ...conv,
    opType: "BatchNormalization",
    name: "bn",
    input: ["conv_before_bn", ...names],
    output: [convOut],
    attribute: [],
  });
  const bytes = encodeModel(proto);
  const model = loadModel(bytes);
  assert.ok(!model.graph.nodes.some((n) => n.opType === "BatchNormalization"), "BN should be folded away");
  const input = firstImages(16);
  const ours = model.run({ input }).logits.data as Float32Array;
  const reference = (await ortNodeRun(bytes, { input })).logits.data as Float32Array;
  ours.forEach((v, i) => assert.ok(Math.abs(v - reference[i]) < 1e-4, `logit ${i}: ${v} vs ${reference[i]}`));
  model.dispose();
});
