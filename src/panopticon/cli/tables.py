"""Tables for the terminal, for logs and for programs: ``--format table|md|json|csv``.

A terminal gets Rich tables whose cells wrap instead of being cut (``gpt-…``, ``$0.0…``);
output that is not a terminal (a pipe, a CI log) gets Markdown tables with every value
whole, unless a format is asked for. JSON and CSV carry the raw values, not their display;
JSON's keys are the columns' names made into identifiers (``unknown_cost``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from rich.console import Console

from panopticon.errors import ConfigError, Issue

__all__ = [
    "FORMATS",
    "FORMAT_HELP",
    "Column",
    "Grid",
    "check_format",
    "emit",
    "resolve_format",
    "show_rows",
]

FORMATS = ("table", "md", "json", "csv")
FORMAT_HELP = "table, md, json or csv (default: a table on a terminal, else Markdown)."


@dataclass(frozen=True)
class Column:
    name: str
    show: Callable[[Any], str] = lambda v: "-" if v is None else str(v)
    right: bool = False
    style: Callable[[Any], str | None] = lambda v: None  # Rich style of a cell, terminal only
    key: str | None = None  # its name in JSON, when not the name made one (json_key)

    @property
    def json_key(self) -> str:
        """A name a program can use: ``unknown cost`` is ``unknown_cost``, ``p (Holm)``
        ``p_holm``, ``created (UTC)`` ``created_utc``."""
        return self.key or re.sub(r"[^0-9a-z]+", "_", self.name.lower()).strip("_")


@dataclass
class Grid:
    """One table: a title, its columns and rows of raw values (one per column)."""

    key: str  # its name in JSON
    title: str | None
    columns: Sequence[Column]
    rows: list[list[Any]] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        keys = [c.json_key for c in self.columns]
        return [dict(zip(keys, row, strict=True)) for row in self.rows]


def check_format(fmt: str | None) -> str | None:
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(
            Issue(f"unknown format '{fmt}'", field="--format", hint="use " + ", ".join(FORMATS))
        )
    return fmt


def resolve_format(fmt: str | None, console: Console) -> str:
    """The format asked for, else a table on a terminal and Markdown elsewhere."""
    check_format(fmt)
    if fmt is not None:
        return fmt
    return "table" if console.is_terminal else "md"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rich(grid: Grid) -> Any:
    from rich.table import Table

    table = Table(title=grid.title, title_justify="left")
    for c in grid.columns:
        table.add_column(c.name, justify="right" if c.right else "left", overflow="fold")
    for row in grid.rows:
        cells = []
        for c, v in zip(grid.columns, row, strict=True):
            text = c.show(v)
            style = c.style(v)
            cells.append(f"[{style}]{text}[/]" if style else text.replace("[", "\\["))
        table.add_row(*cells)
    return table


def show_rows(
    console: Console,
    columns: Sequence[str | Column],
    rows: list[list[Any]],
    fmt: str | None = None,
    *,
    title: str | None = None,
    key: str = "rows",
) -> None:
    """One table of a listing command, as :func:`emit` prints it in the format asked for
    (``--format``), else a table on a terminal and Markdown in a pipe or a log."""
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    emit([Grid(key, title, cols, rows)], resolve_format(fmt, console), console)


def emit(grids: Sequence[Grid], fmt: str, console: Console) -> None:
    """Print ``grids`` in ``fmt`` (as given by :func:`resolve_format`)."""
    if fmt == "json":
        data = {g.key: g.records() for g in grids}
        console.out(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode())
        return
    for i, grid in enumerate(grids):
        if fmt == "table":
            console.print(_rich(grid))
        elif fmt == "md":
            lines = [f"**{grid.title}**", ""] if grid.title else []
            lines.append("| " + " | ".join(c.name for c in grid.columns) + " |")
            lines.append("|" + "|".join("---:" if c.right else "---" for c in grid.columns) + "|")
            for row in grid.rows:
                cells = [_md_cell(c.show(v)) for c, v in zip(grid.columns, row, strict=True)]
                lines.append("| " + " | ".join(cells) + " |")
            if i < len(grids) - 1:
                lines.append("")
            console.out("\n".join(lines), highlight=False)
        else:  # csv: one block per table, the title as a comment line
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            if len(grids) > 1:
                buf.write(f"# {grid.key}\n")
            writer.writerow([c.name for c in grid.columns])
            writer.writerows(
                [
                    c.show(v) if isinstance(v, tuple) else "" if v is None else v
                    for c, v in zip(grid.columns, row, strict=True)
                ]
                for row in grid.rows
            )
            console.out(buf.getvalue().rstrip("\n"), highlight=False)
