// Zip archives for .npz files. Reading walks the central directory itself
// instead of calling fflate's unzipSync, which trusts every offset and size it
// finds: here each one is checked against the bytes present before anything
// is allocated, every entry's CRC-32 is verified, and zip64 records (numpy
// writes them) are understood. fflate does the inflating and all the writing.
import { AttnroundError } from "../errors.ts";
import { inflateSync, zipSync } from "../fflate.ts";

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

function crc32(bytes: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

function decodeName(raw: Uint8Array, utf8: boolean): string {
  // Without the UTF-8 flag names are CP437; npz names are ASCII, so Latin-1 is close enough.
  return utf8 ? new TextDecoder().decode(raw) : String.fromCharCode(...raw);
}

/**
 * The files of a zip archive, in archive order. Directories are skipped.
 * Throws AttnroundError("INVALID_DATA") on anything malformed.
 */
export function readZip(bytes: Uint8Array): Map<string, Uint8Array> {
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

  const files = new Map<string, Uint8Array>();
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
    if (files.has(name)) throw invalid(`entry "${name}" appears twice`);
    if (flags & 1) throw invalid(`entry "${name}" is encrypted`);

    if (r.u32(localOffset, `local header of "${name}"`) !== LOCAL_HEADER) {
      throw invalid(`local header of entry "${name}" is corrupt (bad signature at byte ${localOffset})`);
    }
    const start = localOffset + 30 + r.u16(localOffset + 26, "name length") +
      r.u16(localOffset + 28, "extra length");
    r.need(start, compressedSize, `data of entry "${name}" (${compressedSize} bytes)`);
    const stored = bytes.subarray(start, start + compressedSize);
    let data: Uint8Array;
    if (method === STORED) {
      if (compressedSize !== size) {
        throw invalid(`stored entry "${name}" has ${compressedSize} bytes but declares ${size}`);
      }
      data = stored.slice();
    } else if (method === DEFLATED) {
      if (size > compressedSize * MAX_DEFLATE_RATIO + 8) {
        throw invalid(
          `entry "${name}" declares ${size} bytes, impossible from ${compressedSize} deflated bytes`,
        );
      }
      try {
        data = inflateSync(stored, { out: new Uint8Array(size) });
      } catch (cause) {
        throw invalid(`entry "${name}" does not inflate: ${(cause as Error).message}`, cause);
      }
      if (data.length !== size) {
        throw invalid(`entry "${name}" inflates to ${data.length} bytes but declares ${size}`);
      }
    } else {
      throw invalid(
        `entry "${name}" uses compression method ${method}; only stored (0) and deflate (8) are read`,
      );
    }
    if (crc32(data) !== crc) throw invalid(`entry "${name}" fails its CRC-32 check: the archive is corrupt`);
    files.set(name, data);
  }
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
  return zipSync(zippable, { mtime: FIXED_MTIME });
}
