import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Generator } from "@threadgrad/core";
import { assertBuilt } from "./fixtures/harness.mjs";
import { DataParallel, type TrainerOptions } from "./trainer.js";

// How a trainer lives alongside the script that made it: the model module given as a URL (the form
// the READMEs show), a script that forgets close(), and `await using`'s dispose hook.

const open: DataParallel[] = [];
const dirs: string[] = [];
const FIXTURE = new URL("./fixtures/faulty-model.mjs", import.meta.url);

function data(n: number, seed = 5) {
  const g = new Generator(seed);
  return {
    x: new Float32Array(n * 4).map(() => g.normal()),
    y: new Int32Array(n).map(() => g.integer(0, 3)),
    length: n,
  };
}

async function create(opts: Partial<TrainerOptions>): Promise<DataParallel> {
  const t = await DataParallel.create({ model: { kind: "mlp", sizes: [4, 8, 3] }, workers: 2, ...opts });
  open.push(t);
  return t;
}

/** Runs `source` as an ES module in a child node; the kill timer is only a safety net against a hang. */
function runScript(
  source: string,
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), "threadgrad-lifetime-"));
  dirs.push(dir);
  const file = join(dir, "script.mjs");
  writeFileSync(file, source);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "",
      stderr = "";
    const killer = setTimeout(() => child.kill("SIGKILL"), 100_000);
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

beforeAll(() => assertBuilt());
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe("DataParallel lifetime", () => {
  it("a model module given as a URL trains exactly like the same module given as its href", async () => {
    const ds = data(32);
    const losses: number[] = [];
    for (const module of [FIXTURE, FIXTURE.href]) {
      const t = await create({ model: { module, export: "createModel" } });
      await t.fit(ds, { epochs: 2, batchSize: 8 });
      losses.push((await t.evaluate(ds)).loss);
    }
    expect(Number.isFinite(losses[0])).toBe(true);
    expect(losses[0]).toBe(losses[1]);
  });

  it("a loss module given as a URL reaches the workers", async () => {
    const dir = mkdtempSync(join(tmpdir(), "threadgrad-loss-"));
    dirs.push(dir);
    const lossFile = join(dir, "loss.mjs");
    // Sum of squared outputs: a scalar the ranks must load from this module, not a built-in.
    writeFileSync(lossFile, "export default (out) => out.mul(out).sum();\n");
    const t = await create({ loss: { module: new URL(`file://${lossFile}`) } });
    const progress = await t.fit({ ...data(16), y: new Float32Array(16) }, { epochs: 1, batchSize: 8 });
    expect(progress.globalStep).toBe(2);
  });

  it("workers whose steps allocate on the heap get a small young generation; step-region workers V8's default", async () => {
    const dir = mkdtempSync(join(tmpdir(), "threadgrad-young-"));
    dirs.push(dir);
    const lossFile = join(dir, "loss.mjs");
    // Each rank's loss is its own young-generation limit (MiB) times its rows (the trainer divides
    // the ranks' sum by the batch), plus 0 times the outputs: the step's loss is the limit.
    writeFileSync(
      lossFile,
      'import { resourceLimits } from "node:worker_threads";\n' +
        "export default (out) => out.mul(0).sum().add(resourceLimits.maxYoungGenerationSizeMb * out.shape[0]);\n",
    );
    const loss = { module: new URL(`file://${lossFile}`) };
    const young = async (opts: Partial<TrainerOptions>) => {
      const t = await create({ loss, ...opts });
      let reported = Number.NaN;
      const onStep = (st: { loss: number }) => {
        reported = st.loss;
      };
      await t.fit({ ...data(16), y: new Float32Array(16) }, { epochs: 1, batchSize: 16, onStep });
      return reported;
    };
    // a module model defaults to no step region: 3 MiB
    expect(await young({ model: { module: FIXTURE, export: "createModel" } })).toBe(3);
    expect(await young({ stepRegion: false })).toBe(3);
    // with a step region the workers keep V8's own limit, which is larger
    expect(await young({ stepRegion: true })).toBeGreaterThan(3);
  });

  it("a script that trains and never calls close() exits by itself with status 0", async () => {
    const index = new URL("../dist/index.js", import.meta.url).href;
    const r = await runScript(
      [
        `import { DataParallel } from ${JSON.stringify(index)};`,
        `const trainer = await DataParallel.create({ model: { kind: "mlp", sizes: [2, 4, 2] }, workers: 2 });`,
        "const data = { x: new Float32Array([0, 1, 1, 0, 1, 1, 0, 0]), y: new Int32Array([1, 1, 0, 0]) };",
        "const progress = await trainer.fit(data, { epochs: 1, batchSize: 4 });",
        'console.log("trained", progress.globalStep);',
      ].join("\n"),
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("trained 1\n");
    expect(r.signal).toBeNull(); // not the safety net's SIGKILL
    expect(r.code).toBe(0);
  });

  it("Symbol.asyncDispose closes the trainer, as `await using` does at the end of its block", async () => {
    const t = await create({});
    expect(typeof t[Symbol.asyncDispose]).toBe("function");
    await t[Symbol.asyncDispose]();
    expect(t.isClosed).toBe(true);
    await expect(t.evaluate(data(4))).rejects.toThrow("DataParallel: the trainer is closed");
  });
});
