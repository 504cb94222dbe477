// Assembles the real-model zoo (SPEC §12) into a cache folder outside git:
// BlazeFace and M-LSD from their npm tarballs (`npm pack`; their dependencies
// name a registry that is not reachable, so they are never installed),
// vit_fmnist from ../shared/fixtures, and the torchvision architectures from
// zoo/export_torchvision.py. Idempotent: a file already present and matching
// the manifest is kept.
//
//   deno task zoo [--dir DIR] [--only a,b] [--force] [--shared DIR] [--python PATH]
//                 [--write-manifest]
//
// The folder defaults as zooDir() in zoo/manifest.ts says ($ATTNROUND_ZOO, else
// the user's cache folder); the Python is /usr/bin/python3 unless --python or
// $ATTNROUND_PYTHON names another.
// --write-manifest records the assembled files' bytes, sha256 and input/output
// shapes (read with onnxruntime-node) in zoo/manifest.json.
import { readFromTgz } from "./tar.ts";
import {
  flagValue,
  readIfPresent,
  repoRoot,
  selectModels,
  sha256Hex,
  zooDir,
  type ZooModel,
  zooModels,
} from "./manifest.ts";

const args = Deno.args;
const dir = zooDir(flagValue(args, "dir"));
const force = args.includes("--force");
const sharedFixtures = flagValue(args, "shared") ?? `${repoRoot}/../shared/fixtures`;
const python = flagValue(args, "python") ?? Deno.env.get("ATTNROUND_PYTHON") ?? defaultPython();

function defaultPython(): string {
  // Debian's interpreter, which sees python3-torch; a pyenv python3 earlier on PATH may not.
  try {
    Deno.statSync("/usr/bin/python3");
    return "/usr/bin/python3";
  } catch {
    return "python3";
  }
}

type Status = { model: ZooModel; state: "cached" | "written" | "skipped" | "failed"; detail: string };

/** Writes via a temporary name, so an interrupted run leaves no half-written model. */
async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await Deno.writeFile(`${path}.partial`, bytes);
  await Deno.rename(`${path}.partial`, path);
}

/** "" when the bytes match the manifest (or it has no hash yet), else why not. */
async function mismatch(model: ZooModel, bytes: Uint8Array): Promise<string> {
  if (!model.sha256) return "";
  const sha = await sha256Hex(bytes);
  return sha === model.sha256
    ? ""
    : `sha256 ${sha.slice(0, 12)}… differs from the manifest's ${model.sha256.slice(0, 12)}…`;
}

async function tarball(pkg: string, version: string): Promise<Uint8Array> {
  const npmDir = `${dir}/npm`;
  const path = `${npmDir}/${pkg}-${version}.tgz`;
  const cached = await readIfPresent(path);
  if (cached && !force) return cached;
  await Deno.mkdir(npmDir, { recursive: true });
  const out = await new Deno.Command("npm", {
    args: ["pack", `${pkg}@${version}`, "--pack-destination", npmDir, "--silent"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`npm pack ${pkg}@${version} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return await Deno.readFile(path);
}

async function fromNpm(model: ZooModel & { source: { kind: "npm" } }): Promise<Uint8Array> {
  const { package: pkg, version, path } = model.source;
  const bytes = await readFromTgz(await tarball(pkg, version), path);
  if (!bytes) throw new Error(`${pkg}@${version} holds no ${path}`);
  return bytes;
}

async function fromFixture(model: ZooModel & { source: { kind: "fixture" } }): Promise<Uint8Array> {
  const path = `${sharedFixtures}/${model.source.path}`;
  const bytes = await readIfPresent(path);
  if (!bytes) throw new Error(`${path} not found (--shared DIR names the fixtures folder)`);
  return bytes;
}

/** Runs the exporter once for every missing torchvision file; returns a reason when it could not. */
async function exportTorchvision(models: ZooModel[]): Promise<string | undefined> {
  const architectures = [...new Set(models.map((m) => (m.source as { architecture: string }).architecture))];
  const opsets = [...new Set(models.map((m) => (m.source as { opset: number }).opset))];
  console.log(`exporting ${architectures.join(", ")} at opset ${opsets.join(", ")} with ${python}…`);
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(python, {
      args: [
        `${repoRoot}/zoo/export_torchvision.py`,
        "--out",
        dir,
        "--opsets",
        opsets.join(","),
        ...architectures,
      ],
      stdout: "inherit",
      stderr: "piped",
    }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return `${python} not found (apt-get install python3-torch python3-torchvision)`;
    }
    throw e;
  }
  if (out.code === 3) {
    return "torch or torchvision is missing (apt-get install python3-torch python3-torchvision)";
  }
  if (!out.success) {
    const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
    return `the exporter failed: ${lines[lines.length - 1]}`;
  }
  return undefined;
}

async function assemble(models: ZooModel[]): Promise<Status[]> {
  await Deno.mkdir(dir, { recursive: true });
  const statuses: Status[] = [];
  const toExport: ZooModel[] = [];
  for (const model of models) {
    const path = `${dir}/${model.file}`;
    const present = force ? undefined : await readIfPresent(path);
    if (present) {
      const bad = await mismatch(model, present);
      if (!bad) {
        statuses.push({ model, state: "cached", detail: "" });
        continue;
      }
      if (model.source.kind === "torchvision") {
        // Another torch may serialise differently; the file is still the architecture asked for.
        statuses.push({ model, state: "cached", detail: `${bad}; kept (--force regenerates)` });
        continue;
      }
      console.log(`${model.file}: ${bad}, fetching again`);
    }
    if (model.source.kind === "torchvision") {
      toExport.push(model);
      continue;
    }
    try {
      const source = model.source;
      const bytes = source.kind === "npm"
        ? await fromNpm(model as ZooModel & { source: typeof source })
        : await fromFixture(model as ZooModel & { source: typeof source });
      const bad = await mismatch(model, bytes);
      if (bad) throw new Error(bad);
      await writeAtomic(path, bytes);
      statuses.push({ model, state: "written", detail: "" });
    } catch (e) {
      statuses.push({ model, state: "failed", detail: (e as Error).message });
    }
  }
  if (toExport.length) {
    const reason = await exportTorchvision(toExport);
    if (reason) console.log(`skipping the torchvision models: ${reason}`);
    for (const model of toExport) {
      const bytes = reason ? undefined : await readIfPresent(`${dir}/${model.file}`);
      const bad = bytes ? await mismatch(model, bytes) : "";
      statuses.push(
        bytes
          ? { model, state: "written", detail: bad && `${bad} (another torch or torchvision?)` }
          : { model, state: reason ? "skipped" : "failed", detail: reason ?? "the exporter wrote no file" },
      );
    }
  }
  return statuses;
}

/** Rewrites zoo/manifest.json with the measured fields of every assembled model. */
async function writeManifest(): Promise<void> {
  // deno-lint-ignore no-import-prefix
  const ort = await import("npm:onnxruntime-node@1.30.0");
  const models: ZooModel[] = [];
  for (const model of zooModels) {
    const bytes = await readIfPresent(`${dir}/${model.file}`);
    if (!bytes) {
      models.push(model);
      continue;
    }
    const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
    const dims = (shape: readonly (number | string)[]) =>
      shape.map((d) => (typeof d === "number" && d >= 0 ? d : String(d)));
    const inputs = session.inputMetadata.map((meta, i) => {
      if (!meta.isTensor) throw new Error(`${model.file}: input ${meta.name} is not a tensor`);
      const old = model.inputs[i] ?? model.inputs[0];
      const shape = dims(meta.shape);
      return {
        ...old,
        name: meta.name,
        shape,
        batch: typeof shape[0] === "number" ? "fixed" : "dynamic",
      } as const;
    });
    const outputs = session.outputMetadata.map((meta) => ({
      name: meta.name,
      shape: meta.isTensor ? dims(meta.shape) : [],
    }));
    await session.release();
    models.push({ ...model, inputs, outputs, bytes: bytes.length, sha256: await sha256Hex(bytes) });
  }
  // One line per array of numbers or strings, as deno fmt leaves it.
  const json = JSON.stringify({ models }, null, 2).replace(
    /\[\s*((?:-?[\d.]+|"[^"]*")(?:,\s*(?:-?[\d.]+|"[^"]*"))*)\s*\]/g,
    (_, items: string) => `[${items.split(/,\s*/).join(", ")}]`,
  );
  await Deno.writeTextFile(`${repoRoot}/zoo/manifest.json`, json + "\n");
  console.log(`wrote zoo/manifest.json (${models.filter((m) => m.bytes).length} models measured)`);
}

const statuses = await assemble(selectModels(args));
console.log(`\nzoo folder: ${dir}`);
for (const { model, state, detail } of statuses) {
  console.log(`${state.padEnd(8)} ${model.name.padEnd(26)} ${model.file}${detail ? `  (${detail})` : ""}`);
}
if (args.includes("--write-manifest")) await writeManifest();
if (statuses.some((s) => s.state === "failed")) Deno.exit(1);
