"""``panopticon show RUN --answers``: each query with every model's answer in full.

In a wide terminal, up to four answers stand in columns side by side (wrapped, never
cut); otherwise, and whenever the output is piped, as plain text one after the other,
so that it reads the same in a pager and a CI log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from panopticon.services.answers import Answer, QueryAnswers

__all__ = ["print_answers"]


def _score(a: Answer) -> str:
    parts = []
    for s in a.scores:
        if s.error:
            parts.append(f"{s.metric} error")
            continue
        value = "" if s.value is None else f" {s.value:g}"
        mark = {True: " pass", False: " FAIL", None: ""}[s.passed]
        parts.append(f"{s.metric}{value}{mark}")
    return ", ".join(parts)


def _columns(qa: QueryAnswers) -> None:
    from rich.table import Table
    from rich.text import Text

    from panopticon.cli.output import console

    ident = qa.label
    table = Table(  # Text, not strings: an answer's [brackets] are not markup
        title=Text(
            f"{ident}, theme {qa.theme}: {qa.text}"
            + (f"\nexpected: {qa.expected}" if qa.expected else "")
        ),
        title_justify="left",
        show_lines=True,
    )
    for a in qa.answers:
        repeat = f" (repeat {a.repeat})" if any(x.repeat for x in qa.answers) else ""
        table.add_column(Text(f"{a.model}{repeat}"), overflow="fold", ratio=1)
    table.add_row(
        *(Text(f"ERROR: {a.error}" if a.error else (a.response or "")) for a in qa.answers)
    )
    table.add_row(*(Text(_score(a)) for a in qa.answers))
    console.print(table)


def print_answers(queries: list[QueryAnswers]) -> None:
    from panopticon.cli.output import console

    if console.is_terminal and console.width >= 100:
        for qa in queries:
            if len(qa.answers) <= 4:
                _columns(qa)
            else:
                _plain([qa])
        return
    _plain(queries)


def _plain(queries: list[QueryAnswers]) -> None:
    echo = typer.echo
    for qa in queries:
        echo("=" * 78)
        echo(f"{qa.label}, theme {qa.theme}")
        echo(qa.text)
        if qa.expected:
            echo(f"expected: {qa.expected}")
        repeats = any(a.repeat for a in qa.answers)
        for a in qa.answers:
            repeat = f", repeat {a.repeat}" if repeats else ""
            scores = _score(a)
            echo("")
            echo(f"--- {a.model}{repeat}" + (f"  [{scores}]" if scores else ""))
            echo(f"ERROR: {a.error}" if a.error else (a.response or ""))
            for s in a.scores:
                if s.passed is False and s.reasoning:
                    echo(f"  ({s.metric}: {s.reasoning})")
        echo("")
