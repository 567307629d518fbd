// How the user started this command, so the commands it prints (help examples, the resume line
// after Ctrl-C) run when pasted. Through the clone's root package.json scripts the package manager
// sets npm_lifecycle_event (the script's name) and npm_config_user_agent ("pnpm/12.4.2 npm/? ...");
// there `threadgrad` is not on the PATH, but the root `threadgrad` script runs the built CLI.

/** The root package.json scripts that run this CLI. */
const ROOT_SCRIPTS = ["threadgrad", "train"];

/**
 * `command` (which starts with `threadgrad`) as the user can run it: through the root `threadgrad`
 * script with the package manager they used (`npx -y pnpm@12.4.2 threadgrad train ...`,
 * `npm run threadgrad -- train ...`) when they ran one of the root scripts; as it is otherwise.
 * @example runnable("threadgrad train --resume runs/x/checkpoint-latest.msgpack")
 */
export function runnable(command: string, env: NodeJS.ProcessEnv = process.env): string {
  if (!ROOT_SCRIPTS.includes(env.npm_lifecycle_event ?? "") || !command.startsWith("threadgrad")) return command;
  const agent = /^(pnpm|npm)\/(\S+)/.exec(env.npm_config_user_agent ?? "");
  if (agent === null) return command;
  const args = command.slice("threadgrad".length);
  return agent[1] === "pnpm" ? `npx -y pnpm@${agent[2]} threadgrad${args}` : `npm run threadgrad --${args}`;
}

/** Every `threadgrad ...` command in a help text, made runnable (see runnable). */
export const runnableText = (text: string, env: NodeJS.ProcessEnv = process.env): string =>
  text.replace(/\bthreadgrad(?= |$)/gm, (word) => runnable(word, env));
