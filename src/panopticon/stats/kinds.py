"""What a metric's scores are, as the statistics need to know it.

The test and the interval follow from the metric's type, never from the values a run
happened to produce (a 1-10 rubric whose scores were all 1 or 10 is still a scale).
Metric types say what they are in :mod:`panopticon.judges` (``Metric.kind``); this is
the plain record the statistics read.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ScoreKind"]


@dataclass(frozen=True)
class ScoreKind:
    """``binary``: the comparable (normalised) value is pass/fail, 1 or 0. ``low``/``high``:
    the bounds of the raw value's scale, None when it has none (a latency, a length).
    ``quality``: False for an operational check (latency, cost) that is not about how good
    the answer is, which quality averages and rankings leave out."""

    binary: bool
    low: float | None = None
    high: float | None = None
    quality: bool = True

    @property
    def bounds(self) -> tuple[float, float] | None:
        return None if self.low is None or self.high is None else (self.low, self.high)
