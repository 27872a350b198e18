"""Every exception Panopticon raises on purpose, in one place.

::

    PanopticonError                 base; ``str(err)`` is a message a user can act on
    ├── ConfigError                 a suite, dataset or setting is invalid (names file, line, field)
    │   ├── MissingDependencyError  an optional extra is needed (the pip install that adds it)
    │   └── ConflictError           the change clashes with stored data (HTTP 409)
    ├── IngestError                 a trace payload cannot be taken (its HTTP status, Retry-After)
    ├── StoreError                  the database cannot be used as asked
    │   ├── MigrationRequiredError  the schema is behind the code ("panopticon db upgrade")
    │   └── NotFoundError           a run, result or row that does not exist
    ├── ProviderError               a model call failed (status, retry-after, retryable)
    │   └── ProviderTimeoutError    the call did not answer in time
    └── GatewayError                a gateway call refused or failed (HTTP status, error type)

A ``ProviderError`` during a run never escapes the runner: it becomes the recorded error of
that result (STYLE.md, "failures are data"). Judge answers that cannot be parsed are
``JudgeParseError`` values inside ``judges`` and are recorded the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ConfigError",
    "ConflictError",
    "GatewayError",
    "IngestError",
    "Issue",
    "JudgeParseError",
    "MigrationRequiredError",
    "MissingDependencyError",
    "NotFoundError",
    "PanopticonError",
    "ProviderError",
    "ProviderTimeoutError",
    "StoreError",
    "install_hint",
]


class PanopticonError(Exception):
    """Base of every error Panopticon raises on purpose."""


@dataclass(frozen=True)
class Issue:
    """One problem in an input: where it is, what is wrong, how to fix it."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        if self.field:
            where = f"{where}: {self.field}" if where else self.field
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f"\n    fix: {self.hint}"
        return text


class ConfigError(PanopticonError):
    """An input is invalid. Holds every issue found, so one pass reports them all."""

    def __init__(self, issues: list[Issue] | Issue | str) -> None:
        if isinstance(issues, str):
            issues = [Issue(issues)]
        elif isinstance(issues, Issue):
            issues = [issues]
        self.issues: list[Issue] = issues
        super().__init__("\n".join(str(i) for i in issues))


class MissingDependencyError(ConfigError):
    """An optional extra is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            Issue(
                f"{purpose} needs the '{package}' package, which is not installed",
                hint=install_hint(extra),
            )
        )


def install_hint(extra: str) -> str:
    """The pip command that adds ``extra`` to this installation: in the source checkout it
    runs from (the README's ``pip install -e '.[extra]'``), else from the package index. (No
    path: the hint also reaches API clients.)"""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "src" / "panopticon").is_dir():
        return f"pip install -e '.[{extra}]' in Panopticon's source folder"
    return f"pip install 'panopticon[{extra}]'"


class ConflictError(ConfigError):
    """The change would clash with stored data (a duplicate, or rows that refer to it)."""


class IngestError(PanopticonError):
    """A trace payload that cannot be taken: ``status`` is the HTTP answer (400 unreadable,
    413 too large, 415 unknown content type, 429/503 busy with ``retry_after`` seconds)."""

    def __init__(self, message: str, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class StoreError(PanopticonError):
    """The database cannot be used as asked."""


class MigrationRequiredError(StoreError):
    """The database schema is older (or newer) than this code."""


class NotFoundError(StoreError):
    """A requested row does not exist."""


class ProviderError(PanopticonError):
    """A model call failed.

    ``kind`` is a short machine-readable class: ``rate_limit``, ``server``, ``timeout``,
    ``connection``, ``auth``, ``bad_request``, ``not_found``, ``content`` or ``error``.
    ``retry_after`` is the delay the provider asked for, in seconds, when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
        kind: str = "error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable
        self.kind = kind


class ProviderTimeoutError(ProviderError):
    """The provider did not answer within the time-out."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, kind="timeout")


class JudgeParseError(PanopticonError):
    """A judge's answer could not be read as a verdict on the metric's scale."""


class GatewayError(PanopticonError):
    """A call through the gateway is refused (bad input, key, limit, guardrail) or failed
    upstream. ``status`` is the HTTP status; ``kind`` and ``code`` the OpenAI error's
    ``type`` and ``code``; ``param`` the request field at fault."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        kind: str = "invalid_request_error",
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind
        self.code = code
        self.param = param
        self.retry_after = retry_after
