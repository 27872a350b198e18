"""A real gateway over real HTTP for tests: uvicorn in a thread, on this test's database,
forwarding to the bundled mock server. Logged calls are read back from the trace store,
as the trace explorer reads them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from panopticon.errors import NotFoundError
from panopticon.gateway.app import serve_app
from panopticon.gateway.proxy import Gateway
from panopticon.services.database import workspace_id
from panopticon.services.ingest import IngestService
from panopticon.services.runs import open_store
from panopticon.services.traces import TraceFilters, find_traces, get_trace
from panopticon.settings import Settings
from tests.conftest import free_port


class GatewayServer:
    def __init__(
        self,
        settings: Settings,
        env: dict[str, str],
        roles: set[str],
        workspace: str = "default",
        ingest: IngestService | None = None,
    ) -> None:
        self.settings = settings
        self.workspace = workspace
        self.port = free_port()
        app, gateway = serve_app(settings, env, roles, ingest=ingest)
        assert gateway is not None
        self.gateway: Gateway = gateway
        self.app = app
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self._reader = open_store(settings)  # the test's own view of the store

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def start(self) -> GatewayServer:
        self.thread.start()
        wait_for(lambda: self.server.started, what="the gateway to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def close(self) -> None:
        self._reader.dispose()

    def traces(self) -> list[dict[str, Any]]:
        """Every stored trace of the workspace, oldest first, each with its spans and scores."""
        ws = workspace_id(self._reader, self.workspace)
        page = find_traces(self._reader, ws, TraceFilters(), sort="start_time", limit=500)
        return [get_trace(self._reader, ws, t["id"]) for t in page.items]

    def wait_traces(self, n: int) -> list[dict[str, Any]]:
        wait_for(lambda: len(self.traces()) >= n, what=f"{n} logged traces")
        return self.traces()

    def trace(self, trace_id: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []
        ws = workspace_id(self._reader, self.workspace)

        def seen() -> bool:
            try:
                found[:] = [get_trace(self._reader, ws, trace_id)]
            except NotFoundError:
                return False
            return True

        wait_for(seen, what=f"trace {trace_id} in the trace store")
        return found[0]


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")
