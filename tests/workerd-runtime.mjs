// Runs tests/edge-driver.ts in workerd, Cloudflare Workers' runtime (the
// `workerd` npm package ships its binary): the driver is bundled by esbuild
// with the "workerd" export condition as wrangler would bundle it, the
// `.wasm?module` import becomes a wasm module of the worker (compiled by
// workerd when it loads the worker, since a worker may not compile wasm from
// bytes), and the fixtures are data modules. workerd serves the worker on a
// local port; one request runs the task.
// Prints one JSON line like tests/edge-runtime.mjs: whether the bundle embeds
// the wasm bytes, and the driver's result or the error it threw.
//   node tests/workerd-runtime.mjs CONDITION(workerd|default) TASK(float|quantize) [ARGS.json]
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { esbuild, npmSpecifiers } from "../build/esbuild-common.mjs";

const [condition = "workerd", task = "float", args = "[]"] = process.argv.slice(2);
const tests = dirname(fileURLToPath(import.meta.url));
const root = join(tests, "..");
const work = mkdtempSync(join(tmpdir(), "attnround-workerd-"));

// The worker: the driver behind a fetch handler that runs the task named in the request.
writeFileSync(
  join(work, "entry.ts"),
  `import * as driver from ${JSON.stringify(join(tests, "edge-driver.ts"))};
import model from "./tiny_cnn_fmnist.onnx";
import calib from "./calib.npz";
export default {
  async fetch(request: Request): Promise<Response> {
    const { task, args } = await request.json();
    const bytes = (b: ArrayBuffer) => new Uint8Array(b);
    try {
      const result = task === "float"
        ? await driver.runFloat(bytes(model), bytes(calib))
        : await driver.quantizeBothWays(bytes(model), bytes(calib), ...args);
      return Response.json({ result });
    } catch (e) {
      const error = e as { name?: string; code?: string; message?: string };
      return Response.json({ error: { name: error?.name, code: error?.code, message: String(error?.message ?? e) } });
    }
  },
};
`,
);

const workerModules = {
  name: "worker-modules",
  setup(b) {
    // What wrangler does with `.wasm?module`: a wasm module of the worker, compiled by workerd.
    b.onResolve({ filter: /\.wasm\?module$/ }, () => ({ path: "./attnround.wasm", external: true }));
    b.onResolve({ filter: /\.(onnx|npz)$/ }, (args) => ({ path: args.path, external: true }));
  },
};

const { build } = await esbuild();
const bundled = await build({
  entryPoints: [join(work, "entry.ts")],
  bundle: true,
  format: "esm",
  platform: "neutral",
  mainFields: ["module", "main"],
  conditions: condition === "default" ? [] : [condition],
  write: false,
  plugins: [workerModules, npmSpecifiers({ bundled: true })],
  logLevel: "error",
});
const code = bundled.outputFiles[0].text;
writeFileSync(join(work, "worker.mjs"), code);
copyFileSync(join(root, "build", "attnround.wasm"), join(work, "attnround.wasm"));
for (const name of ["tiny_cnn_fmnist.onnx", "calib.npz"]) {
  copyFileSync(join(tests, "fixtures", name), join(work, name));
}
const wasmHead = readFileSync(join(root, "build", "attnround.wasm")).subarray(0, 60).toString("base64");

const port = await freePort();
writeFileSync(
  join(work, "config.capnp"),
  `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .worker)],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [
    (name = "worker.mjs", esModule = embed "worker.mjs"),
    (name = "attnround.wasm", wasm = embed "attnround.wasm"),
    (name = "tiny_cnn_fmnist.onnx", data = embed "tiny_cnn_fmnist.onnx"),
    (name = "calib.npz", data = embed "calib.npz"),
  ],
  compatibilityDate = "2025-01-01",
  compatibilityFlags = ["nodejs_compat"],
);
`,
);

const binary = join(
  dirname(createRequire(import.meta.url).resolve("workerd/package.json")),
  "bin",
  "workerd",
);
// npm's install script replaces the package's JavaScript launcher by the binary; without it, the launcher runs it.
const native = readFileSync(binary).subarray(0, 4).toString("latin1") === "\x7fELF";
const [command, prefix] = native ? [binary, []] : [process.execPath, [binary]];
const server = spawn(command, [...prefix, "serve", join(work, "config.capnp")], {
  stdio: ["ignore", "ignore", "pipe"],
});
let stderr = "";
server.stderr.on("data", (d) => (stderr += d));
const out = {
  condition,
  runtime: "workerd",
  bundleBytes: code.length,
  embedsWasmBytes: code.includes(wasmHead),
};
try {
  const response = await request(port, { task, args: JSON.parse(args) });
  Object.assign(out, response);
} catch (e) {
  out.error = { name: "WorkerdFailed", message: `${e.message}\n${stderr}` };
} finally {
  server.kill();
  rmSync(work, { recursive: true, force: true });
}
console.log(JSON.stringify(out));

/** A port nothing listens on now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/** POSTs `body` once workerd listens (it takes a moment to start); gives up after 60 s. */
async function request(port, body) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: JSON.stringify(body) });
      if (!r.ok) throw new Error(`workerd answered ${r.status}: ${await r.text()}`);
      return await r.json();
    } catch (e) {
      if (e.message.startsWith("workerd answered") || Date.now() > deadline || server.exitCode !== null) {
        throw e;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
