import { describe, expect, it } from "vitest";
import { downsample, lineChart, niceTicks, renderReport } from "./report.js";

describe("report", () => {
  it("ticks are round numbers covering the range", () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(3, 2620, 6)).toEqual([500, 1000, 1500, 2000, 2500]);
  });

  it("downsampling keeps at most max points and the last x", () => {
    const pts = Array.from({ length: 10_000 }, (_, i) => [i, i % 2] as [number, number]);
    const d = downsample(pts, 100);
    expect(d.length).toBeLessThanOrEqual(100);
    expect(d[d.length - 1]![0]).toBe(9999);
  });

  it("a chart is inline SVG; an empty one says so", () => {
    expect(
      lineChart({
        title: "Loss",
        xLabel: "step",
        series: [
          {
            name: "train",
            color: "#000",
            points: [
              [1, 2],
              [2, 1],
            ],
          },
        ],
      }),
    ).toMatch(/^<svg[^>]*>.*<polyline.*<\/svg>$/s);
    expect(lineChart({ title: "Loss", xLabel: "step", series: [] })).toContain("no data yet");
  });

  it("the page is self-contained and escapes what it shows", () => {
    const records = [
      { event: "step", step: 1, loss: 2, accuracy: 0.1, lr: 0.1 },
      { event: "step", step: 2, loss: 1, accuracy: 0.5, lr: 0.1 },
      { event: "eval", step: 2, testLoss: 1.1, testAccuracy: 0.4 },
    ];
    const html = renderReport(records, { data: "csv:<a>.csv" }, { testAccuracy: 0.4 }, "run");
    expect(html.match(/<svg/g)).toHaveLength(3);
    expect(html).toContain("csv:&lt;a&gt;.csv");
    expect(html).not.toMatch(/<script|<link|src=|href=/);
  });
});
