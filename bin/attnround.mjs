#!/usr/bin/env node
// `attnround` under Node. Runs dist/attnround-cli.mjs, the command line
// bundled from src/cli/main.ts (built by `npm run build:cli`, and before
// packing). In a clone of the repository the bundle is (re)built first
// whenever it is missing or older than a source file, which needs esbuild
// (a dev dependency).
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bundle = join(root, "dist", "attnround-cli.mjs");
// The worker script of its thread pool, built with it.
const workerBundle = join(root, "dist", "attnround.worker.mjs");

function newest(path) {
  if (!existsSync(path)) return 0;
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

const built = existsSync(bundle) && existsSync(workerBundle) ? statSync(bundle).mtimeMs : 0;
const sources = Math.max(
  newest(join(root, "src")),
  newest(join(root, "mod.ts")),
  newest(join(root, "build", "attnround.wasm.ts")),
  newest(join(root, "build", "attnround.exports.ts")),
);
if (built === 0 || sources > built) {
  try {
    const { bundleCli } = await import("../build/bundle-cli.mjs");
    await bundleCli(bundle);
  } catch (e) {
    if (built === 0) {
      console.error(
        `attnround: ${bundle} is missing and could not be built (${e.message}); run "npm run build:cli" (needs esbuild)`,
      );
      process.exit(1);
    }
  }
}
await import(pathToFileURL(bundle).href);
