"""Rows as a Parquet file, streamed one row group at a time (the ``parquet`` extra).

pyarrow is imported when a Parquet file is asked for, never at start-up; without it
:func:`require_pyarrow` raises :class:`MissingDependencyError` naming the extra, before
anything is streamed (so an API caller gets a 4xx, not a cut-off download).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import orjson

from panopticon.errors import MissingDependencyError

__all__ = ["ROW_GROUP", "parquet_stream", "require_pyarrow"]

ROW_GROUP = 10_000  # rows per row group: the memory one streamed export holds at a time

# column types: "str", "int", "float", "time" (UTC, microseconds), "strings" (a list of
# text), "json" (any JSON value, as its text: metadata's values have no one type)
ColumnTypes = dict[str, str]


def require_pyarrow() -> Any:
    """The ``pyarrow`` module, or a MissingDependencyError saying which extra to install."""
    try:
        import pyarrow
        import pyarrow.parquet  # the writer needs the submodule too
    except ImportError:
        raise MissingDependencyError("pyarrow", "parquet", "Parquet export") from None
    return pyarrow


class _Sink:
    """A write-only file for pyarrow that hands its bytes over as they are written and
    still reports the total written (pyarrow records row-group offsets from ``tell``)."""

    closed = False

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.chunks.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def drain(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


def _schema(pa: Any, columns: ColumnTypes) -> Any:
    types = {
        "str": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "time": pa.timestamp("us", tz="UTC"),
        "strings": pa.list_(pa.string()),
        "json": pa.string(),
    }
    return pa.schema([(name, types[kind]) for name, kind in columns.items()])


def _value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "json":
        return orjson.dumps(value).decode()
    if kind == "time" and isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError("a naive time cannot be exported as UTC")
    return value


def parquet_stream(rows: Iterable[dict[str, Any]], columns: ColumnTypes) -> Iterator[bytes]:
    """``rows`` (dicts with the keys of ``columns``) as the bytes of one Parquet file."""
    pa = require_pyarrow()
    import pyarrow.parquet as pq

    schema = _schema(pa, columns)
    sink = _Sink()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")

    def flush(batch: list[dict[str, Any]]) -> None:
        data = {name: [_value(kind, r.get(name)) for r in batch] for name, kind in columns.items()}
        writer.write_batch(pa.record_batch(data, schema=schema))

    batch: list[dict[str, Any]] = []
    try:
        for row in rows:
            batch.append(row)
            if len(batch) >= ROW_GROUP:
                flush(batch)
                batch = []
                yield sink.drain()
        if batch:
            flush(batch)
    finally:
        writer.close()
    yield sink.drain()
