// Issue 17, "Hardening": hostile models, archives, saved states and API
// arguments, each of which once crashed, hung, ran out of memory or silently
// did the wrong thing. Every case must end in a typed AttnroundError that
// names what is at fault (or, where the input is valid, in a correct result).
// The command-line cases are in cli-hardening.test.ts.
import assert from "node:assert/strict";
import {
  AttnroundError,
  init,
  inputsFromNpz,
  inspectMixedPrecision,
  inspectModel,
  loadModel,
  type Model,
  QuantizationRun,
  quantize,
  readNpy,
  readNpz,
  reportToHtml,
  Tensor,
  writeNpy,
  writeNpz,
} from "../mod.ts";
import { readZip, writeZip } from "../src/data/zip.ts";
import { decodeModel, encodeModel } from "../src/onnx/codec.ts";
import type { ModelProto } from "../src/onnx/types.ts";
import { decodeState, encodeState } from "../src/quant/state.ts";
import { Sha256, sha256 } from "../src/sha256.ts";
import { imagesToInput, readFixture } from "./fixtures.ts";

const tinyBytes = readFixture("tiny_cnn_fmnist.onnx");

/** The tiny fixture model, changed by `change`, as bytes. */
function variant(change: (m: ModelProto) => void): Uint8Array {
  const proto = decodeModel(tinyBytes);
  change(proto);
  return encodeModel(proto);
}

const node = (m: ModelProto, name: string) => m.graph.node.find((n) => n.name === name)!;
const attribute = (m: ModelProto, nodeName: string, name: string) =>
  node(m, nodeName).attribute.find((a) => a.name === name)!;

let calibCache: Tensor | undefined;
/** 64 calibration images of the fixture set. */
function calibration(): Tensor {
  const x = readNpz(readFixture("calib.npz")).x;
  calibCache ??= imagesToInput(new Tensor((x.data as Uint8Array).slice(0, 64 * 784), [64, 28, 28]));
  return calibCache;
}

/** The error `run` throws (or rejects with); fails if it returns. */
async function thrown(run: () => unknown): Promise<AttnroundError> {
  let error: unknown;
  try {
    await run();
  } catch (e) {
    error = e;
  }
  assert.ok(error !== undefined, "expected an error, got a result");
  assert.ok(
    error instanceof AttnroundError,
    `expected an AttnroundError, got ${error instanceof Error ? error.stack : error}`,
  );
  return error;
}

async function expectError(run: () => unknown, code: string, ...messages: RegExp[]): Promise<AttnroundError> {
  const e = await thrown(run);
  assert.equal(e.code, code, e.message);
  for (const m of messages) assert.match(e.message, m);
  return e;
}

// ---------------------------------------------------------------- D1: zip bombs

/** An .npz with one deflated entry x.npy of `rows` × 784 zero bytes, as numpy would write it. */
function zeroImages(rows: number): Uint8Array {
  const npy = writeNpy(new Tensor(new Uint8Array(rows * 784), [rows, 28, 28]));
  return writeZip([["x.npy", npy]], true);
}

Deno.test("D1: an .npz that unpacks past the byte limit is refused before it is inflated", async () => {
  const bomb = zeroImages(80_000); // 62.7 MB of zeros in about 61 KB
  assert.ok(bomb.length < 100_000);
  const started = performance.now();
  await expectError(
    () => readNpz(bomb, { maxBytes: 8 << 20 }),
    "TOO_LARGE",
    /x\.npy/,
    /62[,.]7\d* MB|62720\d+ bytes|62,720,\d+ bytes/,
    /maxBytes/,
  );
  // Refused from the sizes the archive declares: far faster than inflating 63 MB.
  assert.ok(performance.now() - started < 500, `took ${performance.now() - started} ms`);
  // Under the default limit (1 GiB) the same archive reads, as one copy of its data.
  const { x } = readNpz(bomb);
  assert.deepEqual(x.shape, [80_000, 28, 28]);
  assert.equal(x.data.buffer.byteLength < 80_000 * 784 + 4096, true, "no second copy of the data");
});

Deno.test("D1: the row limit is read from the .npy header inside, before the data is inflated", async () => {
  await expectError(
    () => readNpz(zeroImages(5_000), { maxSamples: 4_096 }),
    "TOO_LARGE",
    /x\.npy/,
    /5000 samples|5,000 samples/,
    /maxSamples/,
  );
  assert.deepEqual(readNpz(zeroImages(4_096), { maxSamples: 4_096 }).x.shape, [4_096, 28, 28]);
});

Deno.test("D1: an entry that inflates past the size it declares is stopped there", async () => {
  // The directory says 1,000 bytes; the deflate stream holds 64 MiB of zeros.
  const stream = deflated(new Uint8Array(64 << 20));
  const npy = writeNpy(new Tensor(new Uint8Array(1000 - 128), [1000 - 128]));
  const zip = writeZip([["x.npy", npy]], false);
  const patched = withEntry(zip, stream, 1000);
  const started = performance.now();
  await expectError(() => readNpz(patched), "INVALID_DATA", /x\.npy/, /more than the 1000 bytes it declares/);
  assert.ok(performance.now() - started < 1000, `took ${performance.now() - started} ms`);
});

/** The deflate stream of `data`, as writeZip compresses it. */
function deflated(data: Uint8Array): Uint8Array {
  const zip = writeZip([["d", data]], true);
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const start = 30 + view.getUint16(26, true) + view.getUint16(28, true);
  return zip.subarray(start, start + view.getUint32(18, true));
}

/** `zip` (one stored entry) with its data replaced by a deflate stream that declares `size` bytes. */
function withEntry(zip: Uint8Array, stream: Uint8Array, size: number): Uint8Array {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const nameLength = view.getUint16(26, true), extraLength = view.getUint16(28, true);
  const start = 30 + nameLength + extraLength;
  const oldSize = view.getUint32(18, true);
  const central = start + oldSize;
  const out = new Uint8Array(zip.length - oldSize + stream.length);
  out.set(zip.subarray(0, start));
  out.set(stream, start);
  out.set(zip.subarray(central), start + stream.length);
  const o = new DataView(out.buffer);
  const shift = stream.length - oldSize;
  const c = central + shift;
  for (const [at, value] of [[8, 8], [18, stream.length], [22, size]] as const) {
    (at === 8 ? o.setUint16 : o.setUint32).call(o, at, value, true);
    (at === 8 ? o.setUint16 : o.setUint32).call(o, c + at + 2, value, true);
  }
  const eocd = out.length - 22;
  o.setUint32(eocd + 16, o.getUint32(eocd + 16, true) + shift, true);
  return out;
}

// ---------------------------------------------------------------- D2: no outputs

Deno.test("D2: a graph with no outputs is refused at load", async () => {
  await init();
  await expectError(
    () => loadModel(variant((m) => m.graph.output = [])),
    "INVALID_MODEL",
    /no outputs/,
  );
});

// ---------------------------------------------------------------- D3: export names

Deno.test("D3: nodes that share one name, or a 70,000-character name, still export (ONNX and npz)", async () => {
  await init();
  const long = "n".repeat(70_000);
  const plain = await quantize(loadModel(tinyBytes), calibration(), { rounding: "nearest", holdout: 0 });
  const arrays = Object.keys(readNpz(plain.toNpz())).length;
  plain.dispose();
  for (const [label, rename] of [["one name", () => "same"], ["a long name", () => long]] as const) {
    const model = loadModel(variant((m) => m.graph.node.forEach((n) => n.name = rename())));
    const q = await quantize(model, calibration(), { rounding: "nearest", holdout: 0 });
    try {
      const again = loadModel(q.toOnnx());
      const names = decodeModel(q.toOnnx()).graph.node.map((n) => n.name);
      assert.equal(new Set(names).size, names.length, `${label}: node names are unique`);
      again.dispose();
      const keys = Object.keys(readNpz(q.toNpz()));
      assert.equal(keys.length, arrays, `${label}: ${keys.length} arrays`);
      assert.ok(keys.every((k) => k.length < 300), `${label}: npz names are short enough for zip`);
    } finally {
      q.dispose();
      model.dispose();
    }
  }
});

Deno.test("D3: a model the export cannot convert is refused before the run, not after it", async () => {
  await init();
  // Opset 8: the export converts models from opset 9 on (README, "Export").
  const model = loadModel(variant((m) => m.opsetImport = [{ domain: "", version: 8 }]));
  const phases = new Set<string>();
  try {
    await expectError(
      () => quantize(model, calibration(), { iterations: 5, onProgress: (p) => phases.add(p.phase) }),
      "UNSUPPORTED_MODEL",
      /opset 8/,
    );
    assert.ok(!phases.has("reconstruct"), "no iteration ran");
  } finally {
    model.dispose();
  }
});

// ---------------------------------------------------------------- D4: opsets and IR versions

Deno.test("D4: opsets and IR versions the engine does not implement are refused at load", async () => {
  await init();
  for (const version of [26, 99, 100_000, 2 ** 40]) {
    await expectError(
      () => loadModel(variant((m) => m.opsetImport = [{ domain: "", version }])),
      "UNSUPPORTED_MODEL",
      new RegExp(`opset ${version}\\b`),
      /25/,
    );
  }
  await expectError(
    () => loadModel(variant((m) => m.irVersion = 999n)),
    "UNSUPPORTED_MODEL",
    /IR version 999/,
  );
  // The fixture's own versions (IR 7, opset 13) and the newest supported ones load.
  loadModel(variant((m) => m.opsetImport = [{ domain: "", version: 25 }])).dispose();
});

// ---------------------------------------------------------------- D5: domains

Deno.test("D5: an op of another domain is not run (or fused) as the standard op of that name", async () => {
  await init();
  const bytes = variant((m) => {
    node(m, "/relu1/Relu").domain = "com.microsoft";
    m.opsetImport.push({ domain: "com.microsoft", version: 1 });
  });
  await expectError(() => loadModel(bytes), "UNSUPPORTED_MODEL", /com\.microsoft\.Relu/, /"\/relu1\/Relu"/);
});

// ---------------------------------------------------------------- D8: saved states

async function savedState(): Promise<{ model: Model; state: Uint8Array }> {
  await init();
  const model = loadModel(tinyBytes);
  // One thread: a pool of workers per 2 ms slice would take far longer than the slices.
  const run = await QuantizationRun.start(model, calibration(), { iterations: 30, holdout: 0, threads: 1 });
  while (run.progress < 0.25) await run.advance({ milliseconds: 2 });
  const state = run.state();
  run.dispose();
  return { model, state };
}

Deno.test("D8: any bit flip in a saved state is detected on resume", async () => {
  const { model, state } = await savedState();
  try {
    const undetected: number[] = [];
    for (let i = 0; i < 150; i++) {
      const at = Math.floor((i * state.length) / 150);
      const flipped = state.slice();
      flipped[at] ^= 1 << (i % 8);
      try {
        (await QuantizationRun.resume(model, calibration(), flipped)).dispose();
        undetected.push(at);
      } catch (e) {
        assert.ok(e instanceof AttnroundError, `byte ${at}: ${(e as Error)?.stack}`);
        assert.equal(e.code, "INVALID_DATA", `byte ${at}: ${e.message}`);
      }
    }
    assert.deepEqual(undetected, [], `${undetected.length} flips resumed silently`);
  } finally {
    model.dispose();
  }
});

Deno.test("D8: every header field of a saved state is checked, with a valid checksum too", async () => {
  const { model, state } = await savedState();
  const header = decodeState(state) as Record<string, unknown>;
  // deno-lint-ignore no-explicit-any
  type Any = any;
  const changes: [string, (h: Any) => void][] = [
    ["version 99", (h) => h.version = 99],
    ["another fingerprint", (h) => h.fingerprint = "0123abcd"],
    ["block 99", (h) => h.block = 99],
    ["block -1", (h) => h.block = -1],
    ["block 0.5", (h) => h.block = 0.5],
    ["block 1 without its report", (h) => h.block = 1],
    ["reports 5", (h) => h.reports = 5],
    ["a report too many", (h) => h.reports = [{}]],
    ["steps not numbers", (h) => h.steps = Object.fromEntries(Object.keys(h.steps).map((k) => [k, "x"]))],
    ["a step for an unknown tensor", (h) => h.steps = { ...h.steps, nowhere: 1 }],
    ["a negative step", (h) => h.steps = Object.fromEntries(Object.keys(h.steps).map((k) => [k, -1]))],
    ["final rows of an unknown weight", (h) => h.finalRows = { nowhere: new Float32Array(3) }],
    ["settings renamed", (h) => (h.settingz = h.settings, delete h.settings)],
    ["settings.iterations 1e12", (h) => h.settings.iterations = 1e12],
    ["settings.weightBits 9", (h) => h.settings.weightBits = 9],
    ["settings.seed 0.5", (h) => h.settings.seed = 0.5],
    ["an unknown setting", (h) => h.settings.color = "red"],
    ["settings changed (fingerprint)", (h) => h.settings.learningRate = 0.5],
    ["trainer 7", (h) => h.trainer = 7],
    ["trainer iteration -5", (h) => h.trainer.iteration = -5],
    ["trainer iteration past the end", (h) => h.trainer.iteration = 1e9],
    ["trainer sampler 2^40", (h) => h.trainer.sampler = 2 ** 40],
    ["trainer losses not numbers", (h) => h.trainer.losses = ["a"]],
    ["trainer tensors missing", (h) => h.trainer.tensors = {}],
    ["trainer moments of the wrong length", (h) => {
      const first = Object.values(h.trainer.tensors)[0] as Any;
      first.m1 = new Float32Array(1);
    }],
    [
      "a trainer tensor too many",
      (h) => h.trainer.tensors.nowhere = h.trainer.tensors[Object.keys(h.trainer.tensors)[0]],
    ],
    ["a NaN latent", (h) => {
      const first = Object.values(h.trainer.tensors)[0] as Any;
      first.value[0] = NaN;
    }],
  ];
  try {
    for (const [label, change] of changes) {
      const h = structuredClone(header) as Any;
      change(h);
      const e = await thrown(async () => {
        (await QuantizationRun.resume(model, calibration(), encodeState(h))).dispose();
        throw new Error(`${label}: resumed`);
      });
      assert.equal(e.code, "INVALID_DATA", `${label}: ${e.message}`);
      assert.match(e.message, /saved (quantization )?state/, label);
    }
    // The unchanged header, re-encoded, still resumes.
    (await QuantizationRun.resume(model, calibration(), encodeState(structuredClone(header)))).dispose();
  } finally {
    model.dispose();
  }
});

Deno.test("D8: the state's SHA-256 is the standard one (crypto.subtle), whole or fed in parts", async () => {
  for (const length of [0, 1, 55, 56, 63, 64, 65, 1000, 100_003]) {
    const bytes = Uint8Array.from({ length }, (_, i) => (i * 131 + 7) & 0xff);
    const expected = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    assert.deepEqual(sha256(bytes), expected, `${length} bytes`);
    const parts = new Sha256();
    for (let i = 0; i < length; i += 37) parts.update(bytes.subarray(i, i + 37));
    assert.deepEqual(parts.digest(), expected, `${length} bytes in parts`);
  }
});

// ---------------------------------------------------------------- D9: invalid nodes

Deno.test("D9: invalid nodes are refused at load, naming the node", async () => {
  await init();
  const cases: [string, (m: ModelProto) => void, RegExp][] = [
    ["Conv weight of rank 2", (m) => {
      const w = m.graph.initializer.find((t) => t.name === "onnx::Conv_30")!;
      w.dims = [8, 9];
    }, /"\/conv1\/Conv"/],
    [
      "negative pads",
      (m) => attribute(m, "/conv1/Conv", "pads").ints = [-1n, 1n, 1n, 1n],
      /"\/conv1\/Conv".*pads/,
    ],
    ["stride 0", (m) => attribute(m, "/conv2/Conv", "strides").ints = [0n, 1n], /"\/conv2\/Conv".*strides/],
    [
      "pads of 10^6",
      (m) => attribute(m, "/conv1/Conv", "pads").ints = [1_000_000n, 1n, 1n, 1n],
      /"\/conv1\/Conv".*pads/,
    ],
    [
      "pads of 300",
      (m) => attribute(m, "/conv2/Conv", "pads").ints = [300n, 300n, 300n, 300n],
      /"\/conv2\/Conv".*pads/,
    ],
    [
      "pool pads as large as its kernel",
      (m) => attribute(m, "/pool/MaxPool", "pads").ints = [2n, 0n, 0n, 0n],
      /"\/pool\/MaxPool".*pads/,
    ],
    [
      "kernel_shape that is not the weight's",
      (m) => attribute(m, "/conv2/Conv", "kernel_shape").ints = [5n, 5n],
      /"\/conv2\/Conv".*kernel_shape/,
    ],
    ["a group that does not divide the weight", (m) => {
      const g = attribute(m, "/conv2/Conv", "group");
      g.i = 3n;
    }, /"\/conv2\/Conv".*group/],
    ["a bias of the wrong length", (m) => {
      const b = m.graph.initializer.find((t) => t.name === "onnx::Conv_34")!;
      b.dims = [15];
      b.rawData = b.rawData!.subarray(0, 60);
    }, /"\/conv2\/Conv".*bias/],
    [
      "a node output shadowing an initializer",
      (m) => node(m, "/relu1/Relu").output = ["fc.weight"],
      /"\/relu1\/Relu".*"fc\.weight"/,
    ],
    [
      "a node output shadowing the graph input",
      (m) => node(m, "/relu1/Relu").output = ["input"],
      /"\/relu1\/Relu".*"input"/,
    ],
    [
      "two nodes writing one tensor",
      (m) => node(m, "/relu2/Relu").output = ["/relu1/Relu_output_0"],
      /"\/relu1\/Relu".*"\/relu2\/Relu"|"\/relu2\/Relu".*"\/relu1\/Relu"/,
    ],
    ["a graph output nothing computes", (m) => m.graph.output[0].name = "nowhere", /"nowhere"/],
  ];
  for (const [label, change, message] of cases) {
    const e = await thrown(() => loadModel(variant(change)));
    assert.equal(e.code, "INVALID_MODEL", `${label}: ${e.message}`);
    assert.match(e.message, message, label);
  }
});

Deno.test("D9: a weight that does not fit the input it gets blames the node, not the input", async () => {
  await init();
  // conv2 reads 8 channels; a weight for 4 is the model's fault, whatever batch is fed.
  const model = loadModel(variant((m) => {
    const w = m.graph.initializer.find((t) => t.name === "onnx::Conv_33")!;
    w.dims = [16, 4, 3, 3];
    w.rawData = w.rawData!.subarray(0, 16 * 4 * 9 * 4);
  }));
  try {
    await expectError(
      () => model.run({ input: new Tensor(new Float32Array(2 * 784), [2, 1, 28, 28]) }),
      "INVALID_MODEL",
      /node "\/conv2\/Conv"/,
      /weight \[16,4,3,3\]/,
    );
  } finally {
    model.dispose();
  }
});

Deno.test("D9: an output too large for wasm memory names its node instead of aborting in the allocator", async () => {
  await init();
  const { Engine } = await import("../src/engine/engine.ts");
  for (const dims of [[70_000, 70_000], [1 << 20, 1 << 12]]) {
    const engine = new Engine({
      nodes: [{
        name: "big",
        opType: "Expand",
        domain: "",
        inputs: ["x", "shape"],
        outputs: ["y"],
        attributes: new Map(),
      }],
      initializers: new Map([["shape", new Tensor(BigInt64Array.from(dims, BigInt), [2])]]),
      inputs: [{ name: "x" }],
      outputs: [{ name: "y" }],
      opset: 17,
    });
    try {
      await expectError(
        () => engine.run({ x: new Tensor(new Float32Array([1]), [1, 1]) }),
        "TOO_LARGE",
        /node "big" \(Expand\)/,
        /GiB/,
      );
    } finally {
      engine.dispose();
    }
  }
});

// ---------------------------------------------------------------- D11: npz names

Deno.test("D11: npz entry names are sanitised paths, unique, and numpy keeps them whole", async () => {
  await init();
  const model = loadModel(variant((m) => {
    node(m, "/conv1/Conv").name = "../../etc/passwd";
    node(m, "/conv2/Conv").name = "a\u0000b";
    node(m, "/fc/Gemm").name = "a\u0000c";
  }));
  const q = await quantize(model, calibration(), { rounding: "nearest", holdout: 0 });
  try {
    const names = [...readZip(q.toNpz()).keys()];
    for (const name of names) {
      assert.ok(!name.split("/").includes(".."), name);
      assert.ok(!name.startsWith("/"), name);
      // deno-lint-ignore no-control-regex
      assert.ok(!/[\u0000-\u001f\\]/.test(name), JSON.stringify(name));
    }
    assert.equal(new Set(names).size, names.length);
    assert.equal(names.filter((n) => n.endsWith(".weight_int.npy")).length, 3);
  } finally {
    q.dispose();
    model.dispose();
  }
  // writeNpz itself refuses names that are not plain relative paths.
  const t = new Tensor(new Float32Array(1), [1]);
  for (const name of ["../x", "/x", "a\u0000b", "", "a".repeat(70_000)]) {
    await expectError(() => writeNpz({ [name]: t }), "INVALID_ARGUMENT", /writeNpz/);
  }
});

// ---------------------------------------------------------------- D12: long names in messages

Deno.test("D12: a 4 MiB op type or tensor name is shortened in error messages", async () => {
  await init();
  const huge = "x".repeat(4 << 20);
  const cases: ((m: ModelProto) => void)[] = [
    (m) => node(m, "/relu1/Relu").opType = huge,
    (m) => node(m, "/relu1/Relu").input = [huge],
    (m) => Object.assign(node(m, "/relu1/Relu"), { name: huge, opType: "Nope" }),
    (m) => (attribute(m, "/conv2/Conv", "strides").ints = [0n, 0n], node(m, "/conv2/Conv").name = huge),
    (m) => m.graph.output[0].name = huge,
    (m) => node(m, "/relu1/Relu").domain = huge,
  ];
  for (const change of cases) {
    const e = await thrown(() => loadModel(variant(change)));
    assert.ok(e.message.length < 2000, `${e.code}: a message of ${e.message.length} characters`);
    assert.match(e.message, /xxxx…/);
  }
});

// ---------------------------------------------------------------- D13: bad arguments to the API

Deno.test("D13: every public function answers bad arguments with INVALID_ARGUMENT", async () => {
  await init();
  const model = loadModel(tinyBytes);
  const calib = calibration();
  const q = await quantize(model, calib, { rounding: "nearest", holdout: 0 });
  const t = new Tensor(new Float32Array(4), [4]);
  const input = model.inputs[0];
  // deno-lint-ignore no-explicit-any
  const any = (v: unknown) => v as any;
  const calls: [string, () => unknown][] = [
    ["readNpz(null)", () => readNpz(any(null))],
    ['readNpz("PK")', () => readNpz(any("PK"))],
    ["readNpz(ArrayBuffer)", () => readNpz(any(new ArrayBuffer(8)))],
    ["readNpz(bytes, 5)", () => readNpz(writeNpz({ t }), any(5))],
    ["readNpz(bytes, { maxBytes: -1 })", () => readNpz(writeNpz({ t }), { maxBytes: -1 })],
    ["readNpy(undefined)", () => readNpy(any(undefined))],
    ["readNpy([1, 2])", () => readNpy(any([1, 2]))],
    ["writeNpy(null)", () => writeNpy(any(null))],
    ["writeNpy({})", () => writeNpy(any({}))],
    ["writeNpz(null)", () => writeNpz(any(null))],
    ["writeNpz({ a: 5 })", () => writeNpz(any({ a: 5 }))],
    ["writeNpz({ t }, 5)", () => writeNpz({ t }, any(5))],
    ["inputsFromNpz(null, input)", () => inputsFromNpz(any(null), input)],
    ["inputsFromNpz({ x }, null)", () => inputsFromNpz({ x: t }, any(null))],
    ["inputsFromNpz({ x }, input, 5)", () => inputsFromNpz({ x: t }, input, any(5))],
    ["quantize(m, c, null)", () => quantize(model, calib, any(null))],
    ["quantize(m, c, 5)", () => quantize(model, calib, any(5))],
    ["quantize(m, c, { layers: 5 })", () => quantize(model, calib, any({ layers: 5 }))],
    [
      "quantize(m, c, { layers: { x: 5 } })",
      () => quantize(model, calib, any({ layers: { "/conv2/Conv": 5 } })),
    ],
    ["quantize(m, c, { attention: 5 })", () => quantize(model, calib, any({ attention: 5 }))],
    ["quantize(m, c, { mixedPrecision: 5 })", () => quantize(model, calib, any({ mixedPrecision: 5 }))],
    ["quantize(m, c, { onProgress: 5 })", () => quantize(model, calib, any({ onProgress: 5 }))],
    ["quantize(m, c, { signal: 5 })", () => quantize(model, calib, any({ signal: 5 }))],
    ["quantize(null, c)", () => quantize(any(null), calib)],
    ["QuantizationRun.start(m, c, null)", () => QuantizationRun.start(model, calib, any(null))],
    ["QuantizationRun.resume(m, c, null)", () => QuantizationRun.resume(model, calib, any(null))],
    ["QuantizationRun.resume(null, c, s)", () => QuantizationRun.resume(any(null), calib, new Uint8Array(8))],
    ["new Tensor(null, [1])", () => new Tensor(any(null), [1])],
    ["new Tensor(data, null)", () => new Tensor(new Float32Array(1), any(null))],
    ["new Tensor([1, 2], [2])", () => new Tensor(any([1, 2]), [2])],
    ["new Tensor(data, [-1])", () => new Tensor(new Float32Array(1), [-1])],
    ['new Tensor(data, [1], "float16")', () => new Tensor(new Float32Array(1), [1], any("float16"))],
    ["model.run(null)", () => model.run(any(null))],
    ["model.run({ input: 5 })", () => model.run(any({ input: 5 }))],
    ["q.run(null)", () => q.run(any(null))],
    ["inspectModel(null)", () => inspectModel(any(null))],
    ["inspectModel(m, 5)", () => inspectModel(model, any(5))],
    ["inspectModel(m, { budgets: 5 })", () => inspectModel(model, any({ budgets: 5 }))],
    ["inspectMixedPrecision(null)", () => inspectMixedPrecision(any(null))],
    [
      "inspectMixedPrecision(m, { candidates: 5 })",
      () => inspectMixedPrecision(model, any({ candidates: 5 })),
    ],
    ["reportToHtml(null)", () => reportToHtml(any(null))],
    ["reportToHtml({})", () => reportToHtml(any({}))],
    ["reportToHtml({ settings: 5 })", () => reportToHtml(any({ ...q.report, settings: 5 }))],
    ["init(5)", () => init(any(5))],
    ["model.run after dispose", () => {
      const m = loadModel(tinyBytes);
      m.dispose();
      return m.run({ input: new Tensor(new Float32Array(784), [1, 1, 28, 28]) });
    }],
  ];
  const wrong: string[] = [];
  try {
    for (const [label, call] of calls) {
      try {
        await call();
        wrong.push(`${label}: no error`);
      } catch (e) {
        if (!(e instanceof AttnroundError)) {
          wrong.push(`${label}: ${(e as Error)?.name}: ${(e as Error)?.message}`);
        } else if (e.code !== "INVALID_ARGUMENT") wrong.push(`${label}: ${e.code}: ${e.message}`);
      }
    }
  } finally {
    q.dispose();
    model.dispose();
  }
  assert.deepEqual(wrong, []);
});

// ---------------------------------------------------------------- D14: options aliased or ignored

Deno.test("D14: seeds past 2^32 - 1 and layer names the model lacks are refused", async () => {
  await init();
  const model = loadModel(tinyBytes);
  try {
    for (const seed of [2 ** 32, 1e20, -1]) {
      await expectError(
        () => quantize(model, calibration(), { seed, rounding: "nearest" }),
        "INVALID_ARGUMENT",
        /seed/,
        /4294967295/,
      );
    }
    await expectError(
      () => quantize(model, calibration(), { layers: { "/conv2/Conv_typo": { weightBits: 3 } } }),
      "INVALID_ARGUMENT",
      /"\/conv2\/Conv_typo"/,
      /did you mean "\/conv2\/Conv"\?/,
    );
    await expectError(
      () => inspectMixedPrecision(model, { layers: { nowhere: { weightBits: 3 } } }),
      "INVALID_ARGUMENT",
      /"nowhere"/,
    );
    // The largest seed is accepted.
    (await quantize(model, calibration(), { seed: 2 ** 32 - 1, rounding: "nearest", holdout: 0 })).dispose();
  } finally {
    model.dispose();
  }
});
