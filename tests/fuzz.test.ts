// Seeded, bounded fuzzing of the decoders: mutated ONNX models, .npz/.npy
// files and saved quantization states must either decode or fail with an
// AttnroundError, never with another exception, never slowly, never taking
// much memory. Mutations are blind (bit flips, overwritten,
// inserted and cut bytes, corrupted length fields) and structure-aware
// (altered fields of a decoded model re-encoded, altered .npy entries re-zipped
// with valid CRCs, corrupted zip header fields), so that the checks behind the
// first length prefix get exercised too. Zip containers are also built from a
// spec whose sizes, counts, names, methods and data lie (bombs included), and
// saved states are altered field by field, or byte by byte with their
// checksum recomputed, so that the checks behind the checksum are reached.
import assert from "node:assert/strict";
import process from "node:process";
import { AttnroundError, init, loadModel, QuantizationRun } from "../mod.ts";
import { readNpy, readNpz, writeNpy, writeNpz } from "../src/data/npy.ts";
import { readZip, writeZip } from "../src/data/zip.ts";
import { decodeModel, encodeModel } from "../src/onnx/codec.ts";
import type { ModelProto } from "../src/onnx/types.ts";
import { decodeState, encodeState } from "../src/quant/state.ts";
import { sha256 } from "../src/sha256.ts";
import { inflateSync } from "../src/fflate.ts";
import { Tensor } from "../src/tensor.ts";
import { readFixture } from "./fixtures.ts";

/** A case may take this long at most: a slower one would be a hang on a bigger input. */
const CASE_LIMIT_MS = 2000;

/** sfc32: a small seeded generator, so that every failing case can be replayed from its seed. */
function generator(seed: number) {
  let a = 0x9e3779b9, b = 0x243f6a88, c = 0xb7e15162, d = seed >>> 0;
  const next = () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) next();
  const below = (n: number) => Math.floor((next() / 2 ** 32) * n);
  return {
    below,
    pick: <T>(items: readonly T[]): T => items[below(items.length)],
    bytes: (n: number) => Uint8Array.from({ length: n }, () => below(256)),
  };
}
type Random = ReturnType<typeof generator>;

// Values that tend to sit on boundaries: zero, sign bits, all ones.
const SPECIAL = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];

/** A varint of a size that matters: zero, small, just past a buffer, 2^31, 2^53, 2^64 - 1. */
function boundaryVarint(random: Random): Uint8Array {
  const value = random.pick([
    0n,
    1n,
    127n,
    128n,
    4096n,
    1n << 20n,
    (1n << 31n) - 1n,
    1n << 32n,
    1n << 53n,
    (1n << 64n) - 1n,
  ]);
  const out: number[] = [];
  let v = value;
  while (v >= 0x80n) out.push(Number(v & 0x7fn) | 0x80), v >>= 7n;
  out.push(Number(v));
  return new Uint8Array(out);
}

/** One blind mutation of `bytes`; returns the mutant and what was done to it. */
function mutateBytes(bytes: Uint8Array, random: Random): { data: Uint8Array; how: string } {
  const data = bytes.slice();
  const at = random.below(Math.max(bytes.length, 1));
  switch (random.below(6)) {
    case 0: {
      const flips = 1 + random.below(8);
      for (let i = 0; i < flips; i++) data[random.below(data.length)] ^= 1 << random.below(8);
      return { data, how: `${flips} bit flips` };
    }
    case 1: {
      const n = 1 + random.below(8);
      for (let i = 0; i < n; i++) {
        data[(at + i) % data.length] = random.below(2) ? random.pick(SPECIAL) : random.below(256);
      }
      return { data, how: `${n} bytes overwritten at ${at}` };
    }
    case 2:
      return { data: bytes.slice(0, at), how: `truncated to ${at} bytes` };
    case 3: {
      const inserted = random.bytes(1 + random.below(16));
      const out = new Uint8Array(bytes.length + inserted.length);
      out.set(bytes.subarray(0, at));
      out.set(inserted, at);
      out.set(bytes.subarray(at), at + inserted.length);
      return { data: out, how: `${inserted.length} bytes inserted at ${at}` };
    }
    case 4: {
      // A length prefix (or any varint) replaced by one of a boundary size.
      const v = boundaryVarint(random);
      const out = new Uint8Array(bytes.length - 1 + v.length);
      out.set(bytes.subarray(0, at));
      out.set(v, at);
      out.set(bytes.subarray(at + 1), at + v.length);
      return { data: out, how: `varint ${Array.from(v)} at ${at}` };
    }
    default: {
      // A little-endian 32-bit field (zip sizes and offsets, npy header length) set to a boundary value.
      const value = random.pick([0, 1, 0x7fffffff, 0x80000000, 0xffffffff, bytes.length, bytes.length + 1]);
      const p = Math.min(at, data.length - 4);
      if (p >= 0) new DataView(data.buffer).setUint32(p, value, true);
      return { data, how: `u32 ${value} at ${p}` };
    }
  }
}

interface Failure {
  source: string;
  seed: number;
  how: string;
  error: string;
}

/** Runs `decode` on `data`, recording anything but success or an AttnroundError, or a slow case. */
function check(
  failures: Failure[],
  source: string,
  seed: number,
  how: string,
  decode: () => void,
  limitMs = CASE_LIMIT_MS,
): void {
  const start = performance.now();
  try {
    decode();
  } catch (e) {
    if (!(e instanceof AttnroundError)) {
      failures.push({ source, seed, how, error: `${(e as Error)?.name}: ${(e as Error)?.message}` });
    } else if (!e.code || !e.message) {
      failures.push({ source, seed, how, error: "AttnroundError without code or message" });
    }
  }
  const ms = performance.now() - start;
  if (ms > limitMs) failures.push({ source, seed, how, error: `took ${ms.toFixed(0)} ms` });
}

function report(failures: Failure[], cases: number): void {
  assert.equal(
    failures.length,
    0,
    `${failures.length} of ${cases} cases failed, e.g.:\n` +
      failures.slice(0, 8).map((f) => `  ${f.source} seed ${f.seed} (${f.how}): ${f.error}`).join("\n"),
  );
}

function loadAndDispose(bytes: Uint8Array): void {
  loadModel(bytes).dispose();
}

Deno.test("fuzz: mutated ONNX bytes decode or fail with an AttnroundError (tiny_cnn and a cut resnet18)", async () => {
  await init();
  const tiny = readFixture("tiny_cnn_fmnist.onnx");
  // The head of a big model: its graph length prefix promises far more than is there.
  const cut = readFixture("resnet18_fmnist.onnx").slice(0, 96 * 1024);
  const failures: Failure[] = [];
  let cases = 0;
  for (let seed = 0; seed < 700; seed++) {
    const { data, how } = mutateBytes(tiny, generator(seed));
    check(failures, "tiny_cnn_fmnist.onnx", seed, how, () => loadAndDispose(data));
    cases++;
  }
  for (let seed = 0; seed < 150; seed++) {
    const { data, how } = mutateBytes(cut, generator(10_000 + seed));
    check(failures, "resnet18_fmnist.onnx (first 96 KiB)", seed, how, () => decodeModel(data));
    cases++;
  }
  report(failures, cases);
});

/** One structure-aware change to a decoded model: sizes, types, data and names the encoder writes faithfully. */
function mutateModel(model: ModelProto, random: Random): string {
  const g = model.graph;
  const tensor = random.pick(g.initializer);
  const node = random.pick(g.node);
  switch (random.below(10)) {
    case 0:
      tensor.dims = tensor.dims.map(() => random.pick([0, 1, 3, 2 ** 20, 2 ** 31, 2 ** 40, 2 ** 53 - 1]));
      return `dims of "${tensor.name}" → [${tensor.dims}]`;
    case 1:
      tensor.dims.push(random.pick([2, 2 ** 30]));
      return `extra dim on "${tensor.name}"`;
    case 2:
      tensor.dataType = random.below(30);
      return `data type of "${tensor.name}" → ${tensor.dataType}`;
    case 3:
      if (tensor.rawData) tensor.rawData = tensor.rawData.subarray(0, random.below(tensor.rawData.length));
      return `raw_data of "${tensor.name}" cut`;
    case 4:
      tensor.rawData = undefined;
      tensor.floatData = Array.from({ length: random.below(8) }, () => random.below(100));
      return `"${tensor.name}" in float_data`;
    case 5:
      node.opType = random.pick(["Conv", "Gemm", "Relu", "Reshape", "Flatten", "Concat", "Xyz", ""]);
      return `node "${node.name}" → ${node.opType}`;
    case 6:
      node.input = node.input.map(() =>
        random.pick(["", "input", tensor.name, "nowhere", node.output[0] ?? ""])
      );
      return `inputs of "${node.name}" → ${node.input}`;
    case 7:
      for (const a of node.attribute) {
        a.ints = a.ints.map(() => BigInt(random.pick([-1, 0, 7, 2 ** 31, -(2 ** 40)])));
        if (a.i !== undefined) a.i = BigInt(random.pick([-1, 0, 99, 2 ** 40]));
        if (a.f !== undefined) a.f = random.pick([NaN, -Infinity, 0, 1e30]);
      }
      return `attributes of "${node.name}"`;
    case 8: {
      const dim = g.input[0]?.type?.tensorType?.shape?.dim;
      if (dim?.length) {
        dim[random.below(dim.length)] = { denotation: "", dimValue: random.pick([0, 3, 2 ** 40]) };
      }
      return "input shape";
    }
    default:
      model.opsetImport = random.below(2) ? [] : [{ domain: "", version: random.pick([1, 7, 99]) }];
      return `opset import → ${JSON.stringify(model.opsetImport)}`;
  }
}

Deno.test("fuzz: structurally altered ONNX models load or fail with an AttnroundError", async () => {
  await init();
  const tiny = readFixture("tiny_cnn_fmnist.onnx");
  const failures: Failure[] = [];
  let cases = 0;
  for (let seed = 0; seed < 300; seed++) {
    const random = generator(20_000 + seed);
    const model = decodeModel(tiny);
    const changes = 1 + random.below(3);
    const how = Array.from({ length: changes }, () => mutateModel(model, random)).join("; ");
    let bytes: Uint8Array;
    try {
      bytes = encodeModel(model);
    } catch {
      continue; // a value the encoder cannot represent: not a decoder case
    }
    check(failures, "tiny_cnn_fmnist.onnx (re-encoded)", seed, how, () => loadAndDispose(bytes));
    cases++;
  }
  assert.ok(cases > 250, `only ${cases} mutants could be encoded`);
  report(failures, cases);
});

/** Small archives with everything readNpz understands: dtypes, byte orders, Fortran order, deflate. */
function sampleArchives(): Uint8Array[] {
  const x = new Tensor(Uint8Array.from({ length: 6 * 5 * 5 }, (_, i) => (i * 37) & 0xff), [6, 5, 5]);
  const y = new Tensor(new Uint8Array([0, 1, 2, 3, 4, 5]), [6]);
  const f = new Tensor(Float32Array.from({ length: 24 }, (_, i) => i / 7 - 1), [2, 3, 4]);
  const d = new Tensor(Float64Array.from({ length: 6 }, (_, i) => i * Math.PI), [3, 2]);
  const l = new Tensor(BigInt64Array.from({ length: 4 }, (_, i) => BigInt(i) - 2n), [4]);
  return [
    writeNpz({ x, y }),
    writeNpz({ x, y }, { compressed: true }),
    writeNpz({ f, d, l }, { compressed: true }),
    writeZip([["x.npy", bigEndianFortran()], ["y.npy", writeNpy(y)]], false),
  ];
}

/** A version 2.0 .npy, big-endian float32 in Fortran order, written by hand. */
function bigEndianFortran(): Uint8Array {
  const header = "{'descr': '>f4', 'fortran_order': True, 'shape': (3, 2), }";
  const padded = header + " ".repeat(64 - ((12 + header.length + 1) % 64)) + "\n";
  const out = new Uint8Array(12 + padded.length + 24);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]);
  const view = new DataView(out.buffer);
  view.setUint32(8, padded.length, true);
  for (let i = 0; i < padded.length; i++) out[12 + i] = padded.charCodeAt(i);
  for (let i = 0; i < 6; i++) view.setFloat32(12 + padded.length + i * 4, i + 0.5, false);
  return out;
}

/** Header fields of an .npy that a blind mutation rarely reaches with meaning. */
function mutateNpyHeader(npy: Uint8Array, random: Random): { data: Uint8Array; how: string } {
  // Byte for character (Latin-1), so that the magic byte 0x93 survives the round trip.
  const text = String.fromCharCode(...npy.subarray(0, Math.min(npy.length, 256)));
  const replacements: [RegExp, () => string][] = [
    [
      /\(\d+(, \d+)*,?\)/,
      () =>
        `(${
          Array.from(
            { length: 1 + random.below(4) },
            () => random.pick(["0", "1", "99999999", "4294967296", "9007199254740993", "-1", "1e3"]),
          ).join(", ")
        })`,
    ],
    [
      /'[<>|][a-z]\d+'/,
      () =>
        `'${random.pick(["<", ">", "|", "="])}${random.pick(["f", "i", "u", "b", "c", "S", "O", "V"])}${
          random.pick([0, 1, 2, 4, 8, 16, 99999])
        }'`,
    ],
    [/False|True/, () => random.pick(["False", "True", "None", "0", "'x'"])],
    [/\{/, () => random.pick(["{{{{", "[", "(", "{'a': " + "(".repeat(5000)])],
  ];
  const [pattern, make] = random.pick(replacements);
  const match = pattern.exec(text);
  if (!match) return mutateBytes(npy, random);
  const replacement = make();
  const head = Uint8Array.from(text.slice(0, match.index) + replacement, (c) => c.charCodeAt(0));
  const rest = npy.subarray(match.index + match[0].length);
  const out = new Uint8Array(head.length + rest.length);
  out.set(head);
  out.set(rest, head.length);
  // Keep the declared header length in step half of the time, so that the parser sees the change.
  if (random.below(2)) {
    const major = out[6];
    const view = new DataView(out.buffer);
    const delta = replacement.length - match[0].length;
    if (major === 1) view.setUint16(8, (view.getUint16(8, true) + delta) & 0xffff, true);
    else view.setUint32(8, (view.getUint32(8, true) + delta) >>> 0, true);
  }
  return {
    data: out,
    how: `header ${JSON.stringify(match[0])} → ${JSON.stringify(replacement.slice(0, 40))}`,
  };
}

/** Offsets of the zip's header fields that hold sizes, offsets, counts and methods. */
function zipFieldOffsets(zip: Uint8Array): { at: number; width: 2 | 4 }[] {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const fields: { at: number; width: 2 | 4 }[] = [];
  for (let p = 0; p + 4 <= zip.length; p++) {
    const signature = view.getUint32(p, true);
    if (signature === 0x04034b50) { // local header: method, sizes, name and extra lengths
      fields.push({ at: p + 8, width: 2 }, { at: p + 18, width: 4 }, { at: p + 22, width: 4 });
      fields.push({ at: p + 26, width: 2 }, { at: p + 28, width: 2 });
    } else if (signature === 0x02014b50) { // central header: method, crc, sizes, lengths, local offset
      fields.push({ at: p + 10, width: 2 }, { at: p + 16, width: 4 }, { at: p + 20, width: 4 });
      fields.push({ at: p + 24, width: 4 }, { at: p + 28, width: 2 }, { at: p + 30, width: 2 });
      fields.push({ at: p + 42, width: 4 });
    } else if (signature === 0x06054b50) { // end record: counts, directory size and offset
      fields.push({ at: p + 8, width: 2 }, { at: p + 10, width: 2 }, { at: p + 12, width: 4 });
      fields.push({ at: p + 16, width: 4 }, { at: p + 20, width: 2 });
    }
  }
  return fields.filter((f) => f.at + f.width <= zip.length);
}

function mutateArchive(zip: Uint8Array, random: Random): { data: Uint8Array; how: string } {
  switch (random.below(3)) {
    case 0:
      return mutateBytes(zip, random);
    case 1: {
      const fields = zipFieldOffsets(zip);
      const { at, width } = random.pick(fields);
      const data = zip.slice();
      const view = new DataView(data.buffer);
      const value = random.pick([0, 1, 8, 0xffff, 0x7fffffff, 0xffffffff, zip.length, random.below(2 ** 32)]);
      if (width === 2) view.setUint16(at, value & 0xffff, true);
      else view.setUint32(at, value >>> 0, true);
      return { data, how: `zip field at ${at} → ${value}` };
    }
    default: {
      // An entry's .npy altered, then re-zipped: the CRC holds, so readNpy sees the damage.
      const entries = [...readZip(zip)];
      const k = random.below(entries.length);
      const changed = random.below(2)
        ? mutateNpyHeader(entries[k][1], random)
        : mutateBytes(entries[k][1], random);
      entries[k] = [entries[k][0], changed.data];
      return {
        data: writeZip(entries, random.below(2) === 1),
        how: `entry "${entries[k][0]}": ${changed.how}`,
      };
    }
  }
}

Deno.test("fuzz: mutated .npz and .npy files read or fail with an AttnroundError", () => {
  const archives = sampleArchives();
  const calib = readFixture("calib.npz");
  const failures: Failure[] = [];
  let cases = 0;
  for (let seed = 0; seed < 500; seed++) {
    const random = generator(30_000 + seed);
    const k = random.below(archives.length);
    const { data, how } = mutateArchive(archives[k], random);
    check(failures, `sample archive ${k}`, seed, how, () => readNpz(data));
    cases++;
  }
  for (let seed = 0; seed < 60; seed++) {
    const random = generator(40_000 + seed);
    const { data, how } = random.below(2) ? mutateBytes(calib, random) : mutateArchive(calib, random);
    check(failures, "calib.npz", seed, how, () => readNpz(data));
    cases++;
  }
  const arrays = [...readZip(archives[0]).values(), ...readZip(archives[2]).values(), bigEndianFortran()];
  for (let seed = 0; seed < 300; seed++) {
    const random = generator(50_000 + seed);
    const k = random.below(arrays.length);
    const { data, how } = random.below(2)
      ? mutateNpyHeader(arrays[k], random)
      : mutateBytes(arrays[k], random);
    check(failures, `npy ${k}`, seed, how, () => readNpy(data));
    cases++;
  }
  report(failures, cases);
});

Deno.test("fuzz: the unmutated samples decode, so the mutants start from valid files", async () => {
  await init();
  loadAndDispose(readFixture("tiny_cnn_fmnist.onnx"));
  for (const zip of sampleArchives()) assert.ok(Object.keys(readNpz(zip)).length >= 2);
  const fortran = readNpy(bigEndianFortran());
  assert.deepEqual(fortran.shape, [3, 2]);
  // Column-major [[0.5, 2.5, 4.5], ...] transposed to rows: element (r, c) = r + 3c + 0.5.
  assert.deepEqual([...fortran.data as Float32Array], [0.5, 3.5, 1.5, 4.5, 2.5, 5.5]);
  // And the harness itself tells a stray exception from an AttnroundError.
  const failures: Failure[] = [];
  check(failures, "harness", 0, "TypeError", () => (undefined as unknown as { x: number }).x);
  check(failures, "harness", 1, "AttnroundError", () => readNpy(new Uint8Array(3)));
  assert.deepEqual(failures.map((f) => f.seed), [0]);
});

// ---------------------------------------------------------------- zip containers, built from a spec

/**
 * Memory the process may gain during one case (resident set size, which
 * garbage collection lags behind): a bomb that got past the limits would take
 * gigabytes.
 */
const MEMORY_LIMIT = 512 << 20;
/** What readNpz may unpack in these tests: small, so that the memory bound above means something. */
const FUZZ_MAX_BYTES = 64 << 20;

function rss(): number {
  return process.memoryUsage().rss;
}

/** One entry as the archive declares it, each field free to lie. */
interface EntrySpec {
  name: Uint8Array;
  /** The bytes stored (a deflate stream when method is 8). */
  data: Uint8Array;
  method: number;
  size: number;
  compressedSize: number;
  crc: number;
  flags: number;
  /** Write sizes as 0xffffffff plus a zip64 extra field. */
  zip64: boolean;
  /** The local header's name, when it differs from the central directory's. */
  localName?: Uint8Array;
}

interface ArchiveSpec {
  entries: EntrySpec[];
  /** Entry count the end record declares, when it differs from the entries written. */
  count?: number;
  /** Write a zip64 end record and locator. */
  zip64End: boolean;
}

/** A zip archive exactly as `spec` declares it. */
function buildZip(spec: ArchiveSpec): Uint8Array {
  const parts: Uint8Array[] = [];
  const out = { length: 0 };
  const bytes = (b: Uint8Array) => (parts.push(b), out.length += b.length);
  const u16 = (v: number) => bytes(Uint8Array.of(v & 0xff, (v >>> 8) & 0xff));
  const u32 = (v: number) => (u16(v & 0xffff), u16(Math.floor(v / 0x10000) & 0xffff));
  const u64 = (v: number) => (u32(v % 2 ** 32), u32(Math.floor(v / 2 ** 32)));
  const extraFor = (e: EntrySpec, offset: number) => {
    if (!e.zip64) return new Uint8Array(0);
    const x = new DataView(new ArrayBuffer(28));
    x.setUint16(0, 1, true), x.setUint16(2, 24, true);
    x.setBigUint64(4, BigInt(Math.min(e.size, 2 ** 64 - 1)), true);
    x.setBigUint64(12, BigInt(e.compressedSize), true);
    x.setBigUint64(20, BigInt(offset), true);
    return new Uint8Array(x.buffer);
  };
  const offsets: number[] = [];
  for (const e of spec.entries) {
    offsets.push(out.length);
    const name = e.localName ?? e.name;
    u32(0x04034b50), u16(20), u16(e.flags), u16(e.method), u16(0), u16(0x21);
    u32(e.crc), u32(e.zip64 ? 0xffffffff : e.compressedSize), u32(e.zip64 ? 0xffffffff : e.size);
    const extra = extraFor(e, offsets.at(-1)!);
    u16(name.length), u16(extra.length), bytes(name), bytes(extra), bytes(e.data);
  }
  const directory = out.length;
  spec.entries.forEach((e, i) => {
    u32(0x02014b50), u16(45), u16(20), u16(e.flags), u16(e.method), u16(0), u16(0x21);
    u32(e.crc), u32(e.zip64 ? 0xffffffff : e.compressedSize), u32(e.zip64 ? 0xffffffff : e.size);
    const extra = extraFor(e, offsets[i]);
    u16(e.name.length), u16(extra.length), u16(0), u16(0), u16(0), u32(0);
    u32(e.zip64 ? 0xffffffff : offsets[i]), bytes(e.name), bytes(extra);
  });
  const directorySize = out.length - directory;
  const count = spec.count ?? spec.entries.length;
  if (spec.zip64End) {
    const end = out.length;
    u32(0x06064b50), u64(44), u16(45), u16(45), u32(0), u32(0), u64(count), u64(count);
    u64(directorySize), u64(directory);
    u32(0x07064b50), u32(0), u64(end), u32(1);
  }
  u32(0x06054b50), u16(0), u16(0), u16(Math.min(count, 0xffff)), u16(Math.min(count, 0xffff));
  u32(directorySize), u32(spec.zip64End ? 0xffffffff : directory), u16(0);
  const zip = new Uint8Array(out.length);
  let at = 0;
  for (const p of parts) zip.set(p, at), at += p.length;
  return zip;
}

/** The spec of an archive writeZip made: its entries' names, data and declared fields, as found. */
function specOf(zip: Uint8Array): ArchiveSpec {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const entries: EntrySpec[] = [];
  for (let p = 0; p + 30 <= zip.length && view.getUint32(p, true) === 0x04034b50;) {
    const nameLength = view.getUint16(p + 26, true), extraLength = view.getUint16(p + 28, true);
    const compressedSize = view.getUint32(p + 18, true);
    const start = p + 30 + nameLength + extraLength;
    entries.push({
      name: zip.slice(p + 30, p + 30 + nameLength),
      data: zip.slice(start, start + compressedSize),
      method: view.getUint16(p + 8, true),
      size: view.getUint32(p + 22, true),
      compressedSize,
      crc: view.getUint32(p + 14, true),
      flags: view.getUint16(p + 6, true) & ~0x8,
      zip64: false,
    });
    p = start + compressedSize;
  }
  return { entries, zip64End: false };
}

const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);

/** One structural change to an archive's spec: sizes, counts, names, methods, flags or data. */
function mutateSpec(spec: ArchiveSpec, random: Random): string {
  const e = random.pick(spec.entries);
  const label = new TextDecoder().decode(e.name).slice(0, 20);
  switch (random.below(9)) {
    case 0: {
      e.size = random.pick([
        0,
        1,
        e.size - 1,
        e.size + 1,
        2 ** 31,
        2 ** 32 - 2,
        2 ** 40,
        2 ** 53 - 1,
        FUZZ_MAX_BYTES + 1,
      ]);
      e.zip64 ||= e.size >= 2 ** 32 - 1 || random.below(4) === 0;
      return `"${label}" declares size ${e.size}${e.zip64 ? " (zip64)" : ""}`;
    }
    case 1:
      e.compressedSize = random.pick([0, 1, e.compressedSize - 1, e.compressedSize + 1, 2 ** 31, 2 ** 40]);
      e.zip64 ||= e.compressedSize >= 2 ** 32 - 1;
      return `"${label}" declares compressed size ${e.compressedSize}`;
    case 2:
      spec.count = random.pick([0, spec.entries.length + 1, spec.entries.length - 1, 0xffff, 2 ** 40]);
      spec.zip64End = spec.count > 0xffff || random.below(2) === 0;
      return `count ${spec.count}${spec.zip64End ? " (zip64)" : ""}`;
    case 3: {
      const names = [
        ascii(""),
        ascii("/"),
        ascii("x.npy/"),
        ascii("../x.npy"),
        ascii("__proto__.npy"),
        ascii("x.npy\u0000y"),
        new Uint8Array(65_535).fill(0x61),
        Uint8Array.of(0xff, 0xfe, 0x2e, 0x6e, 0x70, 0x79), // invalid UTF-8
        spec.entries[0].name, // a duplicate
      ];
      e.name = random.pick(names);
      if (random.below(2)) e.flags |= 0x800; // says UTF-8
      return `"${label}" renamed to ${e.name.length} bytes`;
    }
    case 4:
      e.localName = random.pick([
        ascii(""),
        ascii("other.npy"),
        new Uint8Array(e.name.length + 100).fill(0x62),
      ]);
      return `"${label}" has another name in its local header`;
    case 5:
      e.method = random.pick([0, 8, 12, 14, 99, 0xffff]);
      return `"${label}" method ${e.method}`;
    case 6:
      e.flags ^= random.pick([0x1, 0x8, 0x800, 0x40]);
      return `"${label}" flags ${e.flags}`;
    case 7: {
      // A bomb: 1 GiB of zeros in 6.5 MB of deflate, behind a small, a limit-sized or its true size.
      e.method = 8;
      e.data = zerosStream();
      e.compressedSize = e.data.length;
      e.size = random.pick([1000, FUZZ_MAX_BYTES, BOMB_SIZE]);
      e.zip64 = e.size > 2 ** 31 || random.below(2) === 1;
      return `"${label}" holds a deflated ${BOMB_SIZE} bytes of zeros, declaring ${e.size}`;
    }
    default: {
      // Many entries, kept to a few MiB of archive: the decoder's time per entry is what is tested.
      const copies = Math.max(
        2,
        Math.min(random.pick([2, 100, 5000]), Math.floor((4 << 20) / (e.data.length + 1))),
      );
      spec.entries = Array.from({ length: copies }, (_, i) => ({ ...e, name: ascii(`e${i}.npy`) }));
      return `${copies} copies of "${label}"`;
    }
  }
}

/** What the bomb inflates to. */
const BOMB_SIZE = 2 ** 30;

let zeros: Uint8Array | undefined;
function zerosStream(): Uint8Array {
  return zeros ??= deflatedZeros(BOMB_SIZE);
}

/**
 * A deflate stream of `size` zero bytes, written by hand: one block of fixed
 * Huffman codes, literal zeros and then copies of the 258 bytes before
 * (length code 285, distance code 0), 13 bits for 258 bytes.
 */
function deflatedZeros(size: number): Uint8Array {
  const copies = Math.floor((size - 1) / 258), literals = size - 1 - copies * 258;
  const out = new Uint8Array(Math.ceil((3 + 8 * (1 + literals) + 13 * copies + 7) / 8) + 1);
  let bit = 0;
  const bits = (value: number, n: number) => {
    for (let i = 0; i < n; i++, bit++) if ((value >> i) & 1) out[bit >> 3] |= 1 << (bit & 7);
  };
  // Huffman codes go most significant bit first.
  const code = (value: number, n: number) => {
    for (let i = n - 1; i >= 0; i--, bit++) if ((value >> i) & 1) out[bit >> 3] |= 1 << (bit & 7);
  };
  bits(1, 1), bits(1, 2); // the final block, fixed Huffman codes
  for (let i = 0; i <= literals; i++) code(0x30, 8); // literal 0
  for (let i = 0; i < copies; i++) code(0b1100010100000, 13); // length 258 (code 285), distance 1 (code 0)
  code(0, 7); // end of block
  return out.subarray(0, Math.ceil(bit / 8));
}

Deno.test("fuzz: archives built with lying sizes, counts, names, methods and bombs read or fail with an AttnroundError, within time and memory bounds", () => {
  const archives = [...sampleArchives(), readFixture("calib.npz")];
  zerosStream(); // made once, before the memory is measured
  const failures: Failure[] = [];
  let cases = 0;
  for (let seed = 0; seed < 400; seed++) {
    const random = generator(60_000 + seed);
    const spec = specOf(random.pick(archives));
    const how = Array.from({ length: 1 + random.below(3) }, () => mutateSpec(spec, random)).join("; ");
    const zip = buildZip(spec);
    const before = rss();
    // Time grows with the entries (up to 5,000 here), never faster: 2 s, and 1 ms more per entry.
    const limit = CASE_LIMIT_MS + spec.entries.length;
    check(failures, "built archive", seed, how, () => readNpz(zip, { maxBytes: FUZZ_MAX_BYTES }), limit);
    checkMemory(failures, "built archive", seed, how, before);
    cases++;
  }
  report(failures, cases);
});

function checkMemory(failures: Failure[], source: string, seed: number, how: string, before: number): void {
  const grown = rss() - before;
  if (grown > MEMORY_LIMIT) {
    failures.push({ source, seed, how, error: `memory grew by ${(grown / 2 ** 20).toFixed(0)} MiB` });
  }
}

Deno.test("fuzz: the spec-built archives are sound before they are mutated, and the hand-made bomb inflates to zeros", () => {
  for (const size of [1, 258, 259, 10_000]) {
    assert.deepEqual(inflateSync(deflatedZeros(size)), new Uint8Array(size), `${size} zeros`);
  }
  for (const zip of [...sampleArchives(), readFixture("calib.npz")]) {
    const rebuilt = buildZip(specOf(zip));
    assert.deepEqual(Object.keys(readNpz(rebuilt)), Object.keys(readNpz(zip)));
    const zip64 = specOf(zip);
    zip64.entries.forEach((e) => e.zip64 = true);
    zip64.zip64End = true;
    assert.deepEqual(Object.keys(readNpz(buildZip(zip64))), Object.keys(readNpz(zip)));
  }
});

// ---------------------------------------------------------------- saved quantization states

/** Runs `resume`, recording anything but success or an AttnroundError, or a slow case. */
async function checkAsync(
  failures: Failure[],
  source: string,
  seed: number,
  how: string,
  resume: () => Promise<unknown>,
): Promise<void> {
  const start = performance.now();
  try {
    await resume();
  } catch (e) {
    if (!(e instanceof AttnroundError)) {
      failures.push({ source, seed, how, error: `${(e as Error)?.name}: ${(e as Error)?.message}` });
    }
  }
  const ms = performance.now() - start;
  if (ms > STATE_CASE_LIMIT_MS) failures.push({ source, seed, how, error: `took ${ms.toFixed(0)} ms` });
}

/** A resume rebuilds a block's caches, slower than decoding a file but bounded all the same. */
const STATE_CASE_LIMIT_MS = 10_000;

// deno-lint-ignore no-explicit-any
type Json = any;

/** Every path to a value in a decoded state header (arrays and objects walked, typed arrays as leaves). */
function paths(value: Json, prefix: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== "object" || ArrayBuffer.isView(value)) return [prefix];
  const keys: (string | number)[] = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  return [prefix, ...keys.flatMap((k) => paths(value[k], [...prefix, k]))];
}

/** One structural change to a decoded state: a field replaced, removed, renamed or added, or an array resized. */
function mutateState(header: Json, random: Random): string {
  const all = paths(header).filter((p) => p.length > 0);
  const path = random.pick(all);
  const parent = path.slice(0, -1).reduce((o: Json, k) => o[k], header);
  const key = path.at(-1)!;
  const where = path.join(".");
  switch (random.below(5)) {
    case 0: {
      const value = random.pick([
        null,
        -1,
        0,
        0.5,
        1e12,
        2 ** 53,
        "x",
        [],
        {},
        true,
        new Float32Array(0),
        new Float32Array([NaN]),
      ]);
      parent[key] = value;
      return `${where} → ${
        ArrayBuffer.isView(value) ? `Float32Array(${(value as Float32Array).length})` : JSON.stringify(value)
      }`;
    }
    case 1:
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
      return `${where} removed`;
    case 2:
      if (!Array.isArray(parent)) {
        parent[`${key}_`] = parent[key];
        delete parent[key];
      }
      return `${where} renamed`;
    case 3:
      if (ArrayBuffer.isView(parent[key])) {
        const old = parent[key] as Float32Array;
        const length = random.pick([0, old.length - 1, old.length + 1, old.length * 2]);
        parent[key] = new Float32Array(Math.max(0, length)).map((_, i) =>
          old[i % Math.max(old.length, 1)] ?? 0
        );
        return `${where} resized to ${length}`;
      }
      parent[key] = random.pick([Number.MAX_SAFE_INTEGER, -0, 1e-300, "1"]);
      return `${where} → a boundary value`;
    default:
      if (typeof parent === "object" && !Array.isArray(parent)) {
        parent[random.pick(["__proto__", "constructor", "extra", "$f32"])] = random.pick([1, {}, "x"]);
      }
      return `${where}: a field added beside it`;
  }
}

/** A state's body changed byte by byte, its checksum recomputed: the JSON and blob decoding see the damage. */
function mutateStateBytes(state: Uint8Array, random: Random): { data: Uint8Array; how: string } {
  const body = state.subarray(0, state.length - 32);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const headerEnd = 12 + view.getUint32(8, true);
  let mutated: Uint8Array, how: string;
  if (random.below(3) === 0) {
    mutated = body.slice();
    const value = random.pick([0, 1, headerEnd - 13, headerEnd - 11, body.length, 0xffffffff]);
    new DataView(mutated.buffer).setUint32(8, value >>> 0, true);
    how = `header length → ${value}`;
  } else {
    // Inside the header: blind damage to the JSON text.
    const header = body.slice(12, headerEnd);
    const { data, how: what } = mutateBytes(header, random);
    mutated = new Uint8Array(12 + data.length + (body.length - headerEnd));
    mutated.set(body.subarray(0, 12));
    mutated.set(data, 12);
    mutated.set(body.subarray(headerEnd), 12 + data.length);
    new DataView(mutated.buffer).setUint32(8, data.length, true);
    how = `header: ${what}`;
  }
  const out = new Uint8Array(mutated.length + 32);
  out.set(mutated);
  out.set(sha256(mutated), mutated.length);
  return { data: out, how };
}

Deno.test("fuzz: saved states with altered fields or damaged bytes (checksum recomputed) resume or fail with an AttnroundError, within time and memory bounds", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const x = readNpz(readFixture("calib.npz")).x;
  const pixels = (x.data as Uint8Array).subarray(0, 64 * 784);
  const calib = new Tensor(Float32Array.from(pixels, (p) => p / 255), [64, 1, 28, 28]);
  // One thread: a pool of workers per 2 ms slice would take far longer than the slices.
  const run = await QuantizationRun.start(model, calib, { iterations: 30, holdout: 0, threads: 1 });
  while (run.progress < 0.6) await run.advance({ milliseconds: 2 });
  const state = run.state();
  run.dispose();
  const header = decodeState(state);
  const failures: Failure[] = [];
  let cases = 0;
  const resume = async (bytes: Uint8Array) => (await QuantizationRun.resume(model, calib, bytes)).dispose();
  try {
    for (let seed = 0; seed < 150; seed++) {
      const random = generator(70_000 + seed);
      const before = rss();
      if (random.below(3) === 0) {
        const { data, how } = mutateStateBytes(state, random);
        await checkAsync(failures, "state bytes", seed, how, () => resume(data));
        checkMemory(failures, "state bytes", seed, how, before);
      } else {
        const h = structuredClone(header);
        const how = Array.from({ length: 1 + random.below(2) }, () => mutateState(h, random)).join("; ");
        await checkAsync(failures, "state fields", seed, how, () => resume(encodeState(h)));
        checkMemory(failures, "state fields", seed, how, before);
      }
      cases++;
    }
    // The unmutated state resumes, so the mutants start from a valid one.
    await resume(encodeState(structuredClone(header)));
  } finally {
    model.dispose();
  }
  report(failures, cases);
});
