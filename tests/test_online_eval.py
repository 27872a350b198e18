"""Online evaluation at work: production spans judged by the enabled rules within seconds,
on SQLite (in the server) and PostgreSQL (procrastinate workers), within budgets, and a
ledger that explains every span."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from panopticon.api.app import create_app
from panopticon.cli import app as cli_app
from panopticon.mockllm.server import MockServer
from panopticon.settings import Settings
from tests.test_api import BOOT
from tests.test_api_judge import register
from tests.test_web import sign_in

ADMIN = {"X-API-Key": BOOT}
RULE: dict[str, Any] = {
    "name": "helpfulness",
    "metrics": [
        {"name": "helpful", "type": "rubric", "prompt": "Is the answer helpful?", "scale": [1, 10]},
        {"name": "no-pii", "type": "pii"},
    ],
    "judge": "gpt-4",
    "filter": {"models": ["gpt-4o*"]},
}


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout:g} s: {value}"
        time.sleep(0.05)


@pytest.fixture
def api(settings: Settings, mock: MockServer, job_worker: None) -> Iterator[TestClient]:
    app = create_app(Settings(home=settings.home, database_url=settings.database_url, api_key=BOOT))
    with TestClient(app) as client:
        register(client, mock, ADMIN)  # gpt-4o, claude-3-opus-20240229, gpt-4 (priced)
        yield client


def log(api: TestClient, model: str, prompt: str, response: str, **extra: Any) -> str:
    r = api.post(
        "/api/logs",
        json={"prompt": prompt, "response": response, "model": model, **extra},
        headers=ADMIN,
    )
    assert r.status_code in (200, 202), r.text
    return str(r.json()["trace_ids"][0])


def ledger(api: TestClient, trace_id: str) -> dict[str, Any]:
    r = api.get(f"/api/online/traces/{trace_id}", headers=ADMIN)
    assert r.status_code == 200, r.text
    return dict(r.json())


def final(api: TestClient, trace_id: str) -> dict[str, Any]:
    """The trace's ledger once no entry waits for a worker."""

    def done() -> dict[str, Any] | None:
        found = ledger(api, trace_id)
        waiting = {"pending", "running", "rate_limited"}
        if found["entries"] and not any(e["outcome"] in waiting for e in found["entries"]):
            return found
        return None

    return dict(wait_for(done, what=f"an outcome for trace {trace_id}"))


def test_live_traffic_is_judged_by_a_rule_and_every_span_has_an_outcome_with_its_reason(
    api: TestClient,
) -> None:
    assert api.post("/api/online/rules", json=RULE, headers=ADMIN).status_code == 201
    judged = log(api, "gpt-4o", "What is the capital of France?", "Paris is the capital.")
    other = log(api, "claude-3-opus-20240229", "Hi", "Hello!")

    found = final(api, judged)
    (entry,) = found["entries"]
    assert entry["outcome"] == "evaluated" and entry["rule"] == "helpfulness"
    assert "helpful=" in entry["reason"] and entry["cost_usd"] > 0
    assert found["summary"] == "evaluated by helpfulness"
    trace = api.get(f"/api/traces/{judged}", headers=ADMIN).json()
    scores = {s["name"]: s for s in trace["scores"]}
    assert {"helpful", "no-pii"} <= set(scores)
    assert scores["helpful"]["source"] == "online" and scores["helpful"]["value"] is not None

    skipped = final(api, other)
    (entry,) = skipped["entries"]
    assert entry["outcome"] == "filtered_out"
    assert "claude-3-opus-20240229" in entry["reason"] and "gpt-4o*" in entry["reason"]
    assert skipped["summary"].startswith("not evaluated: filtered out")

    hourly = api.get("/api/online/activity", headers=ADMIN).json()
    counts = {(h["rule"], h["outcome"]): h["count"] for h in hourly}
    assert counts[("helpfulness", "evaluated")] == 1
    assert counts[("helpfulness", "filtered_out")] == 1


def test_an_identical_answer_is_judged_once_and_its_scores_are_shared(
    api: TestClient, mock: MockServer
) -> None:
    assert api.post("/api/online/rules", json=RULE, headers=ADMIN).status_code == 201
    first = log(api, "gpt-4o", "Capital of Italy?", "Rome.")
    assert final(api, first)["entries"][0]["outcome"] == "evaluated"
    judge_calls = mock.stats.by_route.get("chat", 0)
    second = log(api, "gpt-4o", "Capital of Italy?", "Rome.")
    (entry,) = final(api, second)["entries"]
    assert entry["outcome"] == "deduplicated" and first in entry["reason"]
    assert mock.stats.by_route.get("chat", 0) == judge_calls  # no second judge call
    scores = api.get(f"/api/traces/{second}", headers=ADMIN).json()["scores"]
    assert {s["name"] for s in scores} >= {"helpful", "no-pii"}


def test_a_call_that_would_pass_the_budget_is_not_made_and_the_span_says_over_budget(
    api: TestClient, mock: MockServer
) -> None:
    # gpt-4 costs $1 per million input tokens and $2 per million output: a judge call's
    # bound (its prompt's bytes in, 1,024 tokens out) is about $0.003, above this budget
    tiny = {**RULE, "budgets": {"usd_per_day": 0.0001}}
    assert api.post("/api/online/rules", json=tiny, headers=ADMIN).status_code == 201
    before = mock.stats.by_route.get("chat", 0)
    trace = log(api, "gpt-4o", "Capital of Spain?", "Madrid.")
    (entry,) = final(api, trace)["entries"]
    assert entry["outcome"] == "over_budget"
    assert "rule:helpfulness day budget would be passed" in entry["reason"]
    assert mock.stats.by_route.get("chat", 0) == before
    windows = api.get("/api/online/budget", headers=ADMIN).json()["windows"]
    assert all(w["spent_usd"] == 0 and w["reserved_usd"] == 0 for w in windows)


def test_a_trace_stored_while_no_rule_was_enabled_says_so(api: TestClient) -> None:
    trace = log(api, "gpt-4o", "Capital of Peru?", "Lima.")
    found = ledger(api, trace)
    assert found["entries"] == [] and "no online rule is enabled" in found["summary"]


def job(api: TestClient, job_id: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = dict(api.get(f"/api/jobs/{job_id}", headers=ADMIN).json())
        return found if found["status"] in ("completed", "failed") else None

    return dict(wait_for(done, what=f"backfill job {job_id}"))


def test_a_backfill_judges_past_traces_of_one_model_within_its_own_budget(
    api: TestClient,
) -> None:
    old = [log(api, "gpt-4o", f"Question {i}?", f"Answer {i}.") for i in range(4)]
    skipped = log(api, "claude-3-opus-20240229", "Hi", "Hello!")
    assert all(ledger(api, t)["entries"] == [] for t in old)  # no rule existed then
    disabled = {**RULE, "enabled": False}  # judge past traffic only
    assert api.post("/api/online/rules", json=disabled, headers=ADMIN).status_code == 201
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    until = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    body = {"rule": "helpfulness", "since": since, "until": until, "budget_usd": 1.0}
    created = api.post("/api/online/backfills", json=body, headers=ADMIN)
    assert created.status_code == 202, created.text
    finished = job(api, created.json()["id"])
    assert finished["status"] == "completed", finished
    assert finished["total"] == 4 and finished["done"] == 4 and finished["failed"] == 0
    assert 0 < finished["cost_usd"] <= 1.0, [ledger(api, t) for t in old]
    for trace in old:
        (entry,) = ledger(api, trace)["entries"]
        assert entry["outcome"] == "evaluated" and entry["backfill_job"] == finished["id"], entry
    assert ledger(api, skipped)["entries"][0]["outcome"] == "filtered_out"
    # run again (without until: up to now, as the CLI): what is judged is not judged again
    until_now = {k: v for k, v in body.items() if k != "until"}
    again = job(api, api.post("/api/online/backfills", json=until_now, headers=ADMIN).json()["id"])
    assert again["status"] == "completed" and again["total"] == 0 and again["cost_usd"] == 0
    bad = api.post("/api/online/backfills", json={**body, "budget_usd": 0}, headers=ADMIN)
    assert bad.status_code == 422
    unknown = api.post("/api/online/backfills", json={**body, "rule": "nope"}, headers=ADMIN)
    assert unknown.status_code == 404 and "helpfulness" in unknown.text


def test_a_backfill_stops_spending_at_its_budget_and_says_so(api: TestClient) -> None:
    traces = [log(api, "gpt-4o", f"Question {i} " + "x" * 400, f"Answer {i}.") for i in range(6)]
    assert api.post("/api/online/rules", json={**RULE, "enabled": False}, headers=ADMIN)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    until = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    # a call's bound is about $0.0028 (its prompt's bytes in, 1,024 tokens out at $2/M) and
    # its real cost about $0.0003: one or two calls fit in $0.003, never a third
    body = {"rule": "helpfulness", "since": since, "until": until, "budget_usd": 0.003}
    finished = job(api, api.post("/api/online/backfills", json=body, headers=ADMIN).json()["id"])
    assert finished["status"] == "completed" and finished["total"] == finished["done"] == 6
    assert 0 < finished["cost_usd"] <= 0.003
    outcomes = [ledger(api, t)["entries"][0]["outcome"] for t in traces]
    assert outcomes.count("evaluated") in (1, 2) and outcomes.count("over_budget") >= 4
    windows = api.get("/api/online/budget", headers=ADMIN).json()["windows"]
    backfill = next(w for w in windows if w["scope"] == f"backfill:{finished['id']}")
    assert backfill["reserved_usd"] == 0 and backfill["spent_usd"] <= 0.003
    over = next(
        e for t in traces for e in ledger(api, t)["entries"] if e["outcome"] == "over_budget"
    )
    assert f"backfill:{finished['id']} total budget would be passed" in over["reason"]


def test_the_cli_explains_a_trace_and_backfills_in_the_foreground(
    api: TestClient, env: dict[str, str], tmp_path: Path
) -> None:
    trace = log(api, "gpt-4o", "What is 2+2?", "4")
    rule = tmp_path / "rule.yaml"
    rule.write_text(
        "name: quick\nenabled: false\nmetrics:\n  - {name: short, type: length, max: 50}\n"
    )
    cli = CliRunner()
    assert cli.invoke(cli_app, ["online", "apply", str(rule)]).exit_code == 0
    why = cli.invoke(cli_app, ["online", "why", trace])
    assert why.exit_code == 0 and "the rules here are paused (quick)" in why.output
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    out = cli.invoke(cli_app, ["online", "backfill", "quick", "--since", since, "--budget", "1"])
    assert out.exit_code == 0, out.output
    assert "backfill completed: 1 of 1 selected spans have their outcome" in out.output
    why = cli.invoke(cli_app, ["online", "why", trace]).output
    assert "evaluated by quick" in why and "short=" in why
    activity = cli.invoke(cli_app, ["online", "activity"]).output
    assert "quick  evaluated: 1" in activity


def test_the_dashboard_shows_a_traces_outcomes_and_the_hourly_activity(
    api: TestClient,
) -> None:
    assert api.post("/api/online/rules", json=RULE, headers=ADMIN).status_code == 201
    trace = log(api, "claude-3-opus-20240229", "Hi", "Hello!")
    final(api, trace)
    assert sign_in(api, BOOT).status_code == 200
    page = api.get(f"/ui/traces/{trace}").text
    assert "Online evaluation" in page and "filtered out" in page and "gpt-4o*" in page
    online = api.get("/ui/online").text
    assert 'data-testid="activity"' in online and "helpfulness" in online


def test_identical_answers_arriving_together_are_judged_once(
    api: TestClient, mock: MockServer
) -> None:
    assert api.post("/api/online/rules", json=RULE, headers=ADMIN).status_code == 201
    before = mock.stats.by_route.get("chat", 0)
    # one request, five traces with the same answer: selected together, claimed together
    span = {"name": "chat", "kind": "llm", "model": "gpt-4o", "input": "Capital of Chile?"}
    body = {"traces": [{"spans": [{**span, "output": "Santiago."}]} for _ in range(5)]}
    r = api.post("/api/traces", json=body, headers=ADMIN)
    assert r.status_code in (200, 202), r.text
    traces = r.json()["trace_ids"]
    outcomes = sorted(final(api, t)["entries"][0]["outcome"] for t in traces)
    assert outcomes == ["deduplicated"] * 4 + ["evaluated"]
    assert mock.stats.by_route.get("chat", 0) == before + 1


def start_worker(settings: Settings, **env: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "panopticon", "worker", "--concurrency", "4"],
        env=dict(
            os.environ,
            PANOPTICON_DATABASE_URL=settings.database_url or "",
            PANOPTICON_HOME=str(settings.home),
            **env,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "taking jobs" in line, line + (proc.stdout.read() if proc.poll() else "")
    return proc


@pytest.mark.postgres_only
def test_a_worker_killed_mid_batch_loses_no_span_and_judges_none_twice(
    settings: Settings, mock: MockServer
) -> None:
    """kill -9 of the only worker while it judges: another worker takes the entries over
    after the lease; every span ends with one outcome and one score per metric."""
    app = create_app(Settings(home=settings.home, database_url=settings.database_url, api_key=BOOT))
    lease = {"PANOPTICON_ONLINE_LEASE_S": "2"}
    mock.config.update({"model_latency_ms": {"mock-gpt-4": 1500.0}})  # a slow judge
    with TestClient(app) as api:
        register(api, mock, ADMIN)
        assert api.post("/api/online/rules", json=RULE, headers=ADMIN).status_code == 201
        first = start_worker(settings, **lease)
        traces = [log(api, "gpt-4o", f"Question {i}?", f"Answer {i}.") for i in range(12)]

        def running() -> bool:
            return any(e["outcome"] == "running" for t in traces for e in ledger(api, t)["entries"])

        try:
            wait_for(running, what="a worker judging")
        finally:
            first.kill()  # kill -9: no clean shutdown, entries left running
            first.communicate(timeout=30)
        second = start_worker(settings, **lease)
        try:
            outcomes = [final(api, t)["entries"] for t in traces]
        finally:
            second.terminate()
            second.communicate(timeout=30)
        assert [len(e) for e in outcomes] == [1] * len(traces)
        assert {e[0]["outcome"] for e in outcomes} == {"evaluated"}
        for t in traces:
            names = [s["name"] for s in api.get(f"/api/traces/{t}", headers=ADMIN).json()["scores"]]
            assert sorted(names) == ["helpful", "no-pii"], (t, names)  # never twice


def test_a_slow_judgement_does_not_hold_up_the_entries_claimed_after_it(
    settings: Settings, mock: MockServer
) -> None:
    """One judging task, one entry whose judge takes 15 s and two batches' worth of others:
    the task claims and judges the others while the slow one is judged (it does not wait
    for a batch to end before it claims again)."""
    import asyncio

    from panopticon.services.database import workspace_id
    from panopticon.services.online_eval import IN_FLIGHT, OnlineEvaluator
    from panopticon.services.runs import store
    from panopticon.store.queries import ledger as q

    app = create_app(Settings(home=settings.home, database_url=settings.database_url, api_key=BOOT))
    with TestClient(app) as api:  # spans stored while no rule is enabled: nothing is selected
        register(api, mock, ADMIN)
        log(api, "claude-3-opus-20240229", "Hard question?", "Hard answer.")
        for i in range(2 * IN_FLIGHT):
            log(api, "gpt-4o", f"Question {i}?", f"Answer {i}.")
        for rule in ({**RULE, "name": "slow"}, {**RULE, "name": "fast", "judge": "gpt-4o"}):
            assert api.post("/api/online/rules", json=rule, headers=ADMIN).status_code == 201
    mock.config.update({"model_latency_ms": {"mock-gpt-4": 15_000.0}})
    with store(settings) as engine:
        ws = workspace_id(engine, "default")
        now = datetime.now(UTC)
        with engine.begin() as conn:
            rules = {r.name: r for r in q.enabled_rules(conn, [ws])}
            spans = q.spans_between(conn, ws, now - timedelta(hours=1), now, None, 100)
            entries = [
                {
                    "workspace_id": ws,
                    "rule_id": rules[name].id,
                    "rule_version": rules[name].version,
                    "trace_id": f.trace_id,
                    "span_id": f.span_id,
                    "outcome": "pending",
                }
                for f in sorted(spans, key=lambda f: f.model != "claude-3-opus-20240229")
                for name in ["slow" if f.model == "claude-3-opus-20240229" else "fast"]
            ]
            q.insert_outcomes(conn, entries)  # the slow one first: it is in the first claim

        def outcomes() -> dict[str, list[str]]:
            with engine.connect() as conn:
                found: dict[str, list[str]] = {}
                for f in spans:
                    for o in q.outcomes_of_trace(conn, ws, f.trace_id):
                        found.setdefault(o.rule, []).append(o.outcome)
                return found

        async def judge() -> tuple[dict[str, list[str]], int]:
            evaluator = OnlineEvaluator(engine, settings, dict(os.environ))
            try:
                draining = asyncio.create_task(evaluator.drain(seconds=120))
                while (seen := await asyncio.to_thread(outcomes))["fast"] != ["evaluated"] * (
                    2 * IN_FLIGHT
                ):
                    assert not draining.done(), seen
                    await asyncio.sleep(0.05)
                return seen, await draining
            finally:
                await evaluator.aclose()

        seen, handled = asyncio.run(judge())
        assert seen["slow"] == ["running"]  # the others were judged while it was
        assert handled == 1 + 2 * IN_FLIGHT
        assert outcomes()["slow"] == ["evaluated"]


def test_outcomes_written_together_refuse_a_claim_whose_lease_passed(settings: Settings) -> None:
    """The group commit's one statement for many entries is fenced as one entry's is."""
    from panopticon.services.database import workspace_id
    from panopticon.services.online import OnlineRules
    from panopticon.services.runs import store
    from panopticon.store.queries import ledger as q

    with store(settings) as engine:
        ws = workspace_id(engine, "default")
        rule = OnlineRules(engine, ws).apply(
            {"name": "r", "metrics": [{"name": "p", "type": "pii"}]}
        )
        with engine.begin() as conn:
            rule_id = q.enabled_rules(conn, [ws])[0].id
            q.insert_outcomes(
                conn,
                [
                    {
                        "workspace_id": ws,
                        "rule_id": rule_id,
                        "rule_version": rule.rule.version,
                        "trace_id": "a" * 32,
                        "span_id": f"{i:016x}",
                        "outcome": "pending",
                    }
                    for i in range(3)
                ],
            )
        now = datetime.now(UTC)
        with engine.begin() as conn:
            first = q.claim(conn, 10, now)
        assert [c.was for c in first] == ["pending"] * 3
        later = now + timedelta(seconds=10)
        with engine.begin() as conn:
            assert q.expire_leases(conn, later, lease_s=5, max_attempts=3) == 3
            (again, *_) = q.claim(conn, 1, later)  # one of them taken over
        late = [q.Finish(c.id, "evaluated", c.attempts, "late", cost_usd=0.5) for c in first]
        with engine.begin() as conn:  # let go (two) or taken over (one): none is written
            assert q.finish_many(conn, late) == set()
        defer = q.Finish(again.id, "rate_limited", again.attempts, "later", not_before=later)
        with engine.begin() as conn:
            assert q.finish_many(conn, [defer]) == {again.id}
            back = {c.id: c for c in q.claim(conn, 10, later)}
        assert set(back) == {c.id for c in first}
        # a deferral is not an attempt; the other two were tried once before
        assert (back[again.id].was, back[again.id].attempts) == ("rate_limited", again.attempts)
        assert {c.attempts for c in back.values()} == {2}


def test_a_claim_whose_lease_passed_cannot_record_over_the_worker_that_took_it_over(
    settings: Settings,
) -> None:
    """A worker slower than the lease is not trusted any more: its outcome (and the scores
    written with it) are refused once another worker has claimed the entry."""
    from datetime import UTC, datetime, timedelta

    from panopticon.services.online import OnlineRules
    from panopticon.services.runs import store
    from panopticon.store.queries import ledger as q

    with store(settings) as engine:
        from panopticon.services.database import workspace_id

        ws = workspace_id(engine, "default")
        rule = OnlineRules(engine, ws).apply(
            {"name": "r", "metrics": [{"name": "p", "type": "pii"}]}
        )
        rules = {r.name: r for r in OnlineRules(engine, ws).list()}
        assert rule.rule.name in rules
        with engine.begin() as conn:
            rule_id = q.enabled_rules(conn, [ws])[0].id
            q.insert_outcomes(
                conn,
                [
                    {
                        "workspace_id": ws,
                        "rule_id": rule_id,
                        "rule_version": rule.rule.version,
                        "trace_id": "a" * 32,
                        "span_id": "b" * 16,
                        "outcome": "pending",
                    }
                ],
            )
        now = datetime.now(UTC)
        with engine.begin() as conn:
            (slow,) = q.claim(conn, 10, now)
        later = now + timedelta(seconds=10)
        with engine.begin() as conn:
            assert q.expire_leases(conn, later, lease_s=5, max_attempts=3) == 1
            (fast,) = q.claim(conn, 10, later)
        assert fast.attempts == slow.attempts + 1
        with engine.begin() as conn:
            assert not q.finish(conn, slow.id, "evaluated", attempt=slow.attempts, reason="late")
            assert q.finish(conn, fast.id, "evaluated", attempt=fast.attempts, reason="ok")


def test_calls_in_flight_holding_a_budget_make_others_wait_not_give_up(api: TestClient) -> None:
    """Six answers, a budget that holds two calls' bounds at once but, at their real cost,
    pays for all six: the spans whose call found the room held wait for the calls in flight
    to settle, and every one is judged, within the budget."""
    traces = [log(api, "gpt-4o", f"Question {i} " + "y" * 400, f"Answer {i}.") for i in range(6)]
    assert api.post("/api/online/rules", json={**RULE, "enabled": False}, headers=ADMIN)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    until = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    body = {"rule": "helpfulness", "since": since, "until": until, "budget_usd": 0.006}
    finished = job(api, api.post("/api/online/backfills", json=body, headers=ADMIN).json()["id"])
    assert finished["status"] == "completed" and finished["total"] == finished["done"] == 6
    assert 0 < finished["cost_usd"] <= 0.006
    assert [ledger(api, t)["entries"][0]["outcome"] for t in traces] == ["evaluated"] * 6


def test_a_rule_name_no_rule_can_have_is_refused_with_a_4xx(api: TestClient) -> None:
    """Found by schemathesis: a NUL in a rule name was a 500 on PostgreSQL."""
    body = {"rule": "a\x00b", "since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}
    r = api.post("/api/online/backfills", json={**body, "budget_usd": 1}, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert api.get("/api/online/activity?rule=a%00b", headers=ADMIN).status_code == 422
