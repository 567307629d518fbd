#!/usr/bin/env node
// Builds the MPI addon (native/build/Release/threadgrad_mpi.node) when MPI is installed; prints why
// and exits 0 when it is not, so that threadgrad installs and builds everywhere without MPI.
//
// - MPI flags: `mpicc --showme:compile` / `--showme:link` (Open MPI's wrapper), else pkg-config
//   (ompi, then mpich).
// - node-gyp: the copy that ships inside npm, found next to the running Node. It is present
//   wherever Node was installed with npm, so the project needs no node-gyp dependency (and none of
//   the network packages node-gyp pulls in).
// - Headers: `--nodedir` is the running Node's own prefix (<prefix>/include/node), so nothing is
//   downloaded and the addon matches the Node that loads it.
// `--force` builds even when the addon is newer than its sources.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const packageDir = fileURLToPath(new URL("../", import.meta.url));
const nativeDir = join(packageDir, "native");
const output = join(nativeDir, "build", "Release", "threadgrad_mpi.node");
const INSTALL_HINT = "install Debian's openmpi-bin and libopenmpi-dev (apt-get install -y openmpi-bin libopenmpi-dev)";

function run(command, args) {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return undefined;
  }
}

function mpiFlags() {
  const compile = run("mpicc", ["--showme:compile"]);
  const link = run("mpicc", ["--showme:link"]);
  if (compile !== undefined && link !== undefined) return { how: "mpicc --showme", compile, link };
  for (const name of ["ompi", "mpich"]) {
    const cflags = run("pkg-config", ["--cflags", name]);
    const libs = run("pkg-config", ["--libs", name]);
    if (cflags !== undefined && libs !== undefined) return { how: `pkg-config ${name}`, compile: cflags, link: libs };
  }
  return undefined;
}

function findNodeGyp() {
  const prefix = dirname(dirname(process.execPath));
  const candidates = [
    process.env.npm_config_node_gyp,
    join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"),
    join(prefix, "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"),
  ];
  return candidates.find((path) => path?.endsWith(".js") && existsSync(path));
}

function isUpToDate() {
  if (process.argv.includes("--force") || !existsSync(output)) return false;
  const built = statSync(output).mtimeMs;
  return ["mpi_addon.cc", "transport.cc", "transport.h", "binding.gyp"].every(
    (file) => statSync(join(nativeDir, file)).mtimeMs < built,
  );
}

const flags = mpiFlags();
if (flags === undefined) {
  console.log("@threadgrad/mpi: MPI not found (no mpicc, no pkg-config ompi/mpich); skipping the addon.");
  console.log(`@threadgrad/mpi: to use MPI, ${INSTALL_HINT}.`);
  process.exit(0);
}
if (isUpToDate()) {
  console.log(`@threadgrad/mpi: ${output} is up to date`);
  process.exit(0);
}
const nodeGyp = findNodeGyp();
if (nodeGyp === undefined) {
  console.error("@threadgrad/mpi: MPI is installed but npm's bundled node-gyp was not found next to this Node");
  process.exit(1);
}
const nodeDir = dirname(dirname(process.execPath));
if (!existsSync(join(nodeDir, "include", "node", "node_api.h"))) {
  console.error(`@threadgrad/mpi: Node's headers are missing (${join(nodeDir, "include", "node")})`);
  process.exit(1);
}
console.log(`@threadgrad/mpi: building the addon (MPI flags from ${flags.how}, headers from ${nodeDir})`);
const result = spawnSync(process.execPath, [nodeGyp, "rebuild", `--nodedir=${nodeDir}`, "--loglevel=warn"], {
  cwd: nativeDir,
  stdio: "inherit",
  env: { ...process.env, THREADGRAD_MPI_CFLAGS: flags.compile, THREADGRAD_MPI_LIBS: flags.link },
});
if (result.status !== 0) {
  console.error(`@threadgrad/mpi: node-gyp failed (exit ${result.status ?? result.signal})`);
  process.exit(1);
}
console.log(`@threadgrad/mpi: built ${output}`);
