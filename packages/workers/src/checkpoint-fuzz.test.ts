// Seeded mutations of a real small checkpoint's msgpack payload, each framed with a recomputed CRC:
// every one either loads as a consistent checkpoint (the model its spec builds takes its parameters
// and optimizer state) or fails with an Error whose message starts with `checkpoint: FILE`. Never a
// TypeError from a missing field, a stack overflow or a huge allocation.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Packr } from "msgpackr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Generator } from "@threadgrad/core";
import { stateBuffers } from "@threadgrad/optim";
import { checkpointHeader, loadTensor } from "./checkpoint.js";
import { assertBuilt } from "./fixtures/harness.mjs";
import { checkAgainstModel, readTrainerCheckpoint } from "./persist.js";
import { buildImageModel, buildMlp } from "./spec.js";
import { Gpt } from "./gpt.js";
import { DataParallel } from "./trainer.js";

const dir = mkdtempSync(join(tmpdir(), "threadgrad-fuzz-"));
const packr = new Packr({ useRecords: false, moreTypes: false });
const HEADER = 16;
let body: Uint8Array;

beforeAll(async () => {
  assertBuilt();
  // A tiny model, so most of the payload is structure rather than tensor bytes.
  const t = await DataParallel.create({
    model: { kind: "mlp", sizes: [2, 3, 2], dropout: 0.1 },
    workers: 1,
    schedule: {
      kind: "sequential",
      schedules: [
        { kind: "linear", totalIters: 2 },
        { kind: "cosine", tMax: 4 },
      ],
      milestones: [2],
    },
    clipGradNorm: 1,
  });
  const g = new Generator(1);
  await t.fit(
    { x: new Float32Array(16).map(() => g.normal()), y: new Int32Array(8).map((_, i) => i % 2) },
    { epochs: 1, batchSize: 4 },
  );
  await t.save(join(dir, "good.msgpack"), { cli: { note: "x" } });
  await t.close();
  body = readFileSync(join(dir, "good.msgpack")).subarray(HEADER);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const INTERESTING_BYTES = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc4, 0xc6, 0xca, 0xcb];
INTERESTING_BYTES.push(0xd4, 0xd6, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff);
const INTERESTING_VALUES: unknown[] = [Number.NaN, -1, 0, 1e308, -(2 ** 53), 2 ** 31, 0.5, "x", "", null, true, [], {}];
INTERESTING_VALUES.push([1, 2, 3], { kind: "mlp" }, new Uint8Array(3), "node:child_process", [[[[[[]]]]]]);

/** Byte-level damage: change, insert, delete or repeat a few bytes. */
function mutateBytes(g: Generator, src: Uint8Array): Uint8Array {
  const b = Array.from(src);
  const at = () => g.integer(0, b.length);
  for (let k = g.integer(1, 4); k > 0; k--) {
    switch (g.integer(0, 5)) {
      case 0:
        b[at()] = g.integer(0, 256);
        break;
      case 1:
        b[at()] = INTERESTING_BYTES[g.integer(0, INTERESTING_BYTES.length)]!;
        break;
      case 2:
        b.splice(at(), 0, ...Array.from({ length: g.integer(1, 9) }, () => g.integer(0, 256)));
        break;
      case 3:
        b.splice(at(), g.integer(1, 9));
        break;
      default: {
        const from = at();
        b.splice(at(), 0, ...b.slice(from, from + g.integer(1, 40)));
      }
    }
  }
  return Uint8Array.from(b);
}

/** Field-level damage: a random field anywhere in the decoded payload replaced, deleted or nested deep. */
function mutateFields(g: Generator, src: Uint8Array): Uint8Array {
  const root = packr.unpack(src) as Record<string, unknown>;
  const containers: [Record<string, unknown> | unknown[], string | number][] = [];
  const walk = (v: unknown) => {
    if (v === null || typeof v !== "object" || v instanceof Uint8Array) return;
    for (const [k, x] of Object.entries(v)) {
      containers.push([v as Record<string, unknown>, Array.isArray(v) ? Number(k) : k]);
      walk(x);
    }
  };
  walk(root);
  for (let k = g.integer(1, 3); k > 0; k--) {
    const [owner, key] = containers[g.integer(0, containers.length)]!;
    const r = g.integer(0, 10);
    if (r === 0 && !Array.isArray(owner)) delete owner[key as string];
    else if (r === 1) (owner as Record<string, unknown>)[key] = deep(g.integer(10, 200));
    else (owner as Record<string, unknown>)[key] = INTERESTING_VALUES[g.integer(0, INTERESTING_VALUES.length)];
  }
  return packr.pack(root);
}

const deep = (n: number): unknown => {
  let v: unknown = 0;
  for (let i = 0; i < n; i++) v = [v];
  return v;
};

describe("fuzzed checkpoints", () => {
  it("400 seeded mutations: each loads consistently or fails naming the file", () => {
    const g = new Generator(20250131);
    const outcomes = { loaded: 0, refused: 0 };
    const messages = new Set<string>();
    for (let i = 0; i < 400; i++) {
      const mutated = i % 2 === 0 ? mutateBytes(g, body) : mutateFields(g, body);
      const file = join(dir, `m${i}.msgpack`);
      writeFileSync(file, Buffer.concat([checkpointHeader(mutated), mutated]));
      let ckpt: ReturnType<typeof readTrainerCheckpoint>;
      try {
        ckpt = readTrainerCheckpoint(file);
      } catch (err) {
        expect(err, `mutation ${i}`).toBeInstanceOf(Error);
        expect((err as Error).constructor, `mutation ${i}: ${(err as Error).message}`).toBe(Error);
        expect(
          (err as Error).message.startsWith(`checkpoint: ${file}`),
          `mutation ${i}: ${(err as Error).message}`,
        ).toBe(true);
        messages.add((err as Error).message.slice(file.length + 12, file.length + 40));
        outcomes.refused++;
        continue;
      }
      // Loaded: what DataParallel.load would do next must work, short of starting workers.
      const { model, optimizer } = ckpt.config;
      expect("kind" in model, `mutation ${i}`).toBe(true);
      if (!("kind" in model)) continue;
      const built =
        model.kind === "mlp"
          ? buildMlp(model.sizes, model.activation, model.dropout)
          : model.kind === "gpt"
            ? new Gpt(model)
            : buildImageModel(model);
      const { name, ...options } = optimizer;
      const buffers = stateBuffers(name, options as never).map((b) => b.name);
      checkAgainstModel(ckpt, [...built.namedParameters()], buffers);
      for (const t of ckpt.params.values()) expect(loadTensor(t, "p").length).toBe(t.shape.reduce((a, b) => a * b, 1));
      outcomes.loaded++;
    }
    // Both outcomes occur, and the refusals are of many kinds, not one catch-all.
    expect(outcomes.loaded).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(300);
    expect(messages.size).toBeGreaterThan(30);
  });
});
