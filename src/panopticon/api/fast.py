"""A fast path for the hottest read, ``GET /api/judge/results``, in front of FastAPI.

FastAPI's routing and its per-parameter machinery (thirteen query parameters, the key
header) cost more per request than reading the page. This pure ASGI layer, inside
``RequestLimits`` and the error handling, answers that one request itself, through the very
functions its route calls: ``deps.caller`` (the key, its role, its workspace),
``judge.result_filters`` (the filters and their checks), ``find_results`` in a thread, and
``judge.results_page`` (the response). The page's bytes are kept while nothing is committed
to the database (``services.fresh.FreshCache``): the same query again between two writes
is answered without reading the page again, and never with a stale one. It only answers
requests it can read with no doubt: a single ``X-API-Key`` and query parameters of the
plainest form (digits for integers, ``true``/``false``, plain decimals, text within its
length). Anything else (an unknown or repeated parameter, an empty value, a time, a value
out of range, a missing or refused key, an error of any kind) goes to the route, which
answers it as it always has: the same 401, 403, 422 or 503. So the fast path changes how
fast the answer comes, never what it is (a test holds the two to the same bytes).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from panopticon.api.deps import caller, store_read
from panopticon.api.responses import json_bytes
from panopticon.api.routes.judge import SOURCE_NAMES, result_filters, results_page
from panopticon.services.results import find_results

__all__ = ["RESULTS_PATH", "FastPaths", "parse_results_query"]

RESULTS_PATH = "/api/judge/results"

_INT = re.compile(r"0|[1-9][0-9]{0,9}")
_FLOAT = re.compile(r"-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,15})?")
_TEXT = ("theme", "model_id", "metric", "text")  # max_length=200 each, as the route says
# name: (lowest, highest), as the route's Query(ge=..., le=...)
_INTS = {"run": (1, 2**31 - 1), "limit": (1, 1000), "offset": (0, 10_000_000)}


def parse_results_query(query_string: bytes) -> dict[str, Any] | None:
    """The route's parameters from a query string of the plainest form, or None when the
    route must read it (anything else, including everything it would refuse)."""
    params: dict[str, Any] = {}
    # as Starlette reads a query string
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in params or not value:
            return None
        if name in _TEXT:
            if len(value) > 200:
                return None
            params[name] = value
        elif name in _INTS:
            low, high = _INTS[name]
            if not _INT.fullmatch(value) or not low <= int(value) <= high:
                return None
            params[name] = int(value)
        elif name in ("min_score", "max_score"):
            if not _FLOAT.fullmatch(value):
                return None
            params[name] = float(value)
        elif name == "passed":
            if value not in ("true", "false"):
                return None
            params[name] = value == "true"
        elif name == "source":
            if value not in SOURCE_NAMES:
                return None
            params[name] = value
        else:  # since, until (times with zones), or a name the route does not know
            return None
    return params


class FastPaths:
    """Pure ASGI middleware; ``state``: the API app's (its engine and settings)."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == RESULTS_PATH and scope["method"] == "GET":
            body = await self._results(scope)
            if body is not None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-length", str(len(body)).encode()),
                            (b"content-type", b"application/json"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _results(self, scope: Scope) -> bytes | None:
        key = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                if key is not None:
                    return None
                key = value.decode("latin-1")
        params = parse_results_query(scope.get("query_string", b""))
        if not key or params is None:
            return None
        limit, offset = params.pop("limit", 50), params.pop("offset", 0)
        try:
            principal = await caller(self.state, key)
            filters = await result_filters(**params)
            engine, workspace_id = self.state.engine, principal.workspace_id

            def page() -> bytes:
                found = find_results(engine, workspace_id, filters, limit, offset)
                return json_bytes(results_page(found, limit, offset))

            # the same page for the same workspace and query while nothing is committed
            cache_key = (workspace_id, limit, offset, *sorted(params.items()))
            return await store_read(self.state, self.state.pages.get, cache_key, page)
        except Exception:  # the route answers it, with its own error handling
            return None
