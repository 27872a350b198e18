"""Choosing part of a suite's queries from the command line: ``--filter`` and ``--limit``."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from panopticon.errors import ConfigError, Issue
from panopticon.evaluation.suite import LoadedSuite

__all__ = ["QuerySelection", "parse_filters", "stored_selection"]

_KEYS = ("theme", "id", "text")


@dataclass(frozen=True)
class QuerySelection:
    """Queries whose theme is one of ``themes``, whose id (the dataset id) is one of
    ``ids`` and whose text matches ``pattern``; then the first ``limit`` of them."""

    themes: frozenset[str] | None = None
    ids: frozenset[str] | None = None
    pattern: re.Pattern[str] | None = None
    limit: int | None = None
    options: tuple[str, ...] = ()  # as typed: recorded with the run (LoadedSuite.selection)

    @property
    def empty(self) -> bool:
        return self == QuerySelection()

    def apply(self, loaded: LoadedSuite) -> LoadedSuite:
        if self.empty:
            return loaded
        chosen = [
            q
            for q in loaded.queries
            if (self.themes is None or q.theme in self.themes)
            and (self.ids is None or (q.external_id is not None and q.external_id in self.ids))
            and (self.pattern is None or self.pattern.search(q.text))
        ]
        if self.limit is not None:
            chosen = chosen[: self.limit]
        if not chosen:
            raise ConfigError(
                Issue(
                    f"no query of the suite's {len(loaded.queries)} matches --filter/--limit",
                    field="--filter",
                    hint="themes here: "
                    + ", ".join(sorted({q.theme for q in loaded.queries})[:20]),
                )
            )
        return replace(
            loaded,
            queries=chosen,
            partial=len(chosen) < len(loaded.queries),
            selection=self.options,
        )


def parse_filters(filters: list[str], limit: int | None) -> QuerySelection:
    """``theme=a,b``, ``id=q1,q2``, ``text=REGEX`` (several: all must hold). Every problem
    is reported at once."""
    issues: list[Issue] = []
    values: dict[str, str] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        key = key.strip()
        if not sep or key not in _KEYS or not value:
            issues.append(
                Issue(
                    f"cannot read --filter '{f}'",
                    field="--filter",
                    hint="write theme=NAME[,NAME], id=ID[,ID] or text=REGEX",
                )
            )
            continue
        if key in values:
            issues.append(
                Issue(
                    f"--filter {key}= is given twice",
                    field="--filter",
                    hint="list several values in one: theme=a,b",
                )
            )
        values[key] = value
    pattern = None
    if "text" in values:
        try:
            pattern = re.compile(values["text"])
        except re.error as exc:
            issues.append(
                Issue(
                    f"--filter text= is not a valid regular expression: {exc}",
                    field="--filter",
                    hint="escape special characters with \\",
                )
            )
    if issues:
        raise ConfigError(issues)

    def split(key: str) -> frozenset[str] | None:
        if key not in values:
            return None
        return frozenset(v.strip() for v in values[key].split(",") if v.strip())

    options: list[str] = []
    for f in filters:
        options += ["--filter", f]
    if limit is not None:
        options += ["--limit", str(limit)]
    return QuerySelection(split("theme"), split("id"), pattern, limit, tuple(options))


def stored_selection(options: list[str]) -> tuple[list[str], int | None]:
    """The ``--filter`` values and ``--limit`` of a selection recorded with a run."""
    filters = [v for k, v in zip(options[::2], options[1::2], strict=True) if k == "--filter"]
    limits = [int(v) for k, v in zip(options[::2], options[1::2], strict=True) if k == "--limit"]
    return filters, (limits[0] if limits else None)
