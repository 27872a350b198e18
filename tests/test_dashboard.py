"""The dashboard's numbers: aggregated by the database, equal to the run summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from panopticon.services import dashboard
from panopticon.services.runs import summarize_run
from panopticon.store.tables import Score
from tests.conftest import suite_yaml, write


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
            assert (cell.pass_low, cell.pass_high) == pytest.approx((m.pass_low, m.pass_high))
        if m.metric == "helpfulness":  # a 1-10 rubric: the same interval, normalised
            assert cell.clusters == m.clusters == 16
            assert cell.low == pytest.approx(((m.mean_low or 0) - 1) / 9)
            assert cell.high == pytest.approx(((m.mean_high or 0) - 1) / 9)
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


def test_the_heatmap_pools_every_quality_score_of_a_model_and_theme(demo: sa.Engine) -> None:
    from collections import defaultdict

    from panopticon.services.runs import summary_rows
    from panopticon.stats.summary import comparable_value

    pooled: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in summary_rows(demo, 1):
        for name, score in row["scores"].items():
            value = comparable_value(score)
            if name == "fast":  # the demo's latency check is not quality
                continue
            if value is not None:
                pooled[(row["model"], row["theme"])].append(value)
    heat = dashboard.heatmap(demo, 1, 1, None)
    assert set(heat.cells) == set(pooled)
    for key, values in pooled.items():
        assert heat.cells[key].n == len(values)
        assert heat.cells[key].mean == pytest.approx(sum(values) / len(values))
    one = dashboard.heatmap(demo, 1, 1, "helpfulness")
    assert sum(c.n for c in one.cells.values()) == 48


def _quality_means(engine: sa.Engine) -> dict[str, float]:
    from collections import defaultdict

    from panopticon.services.runs import summary_rows
    from panopticon.stats.summary import comparable_value

    pooled: dict[str, list[float]] = defaultdict(list)
    for row in summary_rows(engine, 1):
        for name, score in row["scores"].items():
            value = comparable_value(score)
            if value is not None and name != "fast":
                pooled[row["model"]].append(value)
    return {m: sum(v) / len(v) for m, v in pooled.items()}


def test_mean_score_by_model_leaves_out_latency_and_cost(demo: sa.Engine) -> None:
    """The demo's 'fast' latency check favours the tiny model: counted as quality it
    lifted the weakest model; the mean score by model is quality only, as in the report."""
    models = {m.model: m for m in dashboard.overview(demo, 1, 30).models}
    expected = _quality_means(demo)
    assert set(models) == set(expected)
    for name, mean in expected.items():
        assert models[name].mean == pytest.approx(mean)
        assert models[name].clusters == 16 and models[name].n == 16 * 3
    ranked = sorted(models, key=lambda m: -(models[m].mean or 0))
    assert ranked == ["frontier", "balanced", "tiny"]
    # the totals still count every score, the latency check's too
    assert dashboard.overview(demo, 1, 30).totals.scores == 48 * 4


def test_cached_re_runs_of_the_same_answers_add_no_certainty(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    """Three runs of one suite, the second and third from the cache: the same answers
    three times. n counts the scores (30, 60, 90), but the interval is clustered by query,
    so it does not narrow as if there were 90 queries."""
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=30, models=("good",)))
    cells = []
    for _ in range(3):
        assert CliRunner().invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
        (cell,) = dashboard.overview(engine, 1, 30).models
        cells.append(cell)
    assert [c.n for c in cells] == [60, 120, 180]  # two quality metrics per answer
    assert [c.clusters for c in cells] == [30, 30, 30]
    first = (cells[0].high or 0) - (cells[0].low or 0)
    for c in cells[1:]:
        assert c.mean == pytest.approx(cells[0].mean)
        assert (c.high or 0) - (c.low or 0) == pytest.approx(first, rel=0.05)


def test_with_repeats_the_dashboard_clusters_as_the_run_summary_does(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    path = write(
        tmp_path / "s.yaml", suite_yaml(mock.url, queries=8, models=("good",), extra="repeats: 3\n")
    )
    assert CliRunner().invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    (m,) = [m for m in summarize_run(engine, 1).metrics if m.metric == "quality"]
    cell = dashboard.model_metrics(engine, 1, 1).cells[("good", "quality")]
    assert (cell.n, cell.clusters) == (m.n, m.clusters) == (24, 8)
    assert cell.low == pytest.approx(((m.mean_low or 0) - 1) / 9)
    assert cell.high == pytest.approx(((m.mean_high or 0) - 1) / 9)


def test_the_per_query_pass_reads_a_models_scores_in_query_order_from_one_index(
    demo: sa.Engine,
) -> None:
    """The clustered intervals group scores by model and query: an index in that order that
    holds every column the pass reads (bench_dashboard_intervals.py measures what it saves)."""
    (index,) = [
        i
        for i in sa.inspect(demo).get_indexes("score")
        if i["name"] == "ix_score_workspace_model_query"
    ]
    assert index["column_names"][:3] == ["workspace_id", "model_id", "query_id"]
    assert {"metric_id", "normalized", "passed"} <= set(index["column_names"])
    if demo.dialect.name != "sqlite":
        return  # PostgreSQL picks its plan by the table's size: this one is too small to say
    statements: list[str] = []

    def grab(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sa.event.listen(demo, "before_cursor_execute", grab)
    try:
        dashboard.model_metrics(demo, 1, None)  # every run: the clustered pass runs
    finally:
        sa.event.remove(demo, "before_cursor_execute", grab)
    (pass_,) = [s for s in statements if "GROUP BY score.model_id, score.query_id" in s]
    with demo.connect() as conn:
        plan = " ".join(
            str(r[-1])
            for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + pass_, tuple([1] * pass_.count("?"))
            )
        )
    assert "COVERING INDEX ix_score_workspace_model_query" in plan, plan
