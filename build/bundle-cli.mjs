// Bundles the command line (src/cli/main.ts and everything it imports,
// the embedded wasm included) into one ES module for Node:
// dist/attnround-cli.mjs, which bin/attnround.mjs runs, with the worker
// script of its thread pool beside it (dist/attnround.worker.mjs). fflate is
// bundled too, so the CLI runs from a folder install, which has no node_modules.
//   node build/bundle-cli.mjs        (npm run build:cli; also run by npm pack)
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  bundleWorker,
  esbuild,
  nodePaths,
  npmSpecifiers,
  WORKER_BUNDLE,
  workerScript,
  writeBundle,
} from "./esbuild-common.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const bundlePath = join(root, "dist", "attnround-cli.mjs");

/**
 * Writes the bundle, and the worker bundle beside it, each through a temporary
 * file and a rename, so a concurrent reader never sees half of one.
 */
export async function bundleCli(outfile = bundlePath) {
  await bundleWorker(join(dirname(outfile), WORKER_BUNDLE));
  const { build } = await esbuild();
  const result = await build({
    nodePaths,
    entryPoints: [join(root, "src", "cli", "main.ts")],
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    plugins: [npmSpecifiers({ bundled: true }), workerScript(`./${WORKER_BUNDLE}`)],
    write: false,
    outfile,
    logLevel: "error",
  });
  return writeBundle(result, outfile);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(`wrote ${await bundleCli()}`);
}
