// Protobuf wire format: a bounds-checked reader and a chunked writer.
//
// The reader treats its input as hostile. Every read checks the current
// message's end; a length prefix is compared with the bytes that remain
// before anything is sliced or allocated; a varint may not run past 10 bytes;
// sub-messages nest at most MAX_DEPTH deep. Each loop consumes at least one
// byte per step, so a bad input ends in an AttnroundError("INVALID_MODEL"),
// never in a hang, a RangeError or a stack overflow.
//
// The writer collects chunks: a sub-message is written into its own writer,
// whose length is then known, and its chunks are appended behind the tag and
// length. Large byte payloads (tensor data) are referenced, not copied, until
// `finish()` joins everything once.
import { AttnroundError } from "../errors.ts";

export const WireType = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;

/** Deepest nesting of sub-messages the reader accepts (ONNX subgraphs rarely pass 10). */
export const MAX_DEPTH = 64;

/** `(field << 3) | wireType`, the key a field starts with. */
export function fieldKey(field: number, wireType: number): number {
  return field * 8 + wireType;
}

// Lenient like protobuf's proto2 runtime: invalid UTF-8 becomes U+FFFD instead of
// rejecting a model over, say, a garbled doc string.
const utf8Decoder = new TextDecoder("utf-8", { ignoreBOM: true }); // keep a leading U+FEFF: names round-trip
const utf8Encoder = new TextEncoder();

export class WireReader {
  readonly bytes: Uint8Array;
  pos = 0;
  /** End of the message being read (exclusive). */
  limit: number;
  /** Start of the last key read by `key()`, for preserving unknown fields. */
  keyStart = 0;
  #view: DataView;
  #path: string[] = [];
  // The last varint, as two 32-bit halves (a bigint per varint would be slow).
  #lo = 0;
  #hi = 0;

  constructor(bytes: Uint8Array) {
    // A plain view, so that slice() copies even for subclasses such as Node's Buffer,
    // whose slice() returns a view into its pool.
    this.bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.limit = bytes.length;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(problem: string, at = this.pos, hint = ""): never {
    const where = this.#path.length > 0 ? ` (in ${this.#path.join(" > ")})` : "";
    throw new AttnroundError("INVALID_MODEL", `invalid protobuf: ${problem} at byte ${at}${where}${hint}`);
  }

  /** Fails for a value that needs more bytes than its message has left, saying so when the input itself ends. */
  #short(problem: string, at: number): never {
    this.fail(
      problem,
      at,
      this.limit === this.bytes.length ? "; the data ends early: is the file truncated?" : "",
    );
  }

  more(): boolean {
    return this.pos < this.limit;
  }

  /** Reads a field key; field number 0 and the group wire types are rejected. */
  key(): number {
    this.keyStart = this.pos;
    this.#varint();
    const key = this.#lo >>> 0;
    if (this.#hi !== 0 || key >>> 3 === 0) this.fail(`invalid field key`, this.keyStart);
    const wireType = key & 7;
    if (wireType === WireType.SGROUP || wireType === WireType.EGROUP) {
      this.fail(
        `field ${key >>> 3} uses the deprecated group encoding, which ONNX never writes`,
        this.keyStart,
      );
    }
    if (wireType > WireType.I32) {
      this.fail(`field ${key >>> 3} has invalid wire type ${wireType}`, this.keyStart);
    }
    return key;
  }

  /** Skips the value of a field whose key was just read. */
  skip(key: number): void {
    switch (key & 7) {
      case WireType.VARINT:
        this.#varint();
        break;
      case WireType.I64:
        this.#take(8);
        break;
      case WireType.LEN:
        this.#take(this.length());
        break;
      case WireType.I32:
        this.#take(4);
        break;
    }
  }

  /** The field that was just skipped or read, key included, as a copy. */
  rawSinceKey(): Uint8Array {
    return this.bytes.slice(this.keyStart, this.pos);
  }

  uint32(): number {
    this.#varint();
    if (this.#hi !== 0) this.fail("varint does not fit in 32 bits");
    return this.#lo >>> 0;
  }

  /** int32 and enums: negative values are sign-extended to 64 bits on the wire. */
  int32(): number {
    this.#varint();
    return this.#lo | 0;
  }

  int64(): bigint {
    this.#varint();
    return BigInt.asIntN(64, (BigInt(this.#hi >>> 0) << 32n) | BigInt(this.#lo >>> 0));
  }

  uint64(): bigint {
    this.#varint();
    return (BigInt(this.#hi >>> 0) << 32n) | BigInt(this.#lo >>> 0);
  }

  /** An int64 that must be an exactly representable number (dims, versions). */
  int64Number(what: string): number {
    const at = this.pos;
    this.#varint();
    const value = (this.#hi | 0) * 4294967296 + (this.#lo >>> 0);
    if (!Number.isSafeInteger(value)) this.fail(`${what} ${this.#bigValue()} is too large`, at);
    return value;
  }

  float(): number {
    const at = this.#take(4);
    return this.#view.getFloat32(at, true);
  }

  double(): number {
    const at = this.#take(8);
    return this.#view.getFloat64(at, true);
  }

  /** A length prefix, checked against the bytes left in the current message. */
  length(): number {
    const at = this.pos;
    this.#varint();
    const left = this.limit - this.pos;
    if (this.#hi !== 0 || this.#lo >>> 0 > left) {
      this.#short(`length ${this.#bigValue()} runs past the end of its message (${left} bytes left)`, at);
    }
    return this.#lo >>> 0;
  }

  /** A length-delimited value, copied so the result does not keep the input alive. */
  bytesField(): Uint8Array {
    const n = this.length();
    const at = this.#take(n);
    return this.bytes.slice(at, at + n);
  }

  string(): string {
    const n = this.length();
    const at = this.#take(n);
    return utf8Decoder.decode(this.bytes.subarray(at, at + n));
  }

  /**
   * Reads a repeated scalar field in either encoding: packed (one length-delimited
   * run) when the key's wire type is LEN, else a single unpacked element.
   */
  repeated<T>(key: number, out: T[], read: () => T, fixedSize = 0): void {
    if ((key & 7) !== WireType.LEN) {
      out.push(read());
      return;
    }
    const n = this.length();
    if (fixedSize > 0 && n % fixedSize !== 0) {
      this.fail(`packed field of ${n} bytes is not a multiple of ${fixedSize}`);
    }
    const end = this.pos + n;
    const outer = this.limit;
    this.limit = end;
    while (this.pos < end) out.push(read());
    this.limit = outer;
  }

  /** Reads a length-delimited sub-message with `decode`, which reads until `more()` is false. */
  message<T>(name: string, decode: (r: WireReader, into?: T) => T, into?: T): T {
    const n = this.length();
    if (this.#path.length >= MAX_DEPTH) this.fail(`messages nest deeper than ${MAX_DEPTH} levels`);
    const outer = this.limit;
    this.limit = this.pos + n;
    this.#path.push(name);
    const result = decode(this, into);
    this.#path.pop();
    this.limit = outer;
    return result;
  }

  /** Advances by n bytes within the current message and returns where they start. */
  #take(n: number): number {
    const at = this.pos;
    if (n > this.limit - at) this.#short(`truncated: needs ${n} bytes, ${this.limit - at} left`, at);
    this.pos = at + n;
    return at;
  }

  #byte(): number {
    if (this.pos >= this.limit) this.#short("truncated varint", this.pos);
    return this.bytes[this.pos++];
  }

  // Bits 0-27 come from the first four bytes, bits 28-31 and 32-34 share the
  // fifth, the rest from up to five more. Excess high bits of a tenth byte are
  // dropped (as protobuf does); an eleventh byte is an error.
  #varint(): void {
    const start = this.pos;
    let lo = 0;
    let hi = 0;
    let b = 0;
    this.#hi = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      b = this.#byte();
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.#lo = lo;
        return;
      }
    }
    b = this.#byte();
    lo |= (b & 0x0f) << 28;
    hi = (b & 0x7f) >> 4;
    if (b < 0x80) {
      this.#lo = lo;
      this.#hi = hi;
      return;
    }
    for (let shift = 3; shift < 32; shift += 7) {
      b = this.#byte();
      hi |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.#lo = lo;
        this.#hi = hi;
        return;
      }
    }
    this.fail("varint longer than 10 bytes", start);
  }

  #bigValue(): bigint {
    return (BigInt(this.#hi >>> 0) << 32n) | BigInt(this.#lo >>> 0);
  }
}

/** Byte payloads at least this long are appended by reference instead of copied. */
const BIG_PAYLOAD = 1024;

export class WireWriter {
  #chunks: Uint8Array[] = [];
  #chunkBytes = 0;
  #buf: Uint8Array;
  #view: DataView;
  #pos = 0;

  constructor(initialCapacity = 64) {
    this.#buf = new Uint8Array(initialCapacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  get length(): number {
    return this.#chunkBytes + this.#pos;
  }

  key(field: number, wireType: number): void {
    this.varint(fieldKey(field, wireType));
  }

  /** A non-negative integer up to 2^53 - 1. */
  varint(value: number): void {
    this.#reserve(10);
    const buf = this.#buf;
    let v = value;
    while (v >= 0x80) {
      buf[this.#pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    buf[this.#pos++] = v;
  }

  /** int32 and enums: negative values take 10 bytes (sign-extended to 64 bits). */
  int32(value: number): void {
    if (value >= 0) this.varint(value);
    else this.#varint64(BigInt.asUintN(64, BigInt(value)));
  }

  /** int64 or uint64, from a bigint or an integral number. */
  int64(value: bigint | number): void {
    if (typeof value === "number" && value >= 0 && value <= Number.MAX_SAFE_INTEGER) this.varint(value);
    else this.#varint64(BigInt.asUintN(64, BigInt(value)));
  }

  float(value: number): void {
    this.#reserve(4);
    this.#view.setFloat32(this.#pos, value, true);
    this.#pos += 4;
  }

  double(value: number): void {
    this.#reserve(8);
    this.#view.setFloat64(this.#pos, value, true);
    this.#pos += 8;
  }

  /** Length prefix and bytes. */
  bytes(value: Uint8Array): void {
    this.varint(value.length);
    this.raw(value);
  }

  string(value: string): void {
    this.bytes(utf8Encoder.encode(value));
  }

  /** Bytes as they are, e.g. a preserved unknown field. */
  raw(value: Uint8Array): void {
    if (value.length >= BIG_PAYLOAD) {
      this.#flush();
      this.#chunks.push(value);
      this.#chunkBytes += value.length;
      return;
    }
    this.#reserve(value.length);
    this.#buf.set(value, this.#pos);
    this.#pos += value.length;
  }

  /** A length-delimited field whose content `write` produces (sub-message or packed run). */
  nested(field: number, write: (w: WireWriter) => void): void {
    const inner = new WireWriter();
    write(inner);
    this.key(field, WireType.LEN);
    this.varint(inner.length);
    if (inner.#chunks.length === 0) {
      // Still one buffer: hand it over in one piece (copied when small), so that a graph of
      // many small nodes does not become thousands of chunks.
      this.raw(inner.#buf.subarray(0, inner.#pos));
      return;
    }
    inner.#flush();
    this.#flush();
    for (const chunk of inner.#chunks) this.#chunks.push(chunk);
    this.#chunkBytes += inner.#chunkBytes;
  }

  finish(): Uint8Array {
    this.#flush();
    const out = new Uint8Array(this.#chunkBytes);
    let at = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  #varint64(value: bigint): void {
    this.#reserve(10);
    let v = value;
    while (v >= 0x80n) {
      this.#buf[this.#pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.#buf[this.#pos++] = Number(v);
  }

  #reserve(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#pos + n));
    grown.set(this.#buf.subarray(0, this.#pos));
    this.#buf = grown;
    this.#view = new DataView(grown.buffer);
  }

  #flush(): void {
    if (this.#pos === 0) return;
    this.#chunks.push(this.#buf.subarray(0, this.#pos));
    this.#chunkBytes += this.#pos;
    this.#buf = new Uint8Array(Math.min(this.#buf.length, 4096));
    this.#view = new DataView(this.#buf.buffer);
    this.#pos = 0;
  }
}
