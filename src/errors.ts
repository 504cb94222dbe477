// Errors are values a caller can switch on: every failure the library
// anticipates is an AttnroundError with a stable `code`.

export type ErrorCode =
  | "NOT_INITIALIZED"
  | "WASM_INIT_FAILED"
  | "WASM_ABORT"
  | "INVALID_ARGUMENT"
  | "SHAPE_MISMATCH"
  | "INVALID_DATA"
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
    super(message, options);
    this.name = "AttnroundError";
    this.code = code;
  }
}
