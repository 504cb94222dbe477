// Byte encoding of a quantization run's state: a JSON header whose float32
// arrays are replaced by references to raw little-endian blobs after it.
//   "ATRNDST1" | u32 header length | header (UTF-8 JSON) | blobs (4-byte aligned)
import { AttnroundError } from "../errors.ts";

const MAGIC = "ATRNDST1";

export function encodeState(value: unknown): Uint8Array {
  const blobs: Float32Array[] = [];
  const header = JSON.stringify(value, (_key, v) => {
    if (v instanceof Float32Array) {
      blobs.push(v);
      return { $f32: blobs.length - 1, length: v.length };
    }
    return v;
  });
  const headerBytes = new TextEncoder().encode(header);
  const headerEnd = Math.ceil((12 + headerBytes.length) / 4) * 4;
  const total = headerEnd + blobs.reduce((n, b) => n + b.byteLength, 0);
  const out = new Uint8Array(total);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, headerBytes.length, true);
  out.set(headerBytes, 12);
  let offset = headerEnd;
  for (const b of blobs) {
    const view = new DataView(out.buffer, offset, b.byteLength);
    for (let i = 0; i < b.length; i++) view.setFloat32(i * 4, b[i], true);
    offset += b.byteLength;
  }
  return out;
}

function corrupt(why: string): never {
  throw new AttnroundError("INVALID_DATA", `the saved quantization state is unreadable: ${why}`);
}

export function decodeState(bytes: Uint8Array): unknown {
  if (!(bytes instanceof Uint8Array) || bytes.length < 12) corrupt("too short");
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    corrupt("it does not start with the state marker");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(8, true);
  if (12 + headerLength > bytes.length) corrupt("the header runs past the end");
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(12, 12 + headerLength)),
    );
  } catch {
    corrupt("the header is not JSON");
  }
  // Blobs follow in the order the header refers to them.
  const offsets: number[] = [];
  const lengths: number[] = [];
  const collect = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(collect);
    else if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (typeof o.$f32 === "number") lengths[o.$f32] = Number(o.length);
      else Object.values(o).forEach(collect);
    }
  };
  collect(header);
  let offset = Math.ceil((12 + headerLength) / 4) * 4;
  for (let i = 0; i < lengths.length; i++) {
    if (!Number.isInteger(lengths[i]) || lengths[i] < 0) corrupt(`array ${i} has no valid length`);
    offsets[i] = offset;
    offset += lengths[i] * 4;
  }
  if (offset !== bytes.length) corrupt(`expected ${offset} bytes, got ${bytes.length}`);
  const revive = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(revive);
    if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (typeof o.$f32 === "number") {
        const i = o.$f32, out = new Float32Array(lengths[i]);
        for (let k = 0; k < out.length; k++) out[k] = view.getFloat32(offsets[i] + k * 4, true);
        return out;
      }
      return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, revive(x)]));
    }
    return v;
  };
  return revive(header);
}

/** FNV-1a over bytes, as 8 hex digits: a fingerprint to tell a state's model and data apart. */
export function fingerprint(...parts: ArrayBufferView[]): string {
  let h = 0x811c9dc5;
  for (const p of parts) {
    const bytes = new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}
