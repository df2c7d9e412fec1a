// Example alert rule `load-high` in JavaScript: warns while the mean 1-minute load
// average over the input window is above `threshold` (default 4).
//
// Built with jco componentize against the `alert-rule-pure` world (`tocsin rule build`).
// Returning an array is `ok(signals)`; throwing an Error is `err(message)`.

/** The manifest's `[params]` entry `name` as a number, or `fallback`. */
function param(ctx, name, fallback) {
  const found = ctx.params.find(([key]) => key === name);
  const value = found ? Number(found[1]) : NaN;
  return Number.isFinite(value) ? value : fallback;
}

export function evaluate(ctx, input, active) {
  const limit = param(ctx, "threshold", 4);
  const signals = [];
  for (const series of input) {
    if (series.name !== "load1" || series.points.length === 0) continue;
    const mean = series.points.reduce((sum, [, value]) => sum + value, 0) / series.points.length;
    if (mean > limit) {
      signals.push({
        key: series.labels,
        severity: "warning",
        value: mean,
        summary: `load ${mean.toFixed(1)} above ${limit}`,
        description: "",
        annotations: [],
      });
    }
  }
  return signals;
}
