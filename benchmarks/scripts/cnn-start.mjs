// Usage (after a build, from benchmarks/): node scripts/cnn-start.mjs DIR [seed] [epochs]
// Writes what `threadgrad train --data fashion-mnist --model cnn --seed SEED` starts from, for
// benchmarks/pytorch/fashion_cnn.py --start DIR: the cnn preset's initial parameters as DataParallel
// draws them (DIR/params.f32: each parameter in order, weight then bias, little-endian float32) and
// the order the training samples are visited in each epoch (DIR/orders.i32: epochs × 60,000 int32).
// With both, PyTorch trains from the same point on the same batches, so the two runs' step losses
// can be compared one by one.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { manualSeed } from "@threadgrad/core";
import { buildModel, epochOrder } from "@threadgrad/workers";

const [dir, seedArg = "0", epochsArg = "3"] = process.argv.slice(2);
if (dir === undefined) {
  process.stderr.write("usage: node scripts/cnn-start.mjs DIR [seed] [epochs]\n");
  process.exit(2);
}
const seed = Number(seedArg);
const epochs = Number(epochsArg);
const TRAIN_SAMPLES = 60_000;

// DataParallel.create: manualSeed(seed), then the model is built; its parameters are the arena's start.
manualSeed(seed);
const model = await buildModel({ kind: "cnn", inChannels: 1, height: 28, width: 28, classes: 10 });
const params = model.parameters();
const flat = new Float32Array(params.reduce((n, p) => n + p.numel, 0));
let offset = 0;
for (const p of params) {
  flat.set(p.data, offset);
  offset += p.numel;
}
const orders = new Int32Array(epochs * TRAIN_SAMPLES);
for (let e = 0; e < epochs; e++) orders.set(epochOrder(TRAIN_SAMPLES, seed, e), e * TRAIN_SAMPLES);
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "params.f32"), new Uint8Array(flat.buffer));
writeFileSync(join(dir, "orders.i32"), new Uint8Array(orders.buffer));
process.stdout.write(
  `${join(dir, "params.f32")}: ${flat.length} parameters (${params.map((p) => `[${p.shape.join(", ")}]`).join(" ")}); ` +
    `${join(dir, "orders.i32")}: ${epochs} epochs of ${TRAIN_SAMPLES} (seed ${seed})\n`,
);
