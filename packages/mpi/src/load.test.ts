import { describe, expect, it } from "vitest";
import { loadBinding, NOT_AVAILABLE } from "./load.js";

describe("loadBinding", () => {
  it("a missing addon gives an error naming the Debian packages, the build command and the cause", () => {
    const loaded = loadBinding("../native/build/Release/no-such-addon.node");
    expect("error" in loaded).toBe(true);
    if (!("error" in loaded)) return;
    expect(loaded.error.message).toMatch(/^MPI is not available: install Debian's openmpi-bin and libopenmpi-dev/);
    expect(loaded.error.message).toContain("then run pnpm --filter @threadgrad/mpi build");
    expect(loaded.error.message).toContain("no-such-addon.node");
    expect(loaded.error.message.startsWith(NOT_AVAILABLE)).toBe(true);
  });
});
