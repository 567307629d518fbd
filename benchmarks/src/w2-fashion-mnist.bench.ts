// W2: how long does real training take and what accuracy does it reach? The W1 MLP on
// Fashion-MNIST (60k train / 10k test), batch 128, Adam 1e-3, 3 epochs, data-parallel on the
// available cores: seconds per epoch and test accuracy. Skipped when the data is not installed.
import { type DataSplit, W1, loadDataset } from "@threadgrad/cli";
import { DataParallel } from "@threadgrad/workers";
import { type Ctx, measure } from "./measure.js";
import { pytorchRows } from "./peers/pytorch.js";
import { type Row, rowFrom, skipRow } from "./table.js";

export const W2 = { batch: 128, lr: 1e-3, epochs: 3, seed: 0 } as const;
/** --quick trains one epoch on this many samples (a smoke test, not a result) */
const QUICK_TRAIN = 4096;

export async function w2FashionMnist(ctx: Ctx): Promise<Row[]> {
  const key = {
    workload: "W2 fashion-mnist",
    impl: "threadgrad",
    peer: false,
    unit: "s/epoch",
    better: "lower" as const,
    threads: ctx.cores,
  };
  let data: DataSplit;
  try {
    data = loadDataset("fashion-mnist"); // the cli's loader: the files `threadgrad train --data fashion-mnist` reads
  } catch (err) {
    return [skipRow({ ...key, config: `batch ${W2.batch}` }, `skipped: ${(err as Error).message}`)];
  }
  const n = ctx.quick ? Math.min(QUICK_TRAIN, data.train.length) : data.train.length;
  const f = data.train.features;
  const train = { x: data.train.x.subarray(0, n * f), y: data.train.y.subarray(0, n), length: n };
  const epochs = ctx.quick ? 1 : W2.epochs;
  const config =
    `${n.toLocaleString("en-US")} train, batch ${W2.batch}, ` +
    `${epochs} epoch${epochs > 1 ? "s" : ""}, ${ctx.cores} workers`;
  ctx.log(`W2 ${config}`);
  const trainer = await DataParallel.create({
    model: { kind: "mlp", sizes: [...W1.sizes], activation: "relu" },
    loss: "crossEntropy",
    optimizer: { name: "adam", lr: W2.lr },
    workers: ctx.cores,
    seed: W2.seed,
  });
  try {
    // one measured call = one epoch; the first epoch is not a warm-up here: it is part of the run
    const t = await measure(
      "W2 epoch",
      async () => {
        await trainer.fit(train, { epochs: trainer.progress.epoch + 1, batchSize: W2.batch });
      },
      ctx,
      { iterations: epochs, warmupIterations: 0, time: 0 },
    );
    const evalResult = await trainer.evaluate({ x: data.test.x, y: data.test.y, length: data.test.length });
    const acc = evalResult.accuracy ?? NaN;
    const mine = [
      rowFrom({ ...key, config }, t, (ms) => ms / 1000, {
        note:
          `test accuracy ${(acc * 100).toFixed(2)}% (${data.test.length.toLocaleString("en-US")} test samples)` +
          (ctx.quick ? "; quick: a subset, not a result" : ""),
        extra: { testAccuracy: acc, epochs, trainSamples: n, workers: ctx.cores },
      }),
    ];
    // PyTorch trains the same MLP (its own initialisation, seed 0) for as many epochs, with the cores to itself.
    await trainer.close();
    return [...mine, ...(await pytorchRows(ctx, "w2"))];
  } catch (err) {
    await trainer.close();
    throw err;
  }
}
