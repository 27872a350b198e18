"""What a metric is: a small named unit that scores one answer, with a typed result.

A metric never raises for a bad answer or a bad judge: it returns a :class:`MetricResult`
with ``error`` set, and the run carries on (STYLE.md: failures are data).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from panopticon.stats.kinds import ScoreKind

__all__ = [
    "METRICS_ENTRY_POINT_GROUP",
    "JudgeCall",
    "JudgeReply",
    "Metric",
    "MetricContext",
    "MetricResult",
    "MetricSpec",
    "build_metric",
    "gives_pass_fail",
    "metric_types",
    "operational_types",
    "register_metric",
    "score_kinds",
    "spec_class",
]


class MetricSpec(BaseModel):
    """Settings common to every metric; each type adds its own fields (unknown keys fail)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str = Field(min_length=1, description="Unique name of this metric in the suite.")
    type: str
    threshold: float | None = Field(
        default=None, description="Pass when the score is at least this, on the metric's scale."
    )
    description: str | None = None


@dataclass(frozen=True)
class MetricContext:
    """Everything a metric may look at for one answer."""

    query: str
    response: str
    messages: list[dict[str, str]]
    theme: str | None = None
    expected: str | None = None
    context: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class JudgeReply:
    """A judge model's answer with what it cost. ``error`` set means no usable text."""

    text: str | None
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    cached: bool = False
    error: str | None = None


class JudgeCall(Protocol):
    """Send messages to the metric's judge (or, with ``model``, to that judge of the suite);
    ``json_mode`` asks for a JSON answer."""

    def __call__(
        self, messages: list[dict[str, str]], json_mode: bool, model: str | None = None
    ) -> Awaitable[JudgeReply]: ...


@dataclass(frozen=True)
class MetricResult:
    """One metric on one answer. ``value`` is on the metric's scale, ``normalized`` in 0..1."""

    value: float | None
    normalized: float | None
    passed: bool | None
    reasoning: str | None = None
    error: str | None = None
    judge: JudgeReply | None = None
    details: dict[str, Any] | None = None  # e.g. a panel's votes


class Metric(abc.ABC):
    """Base of every metric type. Subclasses set ``type`` and implement :meth:`score`."""

    type: ClassVar[str]
    version: ClassVar[str] = "1"
    needs_judge: ClassVar[bool] = False
    pairwise: ClassVar[bool] = False  # judged on pairs of answers after all are in
    quality: ClassVar[bool] = True  # False: an operational check (latency, cost)

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.threshold = spec.threshold

    @abc.abstractmethod
    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        """Score one answer."""

    def kind(self) -> ScoreKind:
        """What the scores are (the statistics choose tests and intervals by it). The
        default is pass/fail, value 1 or 0; scales and operational checks override it."""
        return ScoreKind(binary=True, low=0.0, high=1.0)

    def passes(self, value: float) -> bool | None:
        return None if self.threshold is None else value >= self.threshold

    def error(self, message: str, judge: JudgeReply | None = None) -> MetricResult:
        return MetricResult(None, None, None, error=message, judge=judge)


def gives_pass_fail(spec: MetricSpec) -> bool:
    """Whether the metric's scores pass or fail: it has a threshold, or it is a check
    (exact, regex, length, pii, ...) rather than a score on a scale or a pairwise judge."""
    if spec.threshold is not None:
        return True
    return getattr(spec, "scale", None) is None and spec.type != "pairwise"


@dataclass(frozen=True)
class _Entry:
    spec: type[MetricSpec]
    metric: type[Metric]


_REGISTRY: dict[str, _Entry] = {}
_builtins_loaded = threading.Event()
_builtins_lock = threading.Lock()
METRICS_ENTRY_POINT_GROUP = "panopticon.metrics"


def register_metric(type_name: str, spec: type[MetricSpec], metric: type[Metric]) -> None:
    """Make ``type: <type_name>`` usable in suites. Built-ins register the same way."""
    _REGISTRY[type_name] = _Entry(spec, metric)


def _load_builtins() -> None:
    """Once per process; a second thread waits for the first instead of reading a
    half-filled registry (two requests at once on a fresh server did)."""
    if _builtins_loaded.is_set():
        return
    with _builtins_lock:
        if _builtins_loaded.is_set():
            return
        from panopticon.judges import (
            heuristics,
            pairwise,
            panel,
            rag,
            reference,
            rubric,
            safety,
        )

        for module in (rubric, reference, heuristics, rag, safety, pairwise, panel):
            module.register()
        # Outside packages: each entry point of `panopticon.metrics` is a callable that calls
        # register_metric(), as every built-in module's register() does.
        from panopticon.plugins import load_entry_points

        for register in load_entry_points(METRICS_ENTRY_POINT_GROUP).values():
            register()
        _builtins_loaded.set()


def metric_types() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def spec_class(type_name: str) -> type[MetricSpec] | None:
    _load_builtins()
    entry = _REGISTRY.get(type_name)
    return entry.spec if entry else None


def build_metric(spec: MetricSpec) -> Metric:
    _load_builtins()
    return _REGISTRY[spec.type].metric(spec)


def score_kinds(definitions: Iterable[Mapping[str, Any]]) -> dict[str, ScoreKind]:
    """Metric name -> :class:`ScoreKind`, from metric definitions as a suite (or the run's
    stored suite) gives them. A definition that no longer validates is left out: its
    scores are then summarised by their values alone."""
    _load_builtins()
    out: dict[str, ScoreKind] = {}
    for definition in definitions:
        entry = _REGISTRY.get(str(definition.get("type")))
        if entry is None or entry.metric.pairwise:
            continue
        try:
            spec = entry.spec.model_validate(dict(definition))
        except ValidationError:
            continue
        out[spec.name] = entry.metric(spec).kind()
    return out


def operational_types() -> list[str]:
    """Metric types that measure operations (latency, cost), not the answer's quality:
    the one rule for what quality averages and rankings leave out."""
    _load_builtins()
    return sorted(t for t, e in _REGISTRY.items() if not e.metric.quality)
