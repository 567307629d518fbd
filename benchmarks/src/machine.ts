// The machine a run was measured on: results are comparable only between runs of one machine.
import { cpus, hostname, loadavg, platform, release, arch, totalmem } from "node:os";
import { createRequire } from "node:module";
import { availableWorkers } from "@threadgrad/workers";
import { PYTHON, peerEnv, probeTorch } from "./peers/pytorch.js";
import { kernelBackends } from "./backends.js";
import { describeMatmul } from "@threadgrad/core";

export interface MachineInfo {
  hostname: string;
  os: string;
  cpuModel: string;
  /** logical CPUs the OS reports */
  logicalCpus: number;
  /** cores this process may use (affinity and cgroup quota): the default worker count */
  availableCores: number;
  memoryGiB: number;
  node: string;
  v8: string;
  /** 1-minute load average when the run started: a busy machine makes every number slower */
  loadAverage1m: number;
  kernelBackend: string;
  /** what runs threadgrad's float32 matrix products: the native BLAS and its kernels, or why not */
  matmul: string;
  /** peer packages and versions, or why they are missing */
  peers: string;
  date: string;
}

export async function machineInfo(): Promise<MachineInfo> {
  const list = cpus();
  return {
    hostname: hostname(),
    os: `${platform()} ${release()} ${arch()}`,
    cpuModel: list[0]?.model.trim() ?? "unknown",
    logicalCpus: list.length,
    availableCores: availableWorkers(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    v8: process.versions.v8,
    loadAverage1m: Math.round(loadavg()[0]! * 100) / 100,
    kernelBackend: await defaultKernelBackend(),
    matmul: describeMatmul(),
    peers: peerVersions(),
    date: new Date().toISOString(),
  };
}

/** threadgrad's default float32 kernel backend, when core exposes the switch. */
async function defaultKernelBackend(): Promise<string> {
  const b = await kernelBackends();
  return b === null ? "js (core has no backend switch yet)" : b.current();
}

function peerVersions(): string {
  const require = createRequire(import.meta.url);
  return ["@tensorflow/tfjs", "@tensorflow/tfjs-backend-wasm"]
    .map((name) => {
      try {
        return `${name} ${(require(`${name}/package.json`) as { version: string }).version}`;
      } catch {
        return `${name} not installed`;
      }
    })
    .concat(pytorchVersion())
    .join(", ");
}

/** The PyTorch peer's torch and how it runs, or why it is skipped. */
function pytorchVersion(): string {
  const { skip, version } = probeTorch();
  if (skip !== null) return `pytorch not available (${skip})`;
  const coretype = peerEnv().OPENBLAS_CORETYPE;
  return `pytorch ${version} (${PYTHON}${coretype ? `, OPENBLAS_CORETYPE=${coretype}` : ""})`;
}

export function formatMachine(m: MachineInfo): string {
  return [
    `machine  ${m.hostname}: ${m.cpuModel}, ${m.logicalCpus} logical CPUs, ` +
      `${m.availableCores} available, ${m.memoryGiB} GiB, ${m.os}`,
    `node     ${m.node} (V8 ${m.v8}); threadgrad float32 kernels by default: ${m.kernelBackend}`,
    `matmul   ${m.matmul}`,
    `peers    ${m.peers}`,
    `load     ${m.loadAverage1m} (1-minute average at start)    ${m.date}`,
  ].join("\n");
}
