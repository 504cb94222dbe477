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
import { argument, AttnroundError, isOptions } from "../errors.ts";
import { arrayOfDtype, type DType, Tensor, type TensorData, type TypedArrayConstructor } from "../tensor.ts";
import { EntryReader, listZip, writeZip } from "./zip.ts";

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
// numpy has no 4- or 2-bit types: int4/int2 and uint4/uint2 tensors are written as int8 and uint8.
const codeOfDtype = {
  ...Object.fromEntries(Object.entries(dtypeOfCode).map(([c, d]) => [d, c])),
  int4: "i1",
  uint4: "u1",
  int2: "i1",
  uint2: "u1",
} as Record<DType, string>;

const notNpy = `not a .npy file (it does not start with "\\x93NUMPY")`;

const hostLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function invalid(message: string): AttnroundError {
  return new AttnroundError("INVALID_DATA", `npy: ${message}`);
}

interface NpyHeader {
  dtype: DType;
  littleEndian: boolean;
  fortranOrder: boolean;
  shape: number[];
  descr: string;
  /** Where the elements start. */
  dataStart: number;
  /** Bytes the elements take. */
  byteLength: number;
}

/**
 * The header of a .npy file from its first bytes. Returns the number of bytes
 * it needs when `bytes` holds fewer (a caller inflating the file asks again).
 */
function parseNpyHeader(bytes: Uint8Array): NpyHeader | number {
  if (bytes.length < 10) return 10;
  if (MAGIC.some((b, i) => bytes[i] !== b)) {
    throw invalid(notNpy);
  }
  const major = bytes[6], minor = bytes[7];
  if (major < 1 || major > 3 || minor !== 0) {
    throw invalid(`format version ${major}.${minor} is not supported (1.0, 2.0 and 3.0 are)`);
  }
  const prefix = major === 1 ? 10 : 12;
  if (bytes.length < prefix) return prefix;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = prefix + headerLength;
  if (dataStart > bytes.length) return dataStart;
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
  const count = shape.reduce((a, b) => a * b, 1);
  const byteLength = count * arrayOfDtype[dtype].BYTES_PER_ELEMENT;
  if (!Number.isSafeInteger(byteLength)) throw invalid(`shape (${shape}) of ${descr} is too large`);
  return { dtype, littleEndian, fortranOrder, shape, descr, dataStart, byteLength };
}

function truncated(header: NpyHeader, present: number): AttnroundError {
  return invalid(
    `data truncated: shape (${header.shape}) of ${header.descr} needs ${header.byteLength} bytes, ${
      Math.max(0, present)
    } are present`,
  );
}

/**
 * The tensor of a .npy file whose header is `header`. With `own`, the file's
 * buffer is the caller's to give away, and the tensor takes its elements
 * where they lie when it can (no second copy).
 */
function npyTensor(bytes: Uint8Array, header: NpyHeader, own: boolean): Tensor {
  const { dtype, shape, dataStart, byteLength, littleEndian, fortranOrder } = header;
  if (byteLength > bytes.length - dataStart) throw truncated(header, bytes.length - dataStart);
  const ArrayType = arrayOfDtype[dtype];
  const size = ArrayType.BYTES_PER_ELEMENT;
  const offset = bytes.byteOffset + dataStart;
  let data: TensorData;
  if (own && offset % size === 0) {
    if (littleEndian !== hostLittleEndian) swapBytes(bytes.subarray(dataStart, dataStart + byteLength), size);
    data = new ArrayType(bytes.buffer, offset, byteLength / size);
  } else {
    // A copy: the result owns aligned memory whatever the input's offset was.
    // (Not bytes.slice: on a Node Buffer that is a view of the same memory.)
    const copy = new Uint8Array(byteLength);
    copy.set(bytes.subarray(dataStart, dataStart + byteLength));
    if (littleEndian !== hostLittleEndian) swapBytes(copy, size);
    data = new ArrayType(copy.buffer);
  }
  if (fortranOrder && shape.length > 1) data = fortranToC(data, shape);
  return new Tensor(data, shape, dtype);
}

/** Reads one .npy file. Throws AttnroundError("INVALID_DATA") naming what is wrong. */
export function readNpy(bytes: Uint8Array): Tensor {
  argument(bytes instanceof Uint8Array, "readNpy takes the .npy file's bytes as a Uint8Array");
  const header = parseNpyHeader(bytes);
  if (typeof header === "number") {
    throw invalid(
      bytes.length < 10 ? notNpy : `truncated header: it needs ${header} bytes, ${bytes.length} are present`,
    );
  }
  return npyTensor(bytes, header, false);
}

/**
 * What is wrong with an array name as an .npz entry, if anything: it must be a
 * relative path whose parts are not "." or ".." (unzip would write such an
 * entry outside its folder), without control characters (numpy cuts a name at
 * NUL), and short enough for zip's 65,535-byte names.
 */
export function entryNameProblem(name: string): string | undefined {
  if (name === "") return "is empty";
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return "holds a control character";
  if (name.startsWith("/") || name.includes("\\")) return "is not a relative path with / between its parts";
  if (name.split("/").some((part) => part === "" || part === "." || part === "..")) {
    return 'has an empty, "." or ".." part';
  }
  if (new TextEncoder().encode(name).length > 65_535 - 4) return "is longer than a zip entry name may be";
  return undefined;
}

/** Encodes a tensor as a .npy file that numpy.load reads. */
export function writeNpy(tensor: Tensor): Uint8Array {
  argument(tensor instanceof Tensor, "writeNpy takes a Tensor");
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

/** What readNpz may unpack (see NpzReadOptions.maxBytes): 1 GiB, raised by the option. */
export const DEFAULT_NPZ_LIMIT = 2 ** 30;

export interface NpzReadOptions {
  /**
   * Most bytes all arrays together may take once unpacked (default 1 GiB).
   * Checked against the sizes the archive declares before anything is
   * inflated, and enforced while inflating: an archive over it (a zip bomb
   * among others) fails with TOO_LARGE.
   */
  maxBytes?: number;
  /**
   * Most samples (entries along the first axis) any array may hold, read from
   * each .npy header before its data is inflated. No limit by default.
   */
  maxSamples?: number;
}

function limit(name: string, value: number | undefined, fallback: number): number {
  argument(
    value === undefined || (typeof value === "number" && value >= 0 && !Number.isNaN(value)),
    `readNpz: ${name} must be a number ≥ 0, got ${value}`,
  );
  return value ?? fallback;
}

/**
 * Reads an .npz archive: one tensor per NAME.npy entry, keyed by NAME (as
 * numpy.load names them), in archive order. Entries not ending in ".npy" are
 * ignored. Throws AttnroundError("INVALID_DATA") naming the entry at fault,
 * and TOO_LARGE past `options.maxBytes` (1 GiB by default) or `maxSamples`.
 */
export function readNpz(bytes: Uint8Array, options: NpzReadOptions = {}): Record<string, Tensor> {
  argument(bytes instanceof Uint8Array, "readNpz takes the .npz file's bytes as a Uint8Array");
  argument(isOptions(options), "readNpz's options must be an object such as { maxBytes: 2 ** 31 }");
  const maxBytes = limit("maxBytes", options.maxBytes, DEFAULT_NPZ_LIMIT);
  const maxSamples = limit("maxSamples", options.maxSamples, Infinity);
  const entries = listZip(bytes).filter((e) => e.name.endsWith(".npy"));
  const total = entries.reduce((n, e) => n + e.size, 0);
  if (total > maxBytes) {
    const largest = entries.reduce((a, b) => (b.size > a.size ? b : a));
    throw new AttnroundError(
      "TOO_LARGE",
      `npz: the arrays unpack to ${bytesText(total)} (entry "${largest.name}" alone to ${
        bytesText(largest.size)
      }), over the limit of ${
        bytesText(maxBytes)
      }: raise maxBytes (--max-data on the command line) if that much is expected`,
    );
  }
  const out: Record<string, Tensor> = {};
  for (const entry of entries) {
    const name = entry.name.slice(0, -4);
    let tensor: Tensor;
    try {
      // The header first: the data it describes must fit the declared size and the sample limit.
      const reader = new EntryReader(bytes, entry);
      let header: NpyHeader | number = 10;
      try {
        while (typeof header === "number") {
          const head = reader.fill(header);
          if (head.length < header) {
            throw invalid(
              head.length < 10
                ? notNpy
                : `truncated header: it needs ${header} bytes, the entry holds ${head.length}`,
            );
          }
          header = parseNpyHeader(head);
        }
        if (header.byteLength > entry.size - header.dataStart) {
          throw truncated(header, entry.size - header.dataStart);
        }
      } catch (e) {
        // A damaged archive is the likelier story: its CRC-32 says so first (within the declared size).
        reader.finish();
        throw e;
      }
      if ((header.shape[0] ?? 0) > maxSamples) {
        throw new AttnroundError(
          "TOO_LARGE",
          `holds ${header.shape[0]} samples (shape (${header.shape})), over the limit of ${maxSamples}: ` +
            `raise maxSamples (--max-samples on the command line) if that many are expected`,
        );
      }
      tensor = npyTensor(reader.finish(), header, true);
    } catch (cause) {
      if (!(cause instanceof AttnroundError)) throw cause;
      if (cause.message.startsWith("npz:")) throw cause;
      throw new AttnroundError(cause.code, `npz entry "${entry.name}": ${cause.message}`, { cause });
    }
    // defineProperty: a name such as "__proto__" stays an ordinary key.
    Object.defineProperty(out, name, { value: tensor, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** A byte count in the units a limit is usually given in. */
function bytesText(n: number): string {
  return n >= 2 ** 30
    ? `${(n / 2 ** 30).toFixed(2)} GiB (${n} bytes)`
    : n >= 2 ** 20
    ? `${(n / 2 ** 20).toFixed(1)} MiB (${n} bytes)`
    : `${n} bytes`;
}

export interface NpzOptions {
  /** Deflate the entries, as numpy.savez_compressed does (default false, as numpy.savez). */
  compressed?: boolean;
}

/** Encodes tensors as an .npz archive (NAME.npy per tensor) that numpy.load reads. */
export function writeNpz(arrays: Record<string, Tensor>, options: NpzOptions = {}): Uint8Array {
  argument(
    typeof arrays === "object" && arrays !== null && !Array.isArray(arrays),
    "writeNpz takes the arrays by name, e.g. { x: new Tensor(data, shape) }",
  );
  argument(isOptions(options), "writeNpz's options must be an object such as { compressed: true }");
  for (const [name, tensor] of Object.entries(arrays)) {
    const problem = entryNameProblem(name);
    argument(!problem, `writeNpz: the name "${name}" ${problem}`);
    argument(tensor instanceof Tensor, `writeNpz: arrays["${name}"] is not a Tensor`);
  }
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
