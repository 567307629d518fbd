import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ALIGN_BYTES, SharedArena, bufferViews, planArena, planBuffers, type ArenaLayout } from "./arena.js";
import { USER_BASE } from "./control.js";

// Node has WebAssembly, but the ES2023 lib we compile against does not declare it.
const WasmMemory = (globalThis as unknown as { WebAssembly: { Memory: SharedMemoryConstructor } }).WebAssembly.Memory;
type SharedMemoryConstructor = new (descriptor: {
  initial: number;
  maximum: number;
  shared: true;
}) => {
  buffer: SharedArrayBuffer;
};

const spec = fc.record({
  paramSizes: fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 12 }),
  ranks: fc.integer({ min: 1, max: 8 }),
  stateBuffers: fc.integer({ min: 0, max: 3 }),
  scalarSlotsPerRank: fc.integer({ min: 0, max: 20 }),
});

/** Every view an arena hands out, as [name, byte start, byte end) relative to the arena. */
function regions(arena: SharedArena): [string, number, number][] {
  const { layout } = arena;
  const span = (name: string, view: ArrayBufferView): [string, number, number] => [
    name,
    view.byteOffset - arena.byteOffset,
    view.byteOffset - arena.byteOffset + view.byteLength,
  ];
  return [
    ...layout.paramSizes.map((_, i) => span(`param ${i}`, arena.paramView(i))),
    ...Array.from({ length: layout.ranks }, (_, r) => span(`grads ${r}`, arena.grads(r))),
    ...Array.from({ length: layout.stateBuffers }, (_, k) => span(`state ${k}`, arena.state(k))),
    ...Array.from({ length: layout.ranks }, (_, r) => span(`scalars ${r}`, arena.rankScalars(r))),
    span("control", arena.control),
  ];
}

describe("planArena", () => {
  it("aligns every view to 64 bytes, keeps them disjoint and inside byteLength", () => {
    fc.assert(
      fc.property(spec, (s) => {
        const arena = SharedArena.create(planArena(s));
        const spans = regions(arena).sort((a, b) => a[1] - b[1] || a[2] - b[2]);
        spans.forEach(([name, start, end], i) => {
          expect(start % ALIGN_BYTES, name).toBe(0);
          expect(end).toBeLessThanOrEqual(arena.layout.byteLength);
          if (i > 0 && end > start) expect(start, name).toBeGreaterThanOrEqual(spans[i - 1]![2]);
        });
      }),
    );
  });

  it("sizes regions as the padded parameter count times ranks and state buffers", () => {
    const layout = planArena({ paramSizes: [5, 16, 17], ranks: 3, stateBuffers: 2, scalarSlotsPerRank: 3 });
    expect(layout.paramOffsets).toEqual([0, 16, 32]);
    expect(layout.paddedLength).toBe(64);
    expect(layout.scalarStride).toBe(8);
    expect(layout.controlWords).toBe(USER_BASE + 64);
    const slice = 64 * 4;
    expect(layout.byteOffsets).toEqual({
      params: 0,
      grads: slice,
      state: 4 * slice,
      scalars: 6 * slice,
      control: 6 * slice + 3 * 64,
    });
    expect(layout.byteLength).toBe(6 * slice + 3 * 64 + (USER_BASE + 64) * 4);
  });

  it("gives each rank several gradient slices with gradSlices (virtual shards), and refuses an uneven count", () => {
    const layout = planArena({ paramSizes: [5, 16, 17], ranks: 2, stateBuffers: 2, gradSlices: 6 });
    const slice = 64 * 4;
    expect(layout.gradSlices).toBe(6);
    expect(layout.byteOffsets.state).toBe(7 * slice);
    const arena = SharedArena.create(layout);
    expect(arena.slicesPerRank).toBe(3);
    expect([arena.firstSlice(0), arena.firstSlice(1)]).toEqual([0, 3]);
    expect(arena.grads(5).byteOffset).toBe(6 * slice);
    expect(() => arena.grads(6)).toThrow("SharedArena: grads slice must be in [0, 6), got 6");
    expect(planArena({ paramSizes: [5], ranks: 3, stateBuffers: 0 }).gradSlices).toBe(3);
    expect(() => planArena({ paramSizes: [5], ranks: 2, stateBuffers: 0, gradSlices: 3 })).toThrow(
      "planArena: gradSlices must be a multiple of ranks (2), got 3",
    );
  });

  it("survives structured cloning, as in postMessage", () => {
    const layout = planArena({ paramSizes: [3, 40], ranks: 2, stateBuffers: 1 });
    expect(structuredClone(layout)).toEqual(layout);
  });

  it("names the bad argument", () => {
    expect(() => planArena({ paramSizes: [3, -1], ranks: 2, stateBuffers: 0 })).toThrow(
      /planArena: paramSizes\[1\] must be an integer >= 0, got -1/,
    );
    expect(() => planArena({ paramSizes: [], ranks: 0, stateBuffers: 0 })).toThrow(/planArena: ranks must be/);
  });
});

describe("SharedArena", () => {
  const layout = planArena({ paramSizes: [3, 20], ranks: 2, stateBuffers: 2 });

  it("attaches at a byte offset inside a larger shared buffer and sees the same memory", () => {
    const buffer = new SharedArrayBuffer(128 + layout.byteLength);
    const first = SharedArena.attach(buffer, layout, 128);
    const second = SharedArena.attach(buffer, structuredClone(layout), 128);
    first.paramView(1)[19] = 2.5;
    first.grads(1)[0] = -1;
    expect(second.params[16 + 19]).toBe(2.5);
    expect(second.paramIn(second.grads(1), 0)[0]).toBe(-1);
    expect(first.params.byteOffset).toBe(128);
  });

  it("carves an arena out of a shared WebAssembly.Memory", () => {
    const memory = new WasmMemory({ initial: 1, maximum: 4, shared: true });
    const arena = SharedArena.attach(memory.buffer, layout, 1024);
    arena.params[0] = 7;
    expect(new Float32Array(memory.buffer, 1024, 1)[0]).toBe(7);
  });

  it("refuses misaligned offsets, short buffers and layouts not made by planArena", () => {
    const buffer = new SharedArrayBuffer(layout.byteLength + 64);
    expect(() => SharedArena.attach(buffer, layout, 32)).toThrow(/byteOffset must be a multiple of 64, got 32/);
    expect(() => SharedArena.attach(buffer, layout, 128)).toThrow(/arena needs bytes \[128, \d+\) but the buffer has/);
    const forged: ArenaLayout = { ...layout, paramOffsets: [0, 4] };
    expect(() => SharedArena.attach(buffer, forged)).toThrow(/layout does not match planArena/);
    expect(() => SharedArena.create(layout).grads(2)).toThrow(/grads slice must be in \[0, 2\), got 2/);
  });
});

describe("planBuffers", () => {
  it("lays module buffers out one after another, 8-byte aligned, each viewed with its own dtype", () => {
    const { slots, byteLength } = planBuffers([
      ["bn.runningMean", { dtype: "float32", shape: [3] }],
      ["bn.numBatchesTracked", { dtype: "int32", shape: [] }],
      ["stats", { dtype: "float64", shape: [2, 1] }],
    ]);
    expect(slots.map((s) => [s.name, s.byteOffset, s.length])).toEqual([
      ["bn.runningMean", 0, 3],
      ["bn.numBatchesTracked", 16, 1],
      ["stats", 24, 2],
    ]);
    expect(byteLength).toBe(40);
    const views = bufferViews(new SharedArrayBuffer(byteLength), slots);
    expect(views.map((v) => v.constructor.name)).toEqual(["Float32Array", "Int32Array", "Float64Array"]);
  });

  it("refuses a buffer of another dtype, naming it", () => {
    expect(() => planBuffers([["mask", { dtype: "bool", shape: [4] }]])).toThrow(
      "buffer 'mask' is bool; shared buffers must be float32, float64 or int32",
    );
  });
});
