"""A production score's model: the one rule that the dashboard's "model (source)" groups
and the results filter (``model_id``, the Summary's links) both follow.

A score of a span takes the span's model (the one served, else the one requested); a
score of a whole trace takes the trace's model when its spans name one, SEVERAL_MODELS
when they name more, and NO_MODEL when they name none, or the span or trace has not
arrived.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from panopticon.store.tables import Score, Span, Trace

__all__ = ["NO_MODEL", "SEVERAL_MODELS", "joined_score_model", "score_model"]

# the model of a production score whose model is unknown: a span that names no model, or a
# score of a trace whose spans name none (or that has not arrived yet)
NO_MODEL = "(model unknown)"
# the model of a score about a whole trace whose spans name more than one model
SEVERAL_MODELS = "(several models)"


def _trace_model(models: Any, dialect: str) -> Any:
    """A trace's model from its ``models`` (every model its spans asked for or were
    served): the one, SEVERAL_MODELS for more, NULL for none."""
    if dialect == "postgresql":

        def nth(i: int) -> Any:
            return models.op("->>", return_type=sa.String())(sa.literal(i))
    else:

        def nth(i: int) -> Any:
            return sa.func.json_extract(models, sa.literal(f"$[{i}]"))

    return sa.case(
        (nth(0).is_(None), None),
        (nth(1).is_(None), nth(0)),
        else_=sa.literal(SEVERAL_MODELS),
    )


def joined_score_model(dialect: str) -> Any:
    """The model of each score in a FROM that outer-joins Score to its Span (by the
    score's span) and to its Trace for a score of a whole trace only."""
    traces = _trace_model(Trace.c.models, dialect)
    return sa.func.coalesce(Span.c.model_served, Span.c.model_requested, traces, NO_MODEL)


def score_model(workspace_id: Any, dialect: str) -> Any:
    """The same model for a FROM of Score alone, through correlated lookups by key."""
    of_span = (
        sa.select(sa.func.coalesce(Span.c.model_served, Span.c.model_requested))
        .where(
            Span.c.workspace_id == workspace_id,
            Span.c.trace_id == Score.c.trace_id,
            Span.c.span_id == Score.c.span_id,
        )
        .limit(1)
        .scalar_subquery()
    )
    of_trace = (
        sa.select(_trace_model(Trace.c.models, dialect))
        .where(
            Trace.c.workspace_id == workspace_id,
            Trace.c.id == Score.c.trace_id,
            Score.c.span_id.is_(None),
        )
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(of_span, of_trace, NO_MODEL)
