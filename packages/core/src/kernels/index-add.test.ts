import { describe, expect, it } from "vitest";
import { grad } from "../autograd/engine.js";
import { tensor } from "../tensor/creation.js";
import { mulberry32 } from "../tensor/random.js";
import { indexAdd, indexSelect } from "../ops/indexing.js";
import { mul } from "../ops/elementwise.js";
import { sum } from "../ops/reduce.js";
import { indexAddRowsInWasm } from "./index-add.js";
import { setDefaultWasmKernels } from "./wasm/matmul-kernel.js";
import { runInStepRegion } from "./wasm/step-region.js";
import { createWasmKernels } from "./wasm/wasm-kernels.js";

// The SIMD index-add (the embedding's gradient) against the JavaScript loop: the same bits.
const k = createWasmKernels({ heapBytes: 4 << 20, scratchBytes: 16 << 20 });
setDefaultWasmKernels(k);

function values(n: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, (_, i) => (rand() - 0.5) * (i % 7 === 0 ? 1e4 : 2)); // rounding shows
}
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
const inside = (a: Float32Array): Float32Array => {
  const v = k.allocF32(a.length);
  v.set(a);
  return v;
};

describe("index-add kernel", () => {
  it.each([1, 3, 4, 5, 128, 131])(
    "rows of %i floats: same bits as the JavaScript loop, repeated rows summed in order",
    (inner) => {
      const rows = 6,
        index = Int32Array.of(2, 0, 2, 5, 2, 1, 0);
      const self = values(rows * inner, inner),
        src = values(index.length * inner, inner + 1);
      const js = indexAdd(
        tensor(self, { shape: [rows, inner] }),
        0,
        tensor(index),
        tensor(src, { shape: [index.length, inner] }),
      );
      const out = inside(self);
      expect(indexAddRowsInWasm(out, inside(src), index, index.length, inner)).toBe(true); // index on the heap: copied in
      expect(bits(out)).toEqual(bits(js.data as Float32Array));
      const out2 = inside(self);
      const idxInside = new Int32Array(k.buffer, k.alloc(index.length * 4, 16), index.length);
      idxInside.set(index);
      expect(indexAddRowsInWasm(out2, inside(src), idxInside, index.length, inner)).toBe(true);
      expect(bits(out2)).toEqual(bits(out));
      expect(indexAddRowsInWasm(self.slice(), src, index, index.length, inner)).toBe(false); // heap operands: not taken
    },
  );

  it("an embedding's gradient inside a step region has the bits it has outside", () => {
    const weight0 = values(50 * 64, 3),
      g0 = values(40 * 64, 4);
    const ids = tensor(Int32Array.from({ length: 40 }, (_, i) => (i * 7) % 50));
    const run = () => {
      const w = tensor(weight0.slice(), { shape: [50, 64], requiresGrad: true });
      const rows = indexSelect(w, 0, ids);
      const [dw] = grad(sum(mul(rows, tensor(g0.slice(), { shape: [40, 64] }))), [w]);
      return { inRegion: k.contains(dw!.data as Float32Array), out: bits(dw!.data as Float32Array) };
    };
    const outside = run();
    const inRegion = runInStepRegion(k, run);
    expect([outside.inRegion, inRegion.inRegion]).toEqual([false, true]);
    expect(inRegion.out).toEqual(outside.out);
  });

  it("an index out of range is refused before anything is added", () => {
    expect(() =>
      indexAdd(
        tensor(new Float32Array(6), { shape: [3, 2] }),
        0,
        tensor(Int32Array.of(1, 3)),
        tensor(new Float32Array(4), { shape: [2, 2] }),
      ),
    ).toThrow(/indexAdd: index 3 is out of range for dimension 0 with size 3/);
  });
});
