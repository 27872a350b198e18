"""What a metric is: a small named unit that scores one answer, with a typed result.

A metric never raises for a bad answer or a bad judge: it returns a :class:`MetricResult`
with ``error`` set, and the run carries on (STYLE.md: failures are data).
"""

from __future__ import annotations

import abc
import importlib
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
    "OffScale",
    "build_metric",
    "gives_pass_fail",
    "metric_types",
    "operational_types",
    "register_metric",
    "score_kinds",
    "spec_class",
    "stored_metric",
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


class OffScale(ValueError):
    """A value given from outside a run that its metric could never give; ``hint`` says
    what it could ("give a value from 1 to 5", "give 0 (fail) or 1 (pass)")."""

    def __init__(self, value: float, metric: str, allowed: str, hint: str) -> None:
        super().__init__(f"{value:g} is outside the scale of '{metric}' ({allowed})")
        self.hint = hint


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

    def read_value(self, value: float) -> tuple[float | None, bool | None]:
        """A value given from outside a run (a client's score of a production trace) as a
        run's score of this metric with that value is stored: (normalised 0..1, passed).
        The normalised value is None when the metric has no 0..1 scale to put it on (a
        pairwise judge, a plugin's unbounded score); passed is None with no pass rule.
        Raises :class:`OffScale` for a value the metric could not give."""
        if self.pairwise:  # its scores are about two answers, never one value
            return None, None
        kind = self.kind()
        bounds = kind.bounds
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            span = f"{bounds[0]:g} to {bounds[1]:g}"
            raise OffScale(value, self.name, span, f"give a value from {span}")
        if kind.binary:
            passed = self.passes(value)
            if passed is None and bounds is not None:
                # a check with no threshold scores 1 (pass) or 0 (fail), nothing between
                if value not in bounds:
                    two = f"{bounds[0]:g} (fail) or {bounds[1]:g} (pass)"
                    raise OffScale(value, self.name, two, f"give {two}")
                passed = value == bounds[1]
            return (None if passed is None else float(passed)), passed
        if bounds is None:
            return None, self.passes(value)
        return (value - bounds[0]) / (bounds[1] - bounds[0]), self.passes(value)

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
# Built-in type -> its module under panopticon.judges, imported when the type is first looked
# up: a run imports the metrics its suite names, not every metric (each module's register()
# registers its types; a test checks that this table names exactly those).
_BUILTINS: dict[str, str] = {
    "rubric": "rubric",
    "reference": "reference",
    **dict.fromkeys(
        ("exact", "contains", "regex", "json_valid", "json_schema", "length", "latency", "cost"),
        "heuristics",
    ),
    **dict.fromkeys(("faithfulness", "context_relevance", "answer_relevance"), "rag"),
    **dict.fromkeys(("pii", "prompt_injection"), "safety"),
    "pairwise": "pairwise",
    "panel": "panel",
}
_builtins_loaded: set[str] = set()  # the modules of _BUILTINS registered so far
_plugins_loaded = threading.Event()
_registry_lock = threading.Lock()
METRICS_ENTRY_POINT_GROUP = "panopticon.metrics"


def register_metric(type_name: str, spec: type[MetricSpec], metric: type[Metric]) -> None:
    """Make ``type: <type_name>`` usable in suites. Built-ins register the same way; a
    plugin's registration, or one made here, wins over a built-in type of the same name."""
    _REGISTRY[type_name] = _Entry(spec, metric)


def _load(type_name: str | None = None) -> None:
    """Register what a lookup of ``type_name`` needs (every type when None): the plugins,
    once per process, then the built-in module of that type. A second thread waits for the
    first instead of reading a half-filled registry (two requests at once on a fresh server
    did)."""
    wanted = set(_BUILTINS.values()) if type_name is None else {_BUILTINS.get(type_name, "")}
    wanted.discard("")
    if _plugins_loaded.is_set() and wanted <= _builtins_loaded:
        return
    with _registry_lock:
        if not _plugins_loaded.is_set():
            # Outside packages: each entry point of `panopticon.metrics` is a callable that
            # calls register_metric(), as every built-in module's register() does.
            from panopticon.plugins import load_entry_points

            for register in load_entry_points(METRICS_ENTRY_POINT_GROUP).values():
                register()
            _plugins_loaded.set()
        for name in sorted(wanted - _builtins_loaded):
            module = importlib.import_module(f"panopticon.judges.{name}")
            registered = dict(_REGISTRY)
            module.register()
            _REGISTRY.update(registered)  # a plugin's type of the same name stays
            _builtins_loaded.add(name)


def metric_types() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def spec_class(type_name: str) -> type[MetricSpec] | None:
    _load(type_name)
    entry = _REGISTRY.get(type_name)
    return entry.spec if entry else None


def build_metric(spec: MetricSpec) -> Metric:
    _load(spec.type)
    return _REGISTRY[spec.type].metric(spec)


def stored_metric(type_name: str, definition: Mapping[str, Any]) -> Metric | None:
    """The metric a stored definition describes; None for a type no longer registered (a
    plugin removed, an outside client's ``feedback`` metric) or a definition that no
    longer validates."""
    cls = spec_class(type_name)
    if cls is None:
        return None
    try:
        return build_metric(cls.model_validate(dict(definition)))
    except ValidationError:
        return None


def score_kinds(definitions: Iterable[Mapping[str, Any]]) -> dict[str, ScoreKind]:
    """Metric name -> :class:`ScoreKind`, from metric definitions as a suite (or the run's
    stored suite) gives them. A definition that no longer validates is left out: its
    scores are then summarised by their values alone."""
    out: dict[str, ScoreKind] = {}
    for definition in definitions:
        type_name = str(definition.get("type"))
        _load(type_name)
        entry = _REGISTRY.get(type_name)
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
    _load()
    return sorted(t for t, e in _REGISTRY.items() if not e.metric.quality)
