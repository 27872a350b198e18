"""The gateway's log writer: batches off the event loop, spools while the store is away,
replays after, and loses nothing on a clean shutdown."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from panopticon.gateway.logging import BatchingSink, CallRecord, JsonlTraceWriter
from tests.gateway_harness import wait_for


def record(i: int) -> CallRecord:
    start = datetime(2026, 12, 2, tzinfo=UTC) + timedelta(seconds=i)
    return CallRecord(
        trace_id=f"{i:032x}",
        span_id=f"{i:016x}",
        workspace_id=1,
        key_id=1,
        key_name="app",
        endpoint="chat.completions",
        start_time=start,
        end_time=start + timedelta(milliseconds=5),
        model_requested="m",
        input_messages=[{"role": "user", "content": f"q{i}"}],
        output_text=f"a{i}",
        input_tokens=3,
        output_tokens=4,
        cost_usd=None,
        guardrails=[{"name": "guardrail.pii", "value": 1.0, "passed": True}],
    )


class FlakyWriter:
    """Stands in for the database: refuses batches while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def write(self, records: list[CallRecord]) -> None:
        if self.down:
            raise ConnectionError("database is away")
        with self.lock:
            self.batches.append([r.trace_id for r in records])

    @property
    def ids(self) -> list[str]:
        with self.lock:
            return [i for b in self.batches for i in b]


def test_records_are_written_in_batches_by_a_background_thread(tmp_path: Path) -> None:
    writer = FlakyWriter()
    sink = BatchingSink(writer, tmp_path / "spool", interval_s=0.02).start()
    for i in range(250):
        sink.submit(record(i))
    wait_for(lambda: len(writer.ids) == 250, what="every record written")
    assert writer.ids == [f"{i:032x}" for i in range(250)]
    assert len(writer.batches) < 250  # batched, not one write per call
    sink.close()


def test_while_the_store_is_away_batches_are_spooled_and_replayed_in_order(
    tmp_path: Path,
) -> None:
    writer = FlakyWriter()
    writer.down = True
    sink = BatchingSink(writer, tmp_path / "spool", interval_s=0.02).start()
    for i in range(100):
        sink.submit(record(i))
    wait_for(lambda: sink.spooled == 100, what="the records spooled")
    assert sink.spool_files() and writer.ids == []
    for i in range(100, 150):
        sink.submit(record(i))
    wait_for(lambda: sink.spooled == 150, what="more records spooled")
    writer.down = False
    wait_for(lambda: len(writer.ids) == 150, what="the spool replayed")
    assert writer.ids == [f"{i:032x}" for i in range(150)]  # oldest first, none twice
    # a replayed file is deleted just after its batch is written: wait for the last one
    wait_for(lambda: sink.spool_files() == [], what="the spool emptied")
    sink.close()


def test_a_clean_shutdown_loses_nothing_even_with_the_store_away(tmp_path: Path) -> None:
    writer = FlakyWriter()
    writer.down = True
    sink = BatchingSink(writer, tmp_path / "spool", interval_s=60).start()  # never on time
    for i in range(500):
        sink.submit(record(i))
    sink.close()
    assert sink.spooled == 500
    # the next process replays it
    writer.down = False
    again = BatchingSink(writer, tmp_path / "spool", interval_s=0.02).start()
    wait_for(lambda: len(writer.ids) == 500, what="the spool of the last process replayed")
    again.close()
    assert writer.ids == [f"{i:032x}" for i in range(500)]


def test_records_round_trip_through_the_spool_and_the_jsonl_writer(tmp_path: Path) -> None:
    original = record(7)
    again = CallRecord.from_json(orjson.loads(orjson.dumps(original.to_json())))
    assert again == original
    writer = JsonlTraceWriter(tmp_path / "traces.jsonl")
    writer.write([original])
    (trace,) = writer.read()
    assert trace["id"] == original.trace_id and trace["spans"][0]["output_messages"] == [
        {"role": "assistant", "content": "a7"}
    ]
    assert trace["scores"][0]["source"] == "guardrail"


@pytest.mark.parametrize("bad", [b"not json\n", b'{"trace_id": 1}\n'])
def test_an_unreadable_spool_file_is_kept_aside_not_lost(tmp_path: Path, bad: Any) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "spool-00000000000000000001.jsonl").write_bytes(bad)
    writer = FlakyWriter()
    sink = BatchingSink(writer, spool, interval_s=0.02).start()
    wait_for(lambda: list(spool.glob("*.bad")), what="the file set aside")
    sink.close()
