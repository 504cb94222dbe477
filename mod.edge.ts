/**
 * attnround for runtimes that forbid compiling wasm from bytes (Cloudflare
 * Workers, Vercel Edge): the same API as mod.ts, whose `init()` instantiates
 * the module the runtime's bundler precompiled from build/attnround.wasm.
 * package.json's "workerd" and "edge-light" export conditions select it.
 * @module
 */
export * from "./mod.ts";
// An explicit export wins over the same name from `export *`.
export { init } from "./src/init-edge.ts";
