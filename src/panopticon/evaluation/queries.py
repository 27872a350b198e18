"""Queries as the engine sees them: rows of a suite or a JSONL/CSV file turned into
:class:`QueryItem`, each with the file and line it came from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from panopticon.errors import ConfigError, Issue
from panopticon.evaluation.sources import Located, iter_csv, iter_jsonl
from panopticon.evaluation.spec import MessageSpec, QueryFileSpec, Suite
from panopticon.evaluation.text import unstorable

__all__ = [
    "MetricEntry",
    "QueryItem",
    "load_query_file",
    "place_label",
    "query_label",
    "resolve_queries",
    "row_to_query",
]


@dataclass(frozen=True)
class MetricEntry:
    """A per-query metric as written, with its place for error messages."""

    value: Any
    file: str
    line: int | None
    field: str


@dataclass(frozen=True)
class QueryItem:
    """One resolved query. ``source`` says where it came from (file:line)."""

    text: str
    messages: tuple[tuple[str, str], ...]
    theme: str
    expected: str | None
    context: str | None
    metadata: dict[str, Any]
    source: str
    external_id: str | None = None
    # metrics for this query only, as written (a metric mapping or a suite metric's name),
    # each with where it was written; the suite resolves them into ``metrics``, the names
    # of the extra metrics the runner scores this query with
    metric_entries: tuple[MetricEntry, ...] = ()
    metrics: tuple[str, ...] = ()

    @cached_property
    def content_hash(self) -> str:
        payload = orjson.dumps(
            [self.messages, self.theme, self.expected, self.context, self.metadata],
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(payload).hexdigest()[:32]


def place_label(file: str | None, line: int | None) -> str | None:
    """``file:line`` as a person finds it: the path relative to the current folder when the
    file is under it, else as stored (absolute); None when the place is not known."""
    if not file:
        return None
    path = Path(file)
    try:
        shown = str(path.relative_to(Path.cwd()))
    except ValueError:
        shown = file
    return f"{shown}:{line}" if line else shown


def query_label(
    external_id: str | None, file: str | None, line: int | None, text: str | None
) -> str:
    """How messages name a query: its dataset id, and the file and line it was read from
    when known; with neither, the start of its text in quotes. Never the database id, which
    no one can look up (issue 10)."""
    place = place_label(file, line)
    if external_id is not None:
        return f"query id {external_id}" + (f" ({place})" if place else "")
    flat = " ".join(str(text or "").split())
    excerpt = f'"{flat[:60]}{"…" if len(flat) > 60 else ""}"'
    return f"query at {place} {excerpt}" if place else f"query {excerpt}"


_TEXT_KEYS = ("text", "query", "prompt", "input", "question", "item")
_THEME_KEYS = ("theme", "type", "category")
_EXPECTED_KEYS = ("expected", "expected_output", "answer", "ideal", "reference", "target")


def row_to_query(
    row: dict[str, Any], *, file: str, line: int, default_theme: str | None, system: str | None
) -> QueryItem:
    problem = unstorable(row)
    if problem:
        raise ConfigError(Issue(problem, file=file, line=line))

    def pick(keys: tuple[str, ...]) -> tuple[str | None, Any]:
        for k in keys:
            if k in row and row[k] not in (None, ""):
                return k, row[k]
        return None, None

    text_key, text = pick(_TEXT_KEYS)
    messages = row.get("messages")
    if text is None and messages is None:
        raise ConfigError(
            Issue(
                "no query text: expected a 'text' field (or query, prompt, input, question, "
                "item), or 'messages'",
                file=file,
                line=line,
                hint='write the row as {"text": "...", "theme": "...", "expected": "..."}',
            )
        )
    if text is not None and not isinstance(text, str):
        raise ConfigError(
            Issue(
                f"'{text_key}' must be a string, found {type(text).__name__}",
                file=file,
                line=line,
                field=text_key,
            )
        )
    msgs: list[tuple[str, str]] = []
    if messages is not None:
        try:
            parsed = [MessageSpec.model_validate(m) for m in messages]
        except (ValidationError, TypeError):
            raise ConfigError(
                Issue(
                    "'messages' must be a list of {role: system|user|assistant, content: str}",
                    file=file,
                    line=line,
                    field="messages",
                )
            ) from None
        msgs = [(m.role, m.content) for m in parsed]
        if text is None:
            text = next((c for r, c in reversed(msgs) if r == "user"), msgs[-1][1])
    else:
        msgs = [("user", str(text))]
    if system and not any(r == "system" for r, _ in msgs):
        msgs.insert(0, ("system", system))
    used = {text_key, "messages", "context", "metadata", "id", "metrics"}
    theme_key, theme = pick(_THEME_KEYS)
    expected_key, expected = pick(_EXPECTED_KEYS)
    used |= {theme_key, expected_key}
    metadata = row.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ConfigError(
            Issue("'metadata' must be an object", file=file, line=line, field="metadata")
        )
    # other columns are kept as metadata: datasets often carry extra fields
    extra = {k: v for k, v in row.items() if k not in used}
    context = row.get("context")
    entries = row.get("metrics")
    if entries is None or entries == "":
        entries = []
    elif isinstance(entries, str) and entries.lstrip().startswith("["):
        try:  # a CSV cell holding a JSON list
            entries = orjson.loads(entries)
        except orjson.JSONDecodeError:
            entries = [entries]
    elif isinstance(entries, str):  # a CSV cell: names separated by commas
        entries = [n.strip() for n in entries.split(",") if n.strip()]
    if not isinstance(entries, list):
        raise ConfigError(
            Issue(
                "'metrics' must be a list of metrics or suite metric names",
                file=file,
                line=line,
                field="metrics",
                hint='write "metrics": ["exact"] or "metrics": [{"type": "contains", ...}]',
            )
        )
    return QueryItem(
        text=str(text),
        messages=tuple(msgs),
        theme=str(theme) if theme is not None else (default_theme or "default"),
        expected=None if expected is None else str(expected),
        context=None if context is None else str(context),
        metadata={**extra, **metadata},
        source=f"{file}:{line}",
        external_id=None if row.get("id") is None else str(row["id"]),
        metric_entries=tuple(
            MetricEntry(e, file, line, f"metrics[{j}]") for j, e in enumerate(entries)
        ),
    )


def resolve_queries(
    suite: Suite, doc: Located, base_dir: Path, issues: list[Issue]
) -> list[QueryItem]:
    out: list[QueryItem] = []
    # with prompt variants, each variant brings its own system prompt when the query is sent
    system = None if suite.prompts else suite.system
    for i, q in enumerate(suite.queries):
        line = doc.line_of(("queries", i)) or 0
        try:
            if isinstance(q, QueryFileSpec):
                shared = tuple(
                    MetricEntry(
                        e,
                        doc.file,
                        doc.line_of(("queries", i, "metrics", j)),
                        f"queries[{i}].metrics[{j}]",
                    )
                    for j, e in enumerate(q.metrics)
                )
                loaded = load_query_file(q, base_dir, system)
                if not loaded:  # the wrong file named, or one not filled yet: said, not run
                    issues.append(
                        doc.issue(
                            f"{q.file} holds no queries",
                            ("queries", i, "file"),
                            hint="fill it, or remove it from queries",
                        )
                    )
                out += [
                    replace(item, metric_entries=(*shared, *item.metric_entries))
                    if shared
                    else item
                    for item in loaded
                ]
            else:
                row = q.model_dump(exclude_none=True)
                if "messages" in row:
                    row["messages"] = [dict(m) for m in row["messages"]]
                if not row.get("metrics"):
                    row.pop("metrics", None)
                item = row_to_query(
                    row, file=doc.file, line=line, default_theme=None, system=system
                )
                out.append(
                    replace(
                        item,
                        metric_entries=tuple(
                            MetricEntry(
                                e.value,
                                doc.file,
                                doc.line_of(("queries", i, "metrics", j)),
                                f"queries[{i}].metrics[{j}]",
                            )
                            for j, e in enumerate(item.metric_entries)
                        ),
                    )
                )
        except ConfigError as err:
            issues += err.issues
    if not out and not issues:
        issues.append(doc.issue("the suite has no queries", ("queries",)))
    return out


def load_query_file(spec: QueryFileSpec, base_dir: Path, system: str | None) -> list[QueryItem]:
    path = base_dir / spec.file
    fmt = spec.format
    if fmt == "auto":
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            fmt = "jsonl"
        elif suffix == ".csv":
            fmt = "csv"
        else:
            raise ConfigError(
                Issue(
                    f"cannot tell the format of '{spec.file}' from its name",
                    file=str(path),
                    hint="name it .jsonl or .csv, or set format: jsonl|csv",
                )
            )
    rows = iter_jsonl(path) if fmt == "jsonl" else iter_csv(path)
    out: list[QueryItem] = []
    issues: list[Issue] = []
    try:
        for number, row in rows:
            if spec.limit is not None and len(out) >= spec.limit:
                break
            try:
                out.append(
                    row_to_query(
                        row, file=str(path), line=number, default_theme=spec.theme, system=system
                    )
                )
            except ConfigError as err:
                issues += err.issues
                if len(issues) >= 20:
                    break
    except ConfigError as err:  # lines the reader could not parse, with the rows' problems
        issues += err.issues
    issues.sort(key=lambda i: i.line or 0)
    if len(issues) > 20:
        issues = [*issues[:20], Issue("stopping after 20 problems in this file", file=str(path))]
    if issues:
        raise ConfigError(issues)
    return out
