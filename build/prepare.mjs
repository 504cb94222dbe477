// Builds what the npm package runs from dist/: the Node/browser bundle of
// mod.ts, the CLI bundle and the type declarations. npm runs it as `prepare`:
// after `npm install` in a clone, before `npm pack`, and when a clone is
// installed as a folder (`npm i ../attnround`) or from a git URL. A folder
// install links the folder without installing its dependencies, so when the
// build tools (esbuild, typescript) or the packages the bundles take in (fflate,
// and the CLI's image decoders fast-png and jpeg-js) are missing they are installed,
// at the versions package.json pins, into node_modules/.attnround-build
// (a separate prefix: an install in the folder itself would pull every dev
// dependency).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildTools } from "./esbuild-common.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const pinned = { ...pkg.dependencies, ...pkg.devDependencies };
const needed = ["esbuild", "typescript", "fflate", "fast-png", "jpeg-js"];
const missing = needed.filter((name) => !existsSync(join(root, "node_modules", name, "package.json")));
if (missing.length > 0 && !existsSync(join(buildTools, "node_modules", "esbuild", "package.json"))) {
  // The outer npm's settings (npm_config_*) describe the outer install, not this one.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const result = spawnSync(
    npm,
    [
      "install",
      "--prefix",
      buildTools,
      "--no-save",
      "--no-package-lock",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      ...needed.map((name) => `${name}@${pinned[name]}`),
    ],
    { stdio: ["ignore", "ignore", "inherit"], env, shell: process.platform === "win32" },
  );
  if (result.status !== 0) {
    throw new Error(`installing the build tools failed (${result.status ?? result.error})`);
  }
}

const { bundleBrowser } = await import("./bundle-browser.mjs");
const { bundleCli } = await import("./bundle-cli.mjs");
const { buildTypes } = await import("./types.mjs");
await Promise.all([bundleBrowser(), bundleCli()]);
buildTypes();
