"""Logging off the response path: every call becomes a :class:`CallRecord` (one trace with
one llm span), handed to a :class:`TraceSink` that must return at once.

:class:`BatchingSink` is the sink the gateway uses: ``submit`` appends to a deque (no lock,
no I/O); a writer thread wakes every ``interval_s`` (or when ``max_batch`` records wait),
hands the batch to a :class:`TraceWriter` and, when that fails (the database is away),
appends the batch to a spool file under ``spool_dir`` instead. Spooled batches are
replayed, oldest first, once the writer succeeds again. ``close()`` drains everything, so a
clean shutdown loses nothing; ``kill -9`` loses what was not yet written or spooled, at
most ``interval_s`` of calls.

Until the trace store (issue 11) is in main, the writer is :class:`JsonlTraceWriter`, which
appends each call's trace and span, in the normalised model's shape, to a JSON-lines file.
ADAPTER: swap it for the ingest writer when that lands (``gateway/app.py`` chooses it).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

__all__ = [
    "BatchingSink",
    "CallRecord",
    "JsonlTraceWriter",
    "ListSink",
    "TraceSink",
    "TraceWriter",
    "new_span_id",
    "new_trace_id",
]

log = logging.getLogger(__name__)


# Ids need to be unique, not secret: a PRNG seeded from the OS is 5x cheaper than uuid4
_ids = random.Random()


def new_trace_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


def new_span_id() -> str:
    return f"{_ids.getrandbits(64):016x}"


@dataclass(slots=True)
class CallRecord:
    """One call through the gateway, as it will be stored: a trace with one span.

    Unknown token counts and costs are None, never 0 (a cache hit costs 0: nothing was
    paid)."""

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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["start_time"] = self.start_time.isoformat()
        data["end_time"] = self.end_time.isoformat()
        return data

    def dumps(self) -> bytes:
        """One JSON line (orjson serialises the dataclass itself: about 1 µs)."""
        return orjson.dumps(self) + b"\n"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallRecord:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["start_time"] = datetime.fromisoformat(values["start_time"])
        values["end_time"] = datetime.fromisoformat(values["end_time"])
        return cls(**values)

    def span(self) -> dict[str, Any]:
        """The span in the normalised trace model's names (ingest/model.py)."""
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
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": None,
            "name": f"gateway {self.endpoint}",
            "kind": self.kind,
            "start_time": self.start_time.isoformat(),
            "end_time": self.end_time.isoformat(),
            "latency_ms": round(self.latency_ms, 3),
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 3),
            "status": self.status,
            "error": self.error,
            "model_requested": self.model_requested,
            "model_served": self.model_served,
            "provider": self.provider,
            "input_messages": self.input_messages,
            "output_messages": None
            if self.output_text is None
            else [{"role": "assistant", "content": self.output_text}],
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "cost_source": None if self.cost_usd is None else "price_table",
            "attributes": attributes,
        }

    def trace(self) -> dict[str, Any]:
        return {
            "workspace_id": self.workspace_id,
            "id": self.trace_id,
            "name": f"gateway {self.endpoint}",
            "session_id": self.session_id,
            "user_id": self.user_id,
            "tags": self.tags,
            "metadata": self.metadata,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 3),
            "start_time": self.start_time.isoformat(),
            "spans": [self.span()],
            "scores": [
                {"span_id": self.span_id, "source": "guardrail", **g} for g in self.guardrails
            ],
        }


class TraceSink(Protocol):
    """Where the gateway hands a finished call. ``submit`` must not block."""

    def submit(self, record: CallRecord) -> None: ...


class TraceWriter(Protocol):
    """Stores a batch durably or raises. Called from the sink's thread, never the loop."""

    def write(self, records: list[CallRecord]) -> None: ...


class ListSink:
    """Keeps records in memory (tests, and logging turned off with ``keep=False``)."""

    def __init__(self, keep: bool = True) -> None:
        self.records: list[CallRecord] = []
        self.keep = keep

    def submit(self, record: CallRecord) -> None:
        if self.keep:
            self.records.append(record)


class JsonlTraceWriter:
    """ADAPTER until the trace store lands: one JSON line per call in ``path``; ``read``
    gives them back as traces (with their span and guardrail scores)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, records: list[CallRecord]) -> None:
        data = b"".join(r.dumps() for r in records)
        with self.path.open("ab") as f:
            f.write(data)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [
            CallRecord.from_json(orjson.loads(line)).trace()
            for line in self.path.read_bytes().splitlines()
            if line
        ]


class BatchingSink:
    """Batches records off the event loop; spools to disk while the writer fails."""

    def __init__(
        self,
        writer: TraceWriter,
        spool_dir: Path,
        *,
        interval_s: float = 0.1,
        max_batch: int = 1000,
        max_queue: int = 200_000,
    ) -> None:
        self.writer = writer
        self.spool_dir = spool_dir
        self.interval_s = interval_s
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._queue: deque[CallRecord] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.written = 0
        self.spooled = 0
        self.dropped = 0
        self.failures = 0
        self.last_error: str | None = None

    # -- the hot path -------------------------------------------------------------------
    def submit(self, record: CallRecord) -> None:
        if len(self._queue) >= self.max_queue:
            # the writer is far behind: spool from the caller rather than grow without end
            self.dropped += 1
            return
        self._queue.append(record)
        if len(self._queue) >= self.max_batch:
            self._wake.set()

    # -- the writer thread ---------------------------------------------------------------
    def start(self) -> BatchingSink:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(
            target=self._run, name="panopticon-gateway-log", daemon=True
        )
        self._thread.start()
        return self

    @property
    def pending(self) -> int:
        return len(self._queue)

    def spool_files(self) -> list[Path]:
        return sorted(self.spool_dir.glob("spool-*.jsonl")) if self.spool_dir.exists() else []

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self._cycle()
        self._cycle()

    def _drain(self) -> list[CallRecord]:
        batch: list[CallRecord] = []
        q = self._queue
        while q and len(batch) < self.max_batch:
            batch.append(q.popleft())
        return batch

    def _cycle(self) -> None:
        replayed = self._replay()
        while True:
            batch = self._drain()
            if not batch:
                return
            if replayed and self._write(batch):
                continue
            self._spool(batch)
            replayed = False

    def _write(self, batch: list[CallRecord]) -> bool:
        try:
            self.writer.write(batch)
        except Exception as exc:  # the database is away: spool, retry later
            self.failures += 1
            self.last_error = f"{exc.__class__.__name__}: {exc}"[:500]
            log.warning("gateway log writer failed, spooling: %s", self.last_error)
            return False
        self.written += len(batch)
        return True

    def _spool(self, batch: Iterable[CallRecord]) -> None:
        lines = [r.dumps() for r in batch]
        path = self.spool_dir / f"spool-{time.time_ns():020d}.jsonl"
        with path.open("ab") as f:
            f.write(b"".join(lines))
            f.flush()
        self.spooled += len(lines)

    def _replay(self) -> bool:
        """Write the spooled batches, oldest first; True when none is left."""
        for path in self.spool_files():
            try:
                records = [
                    CallRecord.from_json(orjson.loads(line))
                    for line in path.read_bytes().splitlines()
                    if line.strip()
                ]
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.error("unreadable gateway spool file %s kept aside: %s", path, exc)
                path.rename(path.with_suffix(".bad"))
                continue
            if records and not self._write(records):
                return False
            path.unlink()
        return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything submitted so far is written or spooled."""
        deadline = time.monotonic() + timeout_s
        while self._queue and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.005)
        return not self._queue

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the thread after writing (or spooling) every record submitted."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._queue:  # the thread did not finish in time: spool the rest here
            self._spool(list(self._queue))
            self._queue.clear()
