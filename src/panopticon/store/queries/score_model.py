"""A production score's model: the one rule that the dashboard's "model (source)" groups
and the results filter (``model_id``, the Summary's links) both follow.

A score of a span takes the span's model (the one served, else the one requested); a
score of a whole trace takes its spans' model, each span's counted the same way (a gateway
call through an alias is its served model), when they name one, SEVERAL_MODELS when they
name more, and NO_MODEL when they name none, or the span or trace has not arrived.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from panopticon.store.tables import Score, Span

__all__ = ["NO_MODEL", "SEVERAL_MODELS", "joined_score_model", "score_model"]

# the model of a production score whose model is unknown: a span that names no model, or a
# score of a trace whose spans name none (or that has not arrived yet)
NO_MODEL = "(model unknown)"
# the model of a score about a whole trace whose spans name more than one model
SEVERAL_MODELS = "(several models)"


_TRACE_SPANS = Span.alias("trace_spans")


def _trace_model(workspace_id: Any, trace_id: Any) -> Any:
    """A trace's model from its spans, each span's model being the one served, else the
    one requested (so a gateway call through an alias is its served model, not two): the
    one, SEVERAL_MODELS for more, NULL for none (or no span yet). A correlated lookup by
    the span table's key (workspace, trace)."""
    spans = _TRACE_SPANS  # not Span itself: a FROM joined to the score's span has that
    model = sa.func.coalesce(spans.c.model_served, spans.c.model_requested)
    models = sa.func.count(sa.distinct(model))
    return (
        sa.select(
            sa.case(
                (models == 0, None),
                (models == 1, sa.func.min(model)),
                else_=sa.literal(SEVERAL_MODELS),
            )
        )
        .where(spans.c.workspace_id == workspace_id, spans.c.trace_id == trace_id)
        .correlate_except(spans)
        .scalar_subquery()
    )


def joined_score_model(dialect: str) -> Any:
    """The model of each score in a FROM that outer-joins Score to its Span (by the
    score's span); a score of a whole trace looks its trace's spans up."""
    of_trace = sa.case(
        (Score.c.span_id.is_(None), _trace_model(Score.c.workspace_id, Score.c.trace_id)),
        else_=None,
    )
    return sa.func.coalesce(Span.c.model_served, Span.c.model_requested, of_trace, NO_MODEL)


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
    of_trace = sa.case(
        (Score.c.span_id.is_(None), _trace_model(workspace_id, Score.c.trace_id)),
        else_=None,
    )
    return sa.func.coalesce(of_span, of_trace, NO_MODEL)
