import { describe, expect, it } from "vitest";
import {
  ReportSeries,
  StepSeries,
  downsample,
  lineChart,
  logTicks,
  niceTicks,
  renderReport,
  spansDecades,
} from "./report.js";

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

  // issue #13: what a reader of report.html sees
  const evals = [
    { event: "step", step: 10, loss: 2, accuracy: 0.4, lr: 0.1 },
    { event: "eval", step: 10, epoch: 1, valLoss: 1.4, valAccuracy: 0.55, testLoss: 1.5, testAccuracy: 0.5 },
    { event: "step", step: 20, loss: 1, accuracy: 0.8, lr: 0.1 },
    {
      event: "eval",
      step: 20,
      epoch: 2,
      valLoss: 0.5,
      valAccuracy: 0.9616076784643072,
      testLoss: 0.7,
      testAccuracy: 0.7,
    },
    { event: "step", step: 30, loss: 0.9, accuracy: 0.8, lr: 0.1 },
    // the test set's best (step 30) is not the validation set's: only validation picks the best
    { event: "eval", step: 30, epoch: 3, valLoss: 0.6, valAccuracy: 0.8, testLoss: 0.6, testAccuracy: 0.8 },
  ];
  const summary = {
    trainLoss: 0.912345678,
    testLoss: 0.6,
    testAccuracy: 0.8,
    wallSeconds: 4.25,
    samplesPerSec: 12345.6,
    workers: 2,
  };

  it("the summary shows formatted figures and names the best evaluation", () => {
    const html = renderReport(evals, {}, summary, "run");
    expect(html).toContain("<tr><th>test accuracy</th><td>80.00%</td></tr>");
    expect(html).toContain("<tr><th>train loss</th><td>0.9123</td></tr>");
    expect(html).toContain("<tr><th>throughput</th><td>12,346 samples/s</td></tr>");
    expect(html).toContain("<tr><th>wall time</th><td>4.3s</td></tr>");
    expect(html).toContain("<tr><th>best</th><td>step 20 (epoch 2): validation accuracy 96.16%</td></tr>");
    expect(html).not.toContain("0.9616076784643072");
    // the best evaluation is circled on the accuracy chart and named in its legend
    expect(html).toContain(">best: step 20</text>");
    expect(html.match(/<circle[^>]* r="7"/g)).toHaveLength(1);
  });

  it("a regression run's best is its lowest validation loss", () => {
    const regression = evals.map((r) => ({ ...r, accuracy: null, testAccuracy: null, valAccuracy: null }));
    const html = renderReport(regression, {}, { ...summary, testAccuracy: null }, "run");
    expect(html).toContain("<tr><th>best</th><td>step 20 (epoch 2): validation loss 0.5000</td></tr>");
    expect(html).not.toContain("test accuracy");
  });

  it("without a validation set no evaluation is named best: the test set never picks one", () => {
    const testOnly = evals.map(({ valLoss, valAccuracy, ...r }) => r);
    const html = renderReport(testOnly, {}, summary, "run");
    expect(html).not.toContain("<tr><th>best</th>");
    expect(html).not.toContain(">best: step");
  });

  it("tables leave out what is null instead of printing rows of nulls", () => {
    const html = renderReport(
      evals,
      { lr: 0.001, momentum: null, nesterov: null },
      { ...summary, testLoss: null },
      "run",
    );
    expect(html).toContain("<tr><th>lr</th><td>0.001</td></tr>");
    expect(html).not.toContain("momentum");
    expect(html).not.toContain("test loss</th>");
    expect(html).not.toMatch(/>null</);
  });

  it("a loss that falls by two decades or more is drawn on a log axis with power-of-ten ticks", () => {
    const falling = Array.from({ length: 40 }, (_, i) => ({
      event: "step",
      step: i + 1,
      loss: 10 * 0.8 ** i,
      lr: 0.1,
    }));
    const html = renderReport(falling, {}, null, "run");
    expect(html).toContain(">Loss (log scale)</text>");
    for (const tick of ["0.01", "0.1", "1", "10"])
      expect(html).toContain(`text-anchor="end" font-family="sans-serif" font-size="11" fill="#444">${tick}</text>`);
    expect(renderReport(evals, {}, null, "run")).not.toContain("log scale");
    expect(spansDecades([5, 0.05])).toBe(true);
    expect(spansDecades([5, 0.06])).toBe(false);
    expect(spansDecades([5, 0])).toBe(false); // zero has no logarithm
    expect(logTicks(-1, 0)).toEqual([-1, Math.log10(2) - 1, Math.log10(5) - 1, 0]);
  });
});
