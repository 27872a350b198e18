"""Prompt variants (``prompts:``) and per-query metrics, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.errors import ConfigError
from panopticon.evaluation.suite import load_suite
from panopticon.mockllm.server import MockServer
from panopticon.settings import Settings
from panopticon.store.tables import Model, Prompt, Result, Score
from tests.conftest import write

cli = CliRunner()


def run_cli(*args: str) -> tuple[int, str]:
    result = cli.invoke(app, list(args))
    return result.exit_code, result.output


def prompts_suite(base_url: str, *, prompts: bool = True, queries: int = 3) -> str:
    models = "\n".join(
        f"  - {{id: {m}, model: mock-{m}, base_url: '{base_url}', price: {{input: 1, output: 2}}}}"
        for m in ("good", "weak")
    )
    rows = "\n".join(f"  - {{id: q{i}, text: 'Question {i}?', theme: t}}" for i in range(queries))
    block = (
        "prompts:\n"
        "  - {id: terse, system: 'Answer in one word.'}\n"
        "  - {id: chatty, system: 'Explain at length.', template: 'Please: {text}'}\n"
        if prompts
        else ""
    )
    return (
        f"name: variants\nmodels:\n{models}\n{block}queries:\n{rows}\n"
        "metrics:\n  - {name: short, type: length, max: 2000}\n"
    )


def test_each_prompt_variant_is_run_on_every_model_and_stored_with_its_hash(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    path = write(tmp_path / "s.yaml", prompts_suite(mock.url))
    code, out = run_cli("run", str(path), "--no-progress")
    assert code == 0, out
    assert mock.stats.answered == 3 * 2 * 2  # queries x models x prompts
    for arm in ("good@terse", "good@chatty", "weak@terse", "weak@chatty"):
        assert arm in out
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(Model.c.name, Result.c.prompt, Result.c.prompt_hash, Result.c.request).join(
                Model, Model.c.id == Result.c.model_id
            )
        ).all()
        prompts = {r.name: r.content_hash for r in conn.execute(sa.select(Prompt))}
    assert set(prompts) == {"terse", "chatty"}
    assert len(rows) == 12
    for name, prompt, prompt_hash, request in rows:
        assert name.endswith("@" + prompt)
        assert prompt_hash == prompts[prompt]
        system = request["messages"][0]
        assert system["role"] == "system"
        if prompt == "chatty":
            assert system["content"] == "Explain at length."
            assert request["messages"][-1]["content"].startswith("Please: Question")
        else:
            assert system["content"] == "Answer in one word."

    # a second run reuses every answer: the cache key includes the prompt variant
    mock.reset()
    code, out = run_cli("run", str(path), "--no-progress")
    assert code == 0, out
    assert mock.stats.requests == 0


def test_variants_with_the_same_text_do_not_share_answers(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    text = prompts_suite(mock.url, prompts=False).replace(
        "queries:",
        "prompts:\n  - {id: a, system: 'Same.'}\n  - {id: b, system: 'Same.'}\nqueries:",
    )
    path = write(tmp_path / "s.yaml", text)
    code, out = run_cli("run", str(path), "--no-progress")
    assert code == 0, out
    assert mock.stats.answered == 3 * 2 * 2


def test_a_suite_without_prompts_keeps_its_cache_keys_and_fingerprint(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    from panopticon.evaluation.keys import answer_key
    from panopticon.evaluation.plan import build_cases

    loaded = load_suite(write(tmp_path / "s.yaml", prompts_suite(mock.url, prompts=False)), env)
    assert "prompts" not in loaded.snapshot() and "gates" not in loaded.snapshot()
    gated = load_suite(
        write(tmp_path / "g.yaml", prompts_suite(mock.url, prompts=False) + "gates: {short: 1}\n"),
        env,
    )
    assert gated.snapshot()["gates"] == {"short": 1.0}
    assert gated.fingerprint == loaded.fingerprint  # a resume may change its gates
    cases = build_cases(loaded, [1, 2, 3], {"good": 1, "weak": 2})
    c = cases[0]
    fp = {**c.model.settings_fingerprint(), "params": c.params}
    assert c.cache_key == answer_key(fp, c.messages, 0)
    assert [m["role"] for m in c.messages] == ["user"]


def test_compare_takes_two_prompts_of_one_run(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    path = write(tmp_path / "s.yaml", prompts_suite(mock.url, queries=4))
    assert run_cli("run", str(path), "--no-progress")[0] == 0
    code, out = run_cli("compare", "1", "--models", "good@terse,good@chatty", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data[0]["a"].startswith("good@terse") and data[0]["b"].startswith("good@chatty")
    code, out = run_cli("compare", "1", "--prompts", "terse,chatty", "--json")
    assert code == 0, out
    labels = [(c["a"], c["b"]) for c in json.loads(out)]
    assert len(labels) == 2  # one comparison per model
    assert labels[0][0].startswith("good@terse")


def test_per_query_metrics_score_only_their_queries(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    write(
        tmp_path / "rows.jsonl",
        '{"text": "File one?", "metrics": [{"type": "contains", "name": "says_yes", '
        '"values": ["yes"]}]}\n{"text": "File two?", "metrics": ["strict"]}\n',
    )
    text = (
        prompts_suite(mock.url, prompts=False).replace(
            "  - {id: q0, text: 'Question 0?', theme: t}",
            "  - {id: q0, text: 'Question 0?', theme: t, metrics: [strict]}\n"
            "  - {file: rows.jsonl, metrics: [{type: length, name: tiny, max: 5}]}",
        )
        + "  - {name: strict, type: length, max: 10}\n"
    )
    path = write(tmp_path / "s.yaml", text)
    code, out = run_cli("run", str(path), "--no-progress")
    assert code == 0, out
    with engine.connect() as conn:
        from panopticon.store.tables import Metric, Query

        rows = conn.execute(
            sa.select(Query.c.text, Metric.c.name)
            .select_from(Score)
            .join(Result, Result.c.id == Score.c.result_id)
            .join(Query, Query.c.id == Result.c.query_id)
            .join(Metric, Metric.c.id == Score.c.metric_id)
            .join(Model, Model.c.id == Result.c.model_id)
            .where(Model.c.name == "good")
        ).all()
    by_query: dict[str, set[str]] = {}
    for q, m in rows:
        by_query.setdefault(q, set()).add(m)
    assert by_query == {
        "Question 0?": {"short", "strict"},  # strict: named by this query only
        "Question 1?": {"short"},
        "Question 2?": {"short"},
        "File one?": {"short", "tiny", "says_yes"},
        "File two?": {"short", "tiny", "strict"},
    }


def test_per_query_metric_mistakes_name_their_file_and_line(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    write(
        tmp_path / "rows.jsonl",
        '{"text": "a", "metrics": [{"type": "rubric", "name": "r", "prompt": "Good?", '
        '"judge": "ghost"}]}\n{"text": "b", "metrics": ["nope"]}\n'
        '{"text": "c", "metrics": [{"type": "rubric", "name": "r2", "prompt": "Good?"}]}\n',
    )
    text = prompts_suite(mock.url, prompts=False).replace(
        "  - {id: q0, text: 'Question 0?', theme: t}",
        "  - {id: q0, text: 'Question 0?', metrics: [{type: lenght}]}\n  - {file: rows.jsonl}",
    )
    with pytest.raises(ConfigError) as err:
        load_suite(write(tmp_path / "s.yaml", text), env)
    messages = [str(i) for i in err.value.issues]
    assert any("s.yaml:6: queries[0].metrics[0].type" in m and "lenght" in m for m in messages)
    assert any("rows.jsonl:2: metrics[0]" in m and "'nope'" in m for m in messages)
    assert any("rows.jsonl:1: metrics[0]: judge 'ghost' is not one" in m for m in messages)
    assert any("rows.jsonl:3: metrics[0]: metric 'r2' needs a judge" in m for m in messages)


def test_prompt_mistakes_are_reported_with_their_line(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    text = (
        prompts_suite(mock.url).replace(
            "  - {id: chatty, system: 'Explain at length.', template: 'Please: {text}'}",
            "  - {id: terse, template: 'Use {missing}'}",
        )
        + "gates: {short: 1.5, nothing: 0.5}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_suite(write(tmp_path / "s.yaml", text), env)
    messages = "\n".join(str(i) for i in err.value.issues)
    assert "prompts[1].id: two prompts have the id 'terse'" in messages
    assert "template needs missing" in messages
    assert "gates.short: gate 1.5 is not between 0 and 1" in messages
    assert "gates.nothing: gate on 'nothing'" in messages


def test_pairwise_judges_compare_every_model_and_prompt_pair(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    from panopticon.store.tables import Pairwise

    text = (
        prompts_suite(mock.url, queries=2)
        + "  - {name: preference, type: pairwise}\n"
        + f"judge: {{id: judge, model: mock-judge, base_url: '{mock.url}'}}\n"
    )
    path = write(tmp_path / "s.yaml", text)
    code, out = run_cli("run", str(path), "--no-progress", "--dry-run")
    # 4 arms: 6 pairs per query, 2 queries, both orders
    assert code == 0 and "8 answers" in out and "24 of them to judges" in out, out
    code, out = run_cli("run", str(path), "--no-progress")
    assert code == 0, out
    with engine.connect() as conn:
        a, b = Model.alias("a"), Model.alias("b")
        pairs = conn.execute(
            sa.select(a.c.name, b.c.name)
            .select_from(Pairwise)
            .join(a, a.c.id == Pairwise.c.model_a_id)
            .join(b, b.c.id == Pairwise.c.model_b_id)
            .where(Pairwise.c.error.is_(None))
        ).all()
    assert len(pairs) == 2 * 6
    assert ("good@terse", "good@chatty") in {tuple(p) for p in pairs}


def test_a_prompts_run_resumes_only_what_is_missing(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    from panopticon.store.tables import Run

    path = write(tmp_path / "s.yaml", prompts_suite(mock.url))
    assert run_cli("run", str(path), "--no-progress")[0] == 0
    with engine.begin() as conn:  # three answers of one variant were lost mid-run
        lost = conn.scalars(
            sa.select(Result.c.id).where(Result.c.prompt == "chatty").limit(3)
        ).all()
        conn.execute(sa.delete(Result).where(Result.c.id.in_(lost)))
        conn.execute(sa.update(Run).values(status="interrupted"))
    mock.reset()
    code, out = run_cli("run", str(path), "--no-progress", "--resume", "1")
    assert code == 0, out
    assert mock.stats.answered == 3
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Result)) == 12


def test_upgrading_to_prompt_variants_keeps_every_result_and_score(settings: Settings) -> None:
    """0013 adds columns in place: a SQLite table rebuild would cascade-delete scores."""
    import uuid
    from datetime import UTC, datetime

    from panopticon.store.engine import create_engine, upgrade
    from panopticon.store.tables import Metric, Provider, Query, Run
    from tests.conftest import PG_URL, new_pg_database

    drop = None
    if PG_URL:
        url, drop = new_pg_database(None)
        settings = Settings(home=settings.home, database_url=url)
    engine = create_engine(settings)
    now = datetime.now(UTC)

    def insert(conn: sa.Connection, table: sa.Table, **values: object) -> int:
        return int(
            conn.execute(sa.insert(table).values(**values).returning(table.c.id)).scalar_one()
        )

    try:
        upgrade(engine, "0007")
        with engine.begin() as conn:
            pid = insert(
                conn, Provider, workspace_id=1, name="p", kind="openai", options={}, created_at=now
            )
            mid = insert(
                conn,
                Model,
                workspace_id=1,
                provider_id=pid,
                name="m",
                provider_model="m",
                settings={},
                created_at=now,
                updated_at=now,
            )
            qid = insert(
                conn,
                Query,
                workspace_id=1,
                text="q",
                messages=[],
                theme="t",
                metadata={},
                content_hash="h",
                created_at=now,
            )
            metric = insert(
                conn,
                Metric,
                workspace_id=1,
                name="x",
                type="length",
                definition={},
                version="1",
                created_at=now,
            )
            run = insert(
                conn,
                Run,
                workspace_id=1,
                name="r",
                status="completed",
                suite={},
                suite_fingerprint="f",
                planned=1,
                totals={},
                created_at=now,
            )
            rid = uuid.uuid4()
            conn.execute(
                sa.insert(Result).values(
                    id=rid,
                    run_id=run,
                    query_id=qid,
                    model_id=mid,
                    repeat=0,
                    cache_key="k",
                    request={},
                    cached=False,
                    attempts=1,
                    created_at=now,
                )
            )
            conn.execute(
                sa.insert(Score).values(
                    id=uuid.uuid4(),
                    run_id=run,
                    result_id=rid,
                    metric_id=metric,
                    value=1.0,
                    judge_cached=False,
                    created_at=now,
                )
            )
        upgrade(engine)
        with engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.count()).select_from(Score)) == 1
            row = conn.execute(sa.select(Result.c.prompt, Result.c.prompt_hash)).one()
            assert tuple(row) == (None, None)
    finally:
        engine.dispose()
        if drop:
            drop()


def test_a_csv_column_names_a_rows_metrics(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    write(
        tmp_path / "rows.csv",
        'text,metrics\nOne?,"strict, short"\nTwo?,"[{""type"": ""length"", ""name"": ""t"", '
        '""max"": 3}]"\nThree?,\n',
    )
    text = (
        prompts_suite(mock.url, prompts=False).replace(
            "  - {id: q0, text: 'Question 0?', theme: t}", "  - {file: rows.csv}"
        )
        + "  - {name: strict, type: length, max: 10}\n"
    )
    loaded = load_suite(write(tmp_path / "s.yaml", text), env)
    by_text = {q.text: q.metrics for q in loaded.queries}
    assert by_text["One?"] == ("strict", "short") and by_text["Two?"] == ("t",)
    assert by_text["Three?"] == ()
    assert loaded.suite_metrics == frozenset()  # both are named by a row: that row only
    assert "suite metric 'strict' is named by 1 query, so it scores only those" in "\n".join(
        loaded.warnings
    )
