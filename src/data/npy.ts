// NumPy's .npy and .npz formats, read and written with web-standard APIs only.
//
// Format (numpy/lib/format.py): the magic "\x93NUMPY", a major and minor
// version byte, the header length (uint16 in 1.0, uint32 in 2.0 and 3.0), then
// a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// (Latin-1 in 1.0/2.0, UTF-8 in 3.0) padded so the data starts aligned, then
// the raw elements. An .npz is a zip archive of NAME.npy files.
//
// Reading accepts both byte orders (big-endian data is byte-swapped) and
// Fortran order (transposed into the row-major order Tensor uses). Writing
// produces version 1.0 (2.0 for headers over 64 KiB), native byte order, C order.
import { AttnroundError } from "../errors.ts";
import { arrayOfDtype, type DType, Tensor, type TensorData, type TypedArrayConstructor } from "../tensor.ts";
import { readZip, writeZip } from "./zip.ts";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const ALIGN = 64; // numpy aligns the data to 64 bytes since 1.14

// numpy type codes (kind + item size) and the Tensor dtypes they map to.
const dtypeOfCode: Record<string, DType> = {
  f4: "float32",
  f8: "float64",
  i1: "int8",
  u1: "uint8",
  i2: "int16",
  u2: "uint16",
  i4: "int32",
  u4: "uint32",
  i8: "int64",
  u8: "uint64",
  b1: "bool",
};
// numpy has no 4-bit types: int4 and uint4 tensors are written as int8 and uint8.
const codeOfDtype = {
  ...Object.fromEntries(Object.entries(dtypeOfCode).map(([c, d]) => [d, c])),
  int4: "i1",
  uint4: "u1",
} as Record<DType, string>;

const hostLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function invalid(message: string): AttnroundError {
  return new AttnroundError("INVALID_DATA", `npy: ${message}`);
}

/** Reads one .npy file. Throws AttnroundError("INVALID_DATA") naming what is wrong. */
export function readNpy(bytes: Uint8Array): Tensor {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw invalid(`not a .npy file (it does not start with "\\x93NUMPY")`);
  }
  const major = bytes[6], minor = bytes[7];
  if (major < 1 || major > 3 || minor !== 0) {
    throw invalid(`format version ${major}.${minor} is not supported (1.0, 2.0 and 3.0 are)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const prefix = major === 1 ? 10 : 12;
  if (bytes.length < prefix) throw invalid(`truncated: ${bytes.length} bytes, shorter than the preamble`);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = prefix + headerLength;
  if (dataStart > bytes.length) {
    throw invalid(
      `truncated header: it declares ${headerLength} bytes, ${bytes.length - prefix} are present`,
    );
  }
  const raw = bytes.subarray(prefix, dataStart);
  let text: string;
  if (major === 3) {
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
    } catch {
      throw invalid("the header is not valid UTF-8");
    }
  } else {
    text = "";
    for (let i = 0; i < raw.length; i += 8192) text += String.fromCharCode(...raw.subarray(i, i + 8192));
  }
  const { descr, fortranOrder, shape } = parseHeader(text);
  const { dtype, littleEndian } = parseDescr(descr);

  const ArrayType = arrayOfDtype[dtype];
  const count = shape.reduce((a, b) => a * b, 1);
  const byteLength = count * ArrayType.BYTES_PER_ELEMENT;
  if (byteLength > bytes.length - dataStart) {
    throw invalid(
      `data truncated: shape (${shape}) of ${descr} needs ${byteLength} bytes, ${
        bytes.length - dataStart
      } are present`,
    );
  }
  // A copy: the result owns aligned memory whatever the input's offset was.
  // (Not bytes.slice: on a Node Buffer that is a view of the same memory.)
  const copy = new Uint8Array(byteLength);
  copy.set(bytes.subarray(dataStart, dataStart + byteLength));
  if (littleEndian !== hostLittleEndian) swapBytes(copy, ArrayType.BYTES_PER_ELEMENT);
  let data = new ArrayType(copy.buffer);
  if (fortranOrder && shape.length > 1) data = fortranToC(data, shape);
  return new Tensor(data, shape, dtype);
}

/** Encodes a tensor as a .npy file that numpy.load reads. */
export function writeNpy(tensor: Tensor): Uint8Array {
  const code = codeOfDtype[tensor.dtype];
  const order = tensor.dtype === "bool" || code[1] === "1" ? "|" : hostLittleEndian ? "<" : ">";
  const shape = tensor.shape.length === 1 ? `(${tensor.shape[0]},)` : `(${tensor.shape.join(", ")})`;
  const dict = `{'descr': '${order}${code}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Pad with spaces so that preamble + header + "\n" is a multiple of ALIGN.
  const pad = (prefix: number) =>
    dict + " ".repeat((ALIGN - ((prefix + dict.length + 1) % ALIGN)) % ALIGN) + "\n";
  const major = pad(10).length <= 0xffff ? 1 : 2;
  const prefix = major === 1 ? 10 : 12;
  const header = pad(prefix);
  const data = tensor.data;
  const out = new Uint8Array(prefix + header.length + data.byteLength);
  out.set(MAGIC);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[prefix + i] = header.charCodeAt(i);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), prefix + header.length);
  return out;
}

/**
 * Reads an .npz archive: one tensor per NAME.npy entry, keyed by NAME (as
 * numpy.load names them), in archive order. Entries not ending in ".npy" are
 * ignored. Throws AttnroundError("INVALID_DATA") naming the entry at fault.
 */
export function readNpz(bytes: Uint8Array): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [file, data] of readZip(bytes)) {
    if (!file.endsWith(".npy")) continue;
    const name = file.slice(0, -4);
    let tensor: Tensor;
    try {
      tensor = readNpy(data);
    } catch (cause) {
      if (!(cause instanceof AttnroundError)) throw cause;
      throw new AttnroundError("INVALID_DATA", `npz entry "${file}": ${cause.message}`, { cause });
    }
    // defineProperty: a name such as "__proto__" stays an ordinary key.
    Object.defineProperty(out, name, { value: tensor, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

export interface NpzOptions {
  /** Deflate the entries, as numpy.savez_compressed does (default false, as numpy.savez). */
  compressed?: boolean;
}

/** Encodes tensors as an .npz archive (NAME.npy per tensor) that numpy.load reads. */
export function writeNpz(arrays: Record<string, Tensor>, options: NpzOptions = {}): Uint8Array {
  return writeZip(
    Object.entries(arrays).map(([name, tensor]) => [`${name}.npy`, writeNpy(tensor)]),
    options.compressed ?? false,
  );
}

function parseDescr(descr: string): { dtype: DType; littleEndian: boolean } {
  const match = /^([<>|=]?)([a-z]\d+)$/.exec(descr);
  const dtype = match ? dtypeOfCode[match[2]] : undefined;
  if (!match || !dtype) {
    throw invalid(
      `dtype '${descr}' is not supported; convert it in numpy first (e.g. a.astype(np.float32)). ` +
        `Supported: ${Object.keys(dtypeOfCode).join(" ")} in either byte order`,
    );
  }
  const single = match[2].endsWith("1") && match[2].length === 2;
  if (match[1] === "|" && !single) throw invalid(`dtype '${descr}' has no byte order`);
  return { dtype, littleEndian: match[1] === "<" || (match[1] !== ">" && hostLittleEndian) };
}

function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}

/** Row-major copy of data laid out in column-major (Fortran) order. */
function fortranToC(data: TensorData, shape: number[]): TensorData {
  const out = new (data.constructor as TypedArrayConstructor)(data.length) as TensorData;
  const rank = shape.length;
  const stride = new Array<number>(rank);
  for (let k = 0, s = 1; k < rank; k++) stride[k] = s, s *= shape[k];
  const index = new Array<number>(rank).fill(0);
  let source = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = data[source];
    // Advance the row-major index, last axis fastest, moving `source` along.
    for (let k = rank - 1; k >= 0; k--) {
      if (++index[k] < shape[k]) {
        source += stride[k];
        break;
      }
      source -= stride[k] * (shape[k] - 1);
      index[k] = 0;
    }
  }
  return out;
}

// The header is a Python literal. This parser takes the subset numpy writes:
// dicts, tuples, lists, strings, integers (an old "L" suffix too), True/False/None.
type Literal = string | number | boolean | null | Literal[] | { [key: string]: Literal };

function parseHeader(text: string): { descr: string; fortranOrder: boolean; shape: number[] } {
  let value: Literal;
  try {
    value = new LiteralParser(text).parseAll();
  } catch (cause) {
    throw invalid(`header ${JSON.stringify(text.trim().slice(0, 200))} is not a dict literal: ${cause}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalid(`header ${JSON.stringify(text.trim().slice(0, 200))} is not a dict`);
  }
  const { descr, fortran_order: fortranOrder, shape } = value;
  if (typeof descr !== "string") {
    throw invalid(
      Array.isArray(descr)
        ? "structured dtypes (record arrays) are not supported"
        : `header has no 'descr' string: ${JSON.stringify(value)}`,
    );
  }
  if (typeof fortranOrder !== "boolean") throw invalid(`header has no 'fortran_order' True/False`);
  if (
    !Array.isArray(shape) ||
    !shape.every((d): d is number => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
  ) {
    throw invalid(`header 'shape' must be a tuple of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  return { descr, fortranOrder, shape };
}

class LiteralParser {
  private at = 0;
  constructor(private readonly text: string) {}

  parseAll(): Literal {
    const value = this.value();
    this.space();
    if (this.at < this.text.length) throw new Error(`unexpected "${this.text[this.at]}" at ${this.at}`);
    return value;
  }

  private space(): void {
    while (this.at < this.text.length && " \t\r\n".includes(this.text[this.at])) this.at++;
  }

  private value(): Literal {
    this.space();
    const c = this.text[this.at];
    if (c === "{") return this.dict();
    if (c === "(") return this.sequence(")");
    if (c === "[") return this.sequence("]");
    if (c === "'" || c === '"') return this.string();
    const word = /^(?:[-+]?\d+L?|True|False|None)/.exec(this.text.slice(this.at, this.at + 40));
    if (!word) throw new Error(c === undefined ? "unexpected end" : `unexpected "${c}" at ${this.at}`);
    this.at += word[0].length;
    if (word[0] === "True") return true;
    if (word[0] === "False") return false;
    if (word[0] === "None") return null;
    return Number(word[0].replace("L", ""));
  }

  private expect(c: string): void {
    this.space();
    if (this.text[this.at] !== c) throw new Error(`expected "${c}" at ${this.at}`);
    this.at++;
  }

  /** Whether the next non-space character is `c` (consumed if so). */
  private take(c: string): boolean {
    this.space();
    if (this.text[this.at] !== c) return false;
    this.at++;
    return true;
  }

  private string(): string {
    const quote = this.text[this.at++];
    let out = "";
    while (this.text[this.at] !== quote) {
      if (this.at >= this.text.length) throw new Error("unterminated string");
      if (this.text[this.at] === "\\") this.at++;
      out += this.text[this.at++];
    }
    this.at++;
    return out;
  }

  private sequence(close: string): Literal[] {
    this.at++;
    const items: Literal[] = [];
    while (!this.take(close)) {
      items.push(this.value());
      if (!this.take(",")) {
        this.expect(close);
        break;
      }
    }
    return items;
  }

  private dict(): { [key: string]: Literal } {
    this.at++;
    const out: { [key: string]: Literal } = {};
    while (!this.take("}")) {
      const key = this.value();
      if (typeof key !== "string") throw new Error("dict keys must be strings");
      this.expect(":");
      Object.defineProperty(out, key, { value: this.value(), enumerable: true, writable: true });
      if (!this.take(",")) {
        this.expect("}");
        break;
      }
    }
    return out;
  }
}
