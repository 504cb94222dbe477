// What the esbuild scripts share: build/bundle-cli.mjs, build/bundle-browser.mjs,
// tests/run-node.mjs and tests/edge-runtime.mjs.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Where build/prepare.mjs installs the build tools when the folder has none (a folder install). */
export const buildTools = join(root, "node_modules", ".attnround-build");

/** `node_modules` folders to resolve packages from: the project's, then the build tools'. */
export const nodePaths = [join(root, "node_modules"), join(buildTools, "node_modules")];

/** The path of `name/sub` from the project's node_modules or else the build tools'. */
export function resolvePackage(name, sub = "package.json") {
  for (const dir of nodePaths) {
    if (existsSync(join(dir, name, "package.json"))) return join(dir, name, sub);
  }
  return createRequire(import.meta.url).resolve(`${name}/${sub}`);
}

/** esbuild, from the project's node_modules or else the build tools'. */
export async function esbuild() {
  const local = join(nodePaths[0], "esbuild", "package.json");
  if (existsSync(local)) return await import("esbuild");
  const require = createRequire(resolvePackage("esbuild"));
  return await import(pathToFileURL(require.resolve("esbuild")).href);
}

/**
 * Deno's `npm:name@version/path` specifiers as the bare `name/path` Node resolves.
 * `bundled: false` leaves them external, resolved from node_modules at run time;
 * `bundled: true` resolves them to the package installed in node_modules and bundles it.
 */
export function npmSpecifiers({ bundled }) {
  const bare = (specifier) => specifier.slice(4).replace(/^(@[^/]+\/[^@/]+|[^@/]+)@[^/]+/, "$1");
  return {
    name: "npm-specifiers",
    setup(b) {
      b.onResolve(
        { filter: /^npm:/ },
        (args) =>
          bundled
            ? b.resolve(bare(args.path), { kind: args.kind, resolveDir: args.resolveDir })
            : { path: bare(args.path), external: true },
      );
    },
  };
}

/** Writes an esbuild result (built with `write: false`) through a temporary file and a rename, so a concurrent reader never sees half of it. */
export function writeBundle(result, outfile) {
  mkdirSync(dirname(outfile), { recursive: true });
  const temp = `${outfile}.${process.pid}.tmp`;
  writeFileSync(temp, result.outputFiles[0].contents);
  renameSync(temp, outfile);
  return outfile;
}

/** The worker script's file name next to a bundle (dist/attnround.worker.mjs beside dist/attnround.browser.mjs). */
export const WORKER_BUNDLE = "attnround.worker.mjs";

/**
 * The worker pool (src/engine/parallel/pool.ts) names its worker script as
 * `new URL("../../worker.ts", import.meta.url)`, which only Deno runs from source.
 * In a bundle it names the bundled worker instead: `url`, relative to the
 * bundle (./attnround.worker.mjs) or absolute.
 */
export function workerScript(url) {
  return {
    name: "worker-script",
    setup(b) {
      b.onLoad({ filter: /src[\\/]engine[\\/]parallel[\\/]pool\.ts$/ }, (args) => {
        const source = readFileSync(args.path, "utf8");
        if (!source.includes('"../../worker.ts"')) {
          throw new Error(`${args.path} no longer names "../../worker.ts"`);
        }
        return { contents: source.replace('"../../worker.ts"', JSON.stringify(url)), loader: "ts" };
      });
    },
  };
}

/** Bundles src/worker.ts (the kernels come from the main thread's module, not embedded) into `outfile`. */
export async function bundleWorker(outfile) {
  const { build } = await esbuild();
  const result = await build({
    nodePaths,
    entryPoints: [join(root, "src", "worker.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    plugins: [npmSpecifiers({ bundled: true })],
    write: false,
    outfile,
    logLevel: "error",
  });
  return writeBundle(result, outfile);
}
