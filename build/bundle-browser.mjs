// Bundles mod.ts (the library, the embedded wasm and fflate included) into one
// ES module for browsers: dist/attnround.browser.mjs, with the worker script
// of its thread pool beside it (dist/attnround.worker.mjs). esbuild's browser
// platform refuses `node:*` imports, so the bundle also checks that nothing
// reachable from mod.ts needs Node.
//   node build/bundle-browser.mjs [OUTFILE]   (deno task bundle; also run by npm pack)
import { dirname, join, resolve } from "node:path";
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
export const browserBundlePath = join(root, "dist", "attnround.browser.mjs");

/**
 * Writes the bundle, and the worker bundle beside it, each through a temporary
 * file and a rename, so a concurrent reader never sees half of one.
 */
export async function bundleBrowser(outfile = browserBundlePath) {
  await bundleWorker(join(dirname(outfile), WORKER_BUNDLE));
  const { build } = await esbuild();
  const result = await build({
    nodePaths,
    entryPoints: [join(root, "mod.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    plugins: [npmSpecifiers({ bundled: true }), workerScript(`./${WORKER_BUNDLE}`)],
    write: false,
    outfile,
    logLevel: "error",
  });
  return writeBundle(result, outfile);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const outfile = process.argv[2] ? resolve(process.argv[2]) : browserBundlePath;
  console.log(`wrote ${await bundleBrowser(outfile)}`);
}
