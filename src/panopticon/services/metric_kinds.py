"""Which kind of score each metric of a run gives: the statistics choose tests and
intervals by it (:class:`~panopticon.stats.kinds.ScoreKind`), and quality views leave out
the operational metrics (latency, cost)."""

from __future__ import annotations

from panopticon.judges.base import operational_types, score_kinds
from panopticon.stats.kinds import ScoreKind
from panopticon.store.engine import Engine
from panopticon.store.queries import runs as run_queries

__all__ = ["operational_types", "run_kinds"]


def run_kinds(engine: Engine, *run_ids: int) -> dict[str, ScoreKind]:
    """Metric name -> kind, for every metric scored in these runs (a later run's
    definition of the same name wins)."""
    with engine.connect() as conn:
        definitions = run_queries.metric_definitions(conn, list(run_ids))
    return score_kinds(definitions)
