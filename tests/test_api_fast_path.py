"""GET /api/judge/results is answered by a fast path in front of FastAPI's routing
(panopticon.api.fast). It must answer exactly what the route answers: the same key checks,
the same workspace, the same validation, the same bytes. And the store's reads survive
connections the database closed (PostgreSQL: no pre-ping any more)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from panopticon.api.app import create_app
from panopticon.api.fast import parse_results_query
from panopticon.mockllm.server import MockServer
from panopticon.services.access import create_key
from panopticon.settings import Settings
from panopticon.store import engine as store_engine
from tests.conftest import suite_yaml, write

BOOT = {"X-API-Key": "dev_api_key_for_testing"}
RESULTS = "/api/judge/results"


@pytest.fixture
def api(
    tmp_path: Path, settings: Settings, env: dict[str, str], mock: MockServer
) -> Iterator[TestClient]:
    """An API on a store holding one run: 6 queries x 2 models x 2 metrics (24 scores)."""
    from panopticon.cli import app as cli

    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=6))
    assert CliRunner().invoke(cli, ["run", str(path), "--no-progress"]).exit_code == 0
    app = create_app(
        Settings(home=settings.home, database_url=settings.database_url, api_key=BOOT["X-API-Key"]),
        env={},
    )
    with TestClient(app) as client:
        yield client


# each is read by the fast path; with "&unknown=1" added, the route answers it
SERVED = [
    "limit=10",
    "",
    "limit=3&offset=2",
    "limit=5&offset=20",
    "metric=quality&passed=true",
    "metric=quality&passed=false&min_score=2&max_score=9.5",
    "model_id=good&source=run",
    "source=production",
    "source=online",
    "theme=a&limit=100",
    "text=number%203",
    "text=%25",  # a LIKE wildcard, searched for as itself
    "run=1",
    "run=2",
    "metric=nope",
]


@pytest.mark.parametrize("query", SERVED)
def test_the_fast_path_answers_the_routes_very_bytes(api: TestClient, query: str) -> None:
    assert parse_results_query(query.encode()) is not None  # the fast path serves it
    assert parse_results_query((query + "&unknown=1").encode()) is None  # the route does
    fast = api.get(f"{RESULTS}?{query}", headers=BOOT)
    route = api.get(f"{RESULTS}?{query}&unknown=1", headers=BOOT)
    assert fast.status_code == route.status_code == 200, (fast.text, route.text)
    assert fast.content == route.content
    assert fast.headers["content-type"] == route.headers["content-type"] == "application/json"
    assert fast.headers["content-length"] == route.headers["content-length"]


def test_the_routes_bytes_are_what_the_response_model_gives(api: TestClient) -> None:
    """The route writes its page with orjson; pydantic's response model would give the
    same JSON (times, ids, floats)."""
    from panopticon.api.schemas import PagePublic, ResultPublic

    body = api.get(f"{RESULTS}?limit=30&unknown=1", headers=BOOT).content
    assert PagePublic[ResultPublic].model_validate_json(body).model_dump_json().encode() == body


def test_the_fast_path_keeps_every_check_of_the_route(api: TestClient, engine: sa.Engine) -> None:
    assert api.get(f"{RESULTS}?limit=10").status_code == 401  # no key
    assert api.get(f"{RESULTS}?limit=10", headers={"X-API-Key": "pk_nope"}).status_code == 401
    for bad in ("limit=0", "limit=1001", "offset=-1", "run=0", "source=nope", "passed=maybe"):
        r = api.get(f"{RESULTS}?{bad}", headers=BOOT)
        assert r.status_code == 422, (bad, r.text)
    # another workspace's key sees its own workspace only (empty), never this one's scores
    _, other = create_key(engine, "other", "viewer", "other's viewer")
    r = api.get(f"{RESULTS}?limit=10", headers={"X-API-Key": other})
    assert r.status_code == 200 and r.json()["total"] == 0 and r.json()["items"] == []
    # a viewer of this workspace reads it; an ingest-only key may not
    _, viewer = create_key(engine, "default", "viewer", "viewer")
    assert api.get(f"{RESULTS}?limit=10", headers={"X-API-Key": viewer}).json()["total"] == 24
    _, ingest = create_key(engine, "default", "member", "app", scope="ingest")
    assert api.get(f"{RESULTS}?limit=10", headers={"X-API-Key": ingest}).status_code == 403
    # revoked through the API: refused at once, by the fast path as by the route
    key_id = next(
        k["id"] for k in api.get("/api/keys", headers=BOOT).json() if k["name"] == "viewer"
    )
    assert api.delete(f"/api/keys/{key_id}", headers=BOOT).status_code in (200, 204)
    assert api.get(f"{RESULTS}?limit=10", headers={"X-API-Key": viewer}).status_code == 401
    # two keys in one request: the route decides, as before
    r = api.get(f"{RESULTS}?limit=1", headers=[("X-API-Key", BOOT["X-API-Key"])] * 2)
    assert r.status_code == 200


def test_a_kept_page_is_given_again_only_while_nothing_is_committed(
    api: TestClient, engine: sa.Engine
) -> None:
    """The results page is kept between writes, and a write by anyone (here another
    process) is seen by the very next request: never a stale page."""
    import subprocess
    import sys
    import time

    import orjson

    pages = api.app.state.pages  # type: ignore[attr-defined]
    _, other = create_key(engine, "other", "viewer", "other's viewer")
    _, key = create_key(engine, "default", "viewer", "reader")
    reader = {"X-API-Key": key}

    def twice_with_nothing_committed() -> bytes:
        """Two requests of one page with no commit anywhere between them (the server's
        own background writes, a key's first use, may come between: then again): the
        second is given from memory, the same bytes."""
        deadline = time.monotonic() + 30
        while True:
            before, hits = pages.watch.token(), pages.hits
            first = api.get(f"{RESULTS}?limit=5", headers=reader)
            second = api.get(f"{RESULTS}?limit=5", headers=reader)
            if before is not None and pages.watch.token() == before:
                assert pages.hits >= hits + 1, "the same query with nothing committed: kept"
                assert second.content == first.content
                return first.content
            assert time.monotonic() < deadline, "something kept committing"
            time.sleep(0.05)

    page = orjson.loads(twice_with_nothing_committed())
    # another workspace, the same query: its own page, not this one's
    assert api.get(f"{RESULTS}?limit=5", headers={"X-API-Key": other}).json()["items"] == []

    top = page["items"][0]
    url = engine.url.render_as_string(hide_password=False)
    write = (
        "import sqlalchemy as sa, sys\n"
        "with sa.create_engine(sys.argv[1]).begin() as c:\n"
        "    c.execute(sa.text('UPDATE score SET reasoning = :r WHERE id = :i'),"
        " {'r': 'changed elsewhere', 'i': sys.argv[2]})\n"
    )
    score_id = top["id"].replace("-", "") if engine.dialect.name == "sqlite" else top["id"]
    subprocess.run([sys.executable, "-c", write, url, score_id], check=True)
    after = api.get(f"{RESULTS}?limit=5", headers=reader).json()["items"][0]
    assert after["id"] == top["id"] and after["reasoning"] == "changed elsewhere"
    # and kept again while nothing more is committed
    assert orjson.loads(twice_with_nothing_committed())["items"][0] == after


@pytest.mark.parametrize(
    "query",
    [
        "limit=010",  # leading zero
        "limit=1&limit=2",  # repeated
        "limit=+1",
        "limit=1e2",
        "theme=",  # empty
        "theme=" + "x" * 201,  # longer than the route allows
        "passed=1",  # true to pydantic, left to it
        "min_score=nan",
        "min_score=1e3",
        "since=2026-01-01T00:00:00Z",  # times: the route parses them
        "run=2147483648",
        "offset=10000001",
        "model=good",  # not a parameter of the route (model_id is)
    ],
)
def test_the_fast_path_leaves_anything_unusual_to_the_route(query: str) -> None:
    assert parse_results_query(query.encode()) is None


def _pids(engine: sa.Engine, n: int) -> list[int]:
    """Check out ``n`` connections at once (so the pool holds n) and return their backends."""
    conns = [engine.connect() for _ in range(n)]
    try:
        return [int(c.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()) for c in conns]
    finally:
        for c in conns:
            c.close()


def _terminate(admin: sa.Engine, pids: list[int]) -> None:
    """Terminate these backends and wait (up to 10 s) until each has exited. One may be gone
    already: the app's pool closes a connection it finds stale after another was terminated
    (its trace writer's maintenance may check one out meanwhile)."""
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for pid in pids:
            # with a timeout, pg_terminate_backend waits for the backend to exit
            done = conn.execute(sa.text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid})
            alive = conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            )
            assert done.scalar_one() is True or alive.scalar_one() == 0


def test_reads_survive_connections_the_database_closed(
    api: TestClient, engine: sa.Engine, settings: Settings
) -> None:
    """No pre-ping: a pooled connection whose backend was terminated is dropped at
    checkout; one that dies between checkout and its first statement is retried once."""
    if not (settings.database_url or "").startswith("postgresql"):
        pytest.skip("PostgreSQL: SQLite has no server to close a connection")
    app_engine = api.app.state.engine  # type: ignore[attr-defined]
    _terminate(engine, _pids(app_engine, 3))
    for _ in range(4):  # each pooled connection in turn: none fails
        r = api.get(f"{RESULTS}?limit=3", headers=BOOT)
        assert r.status_code == 200 and r.json()["total"] == 24
        assert api.get(f"{RESULTS}?limit=3&unknown=1", headers=BOOT).status_code == 200
    # the page cache's own connection (its change token) terminated: the page is read
    # afresh, then kept again on a new connection
    pages = api.app.state.pages  # type: ignore[attr-defined]
    api.get(f"{RESULTS}?limit=3", headers=BOOT)
    _terminate(engine, [pages.watch._conn.info.backend_pid])
    for _ in range(3):
        r = api.get(f"{RESULTS}?limit=3", headers=BOOT)
        assert r.status_code == 200 and r.json()["total"] == 24
    assert pages.watch.token() is not None
    # without the checkout check, the read itself notices and tries again on a new connection
    sa.event.remove(app_engine, "checkout", store_engine._drop_closed)
    try:
        _terminate(engine, _pids(app_engine, 2))
        for _ in range(3):
            total = store_engine.read(
                app_engine,
                lambda conn: conn.execute(sa.text("SELECT count(*) FROM score")).scalar(),
            )
            assert total == 24
    finally:
        sa.event.listen(app_engine, "checkout", store_engine._drop_closed)


def test_the_fast_path_knows_the_routes_parameters_and_their_bounds(api: TestClient) -> None:
    """A parameter added to the route, or a bound changed, must be taught to the fast path
    too (or it would serve what the route refuses): the OpenAPI document is the route's."""
    from panopticon.api import fast

    params = api.get("/api/openapi.json").json()["paths"][RESULTS]["get"]["parameters"]
    query = {p["name"]: p["schema"] for p in params if p["in"] == "query"}
    headers = {p["name"].lower() for p in params if p["in"] == "header"}
    assert headers == {"x-api-key"}
    known = {*fast._TEXT, *fast._INTS, "min_score", "max_score", "passed", "source"}
    assert set(query) == known | {"since", "until"}  # times: always left to the route

    def bounds(schema: dict[str, object]) -> dict[str, object]:
        of = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]  # type: ignore[attr-defined]
        assert len(of) == 1, schema
        return {
            k: v
            for k, v in of[0].items()
            if k in ("maxLength", "minimum", "maximum", "type", "enum")
        }

    for name in fast._TEXT:
        assert bounds(query[name]) == {"type": "string", "maxLength": 200}, name
    for name, (low, high) in fast._INTS.items():
        assert bounds(query[name]) == {"type": "integer", "minimum": low, "maximum": high}, name
    for name in ("min_score", "max_score"):
        assert bounds(query[name]) == {"type": "number"}, name
    assert bounds(query["passed"]) == {"type": "boolean"}
    assert bounds(query["source"]) == {"type": "string", "enum": list(fast.SOURCE_NAMES)}
