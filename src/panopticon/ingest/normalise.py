"""A :class:`RawSpan` to a normalised :class:`Span`: checks, the convention mappers, cost.

Checks that reject a span (the rest of its batch is kept): no start time, an end before
the start, a start too far in the past (older than the retention) or in the future.
Oversized values are kept, cut to :data:`MAX_VALUE` characters with a marker saying how
much was cut. A cost the span did not carry comes from the price table; a model with no
known price leaves the cost unknown (None), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from panopticon.ingest.attrs import Attrs
from panopticon.ingest.conventions import MAPPERS
from panopticon.ingest.model import RawSpan, Rejection, ScoreIn, Span
from panopticon.ingest.redact import redact_span
from panopticon.providers.pricing import lookup_price

__all__ = ["MAX_VALUE", "Limits", "check_time", "finish", "normalise", "truncate"]

MAX_VALUE = 65_536  # characters kept of one attribute value or message
MAX_NAME = 500


@dataclass(frozen=True)
class Limits:
    max_age: timedelta = timedelta(days=30)
    max_future: timedelta = timedelta(hours=1)
    max_value: int = MAX_VALUE
    redact: bool = False


def truncate(value: str, limit: int = MAX_VALUE) -> str:
    if len(value) <= limit:
        return value
    return value[:limit] + f"…[truncated {len(value) - limit} characters]"


def _text(value: str, limit: int) -> str:
    """A string as stored: cut to ``limit``, a NUL (which PostgreSQL's text and JSON
    refuse) replaced by U+FFFD on every database alike."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return value if len(value) <= limit else truncate(value, limit)


def _cut(value: Any, limit: int) -> Any:
    kind = type(value)
    if kind is str:  # nearly every value: the shortest way
        return value if len(value) <= limit and "\x00" not in value else _text(value, limit)
    if value is None or kind is bool:
        return value
    if kind is int and -(2**63) <= value < 2**63:
        return value
    if kind is list:
        return [_cut(v, limit) for v in value]
    if kind is dict:
        return {_key(k): _cut(v, limit) for k, v in value.items()}
    if isinstance(value, str):
        return _text(value, limit)
    if isinstance(value, list):
        return [_cut(v, limit) for v in value]
    if isinstance(value, dict):
        return {_key(k): _cut(v, limit) for k, v in value.items()}
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)  # JSON has no NaN or infinity
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return str(value)  # past what JSON columns (and most readers) hold
    return value


def _key(key: Any) -> str:
    """A mapping's key as stored: text, with no NUL (never cut: keys are short)."""
    text: str = key if type(key) is str else str(key)
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _cut_attributes(attributes: dict[str, Any], limit: int) -> dict[str, Any]:
    """OTLP attributes (string keys) as stored: :func:`_cut` of each value, a key with a NUL
    through :func:`_key`."""
    return {(k if "\x00" not in k else _key(k)): _cut(v, limit) for k, v in attributes.items()}


def _as_is(value: Any, limit: int) -> bool:
    """Whether :func:`_cut` would give back ``value`` unchanged, asked of orjson (in C,
    without a copy): the whole within ``limit`` bytes holds every string within it; an
    integer past 53 bits, a key that is not a string or a type orjson does not write raise;
    a NaN or infinity is written as ``null``, so any ``null`` sends the value to :func:`_cut`,
    as does a NUL (written ``\u0000``) (:func:`_cut` handles everything here that is not as
    is)."""
    try:
        dumped = orjson.dumps(value, option=orjson.OPT_STRICT_INTEGER)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return len(dumped) <= limit and b"null" not in dumped and b"\\u0000" not in dumped


def _time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _error(raw: RawSpan) -> str | None:
    for name, _, attrs in raw.events:
        if name == "exception":
            kind, text = attrs.get("exception.type"), attrs.get("exception.message")
            if kind or text:
                return f"{kind}: {text}" if kind and text else str(kind or text)
    return raw.status_message or None


def normalise(
    raw: RawSpan, now: datetime, limits: Limits = Limits()
) -> tuple[Span | None, list[ScoreIn], Rejection | None]:
    def reject(reason: str) -> tuple[None, list[ScoreIn], Rejection]:
        return None, [], Rejection(reason, raw.trace_id, raw.span_id)

    if raw.start_ns <= 0:
        return reject("missing start time (startTimeUnixNano)")
    end_ns = raw.end_ns or raw.start_ns
    if end_ns < raw.start_ns:
        return reject("end time before start time")
    try:
        start, end = _time(raw.start_ns), _time(end_ns)
    except (OverflowError, OSError, ValueError):
        return reject("start or end time out of range")
    if start < now - limits.max_age:
        return reject(
            f"start time {start:%Y-%m-%d} is older than the retention of {limits.max_age.days} days"
        )
    if start > now + limits.max_future:
        return reject(f"start time {start:%Y-%m-%dT%H:%M:%SZ} is in the future")

    # every text a client wrote, keys and names too, with no NUL (PostgreSQL refuses one
    # in text and JSON, and then the whole batch): as _cut does within values
    raw.attributes = _cut_attributes(raw.attributes, limits.max_value)
    raw.events = [(_key(n), t, _cut_attributes(a, limits.max_value)) for n, t, a in raw.events]
    raw.status_message = _cut(raw.status_message, limits.max_value)  # the span's error
    span = Span(
        trace_id=raw.trace_id,
        span_id=raw.span_id,
        parent_id=raw.parent_id,
        name=_text(raw.name or "span", MAX_NAME),
        kind="other",
        start_time=start,
        end_time=end,
        status={1: "ok", 2: "error"}.get(raw.status_code, "unset"),
    )
    if span.status == "error":
        span.error = _error(raw) or "error"
    attrs = Attrs(raw.attributes)
    scores: list[ScoreIn] = []
    for mapper in MAPPERS:
        mapper(attrs, raw, span, scores)
    span.attributes = attrs.remaining()
    resource = _cut_attributes(raw.resource, limits.max_value)
    if resource:
        span.attributes["resource"] = resource
    if raw.scope:
        span.attributes["otel.scope.name"] = _text(raw.scope, MAX_NAME)
    price_cost(span)
    if limits.redact:
        redact_span(span)
    return span, scores, None


def check_time(start: datetime, now: datetime, limits: Limits) -> str | None:
    if start < now - limits.max_age:
        return (
            f"start time {start:%Y-%m-%d} is older than the retention of {limits.max_age.days} days"
        )
    if start > now + limits.max_future:
        return f"start time {start:%Y-%m-%dT%H:%M:%SZ} is in the future"
    return None


def finish(span: Span, now: datetime, limits: Limits = Limits()) -> Rejection | None:
    """The checks, cuts, price and redaction for a span built directly (the JSON API)."""
    problem = check_time(span.start_time, now, limits)
    if problem:
        return Rejection(problem, span.trace_id, span.span_id)
    limit = limits.max_value
    for name in (
        "input_messages",
        "output_messages",
        "documents",
        "input_value",
        "output_value",
        "error",
        "attributes",
    ):
        value = getattr(span, name)
        if value is None or (type(value) is str and len(value) <= limit and "\x00" not in value):
            continue
        if not _as_is(value, limit):  # nearly always as is: then no copy is made
            setattr(span, name, _cut(value, limit))
    span.name = _text(span.name, MAX_NAME)
    # a client's own words (the `user` field, a model's name, tags): a NUL made U+FFFD, as
    # in every other text, so that both databases store the same span
    for owner, names in (
        (span, ("model_requested", "model_served", "provider")),
        (span.hints, ("user_id", "session_id", "tenant_id", "environment", "release")),
    ):
        for name in names:
            text = getattr(owner, name)
            if text is not None and "\x00" in text:
                setattr(owner, name, _text(text, len(text)))
    if any("\x00" in tag for tag in span.hints.tags):
        span.hints.tags = [_key(tag) for tag in span.hints.tags]
    if span.events is not None and not _as_is(span.events, limit):
        span.events = _cut(span.events, limit)
    if not _as_is(span.hints.metadata, limit):
        span.hints.metadata = _cut(span.hints.metadata, limit)
    price_cost(span)
    if limits.redact:
        redact_span(span)
    return None


def price_cost(span: Span) -> None:
    """The cost from the price table, when the span has none and its price is known."""
    if span.cost_usd is not None:
        return
    model = span.model_served or span.model_requested
    if not model or span.input_tokens is None or span.output_tokens is None:
        return
    price = lookup_price((span.provider or "").lower(), model)
    if price is not None:
        span.cost_usd = price.cost(span.input_tokens, span.output_tokens)
        span.cost_source = "price_table"
