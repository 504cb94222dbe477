// Bad input, clear errors: every row feeds the library something wrong and
// expects an AttnroundError with a stable `code` and a message that names the
// problem (the offending file part, node, tensor, option or array).
import assert from "node:assert/strict";
import {
  AttnroundError,
  init,
  inputsFromNpz,
  loadModel,
  type Model,
  quantize,
  readNpz,
  Tensor,
} from "../mod.ts";
import { readZip, writeZip } from "../src/data/zip.ts";
import { decodeModel, encodeModel } from "../src/onnx/codec.ts";
import { writeNpy } from "../src/data/npy.ts";
import { imagesToInput, readFixture } from "./fixtures.ts";

const tinyBytes = readFixture("tiny_cnn_fmnist.onnx");
const calibNpz = readFixture("calib.npz");

let cache: { model: Model; calib: Tensor; dynamic: Model; shapeless: Model } | undefined;

/** The fixture model, 64 calibration images, and two variants whose input shape is dynamic or not declared. */
async function setup() {
  if (cache) return cache;
  await init();
  const model = loadModel(tinyBytes);
  const x = readNpz(calibNpz).x;
  const calib = imagesToInput(new Tensor((x.data as Uint8Array).slice(0, 64 * 784), [64, 28, 28]));
  const dynamicProto = decodeModel(tinyBytes);
  const dims = dynamicProto.graph.input[0].type!.tensorType!.shape!.dim;
  dims.forEach((d, i) => dims[i] = { denotation: d.denotation, dimParam: ["N", "C", "H", "W"][i] });
  const shapelessProto = decodeModel(tinyBytes);
  shapelessProto.graph.input[0].type = undefined;
  cache = {
    model,
    calib,
    dynamic: loadModel(encodeModel(dynamicProto)),
    shapeless: loadModel(encodeModel(shapelessProto)),
  };
  return cache;
}

/** The tiny model with some nodes' op types replaced. */
function withOps(ops: Record<string, { opType: string; domain?: string }>): Uint8Array {
  const proto = decodeModel(tinyBytes);
  for (const node of proto.graph.node) {
    if (ops[node.name]) Object.assign(node, { domain: "", ...ops[node.name] });
  }
  return encodeModel(proto);
}

/** Random bytes from a fixed seed (xorshift32). */
function noise(length: number, seed: number): Uint8Array {
  let s = seed;
  return Uint8Array.from({ length }, () => {
    s ^= s << 13, s ^= s >>> 17, s ^= s << 5;
    return s & 0xff;
  });
}

const f32 = (n: number, fill: number) => new Float32Array(n).fill(fill);

interface Row {
  name: string;
  code: string;
  /** Fragments the message must contain. */
  message: RegExp[];
  run: () => unknown;
}

const rows: Row[] = [
  // ---- model bytes
  {
    name: "truncated ONNX",
    code: "INVALID_MODEL",
    message: [/not an ONNX model, or a damaged one/, /is the file truncated\?/],
    run: () => loadModel(tinyBytes.slice(0, tinyBytes.length >> 1)),
  },
  {
    name: "ONNX cut inside its last field",
    code: "INVALID_MODEL",
    message: [/runs past the end|truncated/, /is the file truncated\?/],
    run: () => loadModel(tinyBytes.slice(0, tinyBytes.length - 1)),
  },
  {
    name: "random bytes",
    code: "INVALID_MODEL",
    message: [/not an ONNX model/],
    run: () => loadModel(noise(4096, 7)),
  },
  {
    name: "an empty file",
    code: "INVALID_MODEL",
    message: [/not an ONNX model: ir_version \(field 1\) is missing/],
    run: () => loadModel(new Uint8Array(0)),
  },
  {
    // A TensorProto (dims [2], FLOAT, float_data [1, 2]), written by hand: valid protobuf, not a model.
    name: "a valid protobuf that is not a model",
    code: "INVALID_MODEL",
    message: [/not an ONNX model/, /no graph \(field 7\)/],
    run: () =>
      loadModel(new Uint8Array([0x08, 0x02, 0x10, 0x01, 0x22, 0x08, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40])),
  },
  {
    name: "bytes that are not a Uint8Array",
    code: "INVALID_ARGUMENT",
    message: [/loadModel takes the ONNX file's bytes as a Uint8Array/],
    run: () => loadModel(tinyBytes.buffer as unknown as Uint8Array),
  },
  {
    name: "unsupported ops: every op type and node named",
    code: "UNSUPPORTED_MODEL",
    message: [/unsupported op types FancyRelu, com\.example\.Pool/, /"\/relu1\/Relu"/, /"\/pool\/MaxPool"/],
    run: () =>
      loadModel(withOps({
        "/relu1/Relu": { opType: "FancyRelu" },
        "/pool/MaxPool": { opType: "Pool", domain: "com.example" },
      })),
  },
  // ---- inputs to model.run and q.run
  {
    name: "model.run: input of the wrong shape",
    code: "SHAPE_MISMATCH",
    message: [/input "input" must have shape \[batch,1,28,28\], got \[2,1,56,14\]/],
    run: async () => (await setup()).model.run({ input: new Tensor(f32(2 * 784, 0), [2, 1, 56, 14]) }),
  },
  {
    name: "model.run: input of the wrong dtype",
    code: "INVALID_ARGUMENT",
    message: [/input "input" must be float32, got float64/],
    run: async () => (await setup()).model.run({ input: new Tensor(new Float64Array(784), [1, 1, 28, 28]) }),
  },
  {
    name: "model.run: input under another name",
    code: "INVALID_ARGUMENT",
    message: [/missing input "input" of shape \[batch,1,28,28\]/],
    run: async () => (await setup()).model.run({ image: new Tensor(f32(784, 0), [1, 1, 28, 28]) }),
  },
  {
    name: "quantized model run: input of the wrong shape",
    code: "SHAPE_MISMATCH",
    message: [/input "input" must have shape \[batch,1,28,28\], got \[1,784\]/],
    run: async () => {
      const { model, calib } = await setup();
      const q = await quantize(model, calib, { rounding: "nearest", holdout: 0 });
      try {
        return q.run({ input: new Tensor(f32(784, 0), [1, 784]) });
      } finally {
        q.dispose();
      }
    },
  },
  {
    name: "quantized model run: input of the wrong dtype",
    code: "INVALID_ARGUMENT",
    message: [/input "input" must be float32, got int32/],
    run: async () => {
      const { model, calib } = await setup();
      const q = await quantize(model, calib, { rounding: "nearest", holdout: 0 });
      try {
        return q.run({ input: new Tensor(new Int32Array(784), [1, 1, 28, 28]) });
      } finally {
        q.dispose();
      }
    },
  },
  // ---- calibration data given to quantize
  {
    name: "quantize: calibration of the wrong shape",
    code: "INVALID_DATA",
    message: [/calibration tensor has shape \[4,1,32,32\]/, /needs \[batch,1,28,28\]/],
    run: async () => quantize((await setup()).model, new Tensor(f32(4 * 1024, 0), [4, 1, 32, 32])),
  },
  {
    name: "quantize: calibration missing the channel axis",
    code: "INVALID_DATA",
    message: [/shape \[4,28,28\]/, /rank 4/],
    run: async () => quantize((await setup()).model, new Tensor(f32(4 * 784, 0), [4, 28, 28])),
  },
  {
    name: "quantize: uint8 calibration images",
    code: "INVALID_DATA",
    message: [/is uint8/, /takes float32 \(scale uint8 images to \[0, 1\] first\)/],
    run: async () => quantize((await setup()).model, new Tensor(new Uint8Array(784), [1, 1, 28, 28])),
  },
  {
    name: "quantize: calibration batches of different shapes",
    code: "INVALID_DATA",
    message: [/calibration batch 1/],
    run: async () =>
      quantize((await setup()).model, [
        new Tensor(f32(784, 0), [1, 1, 28, 28]),
        new Tensor(f32(2 * 784, 0), [1, 2, 28, 28]),
      ]),
  },
  {
    name: "quantize: NaN in calibration data",
    code: "INVALID_DATA",
    message: [/holds NaN at element 900 \(sample 1\)/, /must be finite/],
    run: async () => {
      const data = f32(3 * 784, 0.5);
      data[900] = NaN;
      return quantize((await setup()).model, new Tensor(data, [3, 1, 28, 28]));
    },
  },
  {
    name: "quantize: Infinity in a later calibration batch",
    code: "INVALID_DATA",
    message: [/calibration batch 1 holds -Infinity at element 5 \(sample 0\)/],
    run: async () => {
      const data = f32(784, 0.5);
      data[5] = -Infinity;
      const { model } = await setup();
      return quantize(model, [new Tensor(f32(784, 0), [1, 1, 28, 28]), new Tensor(data, [1, 1, 28, 28])]);
    },
  },
  {
    name: "quantize: an empty calibration array",
    code: "INVALID_DATA",
    message: [/the calibration set is empty/],
    run: async () => quantize((await setup()).model, []),
  },
  {
    name: "quantize: a calibration tensor of zero samples",
    code: "INVALID_DATA",
    message: [/the calibration set is empty/],
    run: async () => quantize((await setup()).model, new Tensor(new Float32Array(0), [0, 1, 28, 28])),
  },
  {
    name: "quantize: an async iterable that yields nothing",
    code: "INVALID_DATA",
    message: [/the calibration set is empty/],
    run: async () => quantize((await setup()).model, (async function* () {})()),
  },
  {
    name: "quantize: calibration that is not tensors",
    code: "INVALID_ARGUMENT",
    message: [/calibration must be a Tensor/],
    run: async () => quantize((await setup()).model, { x: 1 } as unknown as Tensor),
  },
  {
    name: "quantize: something that is not a model",
    code: "INVALID_ARGUMENT",
    message: [/quantize takes a Model/],
    run: async () => quantize(tinyBytes as unknown as Model, (await setup()).calib),
  },
  // ---- options
  ...([
    [{ weightBits: 1 }, /weightBits must be an integer from 2 to 8, got 1/],
    [{ weightBits: 9 }, /weightBits must be an integer from 2 to 8, got 9/],
    [{ weightBits: 3.5 }, /weightBits must be an integer from 2 to 8, got 3.5/],
    [{ activationBits: 16 }, /activationBits must be an integer from 2 to 8 \(or 32 for float\), got 16/],
    [{ layers: { "/conv2/Conv": { weightBits: 12 } } }, /layers\["\/conv2\/Conv"\]\.weightBits .* got 12/],
    [{ rounding: "floor" }, /rounding must be "attention", "adaround" or "nearest", got "floor"/],
    [{ iterations: -1 }, /iterations must be an integer from 0 to 1000000, got -1/],
  ] as const).map(([options, message]): Row => ({
    name: `quantize: option ${JSON.stringify(options)}`,
    code: "INVALID_ARGUMENT",
    message: [message],
    run: async () => {
      const { model, calib } = await setup();
      return quantize(model, calib, options as Record<string, unknown>);
    },
  })),
  // ---- dynamic input shapes
  {
    name: "dynamic input shape: run with a shape its ops cannot take",
    code: "SHAPE_MISMATCH",
    message: [/cannot take input "input" of shape \[2,3,28,28\]/, /\[N,C,H,W\]/, /node "\/conv1\/Conv"/],
    run: async () => (await setup()).dynamic.run({ input: new Tensor(f32(2 * 3 * 784, 0), [2, 3, 28, 28]) }),
  },
  {
    name: "dynamic input shape: calibration of a shape its ops cannot take",
    code: "SHAPE_MISMATCH",
    message: [/cannot take input "input" of shape \[4,3,28,28\]/, /node "\/conv1\/Conv"/],
    run: async () => quantize((await setup()).dynamic, new Tensor(f32(4 * 3 * 784, 0), [4, 3, 28, 28])),
  },
  {
    name: "undeclared input shape: calibration without the channel axis",
    code: "SHAPE_MISMATCH",
    message: [/cannot take input "input" of shape \[4,28,28\]/, /declares no shape for "input"/],
    run: async () => quantize((await setup()).shapeless, new Tensor(f32(4 * 784, 0), [4, 28, 28])),
  },
  {
    name: "dynamic input shape: .npz images without a sample shape",
    code: "INVALID_ARGUMENT",
    message: [/array "x" \[1024, 28, 28\]/, /where the channel axis goes/, /sampleShape: \[1, 28, 28\]/],
    run: async () => inputsFromNpz(readNpz(calibNpz), (await setup()).dynamic.inputs[0]),
  },
  {
    name: "undeclared input shape: .npz images without a sample shape",
    code: "INVALID_ARGUMENT",
    message: [/does not declare the shape of its input "input"/, /sampleShape/],
    run: async () => inputsFromNpz(readNpz(calibNpz), (await setup()).shapeless.inputs[0]),
  },
  {
    name: "an .npz sample shape that does not match the data",
    code: "SHAPE_MISMATCH",
    message: [/array "x" of shape \[1024, 28, 28\] cannot take the sample shape \[3, 28, 28\]/],
    run: async () =>
      inputsFromNpz(readNpz(calibNpz), (await setup()).dynamic.inputs[0], { sampleShape: [3, 28, 28] }),
  },
  // ---- .npz files
  {
    name: ".npz with no arrays",
    code: "INVALID_DATA",
    message: [/the \.npz holds no arrays/, /named "x"/],
    run: () =>
      inputsFromNpz(readNpz(writeZip([["notes.txt", new TextEncoder().encode("hi")]], false)), {
        name: "input",
        shape: ["batch", 1, 28, 28],
      }),
  },
  {
    name: ".npz with labels only",
    code: "INVALID_DATA",
    message: [/holds only "y"/, /named "x"/],
    run: () => {
      const y = readZip(calibNpz).get("y.npy")!;
      return inputsFromNpz(readNpz(writeZip([["y.npy", y]], false)), {
        name: "input",
        shape: [1, 1, 28, 28],
      });
    },
  },
  {
    name: ".npz whose inputs are integers",
    code: "INVALID_DATA",
    message: [/array "x" is int64/, /float32, float64 or uint8/],
    run: () => {
      const x = writeNpy(new Tensor(new BigInt64Array(784), [1, 28, 28]));
      return inputsFromNpz(readNpz(writeZip([["x.npy", x]], false)), {
        name: "input",
        shape: [1, 1, 28, 28],
      });
    },
  },
  {
    name: ".npz whose labels do not match its inputs",
    code: "INVALID_DATA",
    message: [/labels "y" of shape \[3\] do not match the 2 samples of "x"/],
    run: () => {
      const x = writeNpy(new Tensor(new Uint8Array(2 * 784), [2, 28, 28]));
      const y = writeNpy(new Tensor(new Uint8Array(3), [3]));
      return inputsFromNpz(readNpz(writeZip([["x.npy", x], ["y.npy", y]], false)), {
        name: "input",
        shape: ["batch", 1, 28, 28],
      });
    },
  },
  {
    name: ".npz images of another size than the model input",
    code: "SHAPE_MISMATCH",
    message: [/array "x" of shape \[1024, 28, 28\] does not fit input "input" \[batch, 3, 32, 32\]/],
    run: () => inputsFromNpz(readNpz(calibNpz), { name: "input", shape: ["batch", 3, 32, 32] }),
  },
  {
    name: ".npz that is not a zip archive",
    code: "INVALID_DATA",
    message: [/npz: no end-of-central-directory record/],
    run: () => readNpz(tinyBytes),
  },
  {
    name: ".npz cut short",
    code: "INVALID_DATA",
    message: [/npz:/],
    run: () => readNpz(calibNpz.slice(0, calibNpz.length - 100)),
  },
];

async function caught(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (e) {
    return e;
  }
  return undefined;
}

for (const row of rows) {
  Deno.test(`errors: ${row.name} → ${row.code}`, async () => {
    await init();
    const e = await caught(row.run);
    assert.ok(
      e instanceof AttnroundError,
      `expected an AttnroundError, got ${e instanceof Error ? e.stack : e}`,
    );
    assert.equal(e.code, row.code, e.message);
    assert.equal(e.name, "AttnroundError");
    for (const fragment of row.message) assert.match(e.message, fragment);
  });
}

Deno.test("errors: the dynamic-shape model still runs inputs of the shape it was made for", async () => {
  // So that the SHAPE_MISMATCH rows above come from the shapes fed, not from a broken variant.
  const { model, dynamic, shapeless } = await setup();
  const input = new Tensor(f32(2 * 784, 0.25), [2, 1, 28, 28]);
  const expected = model.run({ input }).logits.data;
  assert.deepEqual(dynamic.run({ input }).logits.data, expected);
  assert.deepEqual(shapeless.run({ input }).logits.data, expected);
  const { x } = inputsFromNpz(readNpz(calibNpz), dynamic.inputs[0], { sampleShape: [1, 28, 28] });
  assert.deepEqual(x.shape, [1024, 1, 28, 28]);
});
