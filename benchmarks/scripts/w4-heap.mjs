// Usage (after a build, from benchmarks/): node scripts/w4-heap.mjs [workers=2] [region]
// W4 (the tanh MLP with a gradient penalty, w4-model.ts) trained by DataParallel as a module model,
// by default without a step region, so every op's result is a fresh ArrayBuffer: samples/s over 60
// epochs of 8 batches of 256 after 40 untimed ones, and the full collections (mark-compacts) V8
// ran in that time, counted from `--trace-gc` in a child process. `region` trains with
// stepRegion: true. Uses only the packages' public API, so it runs unchanged at older commits.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
if (args[0] !== "--child") {
  const r = spawnSync(process.execPath, ["--trace-gc", fileURLToPath(import.meta.url), "--child", ...args], {
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  if (r.status !== 0) throw new Error(`w4-heap: the run failed:\n${r.stderr}`);
  const result = r.stdout.split("\n").find((line) => line.startsWith("w4-heap:"));
  // --trace-gc lines start the run's collections; the timed part is between the two marks.
  const timed = r.stdout.slice(r.stdout.indexOf("w4-heap-start"), r.stdout.indexOf("w4-heap:"));
  console.log(`${result}; ${(timed.match(/Mark-Compact/g) ?? []).length} mark-compacts while timed`);
} else {
  const { randomClassification } = await import("@threadgrad/cli");
  const { DataParallel } = await import("@threadgrad/workers");
  const workers = Number(args[1] ?? 2);
  const region = args[2] === "region";
  const w4 = new URL("../dist/w4-model.js", import.meta.url).href;
  const data = randomClassification(8 * 256, 784, 10, 0);
  const t = await DataParallel.create({
    model: { module: w4, export: "createModel" },
    loss: { module: w4, export: "w4ShardLoss" },
    optimizer: { name: "adam", lr: 1e-3 },
    workers,
    seed: 0,
    maxBatchSize: 256,
    stepRegion: region,
  });
  const epoch = () => t.fit(data, { epochs: t.progress.epoch + 1, batchSize: 256 });
  for (let e = 0; e < 40; e++) await epoch();
  console.log("w4-heap-start");
  const t0 = performance.now();
  for (let e = 0; e < 60; e++) await epoch();
  const rate = (60 * 8 * 256 * 1000) / (performance.now() - t0);
  console.log(`w4-heap: ${workers} worker(s)${region ? ", step region" : ""}: ${rate.toFixed(0)} samples/s`);
  await t.close();
}
