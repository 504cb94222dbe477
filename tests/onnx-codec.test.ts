// The ONNX codec (src/onnx): bytes written by hand from the protobuf spec,
// the fixture models against their README, a round trip over ONNX's own
// backend test data, tensor conversion, and hostile input.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { AttnroundError } from "../src/errors.ts";
import { Tensor } from "../src/tensor.ts";
import { decodeModel, decodeTensorProto, encodeModel, encodeTensorProto } from "../src/onnx/codec.ts";
import { halfToFloat, tensorFromProto, tensorToProto } from "../src/onnx/tensor-proto.ts";
import { DataType, type GraphProto, type TensorProto, type ValueInfoProto } from "../src/onnx/types.ts";
import { readFixture } from "./fixtures.ts";
import { haveOnnxTestdata, ONNX_TESTDATA } from "./system.ts";

// ------------------------------------------------------------ byte helpers
// Independent of src/onnx/wire.ts: keys are written out by hand below; these
// only spare counting lengths.

function hex(text: string): number[] {
  return text.trim().split(/\s+/).map((b) => parseInt(b, 16));
}

function bytes(...parts: (number[] | Uint8Array)[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

function varint(n: number): number[] {
  const out = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return out;
}

/** A length-delimited field: key byte(s) written by the caller, then length and body. */
function ld(key: number[], ...body: (number[] | Uint8Array)[]): number[] {
  const b = bytes(...body);
  return [...key, ...varint(b.length), ...b];
}

function ascii(s: string): number[] {
  return [...s].map((c) => c.charCodeAt(0));
}

function f32le(v: number): number[] {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return [...b];
}

function f64le(v: number): number[] {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, v, true);
  return [...b];
}

const MINUS_ONE = hex("ff ff ff ff ff ff ff ff ff 01"); // -1 as a 64-bit varint
const TWO_POW_63 = hex("80 80 80 80 80 80 80 80 80 01");

function assertInvalid(decode: () => unknown, what: string, message?: RegExp): void {
  assert.throws(decode, (e: unknown) => {
    assert.ok(e instanceof AttnroundError, `${what}: threw ${e}`);
    assert.equal(e.code, "INVALID_MODEL", `${what}: ${e.message}`);
    if (message) assert.match(e.message, message, what);
    return true;
  }, `${what}: no error`);
}

function assertError(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AttnroundError, `threw ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  });
}

/** Seeded integers in [0, n) (mulberry32). */
function rng(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

// ------------------------------------------------------------ 1. hand-written bytes

Deno.test("1.1 a hand-written TensorProto decodes field by field, packed and unpacked alike", () => {
  const input = bytes(
    hex("08 02"), // dims: 2 (unpacked)
    hex("0a 01 03"), // dims: [3] (packed)
    hex("10 01"), // data_type FLOAT
    ld(hex("22"), f32le(1), f32le(-2.5)), // float_data packed
    hex("25"),
    f32le(3), // float_data unpacked, same field
    hex("28"),
    MINUS_ONE, // int32_data -1: sign-extended to 10 bytes
    hex("2a 02 07 7f"), // int32_data packed [7, 127]
    hex("38"),
    MINUS_ONE, // int64_data -1
    hex("3a 02 05 06"), // int64_data packed [5, 6]
    hex("42 01 78"), // name "x"
    hex("51"),
    f64le(0.5), // double_data unpacked
    hex("58"),
    TWO_POW_63, // uint64_data 2^63
    hex("a8 01 2a"), // field 21 (unknown), varint 42
    hex("1a 04 08 01 10 02"), // field 3 (segment, not modelled)
    hex("62 00"), // doc_string "" written explicitly
  );
  const t = decodeTensorProto(input);
  assert.deepEqual(t, {
    dims: [2, 3],
    dataType: DataType.FLOAT,
    floatData: [1, -2.5, 3],
    int32Data: [-1, 7, 127],
    stringData: [],
    int64Data: [-1n, 5n, 6n],
    name: "x",
    doubleData: [0.5],
    uint64Data: [2n ** 63n],
    docString: "",
    externalData: [],
    dataLocation: 0,
    metadataProps: [],
    unknownFields: [
      { field: 21, bytes: Uint8Array.from(hex("a8 01 2a")) },
      { field: 3, bytes: Uint8Array.from(hex("1a 04 08 01 10 02")) },
    ],
  });
  // Canonical form: field-number order, dims unpacked, [packed = true] fields packed, unknown fields last.
  const expected = bytes(
    hex("08 02 08 03 10 01"),
    ld(hex("22"), f32le(1), f32le(-2.5), f32le(3)),
    ld(hex("2a"), MINUS_ONE, hex("07 7f")),
    ld(hex("3a"), MINUS_ONE, hex("05 06")),
    hex("42 01 78"),
    ld(hex("52"), f64le(0.5)),
    ld(hex("5a"), TWO_POW_63),
    hex("a8 01 2a 1a 04 08 01 10 02"),
  );
  assert.deepEqual(encodeTensorProto(t), expected);
  assert.deepEqual(decodeTensorProto(expected), t);
});

interface HandModelOptions {
  /** Write the `ints` attribute packed (as some writers do) instead of unpacked (as onnx.proto says). */
  packedInts?: boolean;
  model?: number[];
  graph?: number[];
  node?: number[];
}

/** A LeakyRelu model written field by field, in field-number order. */
function handModel(extra: HandModelOptions = {}): Uint8Array {
  const alpha = ld(hex("2a"), ld(hex("0a"), ascii("alpha")), hex("15"), f32le(0.5), hex("a0 01 01"));
  const axes = ld(
    hex("2a"),
    ld(hex("0a"), ascii("axes")),
    hex("40 01 40 7f"), // ints unpacked: 1, 127
    extra.packedInts ? ld(hex("42"), MINUS_ONE, hex("03")) : bytes(hex("40"), MINUS_ONE, hex("40 03")), // -1, 3
    hex("a0 01 07"), // type INTS
  );
  const node = ld(
    hex("0a"),
    hex("0a 01 61"), // input "a"
    hex("0a 00"), // input "" (an omitted optional input)
    hex("12 01 62"), // output "b"
    ld(hex("22"), ascii("LeakyRelu")),
    alpha,
    axes,
    extra.node ?? [],
  );
  const shape = ld(hex("12"), ld(hex("0a"), hex("12 01 4e")), ld(hex("0a"), hex("08 03"))); // [N, 3]
  const input = ld(hex("5a"), hex("0a 01 61"), ld(hex("12"), ld(hex("0a"), hex("08 01"), shape)));
  const output = ld(hex("62"), hex("0a 01 62"));
  const graph = ld(hex("3a"), node, hex("12 01 67"), input, output, extra.graph ?? []);
  return bytes(hex("08 08"), ld(hex("12"), ascii("test")), graph, hex("42 02 10 0d"), extra.model ?? []);
}

Deno.test("1.2 a hand-written ModelProto decodes to the expected objects and re-encodes canonically", () => {
  const model = decodeModel(handModel({ packedInts: true }));
  assert.equal(model.irVersion, 8n);
  assert.equal(model.producerName, "test");
  assert.deepEqual(model.opsetImport, [{ domain: "", version: 13 }]);
  const [node] = model.graph.node;
  assert.equal(model.graph.name, "g");
  assert.deepEqual(node.input, ["a", ""]);
  assert.deepEqual(node.output, ["b"]);
  assert.equal(node.opType, "LeakyRelu");
  const [alpha, axes] = node.attribute;
  assert.equal(alpha.name, "alpha");
  assert.equal(alpha.f, 0.5);
  assert.equal(alpha.type, 1);
  assert.equal(alpha.i, undefined);
  assert.deepEqual(axes.ints, [1n, 127n, -1n, 3n]);
  assert.equal(axes.type, 7);
  assert.deepEqual(model.graph.input[0].type?.tensorType, {
    elemType: DataType.FLOAT,
    shape: { dim: [{ dimParam: "N", denotation: "" }, { dimValue: 3, denotation: "" }] },
  });
  assert.equal(model.graph.output[0].type, undefined);
  // Both encodings of `ints` decode alike; the encoder writes them unpacked, as onnx.proto
  // (proto2, no [packed = true]) prescribes, and otherwise reproduces the hand-written bytes.
  assert.deepEqual(decodeModel(handModel()), model);
  assert.deepEqual(encodeModel(model), handModel());
});

Deno.test("1.3 unknown fields and known fields with an unexpected wire type survive a round trip", () => {
  const trainingInfo = ld(hex("a2 01"), hex("0a 00")); // ModelProto field 20, not modelled
  const fixed32 = hex("cd 0f 01 02 03 04"); // field 249, wire type 5
  const sparseInit = ld(hex("7a"), hex("0a 01 78")); // GraphProto field 15
  const nameAsVarint = hex("18 05"); // NodeProto name (field 3) with wire type VARINT
  const raw = handModel({ model: [...trainingInfo, ...fixed32], graph: sparseInit, node: nameAsVarint });
  const model = decodeModel(raw);
  assert.deepEqual(model.unknownFields, [
    { field: 20, bytes: Uint8Array.from(trainingInfo) },
    { field: 249, bytes: Uint8Array.from(fixed32) },
  ]);
  assert.deepEqual(model.graph.unknownFields, [{ field: 15, bytes: Uint8Array.from(sparseInit) }]);
  assert.deepEqual(model.graph.node[0].unknownFields, [{ field: 3, bytes: Uint8Array.from(nameAsVarint) }]);
  assert.equal(model.graph.node[0].name, "");
  const again = encodeModel(model);
  assert.deepEqual(decodeModel(again), model);
  // The model's own unknown fields end the encoding, in their original order.
  const tail = [...trainingInfo, ...fixed32];
  assert.deepEqual([...again.subarray(again.length - tail.length)], tail);
});

Deno.test("1.4 a repeated singular sub-message merges and a repeated scalar keeps the last value", () => {
  const graphA = ld(hex("3a"), ld(hex("0a"), ld(hex("22"), ascii("Relu"))), hex("12 01 61"));
  const graphB = ld(hex("3a"), ld(hex("0a"), ld(hex("22"), ascii("Abs"))));
  const model = decodeModel(bytes(hex("08 03"), graphA, hex("08 09"), graphB, hex("42 02 10 0d")));
  assert.equal(model.irVersion, 9n);
  assert.equal(model.graph.name, "a");
  assert.deepEqual(model.graph.node.map((n) => n.opType), ["Relu", "Abs"]);
});

// ------------------------------------------------------------ 2. fixture models

const fixtures = ["tiny_cnn_fmnist", "resnet18_fmnist", "mobilenetv2_fmnist"];

function opCounts(graph: GraphProto): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of graph.node) counts[n.opType] = (counts[n.opType] ?? 0) + 1;
  return counts;
}

function dims(v: ValueInfoProto): (number | string | undefined)[] | undefined {
  return v.type?.tensorType?.shape?.dim.map((d) => d.dimValue ?? d.dimParam);
}

Deno.test("2.1 tiny_cnn_fmnist has the ops, initializers, opset and values its README states", () => {
  const model = decodeModel(readFixture("tiny_cnn_fmnist.onnx"));
  assert.deepEqual(model.opsetImport.map((o) => [o.domain, o.version]), [["", 13]]);
  assert.deepEqual(opCounts(model.graph), {
    Conv: 2,
    Div: 1,
    Flatten: 1,
    Gemm: 1,
    GlobalAveragePool: 1,
    MaxPool: 1,
    Relu: 2,
    Sub: 1,
  });
  const init = new Map(model.graph.initializer.map((t) => [t.name, tensorFromProto(t)]));
  // conv 1->8 3x3 and 8->16 3x3, each with a bias (BN folded), linear 16->10, 0-d normalisation constants.
  assert.deepEqual(
    [...init.values()].map((t) => `[${t.shape}]`).sort(),
    ["[]", "[]", "[10,16]", "[10]", "[16,8,3,3]", "[16]", "[8,1,3,3]", "[8]"].sort(),
  );
  assert.deepEqual(init.get("fc.weight")?.shape, [10, 16]);
  assert.deepEqual(init.get("fc.bias")?.shape, [10]);
  for (const [name, value] of [["normalize.mean", 0.286], ["normalize.std", 0.353]] as const) {
    const t = init.get(name)!;
    assert.equal(t.dtype, "float32");
    assert.deepEqual(t.shape, []);
    assert.equal(t.data[0], Math.fround(value));
  }
  const sub = model.graph.node.find((n) => n.opType === "Sub")!;
  assert.deepEqual(sub.input, ["input", "normalize.mean"]);
  const gemm = model.graph.node.find((n) => n.opType === "Gemm")!;
  assert.equal(gemm.attribute.find((a) => a.name === "transB")?.i, 1n);
  assert.deepEqual(model.graph.input.map((v) => [v.name, v.type?.tensorType?.elemType, dims(v)]), [
    ["input", DataType.FLOAT, ["batch", 1, 28, 28]],
  ]);
  assert.equal(model.graph.output[0].name, "logits");
  assert.equal(dims(model.graph.output[0])?.[1], 10);
});

Deno.test("2.2 resnet18 and mobilenetv2 fixtures have the op counts of their README", () => {
  const expected: Record<string, Record<string, number>> = {
    resnet18_fmnist: {
      Add: 8,
      Conv: 20,
      Div: 1,
      Flatten: 1,
      Gemm: 1,
      GlobalAveragePool: 1,
      Relu: 17,
      Sub: 1,
    },
    mobilenetv2_fmnist: {
      Add: 10,
      Clip: 35,
      Constant: 70,
      Conv: 52,
      Div: 1,
      Flatten: 1,
      Gemm: 1,
      GlobalAveragePool: 1,
      Sub: 1,
    },
  };
  for (const [name, counts] of Object.entries(expected)) {
    const model = decodeModel(readFixture(`${name}.onnx`));
    assert.deepEqual(opCounts(model.graph), counts, name);
    assert.deepEqual(model.opsetImport.map((o) => o.version), [13], name);
    // Clip bounds are Constant nodes with a 0-d tensor attribute.
    for (const n of model.graph.node.filter((n) => n.opType === "Constant")) {
      const value = tensorFromProto(n.attribute[0].t!);
      assert.deepEqual(value.shape, []);
      assert.ok(value.data[0] === 0 || value.data[0] === 6, `${n.name}: ${value.data[0]}`);
    }
  }
});

Deno.test("2.3 the fixture models re-encode to their original bytes", () => {
  for (const name of fixtures) {
    const raw = readFixture(`${name}.onnx`);
    const model = decodeModel(raw);
    const again = encodeModel(model);
    assert.deepEqual(decodeModel(again), model, name);
    // Written by protobuf's C++ runtime, which also orders fields by number.
    assert.ok(again.length === raw.length && again.every((b, i) => b === raw[i]), `${name}: bytes differ`);
  }
});

// ------------------------------------------------------------ 3. ONNX backend test data

const testdata = ONNX_TESTDATA;
const groups = ["node", "pytorch-converted", "pytorch-operator", "simple", "real"];
const hasTestdata = haveOnnxTestdata(
  "tests/onnx-codec.test.ts 3.1 and 3.2 (every ONNX backend test model and tensor)",
);

function modelDirs(group: string): string[] {
  const dir = `${testdata}/${group}`;
  if (!existsSync(dir)) return [];
  return readdirSync(dir).sort().map((d) => `${dir}/${d}`).filter((d) => existsSync(`${d}/model.onnx`));
}

function allTensors(graph: GraphProto, out: TensorProto[] = []): TensorProto[] {
  out.push(...graph.initializer);
  for (const node of graph.node) {
    for (const a of node.attribute) {
      if (a.t) out.push(a.t);
      out.push(...a.tensors);
      if (a.g) allTensors(a.g, out);
      for (const g of a.graphs) allTensors(g, out);
    }
  }
  return out;
}

/** Converts, or fails with UNSUPPORTED_MODEL naming the tensor; any other outcome fails the test. */
function convertOrUnsupported(t: TensorProto, where: string): Tensor | undefined {
  try {
    return tensorFromProto(t);
  } catch (e) {
    if (!(e instanceof AttnroundError) || e.code !== "UNSUPPORTED_MODEL") throw new Error(`${where}: ${e}`);
    if (t.name) assert.ok(e.message.includes(`"${t.name}"`), `${where}: ${e.message}`);
    return undefined;
  }
}

const dtypeOfElemType: Record<number, string> = {
  [DataType.FLOAT]: "float32",
  [DataType.FLOAT16]: "float32",
  [DataType.DOUBLE]: "float64",
  [DataType.INT8]: "int8",
  [DataType.UINT8]: "uint8",
  [DataType.INT16]: "int16",
  [DataType.UINT16]: "uint16",
  [DataType.INT32]: "int32",
  [DataType.UINT32]: "uint32",
  [DataType.INT64]: "int64",
  [DataType.UINT64]: "uint64",
  [DataType.BOOL]: "bool",
};

Deno.test({
  name: "3.1 every libonnx-testdata model survives decode -> encode -> decode",
  ignore: !hasTestdata,
  fn: () => {
    let models = 0;
    for (const group of groups) {
      for (const dir of modelDirs(group)) {
        const raw = readFileSync(`${dir}/model.onnx`);
        const model = decodeModel(raw);
        const again = encodeModel(model);
        assert.deepEqual(decodeModel(again), model, dir);
        assert.deepEqual(encodeModel(decodeModel(again)), again, `${dir}: encoding is not stable`);
        for (const t of allTensors(model.graph)) convertOrUnsupported(t, dir);
        models++;
      }
    }
    assert.ok(models >= 1000, `only ${models} models found under ${testdata}`);
  },
});

Deno.test({
  name: "3.2 every input_*.pb / output_*.pb of the node tests decodes and converts",
  ignore: !hasTestdata,
  fn: () => {
    let files = 0;
    let converted = 0;
    for (const dir of modelDirs("node")) {
      const graph = decodeModel(readFileSync(`${dir}/model.onnx`)).graph;
      const initializers = new Set(graph.initializer.map((t) => t.name));
      const io = { input: graph.input.filter((v) => !initializers.has(v.name)), output: graph.output };
      for (const set of readdirSync(dir).filter((d) => d.startsWith("test_data_set_"))) {
        for (const file of readdirSync(`${dir}/${set}`)) {
          const match = /^(input|output)_(\d+)\.pb$/.exec(file);
          if (!match) continue;
          const where = `${dir}/${set}/${file}`;
          files++;
          const info = io[match[1] as "input" | "output"][Number(match[2])];
          const tensorType = info?.type?.tensorType;
          if (!tensorType) {
            // A SequenceProto or OptionalProto: whatever decoding it as a tensor does, it must not crash.
            try {
              tensorFromProto(decodeTensorProto(readFileSync(where)));
            } catch (e) {
              if (!(e instanceof AttnroundError)) throw new Error(`${where}: ${e}`);
            }
            continue;
          }
          const proto = decodeTensorProto(readFileSync(where));
          assert.deepEqual(decodeTensorProto(encodeTensorProto(proto)), proto, where);
          const tensor = convertOrUnsupported(proto, where);
          if (!tensor) {
            assert.equal(tensorType.elemType, DataType.STRING, `${where}: only strings are unsupported here`);
            continue;
          }
          converted++;
          // ONNX 1.12 stores BFLOAT16 test values as UINT16 bit patterns: compare supported types only.
          const declared = dtypeOfElemType[tensorType.elemType];
          if (declared) assert.equal(tensor.dtype, declared, where);
          assert.deepEqual(tensor.shape, proto.dims, where);
        }
      }
    }
    assert.ok(files >= 2500 && converted >= 2500, `${files} files, ${converted} converted`);
  },
});

// ------------------------------------------------------------ 4. tensors

function tensorProto(fields: Partial<TensorProto>): TensorProto {
  return {
    dims: [],
    dataType: 0,
    floatData: [],
    int32Data: [],
    stringData: [],
    int64Data: [],
    name: "t",
    doubleData: [],
    uint64Data: [],
    docString: "",
    externalData: [],
    dataLocation: 0,
    metadataProps: [],
    ...fields,
  };
}

Deno.test("4.1 typed fields and raw_data give the same tensor for every supported type", () => {
  const cases: [number, Partial<TensorProto>, number[], string, unknown[]][] = [
    [DataType.FLOAT, { floatData: [1.5, -2] }, [...f32le(1.5), ...f32le(-2)], "float32", [1.5, -2]],
    [DataType.DOUBLE, { doubleData: [0.1, -3] }, [...f64le(0.1), ...f64le(-3)], "float64", [0.1, -3]],
    [DataType.INT8, { int32Data: [-128, 127] }, [0x80, 0x7f], "int8", [-128, 127]],
    [DataType.UINT8, { int32Data: [0, 255] }, [0, 255], "uint8", [0, 255]],
    [DataType.INT16, { int32Data: [-2, 300] }, hex("fe ff 2c 01"), "int16", [-2, 300]],
    [DataType.UINT16, { int32Data: [65535, 1] }, hex("ff ff 01 00"), "uint16", [65535, 1]],
    [DataType.INT32, { int32Data: [-1, 65536] }, hex("ff ff ff ff 00 00 01 00"), "int32", [-1, 65536]],
    [DataType.UINT32, { uint64Data: [4294967295n, 7n] }, hex("ff ff ff ff 07 00 00 00"), "uint32", [
      4294967295,
      7,
    ]],
    [
      DataType.INT64,
      { int64Data: [-1n, 2n ** 40n] },
      hex("ff ff ff ff ff ff ff ff 00 00 00 00 00 01 00 00"),
      "int64",
      [
        -1n,
        2n ** 40n,
      ],
    ],
    [
      DataType.UINT64,
      { uint64Data: [2n ** 64n - 1n, 3n] },
      hex("ff ff ff ff ff ff ff ff 03 00 00 00 00 00 00 00"),
      "uint64",
      [
        2n ** 64n - 1n,
        3n,
      ],
    ],
    [DataType.BOOL, { int32Data: [0, 1] }, [0, 1], "bool", [0, 1]],
    [DataType.FLOAT16, { int32Data: [0x3c00, 0xc100] }, hex("00 3c 00 c1"), "float32", [1, -2.5]],
  ];
  for (const [dataType, typed, raw, dtype, values] of cases) {
    // Unaligned raw bytes: element 0 starts at an odd offset of the buffer.
    const unaligned = new Uint8Array(raw.length + 1).subarray(1);
    unaligned.set(raw);
    for (
      const t of [
        tensorProto({ dataType, dims: [2], ...typed }),
        tensorProto({ dataType, dims: [2], rawData: unaligned }),
      ]
    ) {
      const tensor = tensorFromProto(t);
      assert.equal(tensor.dtype, dtype, `${dataType}`);
      assert.deepEqual(tensor.shape, [2]);
      assert.deepEqual([...tensor.data], values, `${dataType} ${t.rawData ? "raw" : "typed"}`);
      assert.notEqual(tensor.data.buffer, unaligned.buffer, "the tensor must not alias raw_data");
    }
  }
});

Deno.test("4.2 booleans read as 0 and 1 whatever byte or int32 holds them", () => {
  for (const t of [{ int32Data: [0, 7, -1] }, { rawData: Uint8Array.from([0, 7, 255]) }]) {
    const tensor = tensorFromProto(tensorProto({ dataType: DataType.BOOL, dims: [3], ...t }));
    assert.equal(tensor.dtype, "bool");
    assert.deepEqual([...tensor.data], [0, 1, 1]);
  }
});

Deno.test("4.3 float16 converts exactly, including subnormals, infinities and NaN", () => {
  assert.equal(halfToFloat(0x0000), 0);
  assert.ok(Object.is(halfToFloat(0x8000), -0));
  assert.equal(halfToFloat(0x0001), 2 ** -24);
  assert.equal(halfToFloat(0x03ff), 1023 * 2 ** -24);
  assert.equal(halfToFloat(0x0400), 2 ** -14);
  assert.equal(halfToFloat(0x3555), Math.fround(0.333251953125));
  assert.equal(halfToFloat(0x7bff), 65504);
  assert.equal(halfToFloat(0xfc00), -Infinity);
  assert.ok(Number.isNaN(halfToFloat(0x7e00)));
});

Deno.test("4.4 tensorToProto -> encode -> decode -> tensorFromProto is the identity for every dtype", () => {
  const tensors = [
    new Tensor(new Float32Array([1, -0.5, 3e38, 1e-45]), [2, 2]),
    new Tensor(new Float64Array([Math.PI]), []),
    new Tensor(new Int8Array([-128, 5]), [2]),
    new Tensor(new Uint8Array([200]), [1, 1]),
    new Tensor(new Int16Array([-30000]), [1]),
    new Tensor(new Uint16Array([60000]), [1]),
    new Tensor(new Int32Array([-(2 ** 31)]), [1]),
    new Tensor(new Uint32Array([2 ** 32 - 1]), [1]),
    new Tensor(new BigInt64Array([-(2n ** 63n)]), [1]),
    new Tensor(new BigUint64Array([2n ** 64n - 1n]), [1]),
    new Tensor(new Uint8Array([1, 0, 1]), [3], "bool"),
    new Tensor(new Float32Array(0), [0, 4]),
  ];
  for (const t of tensors) {
    const back = tensorFromProto(decodeTensorProto(encodeTensorProto(tensorToProto("w", t))));
    assert.equal(back.dtype, t.dtype);
    assert.deepEqual(back.shape, t.shape);
    assert.deepEqual([...back.data], [...t.data], t.dtype);
  }
});

Deno.test("4.5 tensors that cannot be converted name the tensor and say why", () => {
  assertError(
    () => tensorFromProto(tensorProto({ name: "w", dataType: DataType.FLOAT, dims: [2, 3], floatData: [1] })),
    "INVALID_MODEL",
    /tensor "w" has 1 values in float_data, but dims \[2, 3\] need 6/,
  );
  assertError(
    () =>
      tensorFromProto(
        tensorProto({ name: "w", dataType: DataType.INT64, dims: [2], rawData: new Uint8Array(12) }),
      ),
    "INVALID_MODEL",
    /tensor "w": raw_data has 12 bytes, but dims \[2\] of INT64 need 16/,
  );
  assertError(
    () => tensorFromProto(tensorProto({ name: "w", dataType: DataType.FLOAT, dims: [2 ** 40, 2 ** 40] })),
    "INVALID_MODEL",
    /tensor "w" has too many elements/,
  );
  assertError(
    () => tensorFromProto(tensorProto({ name: "w", dataType: DataType.FLOAT, dims: [-1] })),
    "INVALID_MODEL",
    /tensor "w" has an invalid dimension -1/,
  );
  assertError(
    () => tensorFromProto(tensorProto({ name: "u", dims: [1], floatData: [1] })),
    "INVALID_MODEL",
    /tensor "u" has no data type/,
  );
  assertError(
    () =>
      tensorFromProto(
        tensorProto({ name: "s", dataType: DataType.STRING, dims: [1], stringData: [new Uint8Array(1)] }),
      ),
    "UNSUPPORTED_MODEL",
    /tensor "s" has data type STRING/,
  );
  assertError(
    () =>
      tensorFromProto(
        tensorProto({ name: "b", dataType: DataType.BFLOAT16, dims: [1], rawData: new Uint8Array(2) }),
      ),
    "UNSUPPORTED_MODEL",
    /tensor "b" has data type BFLOAT16/,
  );
  const external = tensorProto({
    name: "big",
    dataType: DataType.FLOAT,
    dims: [4],
    dataLocation: 1,
    externalData: [{ key: "location", value: "weights.bin" }, { key: "offset", value: "0" }],
  });
  // It decodes and re-encodes fine; only the conversion refuses.
  assert.deepEqual(decodeTensorProto(encodeTensorProto(external)), external);
  assertError(
    () => tensorFromProto(external),
    "UNSUPPORTED_MODEL",
    /tensor "big" keeps its data in the external file "weights\.bin"/,
  );
});

// ------------------------------------------------------------ 5. hostile input

const tinyCnn = readFixture("tiny_cnn_fmnist.onnx");

Deno.test("5.1 every truncation of a model is INVALID_MODEL", () => {
  for (let n = 0; n < tinyCnn.length; n++) {
    assertInvalid(() => decodeModel(tinyCnn.subarray(0, n)), `first ${n} bytes`);
  }
  const tensorFile = `${testdata}/node/test_abs/test_data_set_0/input_0.pb`;
  if (!hasTestdata) return; // the model part above still ran; 3.x reports the missing package
  const tensor = new Uint8Array(readFileSync(tensorFile));
  for (let n = 0; n < tensor.length; n++) {
    assertInvalid(() => tensorFromProto(decodeTensorProto(tensor.subarray(0, n))), `first ${n} tensor bytes`);
  }
});

Deno.test("5.2 random bytes are INVALID_MODEL", () => {
  const random = rng(20240601);
  for (let i = 0; i < 2000; i++) {
    const junk = Uint8Array.from({ length: random(400) }, () => random(256));
    assertInvalid(() => decodeModel(junk), `random buffer ${i}`);
  }
});

Deno.test("5.3 corrupted models either decode or fail with INVALID_MODEL, and nothing else escapes", () => {
  const random = rng(7);
  let decoded = 0;
  for (let i = 0; i < 3000; i++) {
    const mutant = tinyCnn.slice();
    for (let j = 1 + random(4); j > 0; j--) mutant[random(mutant.length)] = random(256);
    let model;
    try {
      model = decodeModel(mutant);
    } catch (e) {
      assert.ok(e instanceof AttnroundError && e.code === "INVALID_MODEL", `mutant ${i}: ${e}`);
      continue;
    }
    decoded++;
    assert.deepEqual(decodeModel(encodeModel(model)), model, `mutant ${i}`);
    for (const t of allTensors(model.graph)) {
      try {
        tensorFromProto(t);
      } catch (e) {
        assert.ok(e instanceof AttnroundError, `mutant ${i}, tensor ${t.name}: ${e}`);
      }
    }
  }
  assert.ok(
    decoded > 100,
    `only ${decoded} of 3000 mutants decoded: the mutation is too harsh to test encoding`,
  );
});

Deno.test("5.4 malformed varints, lengths, keys and packed runs are INVALID_MODEL with a reason", () => {
  assertInvalid(
    () => decodeModel(Uint8Array.from(hex("08 ff ff ff ff ff ff ff ff ff ff 01"))),
    "11-byte varint",
    /longer than 10 bytes/,
  );
  assertInvalid(() => decodeModel(Uint8Array.from(hex("08 ff"))), "cut varint", /truncated varint/);
  assertInvalid(
    () => decodeModel(Uint8Array.from(hex("3a 05 0a"))),
    "length past the end",
    /length 5 runs past/,
  );
  assertInvalid(
    () => decodeModel(Uint8Array.from(hex("3a ff ff ff ff 0f 00"))),
    "4 GiB length",
    /length 4294967295 runs past/,
  );
  assertInvalid(
    () => decodeModel(Uint8Array.from(hex("3a ff ff ff ff ff ff ff ff 7f"))),
    "2^63 length",
    /runs past/,
  );
  // The node's length fits the file but not the graph that contains it.
  assertInvalid(
    () => decodeModel(Uint8Array.from(hex("3a 02 0a 05 12 01 61 00 00"))),
    "node past its graph",
    /in graph/,
  );
  assertInvalid(() => decodeModel(Uint8Array.from(hex("00 01"))), "field number 0", /invalid field key/);
  assertInvalid(() => decodeModel(Uint8Array.from(hex("0b 0c"))), "group", /group encoding/);
  assertInvalid(() => decodeModel(Uint8Array.from(hex("0e 00"))), "wire type 6", /invalid wire type 6/);
  assertInvalid(() => decodeModel(Uint8Array.from(hex("0d 00 00"))), "cut fixed32", /truncated/);
  assertInvalid(
    () => decodeTensorProto(Uint8Array.from(hex("22 03 00 00 80"))),
    "packed floats",
    /not a multiple of 4/,
  );
  assertInvalid(
    () => decodeTensorProto(Uint8Array.from(hex("08 80 80 80 80 80 80 80 80 10"))),
    "dim 2^60",
    /dimension .* too large/,
  );
  assert.throws(() => decodeModel([1, 2] as unknown as Uint8Array), {
    name: "AttnroundError",
    code: "INVALID_ARGUMENT",
  });
});

Deno.test("5.5 valid protobuf that is not a model is INVALID_MODEL saying what is missing", () => {
  assertInvalid(() => decodeModel(new Uint8Array(0)), "empty", /ir_version \(field 1\) is missing/);
  assertInvalid(() => decodeModel(Uint8Array.from(hex("08 07 42 02 10 0d"))), "no graph", /no graph/);
  assertInvalid(() => decodeModel(Uint8Array.from(hex("3a 00 42 02 10 0d"))), "no ir_version", /ir_version/);
  assertInvalid(
    () => decodeModel(Uint8Array.from(hex("08 07 3a 00"))),
    "no opset",
    /imports no operator set/,
  );
  assertInvalid(() => decodeModel(Uint8Array.from(hex("08 00 3a 00"))), "ir_version 0", /ir_version 0/);
  // An unnamed TensorProto parses as a ModelProto whose dims look like ir_version.
  const tensorFile = encodeTensorProto(tensorToProto("", new Tensor(new Float32Array([1, 2, 3]), [3])));
  assertInvalid(() => decodeModel(tensorFile), "a TensorProto", /not an ONNX model: it has no graph/);
});

Deno.test("5.6 messages nest at most 64 deep: 64 decode and round-trip, 67 and 1501 are INVALID_MODEL", () => {
  // graph { node { attribute { g: graph { node { ... } } } } }: three messages per level.
  function nested(levels: number): Uint8Array {
    let graph: number[] = [];
    for (let i = 0; i < levels; i++) graph = ld(hex("0a"), ld(hex("2a"), ld(hex("32"), graph)));
    return bytes(hex("08 07"), ld(hex("3a"), graph), hex("42 02 10 0d"));
  }
  const ok = decodeModel(nested(21)); // 1 + 3 * 21 = 64 messages deep
  assert.deepEqual(decodeModel(encodeModel(ok)), ok);
  assertInvalid(() => decodeModel(nested(22)), "67 deep", /nest deeper than 64/);
  assertInvalid(() => decodeModel(nested(500)), "1501 deep", /nest deeper than 64/);
});
