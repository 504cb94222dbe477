// The npm package as a user installs it: a scratch TypeScript project outside
// the repository installs it from the tarball `npm pack` writes and from a
// fresh clone as a folder (which has no node_modules, so its `prepare` builds
// dist/), compiles the README's Node example with `tsc --strict` (module
// nodenext, the package's bundled types) and runs it, then runs
// `npx attnround inspect --json`. Needs the npm registry (fflate, @types/node).
//   node tests/package.mjs          (CI; a minute or two)
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const quiet = ["--no-audit", "--no-fund", "--loglevel=error"];
// The outer npm's settings (npm_config_*) would describe another install.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, env, encoding: "utf8", stdio: "pipe" });

/** The README's Node example: the first ```ts block after "### Node 20". */
function readmeExample() {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("### Node 20"));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  if (!match) throw new Error("README.md: no ```ts block under ### Node 20");
  return match[1];
}

const work = mkdtempSync(join(tmpdir(), "attnround-package-"));
let passed = 0;
let failed = 0;

/** A scratch project that installs `spec`, compiles the README example with tsc --strict and runs it. */
function tryInstall(name, spec) {
  const dir = join(work, name);
  try {
    run("mkdir", ["-p", dir]);
    writeFileSync(
      join(dir, "package.json"),
      JSON.stringify({ name: `scratch-${name}`, private: true, type: "module" }),
    );
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: "nodenext",
          target: "es2022",
          outDir: "out",
          types: ["node"],
        },
        files: ["example.ts"],
      }),
    );
    writeFileSync(join(dir, "example.ts"), readmeExample().replace("iterations: 200", "iterations: 10"));
    copyFileSync(join(root, "tests", "fixtures", "tiny_cnn_fmnist.onnx"), join(dir, "model.onnx"));
    copyFileSync(join(root, "tests", "fixtures", "calib.npz"), join(dir, "calib.npz"));
    run(npm, ["install", spec, "@types/node@20", ...quiet], dir);
    run(process.execPath, [tsc, "-p", dir], dir);
    const agreement = Number(run(process.execPath, [join(dir, "out", "example.js")], dir).trim());
    if (!(agreement >= 0 && agreement <= 1)) throw new Error(`the example printed ${agreement}`);
    if (!existsSync(join(dir, "model.w4a4.onnx"))) throw new Error("the example wrote no model.w4a4.onnx");
    const inspect = JSON.parse(run(npm, ["exec", "--", "attnround", "inspect", "model.onnx", "--json"], dir));
    if (inspect.opset !== 13) {
      throw new Error(`attnround inspect --json: ${JSON.stringify(inspect).slice(0, 200)}`);
    }
    console.log(
      `package: ${name}: installed, compiled with tsc --strict, ran (agreement ${agreement}) ... ok`,
    );
    passed++;
  } catch (e) {
    console.log(`package: ${name} ... FAILED\n${e.stderr ?? ""}${e.stdout ?? ""}${e.stack ?? e}`);
    failed++;
  }
}

try {
  const tarball = run(npm, ["pack", "--pack-destination", work, ...quiet], root).trim().split("\n").pop();
  tryInstall("tarball", join(work, tarball));
  const clone = join(work, "clone");
  run("git", ["clone", "-q", root, clone]);
  tryInstall("folder", clone);
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(`\n${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
