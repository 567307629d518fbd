import { describe, expect, it } from "vitest";
import { Generator, nn, randn, tensor, zeros } from "../../index.js";
import { runInStepRegion } from "./step-region.js";
import { createWasmKernels } from "./wasm-kernels.js";

describe("runInStepRegion", () => {
  it("stores the step's tensors in the scratch and frees them all when the step ends", () => {
    const k = createWasmKernels({ scratchBytes: 16 << 20 });
    const before = k.scratchMark();
    const x = randn([64, 32]);
    const inside = runInStepRegion(k, () => {
      const y = x.mul(2).add(1);
      expect(k.contains(y.data)).toBe(true);
      expect(k.scratchMark()).toBeGreaterThan(before);
      return y.sum().item();
    });
    expect(k.scratchMark()).toBe(before);
    expect(inside).toBe(x.mul(2).add(1).sum().item());
    expect(k.contains(x.mul(2).data)).toBe(false);
  });

  it("gives the same bits as heap storage for a forward and backward pass, zeroes included", () => {
    const k = createWasmKernels({ scratchBytes: 16 << 20 });
    const g = new Generator(3);
    const xs = new Float32Array(32 * 20).map(() => g.normal());
    const model = new nn.Sequential(new nn.Linear(20, 16), new nn.ReLU(), new nn.Linear(16, 5));
    const y = tensor(new Int32Array(32).map((_, i) => i % 5));
    const run = () => {
      model.zeroGrad();
      const loss = nn.F.crossEntropy(model.forward(tensor(xs, { shape: [32, 20] })), y);
      loss.backward();
      return [loss.item(), ...model.parameters().map((p) => Array.from(p.grad!.data))];
    };
    const heap = run();
    // Dirty the scratch first: storage that must start at zero has to be zeroed by the region.
    new Float32Array(k.buffer, k.scratch.byteOffset, k.scratch.byteLength / 4).fill(7);
    const region = runInStepRegion(k, run);
    expect(region).toEqual(heap);
  });

  it("falls back to the heap when the region is full", () => {
    const k = createWasmKernels({ scratchBytes: 9 << 20 }); // 8 MiB stay reserved for the matmul
    runInStepRegion(k, () => {
      const big = zeros([1024, 1024]); // 4 MiB: does not fit in what is left
      expect(k.contains(big.data)).toBe(false);
      const small = zeros([64, 64]);
      expect(k.contains(small.data)).toBe(true);
    });
  });
});

describe("step region and createGraph", () => {
  it("refuses backward with createGraph inside a region instead of leaving .grad in freed memory", () => {
    const k = createWasmKernels({ scratchBytes: 16 << 20 });
    const w = randn([64, 64]).requiresGrad_();
    expect(() => runInStepRegion(k, () => w.mul(w).sum().backward(null, { createGraph: true }))).toThrow(
      /createGraph inside a step region/,
    );
  });
});
