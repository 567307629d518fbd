import { test } from "vitest";
import * as T from "./index.js";
import { OPS } from "./ops/op.js";
test("scratch", () => {
  console.log([...OPS].join(","));
  console.log(T.tensor([-3, -1, -2]).max().item(), T.tensor([3, 1, 2]).min().item());
  const x = T.tensor([1, 1, 1, 0.5], { dtype: "float64", requiresGrad: true });
  x.max().backward(); console.log(Array.from(x.grad!.data));
  console.log(T.tensor([[1, 2], [3, 4]], { dtype: "float32", requiresGrad: true }).toString());
  console.log(T.tensor([[1.5, -2], [3, 4]]).mul(T.tensor(2, {dtype:"float64"})).toString());
  const s = T.zeros([3, 3]); const src = T.tensor([[1,2,3],[4,5,6]], {dtype:"float32"}); const idx = T.tensor([[0],[1]]);
  console.log(T.scatterAdd(s, 0, idx, src).toArray());
});
