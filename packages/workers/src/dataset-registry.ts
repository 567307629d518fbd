import type { MessagePort } from "node:worker_threads";
import { isTensor } from "@threadgrad/core";
import type { CommandChannel } from "./command-channel.js";
import { type DatasetChecks, type DatasetLike, type SharedDataset, toSharedDataset } from "./dataset.js";
import * as P from "./protocol.js";
import { isSequenceLoss, tokenModel } from "./sequence-loss.js";
import { type LossSpec, type ModelSpec, isClassification } from "./spec.js";

/** The object a data set is cached under: its features' storage, so fresh `{ x, y }` wrappers match. */
export function datasetKey(ds: DatasetLike): unknown {
  return ds !== null && typeof ds === "object" && "x" in ds ? (isTensor(ds.x) ? ds.x.data : ds.x) : ds;
}

/** What the model spec and loss tell about the data sets it takes, checked in main before the workers see one. */
export function datasetChecks(model: ModelSpec, loss: LossSpec): DatasetChecks {
  const tokens = isSequenceLoss(loss);
  const classification = isClassification(loss) && !tokens;
  const mlp = "kind" in model && model.kind === "mlp" ? model.sizes : null;
  const lm = tokenModel(model);
  const weights = typeof loss === "object" && "name" in loss ? loss.weight?.length : undefined;
  // A module loss may take targets of any shape: only a built-in loss fixes the outputs.
  const builtIn = classification || tokens || loss === "mse";
  return {
    classification,
    tokens,
    inputs: mlp?.[0],
    outputs: builtIn ? (mlp?.at(-1) ?? lm?.vocab ?? weights) : undefined,
    // the mlp takes rows: images [N, 1, 28, 28] reach it as [N, 784]
    flatRows: mlp !== null,
    // Built-in models fix their input: features for the mlp and image models, token ids for a language model.
    inputDtype: "kind" in model ? (lm === null ? "float32" : "int32") : undefined,
    vocab: lm?.vocab,
    context: lm?.context,
  };
}

/**
 * Spare storage kept for reuse, in bytes: at least this much, or 4 times the largest copy made.
 * Dropping a spare buffer frees little: the ranks hold it until their collectors run (see copies).
 */
const MIN_SPARE_BYTES = 256 * 2 ** 20;

/**
 * The data sets main has shared with the workers, keyed by their features' storage: each is copied
 * into shared memory (unless already there) and sent to every rank once, and forgotten by the ranks
 * when main forgets it or can no longer reach it. Copies of forgotten data sets are kept as spare
 * storage for the next ones.
 * @example const shared = await registry.register({ x, y });
 */
export class DatasetRegistry {
  // Keyed by the features' storage, so fresh `{ x, y }` wrappers around the same arrays reuse it.
  private readonly datasets = new WeakMap<object, { shared: SharedDataset; y: unknown }>();
  // Ids of data sets the workers hold but main can no longer reach (their arrays were collected, or
  // replaced): sent with the next RECEIVE, so the workers let go of them too.
  private readonly unreachable: number[] = [];
  private readonly released = new FinalizationRegistry<number>((id) => void this.unreachable.push(id));
  // The shared copies main made of data sets, by data set id; once every rank has let go of a data
  // set its copies become spare storage for the next ones. A rank frees a SharedArrayBuffer only
  // when its own garbage collector runs, which a rank that allocates little seldom does: fresh data
  // sets evaluated one after another would pile up there (the workers holding none) until close.
  private readonly copies = new Map<number, SharedArrayBuffer[]>();
  private readonly spare: SharedArrayBuffer[] = [];
  private largestCopy = 0;
  private readonly checks: DatasetChecks;

  constructor(
    private readonly channel: CommandChannel,
    private readonly ports: readonly MessagePort[],
    model: ModelSpec,
    loss: LossSpec,
  ) {
    this.checks = datasetChecks(model, loss);
  }

  async register(ds: DatasetLike): Promise<SharedDataset> {
    this.channel.assertOpen();
    const key = datasetKey(ds);
    const y = ds !== null && typeof ds === "object" && "y" in ds ? (isTensor(ds.y) ? ds.y.data : ds.y) : null;
    const known = this.datasets.get(key as object);
    if (known !== undefined && known.y === y) return known.shared;
    if (known !== undefined) {
      // Same features, other targets: the old copy goes.
      this.datasets.delete(key as object);
      this.released.unregister(key as object);
      this.unreachable.push(known.shared.id);
    }
    // Let the workers drop what main no longer reaches first, so its storage serves this copy.
    if (this.unreachable.length > 0) await this.receive("forgetting data sets");
    const buffers: SharedArrayBuffer[] = [];
    const shared = toSharedDataset(ds, this.checks, (bytes) => {
      this.largestCopy = Math.max(this.largestCopy, bytes);
      const buffer = this.takeSpare(bytes) ?? new SharedArrayBuffer(bytes);
      buffers.push(buffer);
      return buffer;
    });
    if (buffers.length > 0) this.copies.set(shared.id, buffers);
    for (const port of this.ports) port.postMessage(shared);
    await this.channel.command(P.Cmd.RECEIVE, "sending the data set");
    this.datasets.set(key as object, { shared, y });
    this.released.register(key as object, shared.id, key as object);
    return shared;
  }

  /**
   * Sends the ids of the data sets main no longer reaches and has every rank read its messages;
   * the copies of those data sets become spare storage. Returns the RECEIVE's slot.
   */
  private async receive(what: string): Promise<number> {
    const forget = this.unreachable.splice(0);
    if (forget.length > 0) for (const port of this.ports) port.postMessage({ forget });
    const slot = await this.channel.command(P.Cmd.RECEIVE, what);
    for (const id of forget) {
      this.spare.push(...(this.copies.get(id) ?? []));
      this.copies.delete(id);
    }
    // Beyond the cap the oldest go to the garbage collectors (main's, and in time the ranks').
    const cap = Math.max(MIN_SPARE_BYTES, 4 * this.largestCopy);
    let bytes = this.spare.reduce((sum, b) => sum + b.byteLength, 0);
    while (bytes > cap) bytes -= this.spare.shift()!.byteLength;
    return slot;
  }

  /** The smallest spare buffer of at least `bytes` bytes, taken out of the spares, or null. */
  private takeSpare(bytes: number): SharedArrayBuffer | null {
    let best = -1;
    this.spare.forEach((b, i) => {
      if (b.byteLength >= bytes && (best < 0 || b.byteLength < this.spare[best]!.byteLength)) best = i;
    });
    return best < 0 ? null : this.spare.splice(best, 1)[0]!;
  }

  /**
   * Lets the workers drop `data` (see DataParallel.forget); resolves with how many data sets each
   * worker still holds (the most of any rank).
   */
  async forget(data: DatasetLike): Promise<number> {
    const key = datasetKey(data);
    const known = this.datasets.get(key as object);
    if (known !== undefined) {
      this.datasets.delete(key as object);
      this.released.unregister(key as object);
      this.unreachable.push(known.shared.id);
    }
    const slot = await this.receive("forgetting a data set");
    let held = 0;
    for (let r = 0; r < this.channel.numWorkers; r++)
      held = Math.max(held, this.channel.scalars(r, slot)[P.R_DATASETS_HELD]!);
    return held;
  }

  /** Lets go of the spare storage (at close). */
  clear(): void {
    this.copies.clear();
    this.spare.length = 0;
  }
}
