// What the esbuild scripts share: build/bundle-cli.mjs, build/bundle-browser.mjs,
// tests/run-node.mjs and tests/edge-runtime.mjs.
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

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
