"""A run's report: what the store holds of it, shaped by :mod:`panopticon.reports.data`
for the HTML, Markdown, CSV and JSON writers and the dashboard's run page."""

from __future__ import annotations

from typing import Any

from panopticon.reports.data import build_report
from panopticon.services.metric_kinds import run_kinds
from panopticon.store.engine import Engine
from panopticon.store.queries import runs as run_queries

__all__ = ["report_data"]


def report_data(engine: Engine, run: run_queries.RunRow) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = run_queries.summary_inputs(conn, run.id)
        pairs = run_queries.pairwise_rows(conn, run.id)
        panels = run_queries.panel_votes(conn, run.id)
    return build_report(run, rows, pairs, panels, run_kinds(engine, run.id))
