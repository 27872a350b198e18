"""Taking production traces in: OTLP/HTTP bodies and the JSON API, to the trace writer.

The request path does the cheap, bounded work (decompress with a cap, decode, normalise,
price) in a worker thread, hands the rows to the :class:`TraceWriter` and waits until they
are durable; it never waits on the database itself. What cannot be kept is counted and
explained (the OTLP partial success), never a 500.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from panopticon.errors import ConfigError, IngestError, Issue
from panopticon.evaluation.text import unstorable
from panopticon.ingest import Limits, PayloadError, decode_json, decode_protobuf, normalise
from panopticon.ingest.jsonapi import LogIn, ScoreCreate, TracesIn, log_spans, trace_spans
from panopticon.ingest.model import Rejection, ScoreIn, Span
from panopticon.ingest.normalise import finish
from panopticon.judges.base import OffScale, stored_metric
from panopticon.services.access import Principal, authenticate, hash_key
from panopticon.services.traces import run_maintenance
from panopticon.settings import Settings
from panopticon.store.engine import Engine, create_engine
from panopticon.store.queries import traces as queries
from panopticon.store.trace_writer import Backpressure, BatchRejected, TraceWriter

__all__ = [
    "NO_SCALE_NOTE",
    "IngestResult",
    "IngestService",
    "StoredScore",
    "build_trace_writer",
    "decompress",
    "open_ingest",
    "span_row",
]

log = logging.getLogger(__name__)

_CACHE_S = 30.0  # a revoked key stops ingesting within this long

NO_SCALE_NOTE = (
    "not on a 0..1 scale: '{metric}' has no scale in this workspace, so the value is kept as "
    "given and shown apart from run scores, never averaged with them (register '{metric}' "
    "with a scale or a threshold, POST /api/metrics, for its values to be normalised)"
)


@dataclass(frozen=True)
class StoredScore:
    """A score from outside as stored: its value on its metric's 0..1 scale and pass/fail,
    as a run's score of the same metric has them, or a note saying why there is none."""

    id: str
    normalized: float | None
    passed: bool | None
    note: str | None = None


@dataclass
class IngestResult:
    accepted: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)
    scores: int = 0
    # scores that came with the spans and were not kept (a value off its metric's scale)
    score_errors: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    @property
    def error_message(self) -> str:
        """The reasons, counted: ``2 spans rejected: 2 x missing start time ...``, then the
        scores not kept, each with why."""
        parts = []
        if self.rejections:
            counts: dict[str, int] = {}
            for r in self.rejections:
                counts[r.reason] = counts.get(r.reason, 0) + 1
            reasons = "; ".join(f"{n} x {reason}" for reason, n in sorted(counts.items()))
            parts.append(f"{self.rejected} span(s) rejected: {reasons}")
        if self.score_errors:
            parts.append(
                f"{len(self.score_errors)} score(s) not kept: " + "; ".join(self.score_errors[:20])
            )
        return "; ".join(parts)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body, gunzipped when it says so, refusing more than ``limit`` bytes out (a gzip
    bomb stops at the limit, not at the end of memory)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        if len(body) > limit:
            raise IngestError(
                f"the body is {len(body)} bytes; the limit is {limit} "
                "(PANOPTICON_INGEST_MAX_BYTES): send smaller batches",
                413,
            )
        return body
    if encoding not in ("gzip", "deflate"):
        raise IngestError(
            f"Content-Encoding '{encoding}' is not supported; send gzip or no encoding", 415
        )
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise IngestError(f"the body is not valid {encoding}: {exc}", 400) from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise IngestError(
            f"the body decompresses to more than {limit} bytes "
            "(PANOPTICON_INGEST_MAX_BYTES): send smaller batches",
            413,
        )
    return out


def _score_passed(score: ScoreIn) -> bool | None:
    if score.passed is not None:
        return score.passed
    return {"pass": True, "fail": False, "passed": True, "failed": False}.get(
        (score.label or "").lower()
    )


def span_row(workspace_id: int, span: Span, scores: Sequence[ScoreIn] = ()) -> dict[str, Any]:
    """A span as the writer stores it (with the trace facts it carries in ``_hints``, and
    ``scores`` about it in ``_scores``: written in the span's transaction, spooled with it)."""
    h = span.hints
    row = {
        "workspace_id": workspace_id,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "start_time": span.start_time,
        "parent_id": span.parent_id,
        "kind": span.kind,
        "name": span.name,
        "end_time": span.end_time,
        "latency_ms": span.latency_ms,
        "ttft_ms": span.ttft_ms,
        "status": span.status,
        "error": span.error,
        "model_requested": span.model_requested,
        "model_served": span.model_served,
        "provider": span.provider,
        "input_messages": span.input_messages,
        "output_messages": span.output_messages,
        "input_value": span.input_value,
        "output_value": span.output_value,
        "documents": span.documents,
        "input_tokens": span.input_tokens,
        "output_tokens": span.output_tokens,
        "cached_tokens": span.cached_tokens,
        "reasoning_tokens": span.reasoning_tokens,
        "cost_usd": span.cost_usd,
        "cost_source": span.cost_source,
        "attributes": span.attributes or None,
        "events": span.events,
        "_hints": {
            "session_id": h.session_id,
            "user_id": h.user_id,
            "tenant_id": h.tenant_id,
            "environment": h.environment,
            "release": h.release,
            "tags": h.tags,
            "metadata": h.metadata,
        },
    }
    if scores:
        row["_scores"] = [
            {
                "name": s.name,
                "value": s.value,
                "label": s.label,
                "passed": _score_passed(s),
                "reasoning": s.comment,
                "source": s.source,
                "details": s.details,
            }
            for s in scores
        ]
    return row


def build_trace_writer(engine: Engine, settings: Settings) -> TraceWriter:
    """The process's trace writer, not yet started (``start()`` it with the server, and
    ``close()`` it as the server stops): spans of ingestion and of gateway calls alike. It
    spools under the home directory while the database is away, and keeps the trace tables
    up (partitions ahead, retention) at start and hourly, on its own thread."""
    return TraceWriter(
        engine,
        settings.home / "spool" / "traces",
        maintenance=lambda: run_maintenance(engine, settings.trace_retention_days),
    )


def open_ingest(settings: Settings) -> IngestService:
    """An ingest service on an engine of its own, its writer not yet started: for a process
    that only writes (the gateway's log writer). The schema is not checked: the server that
    started it has brought it up to date. Close it with ``writer.close()``, then
    ``engine.dispose()``."""
    engine = create_engine(settings)
    return IngestService(engine, settings, build_trace_writer(engine, settings))


class IngestService:
    """One per process (the app holds it); thread-safe."""

    def __init__(self, engine: Engine, settings: Settings, writer: TraceWriter) -> None:
        self.engine = engine
        self.settings = settings
        self.writer = writer
        self._keys: dict[str, tuple[float, Principal]] = {}
        self._limits: dict[int, tuple[float, Limits]] = {}

    # --- who, and their settings (cached: ingestion is many small requests) -----------------
    def principal(self, key: str | None) -> Principal:
        now = time.monotonic()
        digest = hash_key(key or "")  # the cache holds hashes, never keys
        cached = self._keys.get(digest)
        if cached and now - cached[0] < _CACHE_S:
            return cached[1]
        principal = authenticate(self.engine, self.settings, key, purpose="ingest")
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[digest] = (now, principal)
        return principal

    def limits(self, workspace_id: int) -> Limits:
        now = time.monotonic()
        cached = self._limits.get(workspace_id)
        if cached and now - cached[0] < _CACHE_S:
            return cached[1]
        with self.engine.connect() as conn:
            retention, redact = queries.get_trace_settings(conn, workspace_id)
        limits = Limits(
            max_age=timedelta(days=retention or self.settings.trace_retention_days),
            redact=redact,
        )
        self._limits[workspace_id] = (now, limits)
        return limits

    def _limits_or_last(self, workspace_id: int) -> Limits:
        """The workspace's limits; with the database away, the last ones read, or, for a
        workspace not read yet, redaction on (a workspace that asked for it never gets
        raw text stored because the database blinked)."""
        try:
            return self.limits(workspace_id)
        except Exception as exc:  # the database is away: the spans still go to the spool
            cached = self._limits.get(workspace_id)
            if cached is not None:
                return cached[1]
            log.warning(
                "trace settings of workspace %s cannot be read (%s); redacting its spans",
                workspace_id,
                exc.__class__.__name__,
            )
            return Limits(redact=True)

    def record_spans(
        self, spans: Sequence[tuple[int, Span, Sequence[ScoreIn]]]
    ) -> tuple[concurrent.futures.Future[None], list[Rejection]]:
        """Spans made in this process (gateway calls), each ``(workspace id, span, the
        scores about it)``: finished as ingested spans are (cut, priced from the price table
        when they have no cost, redacted as their workspace says) and handed to the writer
        as one request. Returns at once: the writer's future, which resolves when they are
        all in the database or the spool, and the spans not kept (too old, too far ahead).
        Blocks only to read a workspace's trace settings now and then, so call it from a
        thread, never the event loop. Raises :class:`IngestError` 429 or 503 (with
        ``retry_after``) while the writer is full."""
        now = datetime.now(UTC)
        rows = []
        rejected = []
        for workspace_id, span, scores in spans:
            problem = finish(span, now, self._limits_or_last(workspace_id))
            if problem is not None:
                rejected.append(problem)
            else:
                rows.append(span_row(workspace_id, span, scores))
        try:
            return self.writer.submit(rows), rejected
        except Backpressure as exc:
            raise IngestError(str(exc), exc.status, exc.retry_after) from None

    # --- the work ---------------------------------------------------------------------------
    def _decode_otlp(
        self, principal: Principal, body: bytes, content_type: str, encoding: str | None
    ) -> tuple[list[dict[str, Any]], list[ScoreIn], IngestResult]:
        kind = content_type.split(";")[0].strip().lower()
        if kind not in ("application/x-protobuf", "application/protobuf", "application/json"):
            raise IngestError(
                f"Content-Type '{kind or '(none)'}' is not OTLP: send application/x-protobuf "
                "or application/json",
                415,
            )
        data = decompress(body, encoding, self.settings.ingest_max_bytes)
        try:
            raws, rejected = (decode_json if kind == "application/json" else decode_protobuf)(data)
        except PayloadError as exc:
            raise IngestError(str(exc), 400) from None
        if len(raws) > self.settings.ingest_max_spans:
            raise IngestError(
                f"{len(raws)} spans in one request; the limit is "
                f"{self.settings.ingest_max_spans} (PANOPTICON_INGEST_MAX_SPANS): "
                "send smaller batches",
                413,
            )
        limits = self.limits(principal.workspace_id)
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        scores: list[ScoreIn] = []
        result = IngestResult(rejections=list(rejected))
        for raw in raws:
            span, span_scores, problem = normalise(raw, now, limits)
            if span is None:
                result.rejections.append(problem)  # type: ignore[arg-type]
                continue
            rows.append(span_row(principal.workspace_id, span))
            scores.extend(span_scores)
        return rows, scores, result

    def _build(
        self, principal: Principal, spans: list[Span]
    ) -> tuple[list[dict[str, Any]], IngestResult]:
        limits = self.limits(principal.workspace_id)
        now = datetime.now(UTC)
        rows = []
        result = IngestResult()
        for span in spans:
            problem = finish(span, now, limits)
            if problem:
                result.rejections.append(problem)
            else:
                rows.append(span_row(principal.workspace_id, span))
        return rows, result

    async def _store(
        self,
        principal: Principal,
        rows: list[dict[str, Any]],
        scores: list[ScoreIn],
        result: IngestResult,
    ) -> IngestResult:
        try:
            future = self.writer.submit(rows)
        except Backpressure as exc:
            raise IngestError(str(exc), exc.status, exc.retry_after) from None
        try:
            await asyncio.wrap_future(future)
        except BatchRejected as exc:
            raise IngestError(str(exc), 400) from None
        result.accepted = len(rows)
        result.trace_ids = list(dict.fromkeys(r["trace_id"] for r in rows))
        if scores:
            stored, result.score_errors = await asyncio.to_thread(
                self._save_scores, principal.workspace_id, scores, strict=False
            )
            result.scores = len(stored)
        return result

    async def ingest_otlp(
        self, principal: Principal, body: bytes, content_type: str, encoding: str | None
    ) -> IngestResult:
        rows, scores, result = await asyncio.to_thread(
            self._decode_otlp, principal, body, content_type, encoding
        )
        return await self._store(principal, rows, scores, result)

    async def ingest_traces(self, principal: Principal, payload: TracesIn) -> IngestResult:
        now = datetime.now(UTC)
        spans = [s for t in payload.traces for s in trace_spans(t, now)]
        if len(spans) > self.settings.ingest_max_spans:
            raise IngestError(
                f"{len(spans)} spans in one request; the limit is "
                f"{self.settings.ingest_max_spans} (PANOPTICON_INGEST_MAX_SPANS)",
                413,
            )
        rows, result = await asyncio.to_thread(self._build, principal, spans)
        return await self._store(principal, rows, [], result)

    async def ingest_log(self, principal: Principal, log: LogIn) -> IngestResult:
        rows, result = await asyncio.to_thread(
            self._build, principal, log_spans(log, datetime.now(UTC))
        )
        return await self._store(principal, rows, [], result)

    # --- scores ------------------------------------------------------------------------------
    def _save_scores(
        self, workspace_id: int, scores: list[ScoreIn], *, strict: bool
    ) -> tuple[list[StoredScore], list[str]]:
        """Store scores from outside, each value read on its metric's scale when the
        workspace has the metric with one (normalised, passed by its threshold, as a run's
        score is). A value off that scale is refused: ``strict`` raises ConfigError naming
        the field, else the score is left out and its problem returned with the stored."""
        stored: list[StoredScore] = []
        refused: list[str] = []
        # text a database cannot store (a NUL, which PostgreSQL refuses): refused before
        # the metric is looked up or made by that name, naming the field (it was a 500)
        kept = []
        for s in scores:
            problem = _unstorable_score(s)
            if problem is None:
                kept.append(s)
                continue
            if strict:
                field, message = problem
                raise ConfigError(Issue(message, field=field))
            refused.append(f"{s.trace_id}/{s.span_id or '-'}: {problem[1]}")
        scores = kept
        with self.engine.begin() as conn:
            ids: dict[str, int] = {}
            for s in scores:
                if s.name not in ids:
                    ids[s.name] = queries.find_metric(conn, workspace_id, s.name) or 0
            metrics = {
                mid: stored_metric(kind, definition)
                for mid, (kind, definition) in queries.metric_definitions(
                    conn, list(ids.values())
                ).items()
            }
            rows = []
            for s in scores:
                normalized, passed, note = None, _score_passed(s), None
                if s.value is not None:
                    metric = metrics.get(ids[s.name])
                    by_metric = None
                    try:
                        if metric is not None:
                            normalized, by_metric = metric.read_value(s.value)
                    except OffScale as exc:
                        if strict:
                            raise ConfigError(
                                Issue(str(exc), field="value", hint=exc.hint)
                            ) from None
                        refused.append(f"{s.name} on {s.trace_id}/{s.span_id or '-'}: {exc}")
                        continue
                    if by_metric is not None:  # the metric's threshold, over a pass/fail label
                        passed = by_metric
                    if normalized is None:
                        note = NO_SCALE_NOTE.format(metric=s.name)
                rows.append(
                    {
                        "workspace_id": workspace_id,
                        "trace_id": s.trace_id,
                        "span_id": s.span_id,
                        "metric_id": ids[s.name],
                        "value": s.value,
                        "normalized": normalized,
                        "label": s.label,
                        "passed": passed,
                        "reasoning": s.comment,
                        "source": s.source,
                    }
                )
                stored.append(StoredScore("", normalized, passed, note))
            score_ids = queries.insert_scores(conn, rows)
        stored = [
            StoredScore(str(i), x.normalized, x.passed, x.note)
            for i, x in zip(score_ids, stored, strict=True)
        ]
        return stored, refused

    def add_score(self, principal: Principal, score: ScoreCreate) -> StoredScore:
        """A score from outside (user feedback, a client's own evaluation). Raises
        ConfigError naming ``value`` when the value is off its metric's scale."""
        stored, _ = self._save_scores(
            principal.workspace_id,
            [
                ScoreIn(
                    trace_id=score.trace_id,
                    span_id=score.span_id,
                    name=score.name,
                    value=score.value,
                    label=score.label,
                    comment=score.comment,
                    source=score.source,
                )
            ],
            strict=True,
        )
        return stored[0]


def _unstorable_score(score: ScoreIn) -> tuple[str, str] | None:
    """(field, why) of a score's text that no database can store, or None."""
    for name, value in (("name", score.name), ("label", score.label), ("comment", score.comment)):
        problem = unstorable(value, name)
        if problem:
            return name, problem
    return None
