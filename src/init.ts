// init() of the default entry (mod.ts): unless the caller passes a module, the
// kernels are compiled from the wasm bytes embedded in build/attnround.wasm.ts,
// so that importing the library needs neither a file system nor a network.
import { wasmBase64 } from "../build/attnround.wasm.ts";
import { AttnroundError, isOptions } from "./errors.ts";
import { initKernels, type InitOptions } from "./wasm.ts";

/**
 * Instantiates the wasm kernels; call it (and await it) once before anything
 * else. Safe to call more than once. Pass `{ module }` where compiling wasm
 * from bytes is forbidden (or use the edge entry, mod.edge.ts).
 */
export function init(options: InitOptions = {}): Promise<void> {
  if (!isOptions(options)) {
    return Promise.reject(
      new AttnroundError("INVALID_ARGUMENT", "init takes nothing, or { module: WebAssembly.Module }"),
    );
  }
  return initKernels(options, () => WebAssembly.compile(decodeBase64(wasmBase64)));
}

function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
