// `threadgrad export --checkpoint FILE --format onnx|safetensors --out PATH`: the checkpoint's model
// as an ONNX graph (input [batch, features] float32, output the logits or the regression values)
// or as safetensors weights. Built-in models only (mlp, cnn, lenet5; an image model's graph takes the
// flat rows the CLI feeds it, [batch, C·H·W]): a checkpoint names a user's model module, and a file's
// contents are never imported; export such a model with @threadgrad/export's API.
import { existsSync } from "node:fs";
import { Command } from "commander";
import { saveOnnx, saveSafetensors } from "@threadgrad/export";
import { Gpt, buildImageModel, buildMlp, loadTensor, readTrainerCheckpoint } from "@threadgrad/workers";
import { EXIT_OK, UsageError, asUsage } from "../errors.js";
import { readStoredRun } from "../settings.js";
import { ValueError, parseChoice } from "../values.js";

const isClassification = (loss: unknown): boolean =>
  loss === "crossEntropy" ||
  (typeof loss === "object" && loss !== null && "name" in loss && loss.name === "crossEntropy");

function required(cli: Record<string, unknown>, flag: string, key: string): string {
  const v = cli[key];
  if (typeof v !== "string" || v === "") throw new UsageError(`${flag} is required`);
  return v;
}

/** Runs `threadgrad export` with commander's option values; returns the exit status. */
export async function runExport(cli: Record<string, unknown>): Promise<number> {
  const path = required(cli, "--checkpoint FILE", "checkpoint");
  const out = required(cli, "--out PATH", "out");
  const format = (() => {
    try {
      return parseChoice(cli.format ?? "onnx", ["onnx", "safetensors"] as const);
    } catch (e) {
      if (!(e instanceof ValueError)) throw e;
      throw new UsageError(`--format ${e.message}`);
    }
  })();
  const overwrite = cli.force === true;
  // The writers refuse too (atomically); this check only gives the command line's wording.
  if (!overwrite && existsSync(out)) throw new UsageError(`--out ${out} already exists; pass --force to replace it`);
  // The validating reader has already checked every parameter's name and shape against the spec.
  const ckpt = asUsage(() => readTrainerCheckpoint(path));
  const { config, params } = ckpt;
  const spec = config.model;
  if (!("kind" in spec)) {
    throw new UsageError(
      `export: ${path} holds a model from a user module; export it with exportOnnx or saveSafetensors from @threadgrad/export`,
    );
  }
  if (spec.kind === "gpt" && format === "onnx")
    throw new UsageError(`export: ${path} holds a gpt; it exports as safetensors only (--format safetensors)`);
  const model = asUsage(() =>
    spec.kind === "mlp"
      ? buildMlp(spec.sizes, spec.activation, spec.dropout)
      : spec.kind === "gpt"
        ? new Gpt(spec)
        : buildImageModel(spec),
  );
  asUsage(() => {
    for (const [name, p] of model.namedParameters()) {
      const stored = params.get(name);
      if (stored === undefined) throw new Error(`checkpoint: ${path} has no parameter '${name}'`);
      p.data.set(loadTensor(stored, `${path} parameter '${name}'`));
    }
  });
  model.eval();
  const outputName = isClassification(config.loss) ? "logits" : "values";
  if (spec.kind !== "mlp" && format === "safetensors") {
    saveSafetensors(model, out, { overwrite });
    process.stdout.write(`wrote ${out} (safetensors: the ${spec.kind}'s ${model.parameters().length} tensors)\n`);
    return EXIT_OK;
  }
  // What the CLI feeds the model: flat rows (an image model's Unflatten shapes them).
  if (spec.kind === "gpt") throw new Error("export: unreachable (a gpt exports as safetensors above)");
  const [features, outputs] =
    spec.kind === "mlp"
      ? [spec.sizes[0]!, spec.sizes.at(-1)!]
      : [spec.inChannels * spec.height * spec.width, spec.classes];
  // The run's standardisation goes into the graph: it takes raw feature values and gives target units.
  const pre = readStoredRun(ckpt)?.preprocess ?? null;
  const inputScaling = pre?.features ?? undefined;
  const outputScaling = pre?.target ? { mean: [pre.target.mean], std: [pre.target.std] } : undefined;
  if (format === "onnx")
    saveOnnx(model, out, { sampleShape: [features], outputName, overwrite, inputScaling, outputScaling });
  else saveSafetensors(model, out, { overwrite });
  const shape = `[batch, ${features}] float32 -> ${outputName} [batch, ${outputs}]`;
  const scaled = [inputScaling && "standardises its inputs", outputScaling && "gives target units"].filter(Boolean);
  const note = format === "onnx" && scaled.length > 0 ? `; the graph ${scaled.join(" and ")}` : "";
  const weightsNote =
    format === "safetensors" && (inputScaling || outputScaling)
      ? "; the weights expect standardised inputs and give standardised targets (mean and std: the run's checkpoint)"
      : "";
  process.stdout.write(`wrote ${out} (${format}${format === "onnx" ? `: input ${shape}` : ""}${note}${weightsNote})\n`);
  return EXIT_OK;
}

const EXPORT_EXAMPLES = `
Examples:
  $ threadgrad export --checkpoint runs/<run>/checkpoint-best.msgpack --format onnx --out model.onnx
  $ threadgrad export --checkpoint runs/<run>/checkpoint-best.msgpack --format safetensors --out model.safetensors

onnx: IR version 8, opset 17; input 'input' [batch, features] float32 (raw csv feature values: a run's
standardisation is Sub/Div nodes in the graph; images: pixels / 255, channels × height × width flattened
as the cnn and lenet5 take them), output 'logits' (classification) or
'values' (regression, in the target's units). safetensors: the parameters under
PyTorch's names for the same nn.Sequential (0.weight, 0.bias, 2.weight, ...).`;

/** The `export` subcommand for the program. */
export function exportCommand(onDone: (code: number) => void): Command {
  return new Command("export")
    .description("write a checkpoint's model as ONNX or its weights as safetensors")
    .requiredOption("--checkpoint <file>", "checkpoint written by threadgrad train (required)")
    .option("--format <name>", "onnx (default) or safetensors")
    .requiredOption("--out <path>", "file to write (required); an existing file is kept unless --force")
    .option("--force", "replace an existing --out file")
    .addHelpText("after", EXPORT_EXAMPLES)
    .action(async (opts: Record<string, unknown>) => onDone(await runExport(opts)));
}
