"""Ingestion: OTLP/HTTP ``POST /v1/traces`` and the JSON API (``POST /api/traces``,
``/api/logs``, ``/api/scores``). Served by ``panopticon serve`` and by
``panopticon serve --role ingest`` alone. Keys may be limited to these (scope ``ingest``).

OTLP answers as the specification says: 200 with an ExportTraceServiceResponse (its
``partial_success`` counts and explains rejected spans) in the request's encoding; 4xx
with a ``google.rpc.Status``; 429 or 503 with ``Retry-After`` when the writer is behind.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from panopticon.errors import IngestError
from panopticon.ingest.jsonapi import LogIn, ScoreCreate, TracesIn
from panopticon.services.access import AuthError, Principal
from panopticon.services.ingest import IngestResult, IngestService

__all__ = ["router"]

router = APIRouter(tags=["ingest"])

_BUSY = {
    413: {"description": "The body or the batch is over the server's limit (named)"},
    429: {"description": "The writer is behind: retry after Retry-After seconds"},
    503: {"description": "The database is down and the spool is full: retry later"},
}
_OTLP = {
    200: {
        "description": "ExportTraceServiceResponse (partial_success counts rejected spans), "
        "in the request's encoding",
        "content": {"application/x-protobuf": {}, "application/json": {}},
    },
    400: {"description": "The body cannot be read (protobuf, JSON or gzip)"},
    415: {"description": "Not application/x-protobuf or application/json, or not gzip"},
    **_BUSY,
}


class IngestPublic(BaseModel):
    accepted: int = Field(description="Spans stored (durable: written or spooled).")
    rejected: int = Field(description="Spans refused; `errors` says why.")
    errors: list[str] = Field(default_factory=list)
    trace_ids: list[str] = Field(default_factory=list)


class ScorePublic(BaseModel):
    id: str
    normalized: float | None = Field(
        description="The value on the metric's 0..1 scale, as a run's score of the metric "
        "has it; null when the metric has no scale (`note` says so) or there is no value."
    )
    passed: bool | None = Field(
        description="By the metric's threshold when it has one, else from a pass/fail label."
    )
    note: str | None = Field(
        default=None, description="Why the value is on no 0..1 scale, when it is not."
    )


def _service(request: Request) -> IngestService:
    service: IngestService = request.app.state.ingest
    return service


def _key(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key:
        return x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def _missing_key(authorization: str | None) -> str:
    """Why no key was read. An Authorization header that is there but not ``Bearer <key>``
    is said as such (it was reported missing), never repeating its value: most often the
    ``%20`` of ``OTEL_EXPORTER_OTLP_HEADERS``, which only that variable decodes, copied
    into a Collector's ``headers:`` or a client's header as it is."""
    how = "send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
    if not authorization or not authorization.strip():
        return f"missing API key: {how}"
    if authorization.lower().startswith("bearer%20"):
        return (
            "the Authorization header starts 'Bearer%20': %20 is the space URL-encoded, "
            "which only OTEL_EXPORTER_OTLP_HEADERS decodes; elsewhere (a Collector's "
            f"headers, a client's) write 'Bearer <key>' with a space, or {how}"
        )
    first = authorization.strip().split()[0] if " " in authorization.strip() else ""
    # a scheme's name (Basic, Token) is said; anything else may be part of a key
    said = f"a '{first}' scheme" if first.isalpha() and len(first) <= 20 else "no scheme"
    return f"the Authorization header has {said}, not 'Bearer <key>': {how}"


async def _principal(
    request: Request, authorization: str | None, x_api_key: str | None
) -> Principal:
    key = _key(authorization, x_api_key)
    if not key:
        raise AuthError(_missing_key(authorization))
    principal = await asyncio.to_thread(_service(request).principal, key)
    principal.require("member")
    return principal


def _public(result: IngestResult) -> IngestPublic:
    reasons = [f"{r.trace_id or '?'}/{r.span_id or '?'}: {r.reason}" for r in result.rejections]
    return IngestPublic(
        accepted=result.accepted,
        rejected=result.rejected,
        errors=reasons[:100],
        trace_ids=result.trace_ids[:1000],
    )


def _otlp_error(exc: IngestError, as_json: bool) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
    code = {400: 3, 413: 8, 415: 3, 429: 8, 503: 14}.get(exc.status, 2)  # gRPC codes
    if as_json:
        return JSONResponse({"code": code, "message": str(exc)}, exc.status, headers=headers)
    from google.rpc.status_pb2 import Status

    body = Status(code=code, message=str(exc)).SerializeToString()
    return Response(body, exc.status, headers=headers, media_type="application/x-protobuf")


async def _read(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise IngestError(
            f"the body is {length} bytes; the limit is {limit} (PANOPTICON_INGEST_MAX_BYTES): "
            "send smaller batches",
            413,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise IngestError(
                f"the body is over {limit} bytes (PANOPTICON_INGEST_MAX_BYTES): "
                "send smaller batches",
                413,
            )
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/v1/traces",
    summary="OTLP/HTTP trace export (protobuf or JSON, optionally gzip)",
    responses=_OTLP,  # type: ignore[arg-type]
)
async def otlp_traces(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Response:
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    as_json = media == "application/json"
    # errors in protobuf only to a protobuf client; JSON to everyone else
    errors_as_json = media not in ("application/x-protobuf", "application/protobuf")
    service = _service(request)
    try:
        principal = await _principal(request, authorization, x_api_key)
        body = await _read(request, service.settings.ingest_max_bytes)
        result = await service.ingest_otlp(
            principal, body, content_type, request.headers.get("content-encoding")
        )
    except IngestError as exc:
        return _otlp_error(exc, errors_as_json)
    # scores not kept beside kept spans: a partial success with no span rejected (OTLP's
    # warning), so the exporter logs why
    if as_json:
        payload: dict[str, Any] = {}
        if result.rejected or result.score_errors:
            payload["partialSuccess"] = {
                "rejectedSpans": result.rejected,
                "errorMessage": result.error_message,
            }
        return JSONResponse(payload)
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    response = ExportTraceServiceResponse()
    if result.rejected or result.score_errors:
        response.partial_success.rejected_spans = result.rejected
        response.partial_success.error_message = result.error_message
    return Response(response.SerializeToString(), media_type="application/x-protobuf")


def _json_error(exc: IngestError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
    item = {"message": str(exc), "field": None, "hint": None}
    return JSONResponse({"error": item, "errors": [item]}, exc.status, headers=headers)


@router.post(
    "/api/traces",
    response_model=IngestPublic,
    summary="Send traces with nested spans",
    responses=_BUSY,  # type: ignore[arg-type]
)
async def post_traces(
    request: Request,
    body: TracesIn,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Any:
    principal = await _principal(request, authorization, x_api_key)
    try:
        return _public(await _service(request).ingest_traces(principal, body))
    except IngestError as exc:
        return _json_error(exc)


@router.post(
    "/api/logs",
    response_model=IngestPublic,
    summary="Log one LLM call",
    responses=_BUSY,  # type: ignore[arg-type]
)
async def post_log(
    request: Request,
    body: LogIn,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Any:
    principal = await _principal(request, authorization, x_api_key)
    try:
        return _public(await _service(request).ingest_log(principal, body))
    except IngestError as exc:
        return _json_error(exc)


@router.post(
    "/api/scores",
    response_model=ScorePublic,
    status_code=status.HTTP_201_CREATED,
    summary="Score a trace or span (user feedback, an outside evaluation)",
)
async def post_score(
    request: Request,
    body: ScoreCreate,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> ScorePublic:
    principal = await _principal(request, authorization, x_api_key)
    stored = await asyncio.to_thread(_service(request).add_score, principal, body)
    return ScorePublic(
        id=stored.id, normalized=stored.normalized, passed=stored.passed, note=stored.note
    )
