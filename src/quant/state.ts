// Byte encoding of a quantization run's state: a JSON header whose float32
// arrays are replaced by references to raw little-endian blobs after it, and
// a SHA-256 of everything before it, so that any damage (a flipped bit in a
// weight as much as in the header) is found before anything is trusted.
//   "ATRNDST2" | u32 header length | header (UTF-8 JSON) | blobs (4-byte aligned) | SHA-256
// The header's fields are then checked one by one (checkSavedState here, and
// against the run in QuantizationRun.resume).
import { AttnroundError } from "../errors.ts";
import { hex, Sha256, sha256 } from "../sha256.ts";

const MAGIC = "ATRNDST2";
const EARLIER_MAGIC = "ATRNDST1";
const HASH = 32;

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
  const body = headerEnd + blobs.reduce((n, b) => n + b.byteLength, 0);
  const out = new Uint8Array(body + HASH);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, headerBytes.length, true);
  out.set(headerBytes, 12);
  let offset = headerEnd;
  for (const b of blobs) {
    const view = new DataView(out.buffer, offset, b.byteLength);
    for (let i = 0; i < b.length; i++) view.setFloat32(i * 4, b[i], true);
    offset += b.byteLength;
  }
  out.set(sha256(out.subarray(0, body)), body);
  return out;
}

export function corrupt(why: string): never {
  throw new AttnroundError("INVALID_DATA", `the saved quantization state is unreadable: ${why}`);
}

/** The header of a state, its blobs revived as Float32Arrays, once its checksum holds. Fields are not checked here. */
export function decodeState(bytes: Uint8Array): unknown {
  if (!(bytes instanceof Uint8Array)) corrupt("it is not a Uint8Array (state() returns one)");
  if (bytes.length < 12 + HASH) corrupt("too short");
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic === EARLIER_MAGIC) {
    corrupt("an earlier version of the library wrote it, without a checksum: start the run again");
  }
  if (magic !== MAGIC) corrupt("it does not start with the state marker");
  const body = bytes.length - HASH;
  const expected = sha256(bytes.subarray(0, body));
  if (expected.some((b, i) => b !== bytes[body + i])) {
    corrupt("its SHA-256 checksum does not match: the bytes were damaged or changed");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(8, true);
  if (12 + headerLength > body) corrupt("the header runs past the end");
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
  const isBlob = (o: Record<string, unknown>) => typeof o.$f32 === "number";
  const collect = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(collect);
    else if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (isBlob(o)) {
        const i = o.$f32 as number;
        if (!Number.isInteger(i) || i < 0 || i > body || lengths[i] !== undefined) {
          corrupt(`bad array reference ${i}`);
        }
        lengths[i] = Number(o.length);
      } else Object.values(o).forEach(collect);
    }
  };
  collect(header);
  let offset = Math.ceil((12 + headerLength) / 4) * 4;
  for (let i = 0; i < lengths.length; i++) {
    if (!Number.isInteger(lengths[i]) || lengths[i] < 0) corrupt(`array ${i} has no valid length`);
    offsets[i] = offset;
    offset += lengths[i] * 4;
  }
  if (offset !== body) corrupt(`expected ${offset + HASH} bytes, got ${bytes.length}`);
  const revive = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(revive);
    if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (isBlob(o)) {
        const i = o.$f32 as number, out = new Float32Array(lengths[i]);
        for (let k = 0; k < out.length; k++) out[k] = view.getFloat32(offsets[i] + k * 4, true);
        return out;
      }
      // defineProperty: a key such as "__proto__" (a node name) stays an ordinary key.
      const copy: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(o)) {
        Object.defineProperty(copy, k, {
          value: revive(x),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return copy;
    }
    return v;
  };
  return revive(header);
}

/** `value` as JSON with object keys sorted, so that equal settings give equal bytes whatever their order. */
export function canonicalBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify(
      value,
      (_key, v) =>
        v && typeof v === "object" && !Array.isArray(v) && !ArrayBuffer.isView(v)
          ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
          : v,
    ),
  );
}

/**
 * SHA-256 (hex) of the parts, one after another. What ties a state to its
 * run: the settings (canonicalBytes), the calibration data and every layer's
 * float weight; a state resumes only with the same three.
 */
export function fingerprint(...parts: ArrayBufferView[]): string {
  const hash = new Sha256();
  for (const p of parts) hash.update(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
  return hex(hash.digest());
}

// ---- Field checks that need no run: types and ranges. QuantizationRun.resume checks the rest against the run.

function field(why: string): never {
  throw new AttnroundError("INVALID_DATA", `the saved quantization state is invalid: ${why}`);
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const isLoss = (v: unknown) => v === null || (typeof v === "number" && Number.isFinite(v));

function finiteArray(v: unknown, what: string): Float32Array {
  if (!(v instanceof Float32Array)) field(`${what} is not an array of numbers`);
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) field(`${what} holds ${v[i]} at ${i}`);
  return v;
}

function onlyKeys(
  o: Record<string, unknown>,
  what: string,
  required: string[],
  optional: string[] = [],
): void {
  for (const key of required) if (!(key in o)) field(`${what} lacks "${key}"`);
  for (const key of Object.keys(o)) {
    if (!required.includes(key) && !optional.includes(key)) field(`${what} has an unknown field "${key}"`);
  }
}

export interface CheckedTrainerState {
  iteration: number;
  sampler: number;
  losses: (number | null)[];
  seconds: number;
  tensors: Record<string, { value: Float32Array; m1: Float32Array; m2: Float32Array }>;
}

export interface CheckedState {
  version: number;
  fingerprint: string;
  settings: Record<string, unknown>;
  block: number;
  steps: Record<string, number>;
  finalRows: Record<string, Float32Array>;
  reports: {
    index: number;
    layers: string[];
    losses: (number | null)[];
    lossEvery: number;
    msPerIteration: number;
  }[];
  trainer?: CheckedTrainerState;
}

/** Checks the type and range of every field of a decoded state (its header as JSON gives it). */
export function checkSavedState(value: unknown, version: number): CheckedState {
  if (!isRecord(value)) field("the header is not an object");
  if (value.version !== version) {
    field(`it has version ${value.version}; this library reads version ${version}`);
  }
  onlyKeys(value, "the header", [
    "version",
    "fingerprint",
    "settings",
    "block",
    "steps",
    "finalRows",
    "reports",
  ], [
    "trainer",
  ]);
  const { fingerprint, settings, block, steps, finalRows, reports, trainer } = value;
  if (typeof fingerprint !== "string") field("fingerprint is not a string");
  if (!isRecord(settings)) field("settings is not an object");
  if (!isCount(block)) field(`block ${block} is not a block index`);
  if (!isRecord(steps)) field("steps is not an object");
  for (const [tensor, step] of Object.entries(steps)) {
    if (typeof step !== "number" || !(step > 0 && Number.isFinite(step))) {
      field(`the step of "${tensor}" is ${JSON.stringify(step)}, not a positive number`);
    }
  }
  if (!isRecord(finalRows)) field("finalRows is not an object");
  for (const [weight, rows] of Object.entries(finalRows)) finiteArray(rows, `the final weight "${weight}"`);
  if (!Array.isArray(reports)) field("reports is not an array");
  reports.forEach((r, i) => {
    const what = `report ${i}`;
    if (!isRecord(r)) field(`${what} is not an object`);
    onlyKeys(r, what, ["index", "layers", "losses", "lossEvery", "msPerIteration"]);
    if (!isCount(r.index)) field(`${what} has no block index`);
    if (!Array.isArray(r.layers) || !r.layers.every((l) => typeof l === "string")) {
      field(`${what} has no layer names`);
    }
    if (!Array.isArray(r.losses) || !r.losses.every(isLoss)) field(`${what} has losses that are not numbers`);
    if (!isCount(r.lossEvery) || (r.lossEvery as number) < 1) field(`${what} has no valid lossEvery`);
    if (
      typeof r.msPerIteration !== "number" || !(r.msPerIteration >= 0 && Number.isFinite(r.msPerIteration))
    ) {
      field(`${what} has no valid msPerIteration`);
    }
  });
  if (trainer !== undefined) {
    if (!isRecord(trainer)) field("trainer is not an object");
    onlyKeys(trainer, "trainer", ["iteration", "sampler", "losses", "seconds", "tensors"]);
    if (!isCount(trainer.iteration)) field(`trainer.iteration ${trainer.iteration} is not a count`);
    if (
      !Number.isInteger(trainer.sampler) || (trainer.sampler as number) < 0 ||
      (trainer.sampler as number) >= 2 ** 32
    ) {
      field(`trainer.sampler ${trainer.sampler} is not a 32-bit state`);
    }
    if (!Array.isArray(trainer.losses) || !trainer.losses.every(isLoss)) {
      field("trainer.losses are not numbers");
    }
    if (typeof trainer.seconds !== "number" || !(trainer.seconds >= 0 && Number.isFinite(trainer.seconds))) {
      field("trainer.seconds is not a duration");
    }
    if (!isRecord(trainer.tensors)) field("trainer.tensors is not an object");
    for (const [name, t] of Object.entries(trainer.tensors)) {
      const what = `trainer tensor "${name}"`;
      if (!isRecord(t)) field(`${what} is not an object`);
      onlyKeys(t, what, ["value", "m1", "m2"]);
      const length = finiteArray(t.value, `${what}.value`).length;
      if (
        finiteArray(t.m1, `${what}.m1`).length !== length || finiteArray(t.m2, `${what}.m2`).length !== length
      ) {
        field(`${what} has moments of another length than its ${length} values`);
      }
    }
  }
  return value as unknown as CheckedState;
}
