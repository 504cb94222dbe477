// Zip archives for .npz files. Reading walks the central directory itself
// instead of calling fflate's unzipSync, which trusts every offset and size it
// finds: here each one is checked against the bytes present before anything
// is allocated, every entry's CRC-32 is verified, and zip64 records (numpy
// writes them) are understood. Entries are inflated with fflate's streaming
// Inflate, a slice at a time, into one buffer of their declared size, so that
// a caller can refuse an entry from its declared size (and header) and a zip
// bomb is stopped where it passes its size. fflate does all the writing.
import { AttnroundError } from "../errors.ts";
import { Inflate, zipSync } from "../fflate.ts";

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL_HEADER = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;
const STORED = 0;
const DEFLATED = 8;
// Deflate cannot expand a byte to more than 1032 bytes (a 258-byte match in
// about 2 bits); a larger declared size is a corrupt or hostile archive.
const MAX_DEFLATE_RATIO = 1032;

function invalid(message: string, cause?: unknown): AttnroundError {
  return new AttnroundError("INVALID_DATA", `npz: ${message}`, cause === undefined ? undefined : { cause });
}

/** Little-endian reads that fail instead of reading past the end. */
class Reader {
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(offset: number, length: number, what: string): void {
    if (offset < 0 || offset + length > this.bytes.length) {
      throw invalid(`${what} at byte ${offset} runs past the end of the ${this.bytes.length}-byte archive`);
    }
  }
  u16(offset: number, what: string): number {
    this.need(offset, 2, what);
    return this.view.getUint16(offset, true);
  }
  u32(offset: number, what: string): number {
    this.need(offset, 4, what);
    return this.view.getUint32(offset, true);
  }
  u64(offset: number, what: string): number {
    this.need(offset, 8, what);
    const value = this.view.getUint32(offset, true) + this.view.getUint32(offset + 4, true) * 2 ** 32;
    if (value > Number.MAX_SAFE_INTEGER) throw invalid(`${what} ${value} is out of range`);
    return value;
  }
}

function findEndOfCentralDirectory(r: Reader): number {
  const last = r.bytes.length - 22;
  // The record is followed only by a comment of at most 65535 bytes.
  for (let e = last; e >= 0 && e >= last - 65535; e--) {
    if (r.view.getUint32(e, true) === EOCD && e + 22 + r.view.getUint16(e + 20, true) <= r.bytes.length) {
      return e;
    }
  }
  throw invalid(
    r.bytes.length < 22
      ? `only ${r.bytes.length} bytes, too short for a zip archive`
      : "no end-of-central-directory record: not a zip archive, or truncated",
  );
}

const crcTable = /* @__PURE__ */ (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** The running CRC-32 register after `bytes` (start from -1; the checksum is (c ^ -1) >>> 0). */
function crc32(bytes: Uint8Array, c: number): number {
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return c;
}

function decodeName(raw: Uint8Array, utf8: boolean): string {
  if (utf8) return new TextDecoder().decode(raw);
  // Without the UTF-8 flag names are CP437; npz names are ASCII, so Latin-1 is close enough.
  let name = "";
  for (let i = 0; i < raw.length; i += 8192) name += String.fromCharCode(...raw.subarray(i, i + 8192));
  return name;
}

/** A file of an archive, as its central directory describes it. */
export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  /** Bytes once unpacked, as the archive declares them. */
  size: number;
  compressedSize: number;
  crc: number;
  /** Where the entry's (compressed) bytes start in the archive. */
  start: number;
}

/**
 * The files of a zip archive, in archive order, from its central directory:
 * every size, offset and name checked against the bytes present, nothing
 * inflated. Directories are skipped. Throws AttnroundError("INVALID_DATA").
 */
export function listZip(bytes: Uint8Array): ZipEntry[] {
  const r = new Reader(bytes);
  const e = findEndOfCentralDirectory(r);
  let count = r.u16(e + 10, "entry count");
  let offset = r.u32(e + 16, "central directory offset");
  if (e >= 20 && r.u32(e - 20, "zip64 locator") === ZIP64_LOCATOR) {
    const z = r.u64(e - 12, "zip64 end record offset");
    if (r.u32(z, "zip64 end record") !== ZIP64_EOCD) throw invalid("zip64 end record missing");
    count = r.u64(z + 32, "zip64 entry count");
    offset = r.u64(z + 48, "zip64 central directory offset");
  }
  // Each central header takes at least 46 bytes: bounds the count before looping.
  if (count * 46 > bytes.length) throw invalid(`declares ${count} entries, more than the archive can hold`);

  const entries: ZipEntry[] = [];
  const names = new Set<string>();
  for (let i = 0; i < count; i++) {
    if (r.u32(offset, "central directory header") !== CENTRAL_HEADER) {
      throw invalid(`central directory entry ${i} is corrupt (bad signature at byte ${offset})`);
    }
    const flags = r.u16(offset + 8, "flags");
    const method = r.u16(offset + 10, "compression method");
    const crc = r.u32(offset + 16, "CRC-32");
    let compressedSize = r.u32(offset + 20, "compressed size");
    let size = r.u32(offset + 24, "uncompressed size");
    const nameLength = r.u16(offset + 28, "name length");
    const extraLength = r.u16(offset + 30, "extra length");
    const commentLength = r.u16(offset + 32, "comment length");
    let localOffset = r.u32(offset + 42, "local header offset");
    r.need(offset + 46, nameLength + extraLength, "entry name");
    const name = decodeName(bytes.subarray(offset + 46, offset + 46 + nameLength), (flags & 0x800) !== 0);

    // Zip64 extra field: holds, in this order, whichever of the three values are saturated.
    for (let x = offset + 46 + nameLength; x + 4 <= offset + 46 + nameLength + extraLength;) {
      const id = r.u16(x, "extra field id"), length = r.u16(x + 2, "extra field length");
      if (id === 0x0001) {
        let p = x + 4;
        if (size === 0xffffffff) size = r.u64(p, "zip64 size"), p += 8;
        if (compressedSize === 0xffffffff) compressedSize = r.u64(p, "zip64 compressed size"), p += 8;
        if (localOffset === 0xffffffff) localOffset = r.u64(p, "zip64 local offset");
      }
      x += 4 + length;
    }
    offset += 46 + nameLength + extraLength + commentLength;
    if (name.endsWith("/")) continue;
    if (names.has(name)) throw invalid(`entry "${name}" appears twice`);
    names.add(name);
    if (flags & 1) throw invalid(`entry "${name}" is encrypted`);
    if (method !== STORED && method !== DEFLATED) {
      throw invalid(
        `entry "${name}" uses compression method ${method}; only stored (0) and deflate (8) are read`,
      );
    }
    if (method === STORED && compressedSize !== size) {
      throw invalid(`stored entry "${name}" has ${compressedSize} bytes but declares ${size}`);
    }
    if (method === DEFLATED && size > compressedSize * MAX_DEFLATE_RATIO + 8) {
      throw invalid(
        `entry "${name}" declares ${size} bytes, impossible from ${compressedSize} deflated bytes`,
      );
    }
    if (r.u32(localOffset, `local header of "${name}"`) !== LOCAL_HEADER) {
      throw invalid(`local header of entry "${name}" is corrupt (bad signature at byte ${localOffset})`);
    }
    const start = localOffset + 30 + r.u16(localOffset + 26, "name length") +
      r.u16(localOffset + 28, "extra length");
    r.need(start, compressedSize, `data of entry "${name}" (${compressedSize} bytes)`);
    entries.push({ name, method, size, compressedSize, crc, start });
  }
  return entries;
}

/** Compressed bytes handed to the inflater at a time: at most ~16 MiB come out of one push. */
const PUSH = 16 * 1024;

/**
 * Unpacks one entry into a buffer of exactly its declared size, as far as
 * asked: `fill(n)` inflates until n bytes are out, so that a caller can read a
 * header and decide before inflating the rest; `finish()` inflates the rest
 * and checks the CRC-32. Inflating stops as soon as the data would pass the
 * declared size, so a bomb costs at most that size and one push.
 */
export class EntryReader {
  private readonly out: Uint8Array;
  private produced = 0;
  private consumed = 0;
  private crc = -1;
  private readonly inflater?: Inflate;
  private ended = false;
  private failure?: unknown;

  constructor(private readonly archive: Uint8Array, readonly entry: ZipEntry) {
    try {
      this.out = new Uint8Array(entry.size);
    } catch (cause) {
      // Past what the runtime can allocate (a limit raised beyond memory): a typed error, not a RangeError.
      throw new AttnroundError(
        "TOO_LARGE",
        `npz: entry "${entry.name}" needs ${entry.size} bytes, more than can be allocated`,
        { cause },
      );
    }
    if (entry.method === DEFLATED) {
      this.inflater = new Inflate((chunk: Uint8Array, final: boolean) => {
        if (this.produced + chunk.length > entry.size) {
          throw invalid(`entry "${entry.name}" inflates to more than the ${entry.size} bytes it declares`);
        }
        this.out.set(chunk, this.produced);
        this.produced += chunk.length;
        if (final) this.ended = true;
      });
    }
  }

  /** The bytes unpacked once at least `n` are (or the entry is whole). */
  fill(n: number): Uint8Array {
    // Once inflating failed, the inflater's state is lost: every later call fails the same way.
    if (this.failure) throw this.failure;
    try {
      return this.inflate(n);
    } catch (e) {
      this.failure = e;
      throw e;
    }
  }

  private inflate(n: number): Uint8Array {
    const { entry, archive } = this;
    const end = entry.start + entry.compressedSize;
    while (this.produced < Math.min(n, entry.size) && !this.ended) {
      const from = entry.start + this.consumed;
      const to = Math.min(end, from + PUSH);
      if (entry.method === STORED) {
        this.out.set(archive.subarray(from, to), this.produced);
        this.produced += to - from;
        if (to === end) this.ended = true;
      } else {
        try {
          this.inflater!.push(archive.subarray(from, to), to === end);
        } catch (cause) {
          if (cause instanceof AttnroundError) throw cause;
          throw invalid(`entry "${entry.name}" does not inflate: ${(cause as Error).message}`, cause);
        }
        if (to === end) this.ended = true;
      }
      this.consumed = to - entry.start;
    }
    return this.out.subarray(0, this.produced);
  }

  /** The whole entry, checked against its declared size and CRC-32. */
  finish(): Uint8Array {
    const { entry } = this;
    this.fill(Infinity);
    if (this.produced !== entry.size) {
      throw invalid(`entry "${entry.name}" inflates to ${this.produced} bytes but declares ${entry.size}`);
    }
    this.crc = crc32(this.out, this.crc);
    if ((this.crc ^ -1) >>> 0 !== entry.crc) {
      throw invalid(`entry "${entry.name}" fails its CRC-32 check: the archive is corrupt`);
    }
    return this.out;
  }
}

/**
 * The files of a zip archive, in archive order, unpacked. Directories are
 * skipped. Throws AttnroundError("INVALID_DATA") on anything malformed.
 */
export function readZip(bytes: Uint8Array): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const entry of listZip(bytes)) files.set(entry.name, new EntryReader(bytes, entry).finish());
  return files;
}

// DOS timestamps are local time: 1980-01-01 00:00 is their epoch in every time zone,
// and a fixed date makes the archive a pure function of its contents.
const FIXED_MTIME = new Date(1980, 0, 1, 0, 0, 0);

/** A zip archive of the given files, stored as they are or deflated. */
export function writeZip(files: Iterable<[string, Uint8Array]>, compress: boolean): Uint8Array {
  const zippable: Record<string, [Uint8Array, { level: 0 | 6 }]> = {};
  for (const [name, data] of files) {
    Object.defineProperty(zippable, name, {
      value: [data, { level: compress ? 6 : 0 }],
      enumerable: true,
    });
  }
  try {
    return zipSync(zippable, { mtime: FIXED_MTIME });
  } catch (cause) {
    // fflate's own limits (a name over 65,535 bytes, say): the callers check names first.
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `cannot write the zip archive: ${(cause as Error)?.message}`,
      {
        cause,
      },
    );
  }
}
