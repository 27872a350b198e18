"""Metrics: LLM judges and deterministic checks, registered by type name."""

from panopticon.judges.base import (
    JudgeCall,
    JudgeReply,
    Metric,
    MetricContext,
    MetricResult,
    MetricSpec,
    build_metric,
    metric_types,
    register_metric,
    spec_class,
)

__all__ = [
    "JudgeCall",
    "JudgeReply",
    "Metric",
    "MetricContext",
    "MetricResult",
    "MetricSpec",
    "build_metric",
    "metric_types",
    "register_metric",
    "spec_class",
]
