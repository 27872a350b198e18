"""Logging off the response path: every call becomes a :class:`CallRecord`, handed to a
:class:`TraceSink` that must return at once; the record is stored as a trace with one span
(kind ``llm``, ``embedding`` for embeddings) through the trace store's writer, as ingested
spans are.

:class:`BatchingSink` is the sink the gateway uses: ``submit`` appends to a deque (no lock,
no I/O, no allocation beyond the record); a thread wakes every ``interval_s`` (or when
``max_batch`` records wait), turns each record into the normalised model's span
(:mod:`panopticon.ingest.model`) and hands it to a :class:`SpanStore`
(:class:`panopticon.services.ingest.IngestService`), whose trace writer batches the spans
into one transaction, and, while the database is away, into its fsynced spool, replayed
when it is back. There is no spool here: a record is either in this deque or the writer's.

``close()`` hands over every record submitted before it returns (then the writer's own
``close`` writes or spools them): a clean shutdown loses nothing; ``kill -9`` loses what was
not yet written or spooled, about ``interval_s`` plus the writer's window of calls.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, Self

from panopticon.errors import IngestError
from panopticon.ingest.model import Rejection, ScoreIn, Span, TraceHints

__all__ = [
    "BatchingSink",
    "CallRecord",
    "ListSink",
    "QueuedSink",
    "SpanStore",
    "TraceSink",
    "new_span_id",
    "new_trace_id",
]

log = logging.getLogger(__name__)


# Ids need to be unique, not secret: a PRNG seeded from the OS is 5x cheaper than uuid4
_ids = random.Random()


def new_trace_id() -> str:
    """The time in milliseconds (48 bits), then 80 random bits, as UUIDv7 lays them out: a
    batch's traces (and their spans, keyed by trace first) land side by side at the end of
    the tables' indexes instead of on a random page each, which halved SQLite's cost of
    writing them on a table of 40,000 traces (and grows with the table)."""
    return f"{time.time_ns() // 1_000_000:012x}{_ids.getrandbits(80):020x}"


def new_span_id() -> str:
    return f"{_ids.getrandbits(64):016x}"


@dataclass(slots=True)
class CallRecord:
    """One call through the gateway, as it will be stored: a trace with one span.

    Unknown token counts and costs are None, never 0 (a cache hit costs 0: nothing was
    paid); a cost left None is priced from the price table when the tokens are known."""

    trace_id: str
    span_id: str
    workspace_id: int
    key_id: int
    key_name: str
    endpoint: str  # chat.completions, responses, embeddings, messages, chat
    start_time: datetime
    end_time: datetime
    status: str = "ok"  # ok | error
    http_status: int = 200
    error: str | None = None
    model_requested: str | None = None
    model_served: str | None = None
    provider: str | None = None
    input_messages: list[dict[str, Any]] | None = None
    output_text: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    ttft_ms: float | None = None
    stream: bool = False
    cache_hit: bool = False
    attempts: int = 0
    user_id: str | None = None
    session_id: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    guardrails: list[dict[str, Any]] = field(default_factory=list)
    guardrail_ms: float | None = None

    @property
    def latency_ms(self) -> float:
        return (self.end_time - self.start_time).total_seconds() * 1000.0

    @property
    def kind(self) -> str:
        return "embedding" if self.endpoint == "embeddings" else "llm"

    def span(self) -> Span:
        """The call in the normalised trace model (what ingestion makes of a span)."""
        attributes: dict[str, Any] = {
            "gateway.endpoint": self.endpoint,
            "gateway.key_id": self.key_id,
            "gateway.key_name": self.key_name,
            "gateway.stream": self.stream,
            "gateway.cache_hit": self.cache_hit,
            "gateway.attempts": self.attempts,
            "http.status_code": self.http_status,
        }
        if self.guardrail_ms is not None:
            attributes["gateway.guardrail_ms"] = round(self.guardrail_ms, 3)
        if self.cache_hit:
            cost_source: str | None = "cache"
        else:
            cost_source = None if self.cost_usd is None else "registry"
        return Span(
            trace_id=self.trace_id,
            span_id=self.span_id,
            parent_id=None,
            name=f"gateway {self.endpoint}",
            kind=self.kind,
            start_time=self.start_time,
            end_time=self.end_time,
            status=self.status,
            error=self.error,
            model_requested=self.model_requested,
            model_served=self.model_served,
            provider=self.provider,
            input_messages=self.input_messages,
            output_messages=None
            if self.output_text is None
            else [{"role": "assistant", "content": self.output_text}],
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=self.cost_usd,
            cost_source=cost_source,
            ttft_ms=None if self.ttft_ms is None else round(self.ttft_ms, 3),
            attributes=attributes,
            hints=TraceHints(
                session_id=self.session_id,
                user_id=self.user_id,
                tags=list(self.tags),
                # the key by name on the trace, so the explorer filters by it
                metadata={**self.metadata, "gateway_key": self.key_name},
            ),
        )

    def scores(self) -> list[ScoreIn]:
        """The guardrails' verdicts, as scores on the span."""
        return [
            ScoreIn(
                trace_id=self.trace_id,
                span_id=self.span_id,
                name=str(g["name"]),
                value=g.get("value"),
                label=g.get("label"),
                comment=g.get("comment"),
                source="guardrail",
                passed=g.get("passed"),
                details={"stage": g.get("stage"), "latency_ms": g.get("latency_ms")},
            )
            for g in self.guardrails
        ]


class TraceSink(Protocol):
    """Where the gateway hands a finished call. ``submit`` must not block."""

    def submit(self, record: CallRecord) -> None: ...


class SpanStore(Protocol):
    """Takes spans (from a thread, never the event loop) and returns at once: a future that
    resolves once they are durable (the database or the spool), and the spans it would not
    keep. Raises :class:`IngestError` 429/503 while it is full. (Implemented by
    :class:`panopticon.services.ingest.IngestService`.)"""

    def record_spans(
        self, spans: Sequence[tuple[int, Span, Sequence[ScoreIn]]]
    ) -> tuple[concurrent.futures.Future[None], list[Rejection]]: ...


class ListSink:
    """Keeps records in memory (tests, and logging turned off with ``keep=False``)."""

    def __init__(self, keep: bool = True) -> None:
        self.records: list[CallRecord] = []
        self.keep = keep

    def submit(self, record: CallRecord) -> None:
        if self.keep:
            self.records.append(record)


class QueuedSink:
    """What the gateway's sinks that queue calls for a thread share (:class:`BatchingSink`,
    and :class:`panopticon.gateway.log_process.ProcessSink`): the thread that hands the
    queue on (``_run``), and waiting until every call is durable. Each keeps the counters
    ``written``, ``failed``, ``dropped``, ``last_error`` and says what is ``pending``."""

    _stop: bool
    _thread: threading.Thread | None
    _wake: threading.Event
    written: int
    failed: int
    dropped: int
    last_error: str | None

    @property
    def pending(self) -> int:
        raise NotImplementedError

    def _run(self) -> None:
        raise NotImplementedError

    def close(self, timeout_s: float = 60.0) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._stop = False
        self._thread = threading.Thread(
            target=self._run, name="panopticon-gateway-log", daemon=True
        )
        self._thread.start()
        return self

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything submitted so far is durable (database or spool)."""
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.005)
        return not self.pending


class BatchingSink(QueuedSink):
    """Hands records to the trace store off the event loop (see the module docstring)."""

    def __init__(
        self,
        store: SpanStore,
        *,
        interval_s: float = 0.05,
        max_batch: int = 1000,
        max_queue: int = 200_000,
        busy_s: float = 0.1,
        on_settled: Callable[[list[CallRecord], bool], None] | None = None,
    ) -> None:
        self.store = store
        # told of records once they are durable (True) or will never be (False): the
        # writer process acknowledges its parent's batches with it
        self.on_settled = on_settled
        self.interval_s = interval_s
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.busy_s = busy_s  # how soon to offer records again to a store that was full
        self._queue: deque[CallRecord] = deque()
        # records of a batch the store refused: offered again one by one, so that the one
        # it cannot keep (a value the database refuses) does not take the others with it
        self._singles: deque[CallRecord] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the counters: the writer's thread resolves futures
        self._in_flight = 0  # handed to the store, not yet durable
        self.written = 0  # durable: in the database or the writer's spool
        self.dropped = 0  # refused here: the store was full for too long
        self.failed = 0  # refused by the store (a value it cannot keep)
        self.last_error: str | None = None

    # -- the hot path -------------------------------------------------------------------
    def submit(self, record: CallRecord) -> None:
        if len(self._queue) >= self.max_queue:
            # the store has refused records for a long while: count, never grow without end
            self.dropped += 1
            if self.on_settled is not None:
                self.on_settled([record], False)
            return
        self._queue.append(record)
        if len(self._queue) >= self.max_batch:
            self._wake.set()

    # -- the sink's thread ----------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Records not yet durable (here, or handed to the store and not yet written)."""
        return len(self._queue) + len(self._singles) + self._in_flight

    def _run(self) -> None:
        while True:
            stopping = self._stop
            self._wake.wait(self.interval_s)
            self._wake.clear()
            full = self._hand_over(self._singles, 1) or self._hand_over(self._queue, self.max_batch)
            if stopping and not self._queue and not self._singles and not self._in_flight:
                return
            if full:  # the store is full: give it a moment
                self._wake.wait(self.busy_s)

    def _hand_over(self, queue: deque[CallRecord], size: int) -> bool:
        """Give the store every record of ``queue``, ``size`` at a time; False when they
        are all given, True when the store is full (the rest wait in ``queue``)."""
        while queue:
            batch = [queue[i] for i in range(min(size, len(queue)))]
            spans: list[tuple[CallRecord, tuple[int, Span, list[ScoreIn]]]] = []
            broken: list[tuple[CallRecord, Exception]] = []
            for record in batch:
                try:
                    spans.append((record, (record.workspace_id, record.span(), record.scores())))
                except Exception as exc:  # a record that cannot be turned into a span
                    broken.append((record, exc))
            try:
                future, rejected = self.store.record_spans([s for _, s in spans])
            except IngestError as exc:
                if exc.status in (429, 503):
                    self.last_error = str(exc)
                    return True  # all of the batch stays queued
                self._failed([r for r, _ in spans], exc)
            else:
                reasons = {p.span_id: p.reason for p in rejected}
                kept = [r for r, _ in spans if r.span_id not in reasons]
                for record, _ in spans:
                    if record.span_id in reasons:
                        self._failed([record], ValueError(reasons[record.span_id]))
                with self._lock:
                    self._in_flight += len(kept)
                future.add_done_callback(functools.partial(self._done, kept))
            for record, error in broken:
                self._failed([record], error)
            for _ in batch:
                queue.popleft()
        return False

    def _done(self, batch: list[CallRecord], future: concurrent.futures.Future[None]) -> None:
        exc = future.exception()
        with self._lock:
            self._in_flight -= len(batch)
            if exc is None:
                self.written += len(batch)
            elif len(batch) > 1:  # one of them may be at fault: each again, alone
                self._singles.extend(batch)
                self._wake.set()
                return
        if exc is None:
            if self.on_settled is not None:
                self.on_settled(batch, True)
            return
        self._failed(batch, exc)

    def _failed(self, records: list[CallRecord], exc: BaseException) -> None:
        if not records:
            return
        with self._lock:
            self.failed += len(records)
        self.last_error = f"{exc.__class__.__name__}: {exc}"[:500]
        if self.on_settled is not None:
            self.on_settled(records, False)
        log.error(
            "gateway call(s) %s could not be logged: %s",
            ", ".join(r.trace_id for r in records[:10]),
            self.last_error,
        )

    def close(self, timeout_s: float = 60.0) -> None:
        """Hand every record submitted to the store and wait until it is durable, then stop
        the thread. (The store's writer must still be running: it is closed after this.)"""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error(
                    "%d gateway calls not handed to the trace writer at shutdown: %s",
                    self.pending,
                    self.last_error,
                )
            self._thread = None
