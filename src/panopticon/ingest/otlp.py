"""OTLP/HTTP trace payloads (protobuf or JSON) to :class:`RawSpan` values.

The protobuf path uses the ``opentelemetry-proto`` messages; the JSON path reads the OTLP
JSON mapping directly (ids as hex, 64-bit integers possibly as strings, enums as numbers),
accepting lowerCamelCase and snake_case field names as the spec asks of receivers.
A span whose ids are missing or malformed becomes a :class:`Rejection`; the rest of the
batch is kept.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any

import orjson

from panopticon.ingest.model import RawSpan, Rejection

__all__ = ["PayloadError", "decode_json", "decode_protobuf"]

_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class PayloadError(ValueError):
    """The whole payload cannot be read (a 400, not a partial success)."""


def _check_ids(trace_id: str, span_id: str, parent: str) -> str | None:
    if len(trace_id) != 32 or trace_id == _ZERO_TRACE:
        return "missing or malformed trace id (want 16 bytes, 32 hex digits, not all zero)"
    if len(span_id) != 16 or span_id == _ZERO_SPAN:
        return "missing or malformed span id (want 8 bytes, 16 hex digits, not all zero)"
    if parent and len(parent) != 16:
        return "malformed parent span id (want 8 bytes, 16 hex digits)"
    return None


# --- protobuf ---------------------------------------------------------------------------


def _pb_value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [_pb_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None


def _pb_attrs(kvs: Iterable[Any]) -> dict[str, Any]:
    out = {}
    for kv in kvs:
        v = kv.value
        # most values are strings: read in place, without a call per value
        out[kv.key] = v.string_value if v.WhichOneof("value") == "string_value" else _pb_value(v)
    return out


def decode_protobuf(body: bytes) -> tuple[list[RawSpan], list[Rejection]]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise PayloadError(f"not an OTLP ExportTraceServiceRequest in protobuf: {exc}") from None
    spans: list[RawSpan] = []
    rejected: list[Rejection] = []
    for rs in request.resource_spans:
        resource = _pb_attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = ss.scope.name
            for s in ss.spans:
                trace_id, span_id = s.trace_id.hex(), s.span_id.hex()
                parent = s.parent_span_id.hex()
                problem = _check_ids(trace_id, span_id, parent)
                if problem:
                    rejected.append(Rejection(problem, trace_id or None, span_id or None))
                    continue
                spans.append(
                    RawSpan(
                        trace_id=trace_id,
                        span_id=span_id,
                        parent_id=parent or None,
                        name=s.name,
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        attributes=_pb_attrs(s.attributes),
                        events=[
                            (e.name, e.time_unix_nano, _pb_attrs(e.attributes)) for e in s.events
                        ],
                        status_code=s.status.code,
                        status_message=s.status.message,
                        resource=resource,
                        scope=scope,
                    )
                )
    return spans, rejected


# --- JSON ------------------------------------------------------------------------------


def _get(d: dict[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    if camel in d:
        return d[camel]
    return d.get(snake, default)


def _int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        return int(raw)
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    raise ValueError(f"{raw!r} is not an integer")


def _json_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return v  # lenient: a bare value where an AnyValue belongs
    for camel, snake in (
        ("stringValue", "string_value"),
        ("boolValue", "bool_value"),
        ("doubleValue", "double_value"),
    ):
        if camel in v or snake in v:
            return _get(v, camel, snake)
    if "intValue" in v or "int_value" in v:
        return _int(_get(v, "intValue", "int_value"))
    if "arrayValue" in v or "array_value" in v:
        arr = _get(v, "arrayValue", "array_value") or {}
        return [_json_value(x) for x in arr.get("values", [])]
    if "kvlistValue" in v or "kvlist_value" in v:
        kv = _get(v, "kvlistValue", "kvlist_value") or {}
        return _json_attrs(kv.get("values", []))
    if "bytesValue" in v or "bytes_value" in v:
        return _get(v, "bytesValue", "bytes_value")
    return None


def _json_attrs(kvs: Any) -> dict[str, Any]:
    if not isinstance(kvs, list):
        raise ValueError("attributes must be a list of {key, value}")
    out: dict[str, Any] = {}
    for kv in kvs:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise ValueError("each attribute needs a string key")
        out[kv["key"]] = _json_value(kv.get("value"))
    return out


def _hex_id(raw: Any) -> str:
    """OTLP JSON ids are hex; some exporters send base64 (the protobuf JSON default)."""
    if not isinstance(raw, str) or not raw:
        return ""
    text = raw.strip().lower()
    if all(c in "0123456789abcdef" for c in text):
        return text
    try:
        return base64.b64decode(raw, validate=True).hex()
    except (binascii.Error, ValueError):
        return "?"


def decode_json(body: bytes) -> tuple[list[RawSpan], list[Rejection]]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadError("the body must be a JSON object with resourceSpans")
    resource_spans = _get(doc, "resourceSpans", "resource_spans", [])
    if not isinstance(resource_spans, list):
        raise PayloadError("resourceSpans must be a list")
    spans: list[RawSpan] = []
    rejected: list[Rejection] = []
    for rs in resource_spans:
        if not isinstance(rs, dict):
            rejected.append(Rejection("a resourceSpans entry is not an object"))
            continue
        try:
            resource = _json_attrs((rs.get("resource") or {}).get("attributes", []))
        except (ValueError, AttributeError) as exc:
            resource = {}
            rejected.append(Rejection(f"resource attributes ignored: {exc}"))
        for ss in _get(rs, "scopeSpans", "scope_spans", []) or []:
            if not isinstance(ss, dict):
                continue
            scope = ((ss.get("scope") or {}) or {}).get("name", "") or ""
            for s in ss.get("spans") or []:
                span, problem = _json_span(s, resource, str(scope))
                if span is None:
                    rejected.append(problem)  # type: ignore[arg-type]
                else:
                    spans.append(span)
    return spans, rejected


def _json_span(
    s: Any, resource: dict[str, Any], scope: str
) -> tuple[RawSpan | None, Rejection | None]:
    if not isinstance(s, dict):
        return None, Rejection("a span is not a JSON object")
    trace_id = _hex_id(_get(s, "traceId", "trace_id"))
    span_id = _hex_id(_get(s, "spanId", "span_id"))
    parent = _hex_id(_get(s, "parentSpanId", "parent_span_id"))
    problem = _check_ids(trace_id, span_id, parent)
    if problem:
        return None, Rejection(problem, trace_id or None, span_id or None)
    try:
        status = s.get("status") or {}
        events = []
        for e in s.get("events") or []:
            events.append(
                (
                    str(e.get("name", "")),
                    _int(_get(e, "timeUnixNano", "time_unix_nano", 0)),
                    _json_attrs(e.get("attributes", [])),
                )
            )
        return (
            RawSpan(
                trace_id=trace_id,
                span_id=span_id,
                parent_id=parent or None,
                name=str(s.get("name", "")),
                start_ns=_int(_get(s, "startTimeUnixNano", "start_time_unix_nano", 0)),
                end_ns=_int(_get(s, "endTimeUnixNano", "end_time_unix_nano", 0)),
                attributes=_json_attrs(s.get("attributes", [])),
                events=events,
                status_code=_int(status.get("code", 0)),
                status_message=str(status.get("message", "")),
                resource=resource,
                scope=scope,
            ),
            None,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        return None, Rejection(f"unreadable span: {exc}", trace_id, span_id)
