import { expect, test } from "vitest";
import { F, tensor } from "../index.js";

test("F.gelu is x·Φ(x) exactly, and PyTorch's tanh form with approximate 'tanh'", () => {
  const x = tensor([-3, -1, 0, 0.5, 1, 2], { dtype: "float64" });
  // x·Φ(x) with Φ from tables: Φ(-3), Φ(-1), Φ(0), Φ(0.5), Φ(1), Φ(2)
  const phi = [
    0.0013498980316300946, 0.15865525393145707, 0.5, 0.6914624612740131, 0.8413447460685429, 0.9772498680518208,
  ];
  const exact = F.gelu(x).data;
  for (const [i, v] of [...x.data].entries()) expect(Math.abs(exact[i]! - v * phi[i]!)).toBeLessThan(1e-14);
  const approx = F.gelu(x, { approximate: "tanh" }).data;
  [...x.data].forEach((v, i) => {
    const want = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    expect(Math.abs(approx[i]! - want)).toBeLessThan(1e-15);
  });
  // the two forms differ, by less than 1e-3 on this range
  expect(Math.abs(approx[4]! - exact[4]!)).toBeGreaterThan(1e-4);
  expect(Math.max(...[...approx].map((a, i) => Math.abs(a - exact[i]!)))).toBeLessThan(1e-3);
});
