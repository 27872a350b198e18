"""The suite's message templates: checked against every query before a paid call (they are
applied when a query is sent, by :func:`panopticon.evaluation.prompts.render_messages`)."""

from __future__ import annotations

import string

from panopticon.errors import Issue
from panopticon.evaluation.prompts import render_messages
from panopticon.evaluation.queries import QueryItem
from panopticon.evaluation.sources import Located

__all__ = ["check_template", "render_messages"]


_HINT = "use {text}, {context}, {theme}, {expected} or a metadata key; write {{ for {"


def check_template(
    template: str,
    queries: list[QueryItem],
    doc: Located,
    loc: tuple[str | int, ...] = ("template",),
) -> list[Issue]:
    """Every problem of the template (the suite's, or a prompt variant's at ``loc``), before
    anything is paid for. Fields are plain names:
    a format spec (``{text:>20000000}`` makes a 20 MB prompt; ``{text:d}`` fails on every
    query), a conversion (``{text!r}``), an attribute or an index is refused."""

    def issue(message: str) -> list[Issue]:
        return [doc.issue(message, loc, hint=_HINT)]

    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return issue(f"template is not valid: {exc}")
    names = set()
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if spec or conversion:
            shown = (
                "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            )[:60] + "}"
            return issue(
                f"template field {shown} has a format spec or conversion; "
                "only plain fields like {text} are allowed"
            )
        if not name or name.isdigit() or "." in name or "[" in name:
            return issue(
                f"template field {{{name[:60]}}} is not a plain name (no attributes, indexes or "
                "positional fields)"
            )
        names.add(name)
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
