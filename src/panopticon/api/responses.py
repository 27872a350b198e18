"""JSON responses written by orjson straight from typed rows (dataclasses), for the pages
read most: FastAPI would otherwise validate the returned model against its
``response_model`` again and serialise it through the standard library, which cost more
than reading the page. The bytes equal what the ``response_model`` would give (a test
holds them to it): the route keeps declaring it, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

__all__ = ["JSON_HEADERS", "json_bytes", "json_response"]

# pydantic writes a UTC time with "Z"; orjson, told so, does the same
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS
JSON_HEADERS = [(b"content-type", b"application/json")]


def json_bytes(content: Any) -> bytes:
    return orjson.dumps(content, option=_OPTIONS)


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(json_bytes(content), status_code, media_type="application/json")
