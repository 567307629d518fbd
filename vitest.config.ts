import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

// Tests import every workspace package from its TypeScript source. Worker threads cannot: they load
// the built JavaScript in dist/, which is why `pnpm test` builds first.
const alias = {
  "@threadgrad/core": src("core"),
  "@threadgrad/optim": src("optim"),
  "@threadgrad/workers": src("workers"),
  "@threadgrad/export": src("export"),
  "@threadgrad/cli": src("cli"),
};

// Worker and end-to-end test files spin on Atomics barriers; run alongside other files they would
// oversubscribe a 2-core machine, so they form their own project, run one file at a time. So do the
// MPI tests, whose processes poll their requests.
export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      {
        resolve: { alias },
        test: {
          name: "unit",
          include: ["packages/*/src/**/*.test.ts", "benchmarks/src/**/*.test.ts"],
          exclude: ["**/node_modules/**", "**/dist/**", "packages/workers/src/**"],
          testTimeout: 60_000,
        },
      },
      {
        resolve: { alias },
        test: {
          name: "workers",
          include: [
            "packages/workers/src/**/*.test.ts",
            "packages/cli/test/**/*.test.ts",
            "packages/mpi/test/**/*.test.ts",
          ],
          exclude: ["**/node_modules/**", "**/dist/**"],
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
