// Usage (after a build):
// node benchmarks/scripts/scaling-many-cores.mjs '[{"workers":1,"batch":256,"inFlight":8,"warm":60,"epochs":20}, ...]'
// (run from a folder whose node_modules resolves @threadgrad/workers, e.g. benchmarks/). Prints one
// JSON line per case, then a table with the efficiency against the 1-worker case of the same batch.
// W1 (784-256-256-10, Adam) with DataParallel at several worker counts, on a many-core machine.
import os from "node:os";
import { DataParallel } from "@threadgrad/workers";
import { Generator } from "@threadgrad/core";
const sizes = [784, 256, 256, 10];
const g = new Generator(0);
function data(n) {
  return {
    x: new Float32Array(n * 784).map(() => g.normal()),
    y: new Int32Array(n).map(() => g.integer(0, 10)),
    length: n,
  };
}
const cases = JSON.parse(process.argv[2]);
const out = [];
console.log(`cpus ${os.cpus().length} (${os.cpus()[0]?.model}), node ${process.version}`);
for (const c of cases) {
  const ds = data(8 * c.batch);
  const t = await DataParallel.create({
    model: { kind: "mlp", sizes },
    workers: c.workers,
    optimizer: { name: "adam", lr: 1e-3 },
    maxBatchSize: c.batch,
    stepsInFlight: c.inFlight,
  });
  await t.fit(ds, { epochs: c.warm, batchSize: c.batch });
  const ms = [];
  const tm = { computeMs: [], waitMs: [], reduceMs: [], updateMs: [] };
  for (let e = 0; e < c.epochs; e++) {
    const t0 = performance.now();
    await t.fit(ds, {
      epochs: t.progress.epoch + 1,
      batchSize: c.batch,
      onStep: (s) => {
        for (const k in tm) tm[k].push(s.timings[k]);
      },
    });
    ms.push(performance.now() - t0);
  }
  await t.close();
  const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
  const r = {
    ...c,
    samplesPerSec: Math.round((8 * c.batch * 1000) / med(ms)),
    min: Math.round((8 * c.batch * 1000) / Math.max(...ms)),
    max: Math.round((8 * c.batch * 1000) / Math.min(...ms)),
  };
  for (const k in tm) r[k] = +med(tm[k]).toFixed(3);
  out.push(r);
  console.log(JSON.stringify(r));
}
for (const r of out) {
  const one = out.find((o) => o.workers === 1 && o.batch === r.batch && o.inFlight === 8);
  if (one) r.efficiency = +(r.samplesPerSec / (r.workers * one.samplesPerSec)).toFixed(3);
}
console.log("\nworkers batch inFlight samples/s (min-max) efficiency | medians compute wait reduce update ms");
for (const r of out)
  console.log(
    `${r.workers} ${r.batch} ${r.inFlight} ${r.samplesPerSec} (${r.min}-${r.max}) ${r.efficiency ?? "-"} | ` +
      `${r.computeMs} ${r.waitMs} ${r.reduceMs} ${r.updateMs}`,
  );
if (process.env.OUT)
  (await import("node:fs")).writeFileSync(
    `${process.env.OUT}/scaling.json`,
    JSON.stringify({ cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, rows: out }, null, 1),
  );
