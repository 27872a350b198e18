"""Authenticating is a read: N requests with a key do not write N times, and the key's
``last_used_at`` still says when it was used (to the minute)."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from panopticon.api.app import create_app
from panopticon.services.access import create_key
from panopticon.services.runs import store
from panopticon.settings import Settings


def test_many_authenticated_requests_write_last_used_at_once(settings: Settings) -> None:
    with store(settings) as engine:
        key_id, key = create_key(engine, "default", "admin", "test")
    app = create_app(settings, env={})
    writes: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE")):
            writes.append(statement)

    with TestClient(app) as api:
        sa.event.listen(app.state.engine, "before_cursor_execute", count)
        for _ in range(30):
            assert api.get("/api/judge/results", headers={"X-API-Key": key}).status_code == 200
        deadline = time.monotonic() + 10
        while True:  # recorded off the request's path: wait for it
            keys = api.get("/api/keys", headers={"X-API-Key": key}).json()
            used = next(k for k in keys if k["id"] == key_id)["last_used_at"]
            if used is not None:
                break
            assert time.monotonic() < deadline, "last_used_at was never recorded"
            time.sleep(0.02)
    key_writes = [w for w in writes if "api_key" in w]
    assert len(key_writes) == 1, key_writes
    # reading writes nothing (the trace store's hourly retention at start-up is no request's)
    maintenance = ("DELETE FROM span ", "DELETE FROM trace ")
    assert not [w for w in writes if "api_key" not in w and not w.startswith(maintenance)], writes


def test_a_key_revoked_elsewhere_stops_working_within_seconds(settings: Settings) -> None:
    """Keys are checked from memory for PRINCIPAL_TTL_S: a key revoked by another process
    (here: straight in the database) is refused once that time is past; one revoked
    through this server is refused at once (test_api)."""
    from panopticon.services.access import PRINCIPAL_TTL_S
    from panopticon.store.tables import ApiKey

    with store(settings) as engine:
        key_id, key = create_key(engine, "default", "viewer", "test")
    with TestClient(create_app(settings, env={})) as api:
        assert api.get("/api/queries", headers={"X-API-Key": key}).status_code == 200
        with store(settings) as engine, engine.begin() as conn:
            conn.execute(
                sa.update(ApiKey)
                .where(ApiKey.c.id == key_id)
                .values(revoked_at=sa.func.current_timestamp())
            )
        revoked = time.monotonic()
        while api.get("/api/queries", headers={"X-API-Key": key}).status_code != 401:
            assert time.monotonic() - revoked < PRINCIPAL_TTL_S + 5, "still accepted"
            time.sleep(0.05)
