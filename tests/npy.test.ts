import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { spawnSync } from "node:child_process";
import { readNpy, readNpz, writeNpy, writeNpz } from "../src/data/npy.ts";
import { writeZip } from "../src/data/zip.ts";
import { AttnroundError } from "../src/errors.ts";
import { type DType, Tensor, type TensorData } from "../src/tensor.ts";
import { readFixture } from "./fixtures.ts";
import { haveNumpy, PYTHON } from "./system.ts";

const invalidData = (pattern: RegExp) => (e: unknown) =>
  e instanceof AttnroundError && e.code === "INVALID_DATA" && pattern.test(e.message);

function countClasses(labels: TensorData): number[] {
  const counts = new Array(10).fill(0);
  for (const label of labels) counts[Number(label)]++;
  return counts;
}

Deno.test("0-valid: calib.npz has the shapes, dtypes and class counts of its README", () => {
  const calib = readNpz(readFixture("calib.npz"));
  assert.deepEqual(Object.keys(calib), ["x", "y", "idx"]);
  assert.equal(calib.x.dtype, "uint8");
  assert.deepEqual(calib.x.shape, [1024, 28, 28]);
  assert.equal(calib.y.dtype, "uint8");
  assert.deepEqual(calib.y.shape, [1024]);
  assert.equal(calib.idx.dtype, "int32");
  assert.deepEqual(calib.idx.shape, [1024]);
  assert.deepEqual(countClasses(calib.y.data), [103, 120, 111, 91, 87, 99, 105, 93, 106, 109]);
  // Sorted, distinct positions in the 60,000-image training set.
  const idx = calib.idx.data as Int32Array;
  for (let i = 0; i < idx.length; i++) {
    assert.ok(idx[i] >= 0 && idx[i] < 60000 && (i === 0 || idx[i] > idx[i - 1]));
  }
  // Real images: not all black, full uint8 range used.
  const x = calib.x.data as Uint8Array;
  assert.equal(Math.max(...x.subarray(0, 784 * 16)), 255);
});

Deno.test("0-valid: test.npz holds the 10,000 Fashion-MNIST test images, 1,000 per class", () => {
  const test = readNpz(readFixture("test.npz"));
  assert.deepEqual(Object.keys(test), ["x", "y"]);
  assert.deepEqual([test.x.dtype, ...test.x.shape], ["uint8", 10000, 28, 28]);
  assert.deepEqual([test.y.dtype, ...test.y.shape], ["uint8", 10000]);
  assert.deepEqual(countClasses(test.y.data), new Array(10).fill(1000));
});

/** One tensor of every dtype, with extreme values, plus awkward shapes. */
function sampleTensors(): Record<string, Tensor> {
  return {
    f4: new Tensor(new Float32Array([0, -0, 1.5, -3.25e-38, 3.4e38, Infinity, -Infinity, NaN]), [2, 4]),
    f8: new Tensor(new Float64Array([Math.PI, -Number.MIN_VALUE, Number.MAX_VALUE, 1e-310, -0, NaN]), [3, 2]),
    i1: new Tensor(new Int8Array([-128, -1, 0, 1, 127]), [5]),
    u1: new Tensor(new Uint8Array([0, 1, 128, 255]), [2, 1, 2]),
    i2: new Tensor(new Int16Array([-32768, -1, 0, 32767]), [4]),
    u2: new Tensor(new Uint16Array([0, 1, 65535]), [3]),
    i4: new Tensor(new Int32Array([-(2 ** 31), -1, 0, 2 ** 31 - 1]), [2, 2]),
    u4: new Tensor(new Uint32Array([0, 1, 2 ** 32 - 1]), [3, 1]),
    i8: new Tensor(new BigInt64Array([-(2n ** 63n), -1n, 0n, 2n ** 63n - 1n]), [4]),
    u8: new Tensor(new BigUint64Array([0n, 1n, 2n ** 64n - 1n]), [3]),
    b1: new Tensor(new Uint8Array([1, 0, 0, 1, 1, 0]), [2, 3], "bool"),
    scalar: new Tensor(new Float32Array([2.5]), []),
    empty: new Tensor(new Float32Array(0), [0, 3]),
    // A view into a larger buffer at an odd offset.
    view: new Tensor(new Int16Array(new Int16Array([9, 8, 7, 6, 5]).buffer, 2, 3), [3]),
  };
}

function assertSameTensor(actual: Tensor, expected: Tensor, what: string) {
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  assert.equal(actual.data.constructor, expected.data.constructor, `${what}: array type`);
  for (let i = 0; i < expected.size; i++) {
    assert.ok(
      Object.is(actual.data[i], expected.data[i]),
      `${what}[${i}]: ${actual.data[i]} != ${expected.data[i]}`,
    );
  }
}

Deno.test("0-valid: a Node Buffer (whose slice() is a view) still gives arrays of their own", () => {
  const file = readFixture("calib.npz");
  const { x, y } = readNpz(Buffer.from(file));
  const plain = readNpz(file);
  assert.deepEqual(x.shape, [1024, 28, 28]);
  assert.equal(x.data.length, 1024 * 784);
  assert.deepEqual(x.data, plain.x.data);
  assert.deepEqual(y.data, plain.y.data);
});

Deno.test("0-valid: writeNpy → readNpy round-trips every dtype, 0-d and empty arrays", () => {
  for (const [name, tensor] of Object.entries(sampleTensors())) {
    const bytes = writeNpy(tensor);
    const headerEnd = 10 + (bytes[8] | (bytes[9] << 8));
    assert.equal(headerEnd % 64, 0, `${name}: data is 64-byte aligned`);
    assertSameTensor(readNpy(bytes), tensor, name);
    // The result does not alias the input, whatever its offset.
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    assertSameTensor(readNpy(shifted.subarray(3)), tensor, `${name} at offset 3`);
  }
});

Deno.test("0-valid: writeNpz → readNpz round-trips, stored and deflated, deterministically", () => {
  const tensors = sampleTensors();
  for (const compressed of [false, true]) {
    const bytes = writeNpz(tensors, { compressed });
    assert.deepEqual(writeNpz(tensors, { compressed }), bytes, "same input, same bytes");
    const back = readNpz(bytes);
    assert.deepEqual(Object.keys(back), Object.keys(tensors));
    for (const name of Object.keys(tensors)) assertSameTensor(back[name], tensors[name], name);
  }
  const zeros = { big: new Tensor(new Float32Array(100_000), [100_000]) };
  assert.ok(writeNpz(zeros, { compressed: true }).length < 10_000);
  assert.deepEqual(readNpz(writeNpz({})), {});
});

Deno.test("0-valid: a header over 64 KiB is written as version 2.0 and read back", () => {
  const shape = new Array(25_000).fill(1);
  const tensor = new Tensor(new Float32Array([7]), shape);
  const bytes = writeNpy(tensor);
  assert.equal(bytes[6], 2);
  assertSameTensor(readNpy(bytes), tensor, "rank 25000");
});

/** A .npy file with the given version, header text and data bytes, exactly as given. */
function rawNpy(header: string, data: number[] | Uint8Array = [], major = 1): Uint8Array {
  const headerBytes = new TextEncoder().encode(header);
  const prefix = major === 1 ? 10 : 12;
  const out = new Uint8Array(prefix + headerBytes.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, headerBytes.length, true);
  else view.setUint32(8, headerBytes.length, true);
  out.set(headerBytes, prefix);
  out.set(data, prefix + headerBytes.length);
  return out;
}

Deno.test("0-valid: versions 2.0/3.0, big-endian data, Fortran order, Python 2 headers", () => {
  const c = (t: Tensor) => [t.dtype, t.shape, [...t.data]];
  const header = "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }\n";
  assert.deepEqual(c(readNpy(rawNpy(header, [1, 0, 2, 0], 2))), ["int16", [2], [1, 2]]);
  const utf8 = "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), 'note': 'é'}\n";
  assert.deepEqual(c(readNpy(rawNpy(utf8, [1, 0, 2, 0], 3))), ["int16", [2], [1, 2]]);
  assert.deepEqual(
    c(readNpy(
      rawNpy("{'descr': '>i4', 'fortran_order': False, 'shape': (2,)}", [0, 0, 1, 2, 255, 255, 255, 254]),
    )),
    ["int32", [2], [258, -2]],
  );
  const be = new Uint8Array(16);
  new DataView(be.buffer).setFloat64(0, -1.5), new DataView(be.buffer).setFloat64(8, 1e300);
  assert.deepEqual(c(readNpy(rawNpy("{'descr': '>f8', 'fortran_order': False, 'shape': (2,)}", be))), [
    "float64",
    [2],
    [-1.5, 1e300],
  ]);
  // Column-major [[0, 1, 2], [3, 4, 5]] is stored 0 3 1 4 2 5.
  assert.deepEqual(
    c(readNpy(rawNpy('{"descr": "|u1", "fortran_order": True, "shape": (2, 3)}', [0, 3, 1, 4, 2, 5]))),
    ["uint8", [2, 3], [0, 1, 2, 3, 4, 5]],
  );
  assert.deepEqual(
    c(readNpy(rawNpy("{'descr': '<u2', 'fortran_order': False, 'shape': (1L, 2L), }", [5, 0, 6, 0]))),
    ["uint16", [1, 2], [5, 6]],
  );
});

Deno.test("1-invalid: every malformed .npy throws INVALID_DATA naming the problem", () => {
  const ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const eight = new Array(8).fill(0);
  assert.doesNotThrow(() => readNpy(rawNpy(ok, eight)));
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(0), /not a \.npy/],
    [new TextEncoder().encode("PK\x03\x04 this is a zip"), /not a \.npy/],
    [rawNpy(ok, eight).subarray(0, 9), /not a \.npy|truncated/],
    [rawNpy(ok, eight).subarray(0, 40), /truncated header/],
    [rawNpy(ok, eight, 4), /version 4\.0/],
    [rawNpy(ok, eight).subarray(0, 70), /data truncated.*needs 8 bytes/],
    [rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", eight), /not a dict literal/],
    [rawNpy("['descr', '<f4']", eight), /not a dict/],
    [rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk", eight), /not a dict literal/],
    [rawNpy("{'descr': '<f4', 'fortran_order': False}", eight), /'shape'/],
    [rawNpy("{'descr': '<f4', 'shape': (2,)}", eight), /'fortran_order'/],
    [rawNpy("{'fortran_order': False, 'shape': (2,)}", eight), /'descr'/],
    [rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", eight), /non-negative/],
    [rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2.5,)}", eight), /not a dict literal/],
    [
      rawNpy("{'descr': '<f2', 'fortran_order': False, 'shape': (2,)}", eight),
      /dtype '<f2' is not supported/,
    ],
    [rawNpy("{'descr': '<U3', 'fortran_order': False, 'shape': (2,)}", eight), /dtype '<U3'/],
    [rawNpy("{'descr': '|O', 'fortran_order': False, 'shape': (2,)}", eight), /dtype '\|O'/],
    [rawNpy("{'descr': '|i4', 'fortran_order': False, 'shape': (2,)}", eight), /no byte order/],
    [rawNpy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", eight), /structured/],
    [rawNpy(ok.replace("'shape'", "'sh\\xe9'"), eight, 3).map((b) => (b === 0x5c ? 0xff : b)), /UTF-8/],
    // Declares 8 TB: refused from the byte count, nothing is allocated.
    [
      rawNpy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000)}", eight),
      /needs 8000000000000/,
    ],
    [
      rawNpy("{'descr': '<f8', 'fortran_order': False, 'shape': (10000000000000000000000,)}", eight),
      /non-negative/,
    ],
  ];
  for (const [bytes, pattern] of cases) {
    assert.throws(() => readNpy(bytes), invalidData(pattern), String(pattern));
  }
});

Deno.test("1-invalid: corrupt .npz archives throw INVALID_DATA naming the problem", () => {
  const tensors = {
    a: new Tensor(new Float32Array([1, 2, 3, 4]), [4]),
    b: new Tensor(new Int8Array(500), [500]),
  };
  for (const compressed of [false, true]) {
    const good = writeNpz(tensors, { compressed });
    assert.throws(() => readNpz(good.subarray(0, good.length - 1)), invalidData(/end-of-central-directory/));
    assert.throws(() => readNpz(good.subarray(0, 10)), invalidData(/too short/));
    // Cut out the middle: the directory now points past the end or at the wrong bytes.
    const cut = new Uint8Array([...good.subarray(0, 40), ...good.subarray(good.length - 200)]);
    assert.throws(() => readNpz(cut), invalidData(/runs past the end|corrupt|CRC/));
    // Flip one byte inside the first entry's data: caught by the CRC (or by inflate).
    const flipped = good.slice();
    flipped[30 + "a.npy".length + 10] ^= 0x40;
    assert.throws(() => readNpz(flipped), invalidData(/"a\.npy".*(CRC|inflate)/));
  }
  assert.throws(
    () => readNpz(new TextEncoder().encode("not a zip at all, just text")),
    invalidData(/not a zip/),
  );
  // A sound zip whose entry is not a .npy: the error names the entry.
  const notNpy = writeZip([["a.npy", new TextEncoder().encode("just text")]], false);
  assert.throws(() => readNpz(notNpy), invalidData(/npz entry "a\.npy": npy: not a \.npy/));
});

Deno.test("1-invalid: an entry declaring an impossible inflated size is refused before allocating", () => {
  const good = writeNpz({ z: new Tensor(new Float32Array(1000), [1000]) }, { compressed: true });
  const view = new DataView(good.buffer);
  // Central directory header: find its signature and set the uncompressed size to 4 GB - 2.
  for (let i = good.length - 22; i >= 0; i--) {
    if (view.getUint32(i, true) === 0x02014b50) {
      view.setUint32(i + 24, 0xfffffffe, true);
      break;
    }
  }
  assert.throws(() => readNpz(good), invalidData(/impossible/));
});

// ---- Independent check against numpy (python3), when it is installed. ----

function python(script: string, input?: Uint8Array): string {
  const result = spawnSync(PYTHON, ["-c", script], { input, maxBuffer: 256 << 20 });
  if (result.error) throw result.error;
  // Deno without --allow-run hands back an empty result rather than throwing.
  if (result.status === undefined) throw new Error("python3 could not be run (in Deno: --allow-run)");
  if (result.status !== 0) throw new Error(`python3 exited with ${result.status}: ${result.stderr}`);
  return new TextDecoder().decode(result.stdout);
}

const hasNumpy = haveNumpy("tests/npy.test.ts 2-numpy (the .npy/.npz cross-checks with numpy)");

/** numpy's view of an array: dtype name, shape, and each value as Python prints it. */
interface NumpyArray {
  dtype: string;
  shape: number[];
  values: string[];
}

const DESCRIBE = `
import numpy as np
def describe(a):
    a = np.asarray(a)
    flat = np.ascontiguousarray(a).ravel()
    if a.dtype.kind == "f":
        values = [repr(float(v)) for v in flat]
    else:
        values = [str(int(v)) for v in flat]
    return {"dtype": a.dtype.name, "shape": list(a.shape), "values": values}
`;

function assertMatchesNumpy(actual: Tensor, expected: NumpyArray, what: string) {
  assert.equal(actual.dtype, expected.dtype as DType, `${what}: dtype`);
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  assert.equal(actual.size, expected.values.length, `${what}: size`);
  const float = actual.dtype === "float32" || actual.dtype === "float64";
  for (let i = 0; i < actual.size; i++) {
    const s = expected.values[i];
    const ok = float
      ? Object.is(
        Number(actual.data[i]),
        s === "nan" ? NaN : s === "inf" ? Infinity : s === "-inf" ? -Infinity : Number(s),
      )
      : String(actual.data[i]) === s;
    assert.ok(ok, `${what}[${i}]: ${actual.data[i]}, numpy says ${s}`);
  }
}

Deno.test({
  name: "2-numpy: numpy.load reads what writeNpz writes, stored and compressed",
  ignore: !hasNumpy,
  fn: () => {
    const tensors = sampleTensors();
    for (const compressed of [false, true]) {
      const out = python(
        DESCRIBE +
          `
import io, json, sys
z = np.load(io.BytesIO(sys.stdin.buffer.read()))
print(json.dumps({k: describe(z[k]) for k in z.files}))
`,
        writeNpz(tensors, { compressed }),
      );
      const arrays: Record<string, NumpyArray> = JSON.parse(out);
      assert.deepEqual(Object.keys(arrays), Object.keys(tensors));
      for (const [name, tensor] of Object.entries(tensors)) assertMatchesNumpy(tensor, arrays[name], name);
    }
  },
});

Deno.test({
  name: "2-numpy: readNpy/readNpz read what np.save, np.savez and np.savez_compressed write",
  ignore: !hasNumpy,
  fn: () => {
    // numpy writes into a temporary directory and hands back the files' bytes.
    const out = python(
      DESCRIBE + `
import base64, json, os, tempfile
arrays = {
    "f4": (np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7),
    "f4_special": np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45], dtype=np.float32),
    "f8": np.linspace(-1, 1, 7),
    "i1": np.arange(-128, 128, 51, dtype=np.int8),
    "u1": np.arange(0, 256, 37, dtype=np.uint8).reshape(1, 7),
    "i2": np.array([-32768, 0, 32767], dtype=np.int16),
    "u2": np.array([0, 65535], dtype=np.uint16),
    "i4": np.array([[-2**31, 2**31 - 1]], dtype=np.int32),
    "u4": np.array([0, 2**32 - 1], dtype=np.uint32),
    "i8": np.array([-2**63, 2**63 - 1, 12345678901234567], dtype=np.int64),
    "u8": np.array([0, 2**64 - 1], dtype=np.uint64),
    "b1": np.array([[True, False], [False, True]]),
    "scalar": np.array(3.5, dtype=np.float64),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "fortran": np.asfortranarray(np.arange(60, dtype=np.int32).reshape(3, 4, 5)),
    "big_endian_i4": np.arange(-3, 3, dtype=">i4").reshape(2, 3),
    "big_endian_f8": np.array([1.5, -2.25, 1e300], dtype=">f8"),
    "big_endian_fortran": np.asfortranarray(np.arange(12, dtype=">u2").reshape(3, 4)),
    "strided": np.arange(20, dtype=np.int16).reshape(4, 5)[:, ::2],
}
files = {}
with tempfile.TemporaryDirectory() as d:
    def keep(name):
        with open(os.path.join(d, name), "rb") as f:
            files[name] = base64.b64encode(f.read()).decode()
    for k, a in arrays.items():
        np.save(os.path.join(d, k + ".npy"), a)
        keep(k + ".npy")
    for v in [(1, 0), (2, 0), (3, 0)]:
        name = "v%d.npy" % v[0]
        with open(os.path.join(d, name), "wb") as f:
            np.lib.format.write_array(f, arrays["f4"], version=v)
        keep(name)
    np.savez(os.path.join(d, "plain.npz"), **arrays)
    keep("plain.npz")
    np.savez_compressed(os.path.join(d, "compressed.npz"), **arrays)
    keep("compressed.npz")
    np.savez(os.path.join(d, "positional.npz"), arrays["i1"], arrays["f8"])
    keep("positional.npz")
print(json.dumps({"numpy": np.__version__, "files": files, "arrays": {k: describe(a) for k, a in arrays.items()}}))
`,
    );
    const { files, arrays } = JSON.parse(out) as {
      files: Record<string, string>;
      arrays: Record<string, NumpyArray>;
    };
    const bytes = (name: string) => Uint8Array.from(atob(files[name]), (ch) => ch.charCodeAt(0));
    for (const name of Object.keys(arrays)) {
      assertMatchesNumpy(readNpy(bytes(`${name}.npy`)), arrays[name], name);
    }
    for (const v of [1, 2, 3]) {
      const file = bytes(`v${v}.npy`);
      assert.equal(file[6], v);
      assertMatchesNumpy(readNpy(file), arrays.f4, `version ${v}.0`);
    }
    for (const archive of ["plain.npz", "compressed.npz"]) {
      const read = readNpz(bytes(archive));
      assert.deepEqual(Object.keys(read), Object.keys(arrays), archive);
      for (const name of Object.keys(arrays)) {
        assertMatchesNumpy(read[name], arrays[name], `${archive}:${name}`);
      }
    }
    const positional = readNpz(bytes("positional.npz"));
    assert.deepEqual(Object.keys(positional), ["arr_0", "arr_1"]);
    assertMatchesNumpy(positional.arr_1, arrays.f8, "arr_1");
  },
});
