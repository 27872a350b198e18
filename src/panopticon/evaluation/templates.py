"""The suite's message template: checked against every query before a paid call, and
applied to each query's messages when it is sent."""

from __future__ import annotations

import string

from panopticon.errors import Issue
from panopticon.evaluation.prompts import render_messages
from panopticon.evaluation.queries import QueryItem
from panopticon.evaluation.sources import Located, dotted

__all__ = ["check_template", "render_messages"]


def check_template(
    template: str,
    queries: list[QueryItem],
    doc: Located,
    loc: tuple[str | int, ...] = ("template",),
) -> list[Issue]:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    except ValueError as exc:
        return [
            Issue(
                f"template is not valid: {exc}",
                file=doc.file,
                line=doc.line_of(loc),
                field=dotted(loc),
                hint="use {text}, {context}, {theme} or a metadata key; write {{ for {",
            )
        ]
    issues = []
    for q in queries:
        missing = [
            n
            for n in names
            if n not in ("text", "context", "theme", "expected") and n not in q.metadata
        ]
        missing += [n for n in names if n == "context" and q.context is None]
        if missing:
            issues.append(
                Issue(
                    f"template needs {', '.join(sorted(missing))}, which this query does not have",
                    file=q.source.rsplit(":", 1)[0],
                    line=int(q.source.rsplit(":", 1)[1]) or None,
                    hint="add the field to the query or change the template",
                )
            )
        if len(issues) >= 20:
            break
    return issues
