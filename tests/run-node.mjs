// Runs the Deno test files under Node: each tests/*.test.ts is bundled by
// esbuild with `Deno` bound to @deno/shim-deno-test, imported, and its
// collected tests run in order. Prints a closing `N passed, N failed` line.
//   node tests/run-node.mjs [filter-substring]
//   node tests/run-node.mjs --main FILE.ts   runs one TypeScript program under Node instead
import { build } from "esbuild";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { bundleWorker, npmSpecifiers, workerScript } from "../build/esbuild-common.mjs";

const testsDir = new URL(".", import.meta.url).pathname;
const filter = process.argv[2] ?? "";
const files = readdirSync(testsDir).filter((f) => f.endsWith(".test.ts") && f.includes(filter)).sort();
// Inside node_modules so that the bundles resolve packages from the project.
const cacheDir = join(testsDir, "..", "node_modules", ".cache");
mkdirSync(cacheDir, { recursive: true });
const outDir = mkdtempSync(join(cacheDir, "attnround-tests-"));
const shim = join(outDir, "deno-shim.mjs");
writeFileSync(shim, 'export { Deno } from "@deno/shim-deno-test";\n');

// `import.meta.url` keeps naming the source file, not the bundle, so that
// `new URL("./fixtures/x", import.meta.url)` finds the same file in both runtimes.
const sourceUrls = {
  name: "source-import-meta-url",
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => ({
      contents: readFileSync(args.path, "utf8").replaceAll(
        "import.meta.url",
        JSON.stringify(pathToFileURL(args.path).href),
      ),
      loader: "ts",
    }));
  },
};

// The thread pool's workers run the worker script bundled once for all the tests.
const workerBundle = join(outDir, "worker.mjs");
await bundleWorker(workerBundle);

function bundle(entry, outfile) {
  return build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    inject: [shim],
    plugins: [npmSpecifiers({ bundled: false }), workerScript(pathToFileURL(workerBundle).href), sourceUrls],
    outfile,
    logLevel: "error",
  });
}

if (process.argv[2] === "--main") await runMain(process.argv[3]);
else await runTests();

/** Runs one TypeScript program, which must end by itself: no process.exit() hides a worker left running. */
async function runMain(file) {
  const outfile = join(outDir, "main.mjs");
  try {
    await bundle(file, outfile);
    await import(pathToFileURL(outfile).href);
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
}

async function runTests() {
  let passed = 0;
  let failed = 0;
  let ignored = 0;
  try {
    for (const file of files) {
      const outfile = join(outDir, file.replace(/\.ts$/, ".mjs"));
      await bundle(join(testsDir, file), outfile);
      const { testDefinitions } = await import("@deno/shim-deno-test");
      await import(pathToFileURL(outfile).href);
      const definitions = testDefinitions.splice(0, testDefinitions.length);
      const only = definitions.some((d) => d.only);
      console.log(`running ${definitions.length} tests from ./tests/${file}`);
      for (const d of definitions) {
        if (d.ignore || (only && !d.only)) {
          ignored++;
          continue;
        }
        const start = performance.now();
        try {
          await d.fn(testContext(d.name));
          passed++;
          console.log(`${d.name} ... ok (${Math.round(performance.now() - start)}ms)`);
        } catch (error) {
          failed++;
          console.log(`${d.name} ... FAILED`);
          console.log(error?.stack ?? error);
        }
      }
    }
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }

  console.log(
    `\nnode ${process.version}: ${passed} passed, ${failed} failed${ignored ? `, ${ignored} ignored` : ""}`,
  );
  process.exitCode = failed > 0 ? 1 : 0;
}

function testContext(name) {
  return {
    name,
    origin: "",
    async step(stepName, fn) {
      const stepFn = typeof stepName === "function" ? stepName : fn ?? stepName.fn;
      await stepFn(testContext(`${name} > ${stepName.name ?? stepName}`));
      return true;
    },
  };
}
