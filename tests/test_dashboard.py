"""The dashboard's numbers: aggregated by the database, equal to the run summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.services import dashboard
from panopticon.services.runs import summarize_run
from panopticon.store.tables import Score


@pytest.fixture
def demo(env: dict[str, str], engine: sa.Engine) -> sa.Engine:
    result = CliRunner().invoke(app, ["demo", "--no-serve"])
    assert result.exit_code == 0, result.output
    return engine


def test_model_by_metric_means_equal_the_run_summary(demo: sa.Engine) -> None:
    cells = dashboard.model_metrics(demo, 1, 1).cells
    summary = summarize_run(demo, 1)
    checked = 0
    for m in summary.metrics:
        cell = cells[(m.model, m.metric)]
        assert cell.n == m.n and cell.errors == m.errors
        assert cell.mean == pytest.approx(m.mean_normalized)
        if m.pass_rate is not None:
            assert cell.pass_rate == pytest.approx(m.pass_rate)
        checked += 1
    assert checked == 3 * 4


def test_trends_show_each_day_and_leave_gaps_empty(demo: sa.Engine) -> None:
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    with demo.begin() as conn:  # half of the scores were made three days ago
        ids = conn.execute(sa.select(Score.c.id).order_by(Score.c.id)).scalars().all()
        conn.execute(
            sa.update(Score)
            .where(Score.c.id.in_(ids[: len(ids) // 2]))
            .values(created_at=three_days_ago)
        )
    data = dashboard.trends(demo, 1, "helpfulness", 30)
    assert len(data.days) == 4  # three days ago to today, every day listed
    for series in data.series:
        assert series.n[1] is None and series.n[2] is None  # no scores: a gap
        assert (series.n[0] or 0) + (series.n[3] or 0) == 16
        for mean, low, high in zip(series.mean, series.low, series.high, strict=True):
            if mean is not None and low is not None:
                assert 0 <= low <= mean <= high <= 1


def test_a_period_excludes_older_runs(demo: sa.Engine) -> None:
    from panopticon.store.tables import Run

    with demo.begin() as conn:
        conn.execute(sa.update(Run).values(created_at=datetime.now(UTC) - timedelta(days=10)))
    assert dashboard.overview(demo, 1, 30).totals.answers == 48
    week = dashboard.overview(demo, 1, 7)
    assert week.totals.runs == 0 and week.totals.answers == 0
    assert week.models == []


def test_the_heatmap_pools_every_score_of_a_model_and_theme(demo: sa.Engine) -> None:
    from collections import defaultdict

    from panopticon.services.runs import summary_rows
    from panopticon.stats.summary import comparable_value

    pooled: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in summary_rows(demo, 1):
        for score in row["scores"].values():
            value = comparable_value(score)
            if value is not None:
                pooled[(row["model"], row["theme"])].append(value)
    heat = dashboard.heatmap(demo, 1, 1, None)
    assert set(heat.cells) == set(pooled)
    for key, values in pooled.items():
        assert heat.cells[key].n == len(values)
        assert heat.cells[key].mean == pytest.approx(sum(values) / len(values))
    one = dashboard.heatmap(demo, 1, 1, "helpfulness")
    assert sum(c.n for c in one.cells.values()) == 48
