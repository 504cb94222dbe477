// init() of the edge entry (mod.edge.ts). Cloudflare Workers and Vercel Edge
// forbid compiling wasm from bytes at run time; their bundlers compile a
// `.wasm?module` import ahead of time and hand it over as a WebAssembly.Module
// (wrangler since 2.15 for both `.wasm` and `.wasm?module`, Next.js for the
// latter). The embedded bytes of the default entry are never loaded here.
import module from "../build/attnround.wasm?module";
import { initKernels, type InitOptions } from "./wasm.ts";

/** Instantiates the wasm kernels from the imported module (or the one passed in). Safe to call more than once. */
export function init(options: InitOptions = {}): Promise<void> {
  return initKernels(options, () => Promise.resolve(module));
}
