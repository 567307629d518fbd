import { afterEach, describe, expect, it } from "vitest";
import { getKernelBackend, setKernelBackend } from "./backend.js";
import { wasmInPlace, wasmServes } from "./dispatch.js";
import { setDefaultWasmKernels } from "./wasm/matmul-kernel.js";
import { createWasmKernels } from "./wasm/wasm-kernels.js";

const k = createWasmKernels({ heapBytes: 1 << 16, scratchBytes: 1 << 16 });
const other = createWasmKernels({ heapBytes: 1 << 16, scratchBytes: 1 << 16 });
const initialBackend = getKernelBackend();
afterEach(() => setKernelBackend(initialBackend));

describe("kernel dispatch", () => {
  it("float32 runs in WebAssembly only under the wasm backend; float64 never does", () => {
    setKernelBackend("wasm");
    expect(wasmServes("float32")).toBe(true);
    expect(wasmServes("float64")).toBe(false);
    setKernelBackend("js");
    expect(wasmServes("float32")).toBe(false);
  });

  it("operands all in this thread's memory get its kernels; any operand elsewhere gets the JavaScript twin", () => {
    setKernelBackend("wasm");
    setDefaultWasmKernels(k);
    const a = k.allocF32(4),
      b = k.allocF32(4),
      c = k.allocF32(4);
    expect(wasmInPlace(a, b)).toBe(k);
    expect(wasmInPlace(a, b, c)).toBe(k);
    expect(wasmInPlace(a, a, a)).toBe(k);
    expect(wasmInPlace(new Float32Array(4), b)).toBeNull();
    expect(wasmInPlace(a, new Float32Array(4))).toBeNull();
    expect(wasmInPlace(a, b, new Float32Array(4))).toBeNull();
    expect(wasmInPlace(a, b, other.allocF32(4))).toBeNull(); // another memory is not this thread's
    const f64 = new Float64Array(k.buffer, k.alloc(32), 4); // float64 in the memory: still JavaScript
    expect(wasmInPlace(f64, b)).toBeNull();
    expect(wasmInPlace(a, f64)).toBeNull();
    expect(wasmInPlace(a, b, f64)).toBeNull();
  });

  it("the js backend sends even operands in wasm memory to the JavaScript twin", () => {
    setDefaultWasmKernels(k);
    setKernelBackend("js");
    expect(wasmInPlace(k.allocF32(4), k.allocF32(4))).toBeNull();
  });
});
