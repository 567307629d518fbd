import { describe, expect, it } from "vitest";
import { parseCsv } from "./csv.js";
import { applyPreprocess, fitPreprocess, fitScaling, mseInTargetUnits, toTargetUnits } from "./preprocess.js";

describe("preprocessing", () => {
  it("fits mean and population std per feature; a constant column gets std 1", () => {
    const s = fitScaling(Float32Array.of(1, 5, 30000, 3, 5, 60000), 3);
    expect(s).toEqual({ mean: [2, 5, 45000], std: [1, 1, 15000] });
  });

  it("standardises csv features to mean 0 and std 1 with the training split's figures", () => {
    const train = parseCsv("a,income,y\n1,30000,1\n2,45000,2\n3,60000,3\n", "t.csv", { target: "y" });
    const p = fitPreprocess(train, true);
    expect(p.featureNames).toEqual(["a", "income"]);
    expect([p.classes, p.target, p.targetName]).toEqual([["1", "2", "3"], null, "y"]);
    applyPreprocess(train, p);
    const income = [1, 3, 5].map((i) => train.x[i]!);
    expect(income[0]).toBeCloseTo(-Math.sqrt(1.5), 5);
    expect(income[1]).toBe(0);
    expect(income[2]).toBeCloseTo(Math.sqrt(1.5), 5);
    // Other data takes the same figures: 75000 is 1.5 training stds above the mean.
    const other = parseCsv("a,income,y\n2,75000,1\n", "n.csv", { target: "y" });
    applyPreprocess(other, p);
    expect(other.x[1]).toBeCloseTo(Math.sqrt(1.5) * 2, 5);
    expect(fitPreprocess(train, false).features).toBeNull();
  });

  it("standardises regression targets and maps outputs and MSE back to target units", () => {
    const ds = parseCsv("a,price\n1,100000\n2,300000\n", "h.csv", { target: "price" });
    const p = fitPreprocess(ds, true);
    expect(p.target).toEqual({ mean: 200000, std: 100000 });
    applyPreprocess(ds, p);
    expect(Array.from(ds.y)).toEqual([-1, 1]);
    expect(toTargetUnits(p, 0.5)).toBe(250000);
    expect(mseInTargetUnits(p, 0.01)).toBeCloseTo(1e8, 0);
    expect(mseInTargetUnits(null, 0.01)).toBe(0.01);
  });
});
