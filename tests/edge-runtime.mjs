// Runs tests/edge-driver.ts the way Vercel Edge (whose runtime is not
// packaged) would, in a fresh Node process; Cloudflare Workers' runtime is,
// and tests/workerd-runtime.mjs runs the driver there:
// - bundled by esbuild with the runtime's export condition, the package
//   resolving itself by name through package.json "exports";
// - `*.wasm?module` imports compiled at "deploy time", before the code runs,
//   and handed to the bundle as WebAssembly.Module objects (what wrangler and
//   Next.js do);
// - then compiling wasm from bytes is forbidden, as workerd forbids it.
// Prints one JSON line: whether the bundle embeds the wasm bytes, and the
// driver's result or the error it threw.
//   node tests/edge-runtime.mjs CONDITION(workerd|edge-light|default) TASK(float|quantize)
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { npmSpecifiers } from "../build/esbuild-common.mjs";

const [condition = "workerd", task = "float"] = process.argv.slice(2);
const tests = dirname(fileURLToPath(import.meta.url));
const hostModules = new Map();

const precompiledWasm = {
  name: "precompiled-wasm",
  setup(b) {
    b.onResolve({ filter: /\.wasm\?module$/ }, (args) => ({
      path: join(args.resolveDir, args.path.replace(/\?module$/, "")),
      namespace: "host-wasm",
    }));
    b.onLoad({ filter: /.*/, namespace: "host-wasm" }, async (args) => {
      hostModules.set(args.path, await WebAssembly.compile(readFileSync(args.path)));
      return {
        contents: `export default globalThis.__hostWasmModules.get(${JSON.stringify(args.path)});`,
        loader: "js",
      };
    });
  },
};

const bundled = await build({
  entryPoints: [join(tests, "edge-driver.ts")],
  bundle: true,
  format: "esm",
  platform: "neutral",
  mainFields: ["module", "main"],
  conditions: condition === "default" ? [] : [condition],
  write: false,
  plugins: [precompiledWasm, npmSpecifiers({ bundled: true })],
  logLevel: "error",
});
const code = bundled.outputFiles[0].text;
// The first 60 bytes of the wasm as base64: the start of the string build/attnround.wasm.ts embeds.
const wasmHead = readFileSync(join(tests, "..", "build", "attnround.wasm")).subarray(0, 60).toString(
  "base64",
);

globalThis.__hostWasmModules = hostModules;
forbidCompilingWasmBytes();
// Edge runtimes have no workers either: no Web Worker global (Node has none) and no worker_threads.
process.getBuiltinModule = undefined;

const fixture = (name) => new Uint8Array(readFileSync(join(tests, "fixtures", name)));
const out = { condition, bundleBytes: code.length, embedsWasmBytes: code.includes(wasmHead) };
try {
  const driver = await import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`);
  const model = fixture("tiny_cnn_fmnist.onnx"), calib = fixture("calib.npz");
  out.result = task === "float"
    ? await driver.runFloat(model, calib)
    : await driver.quantizeBothWays(model, calib, ...JSON.parse(process.argv[4]));
} catch (e) {
  out.error = { name: e?.name, code: e?.code, message: String(e?.message ?? e) };
}
console.log(JSON.stringify(out));

function forbidCompilingWasmBytes() {
  const refuse = () => new WebAssembly.CompileError("Wasm code generation disallowed by embedder");
  const { Module, instantiate } = WebAssembly;
  WebAssembly.compile = () => Promise.reject(refuse());
  WebAssembly.compileStreaming = () => Promise.reject(refuse());
  WebAssembly.instantiateStreaming = () => Promise.reject(refuse());
  WebAssembly.instantiate = (source, imports) =>
    source instanceof Module ? instantiate(source, imports) : Promise.reject(refuse());
  WebAssembly.Module = new Proxy(Module, {
    construct() {
      throw refuse();
    },
  });
}
