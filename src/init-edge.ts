// init() of the edge entry (mod.edge.ts). Cloudflare Workers and Vercel Edge
// forbid compiling wasm from bytes at run time; their bundlers compile a
// `.wasm?module` import ahead of time and hand it over as a WebAssembly.Module
// (wrangler since 2.15 for both `.wasm` and `.wasm?module`, Next.js for the
// latter). The embedded bytes of the default entry are never loaded here.
import module from "../build/attnround.wasm?module";
import { AttnroundError, isOptions } from "./errors.ts";
import { initKernels, type InitOptions } from "./wasm.ts";

/** Instantiates the wasm kernels from the imported module (or the one passed in). Safe to call more than once. */
export function init(options: InitOptions = {}): Promise<void> {
  if (!isOptions(options)) {
    return Promise.reject(
      new AttnroundError("INVALID_ARGUMENT", "init takes nothing, or { module: WebAssembly.Module }"),
    );
  }
  return initKernels(options, () => Promise.resolve(module));
}
