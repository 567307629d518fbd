// End-to-end: `train --data text:DIR` trains a user's language model on byte windows, reports the
// validation loss in nats and bits per character, trains on the same windows with any worker
// count, and `--max-steps` stops any run exactly, counting across --resume. The corpus is written
// here; the model is a bigram module (embedding → linear over 256 byte ids), and a small built-in gpt.
import { mkdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Generator } from "@threadgrad/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonLines, requireBuilt, run, tempDir } from "./helpers.js";

const tmp = tempDir("threadgrad-text-");
afterAll(tmp.cleanup);
const CORE = pathToFileURL(fileURLToPath(new URL("../../core/dist/index.js", import.meta.url))).href;
const CORPUS = join(tmp.path, "corpus");

/** About 7 KB of lines of words over two files, a binary file and a symlink beside them. */
function writeCorpus(): void {
  const words = "the cat sat on a mat and then it ran off to see the dog who was out in the sun".split(" ");
  const g = new Generator(2);
  const line = () => Array.from({ length: 4 + g.integer(0, 6) }, () => words[g.integer(0, words.length)]).join(" ");
  mkdirSync(CORPUS);
  writeFileSync(join(CORPUS, "b.txt"), `${Array.from({ length: 150 }, line).join("\n")}\n`);
  writeFileSync(join(CORPUS, "a.txt"), `${Array.from({ length: 150 }, line).join("\n")}\n`);
  writeFileSync(join(CORPUS, "index.dat"), Uint8Array.of(0, 1, 2, 3));
  symlinkSync(join(CORPUS, "a.txt"), join(CORPUS, "a.u8"));
  writeFileSync(
    join(tmp.path, "net.mjs"),
    `import { nn } from ${JSON.stringify(CORE)};
export default function build() {
  return new nn.Sequential(new nn.Embedding(256, 16), new nn.Linear(16, 256));
}
`,
  );
}

beforeAll(() => {
  requireBuilt();
  writeCorpus();
});

const TEXT = ["--data", `text:${CORPUS}`, "--model", "./net.mjs", "--context", "16", "--json"];
const train = (...args: string[]) => run(["train", ...TEXT, ...args], { cwd: tmp.path });
const events = (stdout: string, kind: string) => jsonLines(stdout).filter((e) => e.event === kind);

describe("threadgrad train --data text:DIR", () => {
  it("learns the text: the validation loss drops below ln 256 within 20 steps, in nats and bits per character", async () => {
    const r = await train("--max-steps", "20", "--lr", "0.01", "--workers", "1", "--out", "run");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`text: ${CORPUS}: read 2 text files, skipped 1 binary and 1 symbolic link`);
    expect(events(r.stdout, "step")).toHaveLength(20);
    const summary = jsonLines(r.stdout).at(-1)!;
    expect(summary.event).toBe("summary");
    const valLoss = summary.valLoss as number;
    expect(valLoss).toBeLessThan(Math.log(256) - 0.5);
    expect(summary.valBpc).toBeCloseTo(valLoss / Math.LN2, 12);
    expect(summary.testLoss).toBe(valLoss); // text holds out one set
    expect(summary.best).toMatchObject({ metric: "valLoss", value: valLoss, step: 20 });
    // An epoch: as many windows of 16 as the first 90% of the text files hold, in batches of 64.
    const bytes = statSync(join(CORPUS, "a.txt")).size + statSync(join(CORPUS, "b.txt")).size;
    const windows = Math.floor((bytes - Math.floor(bytes * 0.1)) / 16);
    const firstStep = events(r.stdout, "step")[0]!;
    expect(firstStep.stepsPerEpoch).toBe(Math.ceil(windows / 64));
    expect(events(r.stdout, "start")[0]).toMatchObject({ trainSamples: windows, features: 16, classes: 256 });
    expect(firstStep.loss as number).toBeGreaterThan(valLoss);

    const ev = await run(["eval", "--checkpoint", "run/checkpoint-latest.msgpack", "--model", "./net.mjs", "--json"], {
      cwd: tmp.path,
    });
    expect(ev.code).toBe(0);
    const result = jsonLines(ev.stdout)[0]!;
    expect(result).toMatchObject({ event: "eval", split: "test", step: 20 });
    expect(result.valLoss).toBeCloseTo(valLoss, 5);
    expect(result.valBpc).toBeCloseTo(valLoss / Math.LN2, 5);
  });

  it("trains on the same windows with 1 and 2 workers", async () => {
    const runs = [];
    for (const w of ["1", "2"]) {
      const r = await train("--max-steps", "6", "--batch-size", "24", "--workers", w, "--out", `w${w}`);
      expect(r.code).toBe(0);
      runs.push({ steps: events(r.stdout, "step").map((e) => e.loss as number), summary: jsonLines(r.stdout).at(-1)! });
    }
    const [one, two] = runs as [(typeof runs)[0], (typeof runs)[0]];
    expect(one.steps).toHaveLength(6);
    expect(Math.max(...one.steps.map((loss, i) => Math.abs(loss - two.steps[i]!)))).toBeLessThan(1e-6);
    expect(Math.abs((one.summary.valLoss as number) - (two.summary.valLoss as number))).toBeLessThan(1e-6);
  });

  it("trains the built-in gpt to the same validation loss on 1 and 2 workers", async () => {
    // Two blocks of causal attention, LayerNorm and a GELU MLP: the shards' gradients are summed in
    // another order than one worker's, so the losses may part in the last float32 bits, well under 1e-4.
    const gpt = ["--data", `text:${CORPUS}`, "--model", "gpt:layers=2,heads=2,dim=16,context=16", "--json"];
    const runs = [];
    for (const w of ["1", "2"]) {
      const args = ["train", ...gpt, "--max-steps", "12", "--batch-size", "24", "--lr", "0.01", "--workers", w];
      const r = await run([...args, "--out", `gpt${w}`], { cwd: tmp.path });
      expect(r.code).toBe(0);
      expect(events(r.stdout, "start")[0]).toMatchObject({ workers: Number(w) });
      runs.push({ steps: events(r.stdout, "step").map((e) => e.loss as number), summary: jsonLines(r.stdout).at(-1)! });
    }
    const [one, two] = runs as [(typeof runs)[0], (typeof runs)[0]];
    expect(one.steps).toHaveLength(12);
    expect(Math.max(...one.steps.map((loss, i) => Math.abs(loss - two.steps[i]!)))).toBeLessThan(1e-4);
    const valLoss = one.summary.valLoss as number;
    expect(Math.abs(valLoss - (two.summary.valLoss as number))).toBeLessThan(1e-4);
    expect(valLoss).toBeLessThan(Math.log(256) - 1); // it learned the text
  });

  it("--max-steps counts optimizer steps across --resume and stops exactly; a resumed epoch redraws its windows", async () => {
    // Updates of 2 micro-steps: an epoch of S steps has ceil(S / 2) updates, its last one maybe short.
    const acc = ["--batch-size", "64", "--accumulate-steps", "2", "--workers", "1"];
    const first = await train("--max-steps", "5", ...acc, "--out", "resumed");
    expect(first.code).toBe(0);
    const s = events(first.stdout, "step")[0]!.stepsPerEpoch as number;
    const updates = Math.ceil(s / 2);
    const stepsOf = (n: number) => Math.floor(n / updates) * s + Math.min(s, (n % updates) * 2);
    const firstSteps = events(first.stdout, "step");
    expect(firstSteps).toHaveLength(stepsOf(5));
    expect(firstSteps.at(-1)!.epoch).toBe(2); // it stops inside the second epoch
    const ckpt = "resumed/checkpoint-latest.msgpack";
    const resume = (...args: string[]) =>
      run(["train", "--resume", ckpt, "--model", "./net.mjs", "--json", ...args], { cwd: tmp.path });
    const again = await resume("--max-steps", "5");
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(
      "--max-steps 5: the checkpoint has already run 5 optimizer steps; pass a larger --max-steps to train further",
    );
    const more = await resume("--max-steps", "7");
    expect(more.code).toBe(0);
    const steps = events(more.stdout, "step");
    expect(steps.map((e) => e.step)).toEqual(
      Array.from({ length: stepsOf(7) - stepsOf(5) }, (_, i) => stepsOf(5) + 1 + i),
    );
    expect(events(more.stdout, "eval").at(-1)).toMatchObject({ step: stepsOf(7) });
    // The resumed process redrew the second epoch's windows: it ends where an uninterrupted run does.
    const whole = await train("--max-steps", "7", ...acc, "--out", "whole");
    expect(whole.code).toBe(0);
    expect(events(whole.stdout, "step").slice(stepsOf(5))).toEqual(
      steps.map((e) => expect.objectContaining({ step: e.step, loss: e.loss })),
    );
    expect(jsonLines(whole.stdout).at(-1)!.valLoss).toBe(jsonLines(more.stdout).at(-1)!.valLoss);
  });

  it("names the path and the problem in bad input", async () => {
    const only = join(tmp.path, "binaries");
    mkdirSync(only);
    writeFileSync(join(only, "x.dat"), Uint8Array.of(7, 0, 7));
    writeFileSync(join(tmp.path, "tiny.txt"), "too short");
    const cases: [string[], string][] = [
      [["--data", `text:${join(tmp.path, "nope")}`], `text: ${join(tmp.path, "nope")} does not exist`],
      [["--data", `text:${only}`], `text: ${only} holds no text: no text file in the folder (skipped: 1 binary)`],
      [["--data", "text:tiny.txt"], `text: ${join(tmp.path, "tiny.txt")} holds 9 bytes; its training split`],
      [["--data", `text:${CORPUS}`, "--context", "16", "--model", "mlp:16,8,256"], "--model mlp:16,8,256 takes float"],
    ];
    for (const [args, message] of cases) {
      const r = await run(["train", "--model", "./net.mjs", "--context", "16", ...args], { cwd: tmp.path });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(message);
    }
    const noContext = await run(["train", "--data", `text:${CORPUS}`, "--model", "./net.mjs"], { cwd: tmp.path });
    expect(noContext.stderr).toContain(
      `--data text:${CORPUS} needs --context N, the tokens per training window: --model ${join(tmp.path, "net.mjs")}`,
    );
  });
});

describe("threadgrad train --max-steps", () => {
  it("stops a run on other data after exactly that many steps, then evaluates and saves", async () => {
    const r = await run(
      ["train", "--limit", "640", "--batch-size", "64", "--max-steps", "13", "--workers", "1", "--json", "--out", "d"],
      { cwd: tmp.path },
    );
    expect(r.code).toBe(0);
    expect(events(r.stdout, "step")).toHaveLength(13);
    expect(events(r.stdout, "epoch")).toHaveLength(1); // 10 steps per epoch
    expect(events(r.stdout, "eval").map((e) => e.step)).toEqual([10, 13]);
    expect(jsonLines(r.stdout).at(-1)).toMatchObject({ event: "summary", best: { metric: "latest", step: 13 } });
  });
});
