import { describe, expect, it } from "vitest";
import { tensor } from "../tensor/creation.js";
import { add, exp, mul, sub } from "../ops/elementwise.js";

// float32 results below FLT_MIN in magnitude are stored as zero (of the same sign) by the generic
// elementwise ops; float64 results are stored as computed.
const FLT_MIN = 1.1754943508222875e-38;
const f32 = (v: number[], shape = [v.length]) => tensor(Float32Array.from(v), { shape });
const f64 = (v: number[], shape = [v.length]) => tensor(Float64Array.from(v), { shape });
const isSubnormal32 = (v: number) => v !== 0 && Math.abs(v) < FLT_MIN;

describe("subnormal flushing in the generic elementwise ops", () => {
  it("float32 products, differences and exponentials that would be subnormal are stored as signed zeros", () => {
    const tiny = mul(f32([1e-20, -1e-20, 3, Number.NaN]), f32([1e-20, 1e-20, 2, 1]));
    expect(Array.from(tiny.data)).toEqual([0, -0, 6, Number.NaN]);
    expect(Object.is(tiny.data[1], -0)).toBe(true);
    expect(Array.from(exp(f32([-100, -87, 0])).data).map(isSubnormal32)).toEqual([false, false, false]);
    expect(exp(f32([-100])).data[0]).toBe(0); // e^-100 = 3.7e-44 is subnormal in float32
    expect(exp(f32([-87])).data[0]).toBeGreaterThan(FLT_MIN); // 1.6e-38 is normal: kept
    expect(Array.from(sub(f32([2e-38]), f32([1.5e-38])).data)).toEqual([0]); // 5e-39 subnormal
    expect(sub(f32([FLT_MIN * 2]), f32([FLT_MIN])).data[0]).toBe(Math.fround(FLT_MIN)); // exactly FLT_MIN: kept
  });

  it("every loop of the broadcasting kernel flushes: same shape, scalar on either side, strided, 0-d", () => {
    const a = f32([1e-20, 2e-20, 1, 2, 3, 4], [2, 3]);
    const cases = [
      mul(a, f32([1e-20, 1, 1, 1, 1, 1], [2, 3])), // same shape
      mul(a, f32([1e-20])), // scalar on the right
      mul(f32([1e-20]), a), // scalar on the left
      mul(a, f32([1e-20, 1, 1], [1, 3])), // broadcast row: the strided loop
      mul(f32([1e-20], []), f32([1e-20], [])), // 0-d
    ];
    for (const t of cases) for (const v of t.data) expect(isSubnormal32(v)).toBe(false);
    expect(cases[3]!.data[0]).toBe(0);
    expect(cases[4]!.data[0]).toBe(0);
  });

  it("float64 results are not flushed (gradcheck needs them exact)", () => {
    const t = mul(f64([1e-160, -1e-160]), f64([1e-160, 1e-160]));
    expect(Array.from(t.data)).toEqual([1e-320, -1e-320]);
    expect(add(f64([1e-310]), f64([0])).data[0]).toBe(1e-310);
  });
});
