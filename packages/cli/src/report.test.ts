import { describe, expect, it } from "vitest";
import { ReportSeries, StepSeries, downsample, lineChart, niceTicks, renderReport } from "./report.js";

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

  it("a step series stays within 2 × max points, each the mean of the steps it covers, the last step last", () => {
    const series = new StepSeries(100);
    for (let step = 1; step <= 10_007; step++) series.add(step, step); // y = step: a point's mean is its middle step
    const pts = series.points();
    expect(series.length).toBe(pts.length);
    expect(pts.length).toBeLessThanOrEqual(201);
    expect(pts.length).toBeGreaterThan(100);
    expect(pts.at(-1)![0]).toBe(10_007);
    // 10,007 steps in points of 64 (the open last one fewer): each point is the mean of its 64 steps.
    pts.slice(0, -1).forEach(([x, y], i) => {
      expect(x).toBe(64 * (i + 1));
      expect(y).toBe(x - 31.5);
    });
    const [lastX, lastY] = pts.at(-1)!;
    const from = 64 * (pts.length - 1) + 1;
    expect(lastY).toBe((from + lastX) / 2);
  });

  it("a step series skips non-finite values", () => {
    const series = new StepSeries();
    series.add(1, 2);
    series.add(2, Number.NaN);
    series.add(3, Number.POSITIVE_INFINITY);
    expect(series.points()).toEqual([[1, 2]]);
  });

  it("series from a resumed run's log keep the last record of a step, up to the step resumed from", () => {
    const records = [
      { event: "start", step: 0 },
      { event: "step", step: 1, loss: 3, accuracy: 0.1, lr: 0.1 },
      { event: "step", step: 2, loss: 9, accuracy: 0.1, lr: 0.1 }, // replaced below (an earlier unclean stop)
      { event: "step", step: 2, loss: 2, accuracy: 0.2, lr: 0.1 },
      { event: "eval", step: 2, testLoss: 2.5, testAccuracy: 0.3 },
      { event: "step", step: 3, loss: 50, accuracy: 0, lr: 0.1 }, // past the checkpoint: the new session redoes it
    ];
    const series = ReportSeries.from(records, 2);
    expect(series.loss.points()).toEqual([
      [1, 3],
      [2, 2],
    ]);
    expect(series.evalPoints("testLoss")).toEqual([[2, 2.5]]);
    series.add({ event: "step", step: 3, loss: 1, accuracy: 0.5, lr: 0.1 });
    expect(series.loss.points().at(-1)).toEqual([3, 1]);
    expect(ReportSeries.from(records).loss.points().at(-1)).toEqual([3, 50]);
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

  it("draws validation loss and accuracy beside the test ones when the run has them", () => {
    const records = [
      { event: "step", step: 1, loss: 2, accuracy: 0.1, lr: 0.1 },
      { event: "eval", step: 1, valLoss: 1.7, valAccuracy: 0.2, testLoss: 1.9, testAccuracy: 0.15 },
      { event: "step", step: 2, loss: 1, accuracy: 0.5, lr: 0.1 },
      { event: "eval", step: 2, valLoss: 1.2, valAccuracy: 0.45, testLoss: 1.1, testAccuracy: 0.4 },
    ];
    const series = ReportSeries.from(records);
    expect(series.evalPoints("valLoss")).toEqual([
      [1, 1.7],
      [2, 1.2],
    ]);
    expect(series.evalPoints("valAccuracy")).toEqual([
      [1, 0.2],
      [2, 0.45],
    ]);
    const legend = (html: string) => html.match(/>validation</g)?.length ?? 0;
    expect(legend(renderReport(records, {}, null, "run"))).toBe(2); // the loss and accuracy charts
    const withoutVal = records.map(({ valLoss, valAccuracy, ...r }) => r);
    expect(legend(renderReport(withoutVal, {}, null, "run"))).toBe(0);
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
