"""``panopticon show RUN --answers``: each query with every model's answer in full.

Plain text (no table, nothing cut), so that it reads the same in a terminal, a pager and a
CI log."""

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


def print_answers(queries: list[QueryAnswers]) -> None:
    echo = typer.echo
    for qa in queries:
        ident = (
            f"{qa.external_id} (query {qa.query_id})" if qa.external_id else f"query {qa.query_id}"
        )
        echo("=" * 78)
        echo(f"{ident}, theme {qa.theme}")
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
