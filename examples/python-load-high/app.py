"""Example alert rule `load-high` in Python: warns while the mean 1-minute load average
over the input window is above `threshold` (default 4).

Built with componentize-py against the `alert-rule-pure` world (`tocsin rule build`).
"""
import wit_world
from wit_world.imports.types import Severity, Signal


def param(ctx, name, default):
    """The manifest's `[params]` entry `name` as a number, or `default`."""
    for key, value in ctx.params:
        if key == name:
            try:
                return float(value)
            except ValueError:
                return default
    return default


class WitWorld(wit_world.WitWorld):
    def evaluate(self, ctx, input, active):
        limit = param(ctx, "threshold", 4.0)
        signals = []
        for series in input:
            if series.name != "load1" or not series.points:
                continue
            mean = sum(value for _, value in series.points) / len(series.points)
            if mean > limit:
                signals.append(
                    Signal(
                        key=series.labels,
                        severity=Severity.WARNING,
                        value=mean,
                        summary=f"load {mean:.1f} above {limit:g}",
                        description="",
                        annotations=[],
                    )
                )
        return signals
