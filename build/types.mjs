// The package's type declarations: dist/types/**/*.d.ts from mod.ts, for
// TypeScript users of the npm package (export condition "types"). tsc writes
// them; then their relative `.ts` imports become `.js` (which nodenext maps to
// the `.d.ts` beside them) and Deno's `npm:fflate@…` becomes the bare name.
//   node build/types.mjs        (npm run build:types; also run by prepare)
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { resolvePackage } from "./esbuild-common.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const typesDir = join(root, "dist", "types");

function declarations(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? declarations(join(dir, e.name)) : e.name.endsWith(".d.ts") ? [join(dir, e.name)] : []
  );
}

export function buildTypes() {
  rmSync(typesDir, { recursive: true, force: true });
  const tsc = resolvePackage("typescript", "bin/tsc");
  const result = spawnSync(process.execPath, [tsc, "-p", join(root, "build", "tsconfig.types.json")], {
    stdio: "inherit",
  });
  if (result.status !== 0) throw new Error(`tsc exited with ${result.status ?? result.error}`);
  for (const file of declarations(typesDir)) {
    const text = readFileSync(file, "utf8")
      .replace(/((?:from|import)\s*["'])(\.{1,2}\/[^"']*)\.ts(["'])/g, "$1$2.js$3")
      .replace(/(["'])npm:((?:@[^/@"']+\/)?[^/@"']+)@[^/"']+/g, "$1$2");
    writeFileSync(file, text);
  }
  return join(typesDir, "mod.d.ts");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(`wrote ${buildTypes()}`);
}
