import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadText, splitCorpus } from "@threadgrad/cli";
import { manualSeed, mulberry32, tensor } from "@threadgrad/core";
import { Adam } from "@threadgrad/optim";
import { CHARGPT, Gpt, epochOrder, gptParameterShapes, sequenceCrossEntropy } from "@threadgrad/workers";
import { afterAll, describe, expect, it } from "vitest";
import { PYTHON, peerEnv, probeTorch } from "./peers/pytorch.js";
import { W7_BATCH, W7_CONTEXT, chargptInitialWeights, encodeWindows, trainingWindowStarts } from "./w7-quality.js";

const dir = mkdtempSync(join(tmpdir(), "threadgrad-w7-quality-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SCRIPT = fileURLToPath(new URL("../pytorch/w7_quality.py", import.meta.url));

/** `bytes` of lines of lowercase words, the same every run. */
function corpus(bytes: number): string {
  const next = mulberry32(11);
  let s = "";
  while (s.length < bytes) {
    const word = Array.from({ length: 1 + Math.floor(next() * 7) }, () =>
      String.fromCharCode(97 + Math.floor(next() * 26)),
    );
    s += word.join("") + (next() < 0.1 ? "\n" : " ");
  }
  return s.slice(0, bytes);
}

describe("the windows threadgrad trains on, for the PyTorch reference", () => {
  it("are epoch e's windows of `--data text:` in the trainer's order, the last batch of an epoch short", () => {
    const file = join(dir, "windows.txt");
    writeFileSync(file, corpus(3000));
    const [context, batch, seed] = [16, 5, 3];
    const split = loadText(file, { context, seed });
    const train = splitCorpus(new Uint8Array(readFileSync(file))).train;
    const windows = split.train.length;
    const perEpoch = Math.ceil(windows / batch);
    expect(windows % batch).not.toBe(0); // so the epoch's last batch is short
    const steps = trainingWindowStarts(train.length, perEpoch + 3, { seed, batch, context });
    expect(steps).toHaveLength(perEpoch + 3);
    expect(steps.map((s) => s.length)).toEqual([
      ...Array.from({ length: perEpoch - 1 }, () => batch),
      windows % batch,
      batch,
      batch,
      batch,
    ]);
    // Each start holds the window the trainer reads for that step: sample order[i] of the epoch's draw.
    for (const epoch of [0, 1]) {
      split.train.redraw!(epoch);
      const order = epochOrder(windows, seed, epoch);
      for (let s = 0; s < (epoch === 0 ? perEpoch : 3); s++) {
        const starts = steps[epoch * perEpoch + s]!;
        starts.forEach((start, i) => {
          const k = order[s * batch + i]!;
          const x = (split.train.x as Int32Array).subarray(k * context, (k + 1) * context);
          const y = (split.train.y as Int32Array).subarray(k * context, (k + 1) * context);
          expect([...x]).toEqual([...train.subarray(start, start + context)]);
          expect([...y]).toEqual([...train.subarray(start + 1, start + context + 1)]);
        });
      }
    }
    // Another seed draws other windows.
    expect(trainingWindowStarts(train.length, 1, { seed: 4, batch, context })[0]).not.toEqual(steps[0]);
  });

  it("go to the script as int32 little-endian: per step the count, then the starts", () => {
    const bytes = encodeWindows([Int32Array.of(5, 70000), Int32Array.of(3)]);
    const view = new DataView(bytes.buffer);
    expect(Array.from({ length: bytes.length / 4 }, (_, i) => view.getInt32(4 * i, true))).toEqual([2, 5, 70000, 1, 3]);
  });

  it("come with threadgrad's initial weights, named and shaped as PyTorch's state_dict", () => {
    const { weights, layout } = chargptInitialWeights(0);
    expect(layout).toEqual(gptParameterShapes(CHARGPT));
    expect(weights.length).toBe(4 * 470_784);
    const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
    expect(same(chargptInitialWeights(0).weights, weights)).toBe(true);
    expect(same(chargptInitialWeights(1).weights, weights)).toBe(false);
    // The first parameter is the token embedding, N(0, 1): not zeros.
    expect(new DataView(weights.buffer).getFloat32(0, true)).not.toBe(0);
  });
});

// Opt-in (THREADGRAD_PYTORCH_TESTS=1): the test suite never needs PyTorch, and where PyTorch happens
// to be installed this check would add a minute of Python to every run.
describe.skipIf(process.env.THREADGRAD_PYTORCH_TESTS !== "1")("the PyTorch reference (pytorch/w7_quality.py)", () => {
  const skip = probeTorch().skip;
  it.skipIf(skip !== null)(
    "on threadgrad's windows and weights, takes the steps threadgrad takes: the same losses",
    () => {
      const text = join(dir, "reference");
      writeFileSync(text, corpus(40_000));
      const { train } = splitCorpus(new Uint8Array(readFileSync(text)));
      const steps = trainingWindowStarts(train.length, 3, { seed: 0, batch: W7_BATCH, context: W7_CONTEXT });
      const windowsFile = join(dir, "reference.i32");
      writeFileSync(windowsFile, encodeWindows(steps));
      const initFile = join(dir, "reference-init.f32");
      const { weights, layout } = chargptInitialWeights(0);
      writeFileSync(initFile, weights);
      writeFileSync(`${initFile}.json`, JSON.stringify(layout));
      const args = [SCRIPT, "--steps", "3", "--text", text, "--windows", windowsFile, "--init", initFile];
      const r = spawnSync(PYTHON, [...args, "--threads", "1"], { env: peerEnv(), encoding: "utf8" });
      expect(r.stderr).not.toContain("Traceback");
      expect(r.status).toBe(0);
      const result = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { firstLosses: number[]; valLoss: number };

      // threadgrad: the model DataParallel builds with seed 0, Adam 1e-3, the mean over every token.
      manualSeed(0);
      const model = new Gpt(CHARGPT);
      const opt = new Adam(model.parameters(), { lr: 1e-3 });
      const losses = steps.map((starts) => {
        const x = new Int32Array(starts.length * W7_CONTEXT);
        const y = new Int32Array(starts.length * W7_CONTEXT);
        starts.forEach((start, i) => {
          for (let j = 0; j < W7_CONTEXT; j++) {
            x[i * W7_CONTEXT + j] = train[start + j]!;
            y[i * W7_CONTEXT + j] = train[start + j + 1]!;
          }
        });
        const shape = [starts.length, W7_CONTEXT];
        const loss = sequenceCrossEntropy(model.forward(tensor(x, { shape })), tensor(y, { shape }));
        opt.zeroGrad();
        loss.backward();
        opt.step();
        return loss.item();
      });
      expect(result.firstLosses).toHaveLength(3);
      for (const [i, loss] of result.firstLosses.entries()) expect(loss).toBeCloseTo(losses[i]!, 4);
      expect(losses[2]).toBeLessThan(losses[0]! - 0.1); // the steps moved the weights
      expect(result.valLoss).toBeLessThan(losses[0]!);
    },
    300_000,
  );
});
