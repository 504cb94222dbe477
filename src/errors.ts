// Errors are values a caller can switch on: every failure the library
// anticipates is an AttnroundError with a stable `code`.

export type ErrorCode =
  | "NOT_INITIALIZED"
  | "WASM_INIT_FAILED"
  | "WASM_ABORT"
  | "INVALID_ARGUMENT"
  | "SHAPE_MISMATCH"
  | "INVALID_DATA"
  /** More than a limit allows (a byte or sample limit that an option raises, or wasm's address space). */
  | "TOO_LARGE"
  | "ABORTED"
  | "INVALID_MODEL"
  | "UNSUPPORTED_MODEL"
  /** The run would need more memory than its budget allows. */
  | "MEMORY_BUDGET"
  /** A broken invariant of the library itself: a bug to report, not a bad input. */
  | "INTERNAL";

export class AttnroundError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(bounded(message), options);
    this.name = "AttnroundError";
    this.code = code;
  }
}

/** Characters of a name that a message quotes; longer names are cut. */
const NAME_IN_MESSAGE = 80;
/** A message is cut in the middle past this length (a list of thousands of nodes, say). */
const MESSAGE_LIMIT = 50_000;

// Names come from the input (node, tensor and op names, .npz entries): any
// quoted span or unbroken run of characters far longer than a name should be
// is shortened, so that no message echoes a hostile 4 MiB name whole.
function bounded(message: string): string {
  if (message.length <= NAME_IN_MESSAGE) return message;
  let m = message.replace(/"([^"\n]{81,})"/g, (_, inner: string) => `"${shown(inner)}"`)
    .replace(/[^\s"]{201,}/g, (run) => shown(run));
  if (m.length > MESSAGE_LIMIT) {
    m = `${m.slice(0, MESSAGE_LIMIT - 2_000)} … (${m.length - MESSAGE_LIMIT + 1_000} characters left out) … ${
      m.slice(-1_000)
    }`;
  }
  return m;
}

/**
 * A name (node, tensor, op type, file entry) as a message shows it: whole up
 * to 80 characters, else its start, "…" and its length, so that a hostile
 * 4 MiB name does not become a 4 MB error line.
 */
export function shown(name: unknown): string {
  const text = String(name);
  return text.length <= NAME_IN_MESSAGE
    ? text
    : `${text.slice(0, NAME_IN_MESSAGE - 20)}… (${text.length} characters)`;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** The one of `names` closest to `name`, if it is close enough to be a likely typo. */
export function closest(name: string, names: Iterable<string>): string | undefined {
  if (name.length > 1000) return undefined;
  let best: string | undefined, bestDistance = Infinity;
  for (const n of names) {
    if (n.length > 1000) continue;
    const d = n.startsWith(name) || name.startsWith(n) ? 1 : editDistance(name, n);
    if (d < bestDistance) [best, bestDistance] = [n, d];
  }
  return bestDistance <= Math.max(1, Math.floor(name.length / 3)) ? best : undefined;
}

/** Throws INVALID_ARGUMENT with `message` unless `ok`: the check at the top of a public function. */
export function argument(ok: unknown, message: string): asserts ok {
  if (!ok) throw new AttnroundError("INVALID_ARGUMENT", message);
}

/** Whether `v` is a plain options object (or undefined, meaning "all defaults"). */
export function isOptions(v: unknown): boolean {
  return v === undefined || (typeof v === "object" && v !== null && !Array.isArray(v));
}
