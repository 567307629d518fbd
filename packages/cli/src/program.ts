// The command line: commander parses, the commands run, and every failure maps to an exit status
// (0 done, 1 failed while running, 2 usage: bad flags, values or data, 130 Ctrl-C).
import { Command, CommanderError, Option } from "commander";
import { runBench } from "./commands/bench.js";
import { runEval } from "./commands/eval.js";
import { exportCommand } from "./commands/export.js";
import { predictCommand } from "./commands/predict.js";
import { sampleCommand } from "./commands/sample.js";
import { runTrain } from "./commands/train.js";
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError } from "./errors.js";
import { TRAIN_FLAGS } from "./flags.js";
import { runnable, runnableText } from "./invocation.js";
import { VERSION } from "./version.js";

const TRAIN_EXAMPLES = `
Examples:
  $ threadgrad train                                   # built-in digits, mlp:784,128,10, 20 epochs
  $ threadgrad train --data fashion-mnist --model mlp:784,256,256,10 --epochs 10 --lr-schedule cosine --warmup-steps 200
  $ threadgrad train --data csv:houses.csv --target price --optimizer sgd --lr 0.01 --momentum 0.9
  $ threadgrad train --config run.json --workers 2 --json > events.jsonl
  $ threadgrad train --model cnn --epochs 3 --limit 2000                # the built-in convolutional network
  $ threadgrad train --resume runs/2025-01-31T14-05-09/checkpoint-latest.msgpack --epochs 30
  $ mpirun -np 2 threadgrad train --distributed mpi --workers 1     # 2 processes; process 0 prints and saves

Data: digits (built-in: 10,000 MNIST digits, 8333 train / 1667 test), idx:DIR and mnist:DIR (train-/t10k-
images-idx3-ubyte and labels-idx1-ubyte, optionally .gz), fashion-mnist[:DIR], csv:FILE (header row; --target),
images:DIR (a subfolder of PNG/JPEG files per class). Models: mlp:..., cnn and lenet5 (image data), chargpt and
gpt:layers=2,heads=4,dim=128,context=64 (a byte-level transformer: vocab 256, MLP 4·dim), ./net.mjs[#export].
Writes config.json, metrics.jsonl, checkpoint-latest.msgpack, checkpoint-best.msgpack and report.html to --out.
Ctrl-C once: finish the step, write a checkpoint, print the resume command (exit 130); twice: quit at once.
Exit status: 0 done, 1 training failed, 2 bad flags, values or data, 130 interrupted.`;

const EVAL_EXAMPLES = `
Examples:
  $ threadgrad eval --checkpoint runs/2025-01-31T14-05-09/checkpoint-best.msgpack
  $ threadgrad eval --checkpoint model.msgpack --data mnist:/data/mnist --json

Without --data it evaluates on the test set of the data the checkpoint was trained on.`;

const BENCH_EXAMPLES = `
Examples:
  $ threadgrad bench                                   # W1 on 1 worker and on every usable core
  $ threadgrad bench --workers 1,2 --steps 20 --json
  $ threadgrad bench --model mlp:784,1024,1024,10 --batch-size 512
  $ threadgrad bench --model chargpt --workers 1,2 --json   # W7: tokens/s of a character GPT
  $ mpirun -np 2 threadgrad bench --distributed mpi --workers 1   # W8: W1 across 2 processes

W1: mlp:784,256,256,10 ReLU, batch 256, cross-entropy, Adam lr 1e-3, on random N(0,1) data with random labels.
W7 reads the fortunes text from /usr/share/games/fortunes (THREADGRAD_FORTUNES_DIR names another folder),
or trains on random tokens when it is absent.
Scaling efficiency = throughput(N) / (N x throughput(1)) for the largest N.
--distributed mpi: every process of the job trains each row (P processes x N workers, samples/s of the
whole job); when all run on one host, process 0 then trains 1 process x P*N workers for comparison;
last, the MPI all-reduce of the model's gradient, 1 MiB and 16 MiB is timed (median ms, GB/s).`;

function trainCommand(onDone: (code: number) => void): Command {
  const cmd = new Command("train")
    .description("train a model data-parallel on worker threads")
    .allowExcessArguments(false);
  for (const f of TRAIN_FLAGS) {
    const option = new Option(f.flags, f.help);
    if (f.isHidden) option.hideHelp();
    // With its positive twin defined first, commander leaves a --no-X flag undefined unless given,
    // so a config file's value is not overridden by a default.
    if (f.flags.startsWith("--no-")) cmd.addOption(new Option(`--${f.flags.slice(5)}`).hideHelp());
    cmd.addOption(option);
  }
  return cmd
    .addHelpText("after", runnableText(TRAIN_EXAMPLES))
    .action(async (opts: Record<string, unknown>) => onDone(await runTrain(opts)));
}

function evalCommand(onDone: (code: number) => void): Command {
  return new Command("eval")
    .description("evaluate a checkpoint: loss, accuracy, per-class accuracy and confusion matrix")
    .requiredOption("--checkpoint <file>", "checkpoint written by threadgrad train (required)")
    .option("--data <spec>", "data set (default: the one the checkpoint was trained on)")
    .option("--target <column>", "csv: the column to predict")
    .option("--task <task>", "csv: classification or regression")
    .option("--test-split <fraction>", "digits and csv: fraction held out for testing")
    .option("--split <name>", "evaluate on the test (default) or train split")
    .option("--model <module>", "a checkpoint of a module's model: that module again, ./net.mjs[#export]")
    .option("--workers <n>", "worker threads: auto (default) or a number")
    .option("--json", "print the result as one JSON object")
    .addHelpText("after", runnableText(EVAL_EXAMPLES))
    .action(async (opts: Record<string, unknown>) => onDone(await runEval(opts)));
}

function benchCommand(onDone: (code: number) => void): Command {
  return new Command("bench")
    .description("measure training throughput (samples/s) and scaling across worker counts")
    .option("--workers <list>", "worker counts to compare, e.g. 1,2 (default: 1 and the usable cores)")
    .option(
      "--model <spec>",
      "mlp:IN,HIDDEN...,OUT (default W1: mlp:784,256,256,10), cnn (W6, on Fashion-MNIST) or chargpt (W7, on text)",
    )
    .option("--activation <name>", "relu (default), tanh or gelu")
    .option("--batch-size <n>", "samples per step (default 256; cnn 128, chargpt 32 windows)")
    .option("--steps <n>", "timed steps per worker count (default 200; cnn 50, chargpt 30)")
    .option(
      "--warmup-steps <n>",
      "untimed steps before timing: V8 compiles the per-step code over the first ~800 (default 600; cnn 20, chargpt 10)",
    )
    .option("--seed <n>", "seed of the random data and the model (default 0)")
    .option(
      "--distributed <transport>",
      "mpi: train across the processes of an MPI job (run under mpirun or srun; process 0 prints)",
    )
    .option("--json", "print one JSON line per worker count and a final bench event")
    .addHelpText("after", runnableText(BENCH_EXAMPLES))
    .action(async (opts: Record<string, unknown>) => onDone(await runBench(opts)));
}

/** Builds the `threadgrad` program; `onDone` receives each command's exit status. */
export function buildProgram(onDone: (code: number) => void): Command {
  const program = new Command("threadgrad")
    .description("train neural networks data-parallel on worker threads")
    .version(VERSION, "-V, --version", "print the version")
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    .allowExcessArguments(false);
  program.addCommand(trainCommand(onDone)).addCommand(evalCommand(onDone)).addCommand(benchCommand(onDone));
  program.addCommand(exportCommand(onDone)).addCommand(predictCommand(onDone)).addCommand(sampleCommand(onDone));
  program.addHelpText(
    "after",
    runnableText(`
Examples:
  $ threadgrad train                                   # built-in digits: about 4 s on 2 cores, ~96% test accuracy
  $ threadgrad eval --checkpoint runs/<run>/checkpoint-best.msgpack
  $ threadgrad predict --checkpoint runs/<run>/checkpoint-best.msgpack --data csv:new.csv --out preds.csv
  $ threadgrad sample --checkpoint runs/<run>/checkpoint-best.msgpack --prompt "Q: " --tokens 200
  $ threadgrad bench --workers 1,2

Run threadgrad <command> --help for each command's flags and examples.`),
  );
  // addCommand does not copy settings the way .command() does.
  for (const cmd of program.commands) cmd.exitOverride().showHelpAfterError(`(add --help for usage)`);
  return program;
}

/**
 * Runs the command line (`argv` without node and the script) and returns the exit status.
 * @example process.exitCode = await main(["train", "--epochs", "1"])
 */
export async function main(argv: string[]): Promise<number> {
  let code: number = EXIT_OK;
  const program = buildProgram((c) => {
    code = c;
  });
  if (argv.length === 0) {
    process.stderr.write(program.helpInformation());
    return EXIT_USAGE;
  }
  const command = argv[0] ?? "";
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help"
        ? EXIT_OK
        : EXIT_USAGE;
    }
    if (err instanceof UsageError) {
      for (const line of err.messages) process.stderr.write(`threadgrad ${command}: ${line}\n`);
      process.stderr.write(`(run ${runnable(`threadgrad ${command}`)} --help for usage)\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`threadgrad ${command}: error: ${(err as Error).message ?? String(err)}\n`);
    if (process.env.THREADGRAD_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return EXIT_FAILED;
  }
}
