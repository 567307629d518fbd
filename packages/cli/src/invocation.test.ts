import { describe, expect, it } from "vitest";
import { runnable, runnableText } from "./invocation.js";

const PNPM = "pnpm/12.4.2 npm/? node/v20.20.2 linux x64";
const NPM = "npm/11.19.1 node/v20.20.2 linux x64 workspaces/false";
const RESUME = "threadgrad train --resume runs/a/checkpoint-latest.msgpack";

describe("runnable", () => {
  it("issue #13: run through the root scripts with pnpm, commands go through the root threadgrad script", () => {
    for (const script of ["threadgrad", "train"]) {
      expect(runnable(RESUME, { npm_lifecycle_event: script, npm_config_user_agent: PNPM })).toBe(
        "npx -y pnpm@12.4.2 threadgrad train --resume runs/a/checkpoint-latest.msgpack",
      );
    }
  });

  it("with npm, the arguments follow npm run threadgrad --", () => {
    expect(runnable(RESUME, { npm_lifecycle_event: "threadgrad", npm_config_user_agent: NPM })).toBe(
      "npm run threadgrad -- train --resume runs/a/checkpoint-latest.msgpack",
    );
  });

  it("is the plain threadgrad command outside the root scripts (an installed bin, or another script)", () => {
    expect(runnable(RESUME, {})).toBe(RESUME);
    expect(runnable(RESUME, { npm_lifecycle_event: "test", npm_config_user_agent: PNPM })).toBe(RESUME);
    expect(runnable(RESUME, { npm_lifecycle_event: "threadgrad", npm_config_user_agent: "yarn/4.0.0" })).toBe(RESUME);
  });

  it("rewrites every command of a help text, and only commands", () => {
    const env = { npm_lifecycle_event: "threadgrad", npm_config_user_agent: PNPM };
    const help = "Examples:\n  $ threadgrad train --epochs 2\nRun threadgrad <command> --help; threadgrad-ish stays";
    expect(runnableText(help, env)).toBe(
      "Examples:\n  $ npx -y pnpm@12.4.2 threadgrad train --epochs 2\n" +
        "Run npx -y pnpm@12.4.2 threadgrad <command> --help; threadgrad-ish stays",
    );
  });
});
