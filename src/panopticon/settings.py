"""The one typed configuration object, built by :func:`load_settings` and passed in.

Nothing else in Panopticon reads ``os.environ`` for configuration; suites run by the CLI
read the environment only through their documented ``${VAR}`` substitution and
``api_key_env``. The server reads only the variables named in ``allowed_key_env``.

(pydantic-settings would do this too; three fields do not justify 50 ms of import on every
command, which ``bench/`` counts as start-up.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from panopticon.errors import ConfigError, Issue

__all__ = ["ENV_PREFIX", "Settings", "load_settings", "mask_url"]

ENV_PREFIX = "PANOPTICON_"


class Settings(BaseModel):
    """Process-wide settings. Each field is read from ``PANOPTICON_<FIELD>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".panopticon",
        description="Directory for the embedded SQLite database and spool files.",
    )
    database_url: str | None = Field(
        default=None,
        repr=False,  # secrets (or a password in the URL) stay out of reprs and logs
        description="SQLAlchemy URL. Unset: a SQLite file in `home`. "
        "postgresql://user@host/db selects PostgreSQL.",
    )
    workspace: str = Field(default="default", description="Workspace the CLI works in.")
    embedding_url: str | None = Field(
        default=None,
        description="OpenAI-compatible base URL whose /embeddings endpoint embeds queries "
        "and metrics for semantic search. Unset: search matches text.",
    )
    embedding_model: str = Field(
        default="text-embedding-3-small", description="Embedding model name sent to that endpoint."
    )
    embedding_local: bool = Field(
        default=False,
        description="Embed with the local sentence-transformers model all-MiniLM-L6-v2 (the "
        "`local-embeddings` extra; no download at run time) when no embedding URL is set.",
    )
    embedding_key_env: str | None = Field(
        default=None, description="Environment variable holding the embeddings API key."
    )
    job_shards: int = Field(
        default=8,
        ge=1,
        le=256,
        description="On PostgreSQL, a job over many queries is split into up to this many "
        "slices that workers run in parallel (at least 25 queries each); 1: one worker "
        "runs each job.",
    )
    secret_key: str | None = Field(
        default=None,
        repr=False,  # secrets (or a password in the URL) stay out of reprs and logs
        min_length=32,
        description="Signs the web UI's session cookies (at least 32 characters). Unset: a "
        "random key kept in `home`; set it when several servers share sessions.",
    )
    trace_retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Production traces are kept this many days (a workspace may set fewer); "
        "older spans are refused at ingest and their partitions dropped.",
    )
    ingest_max_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Largest trace payload accepted, in bytes after decompression (a larger "
        "one is answered 413).",
    )
    ingest_max_spans: int = Field(
        default=50_000,
        ge=1,
        description="Most spans accepted in one request (more is answered 413).",
    )
    max_request_bytes: int = Field(
        default=10_000_000,
        ge=1024,
        le=2**31,
        description="The largest request body the API accepts, in bytes; a larger one is "
        "refused with 413 before it is parsed.",
    )
    api_key: str | None = Field(
        default=None,
        repr=False,  # secrets (or a password in the URL) stay out of reprs and logs
        min_length=16,
        description="A bootstrap key: accepted by the API as an admin of the default "
        "workspace (at least 16 characters). Create real keys with `panopticon keys create`.",
    )

    gateway_key_ttl_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds the gateway keeps a key (and a model route) in memory: a revoked "
        "gateway key is refused within this time.",
    )
    gateway_logging: bool = Field(
        default=True, description="Log every gateway call as a trace (off: no logging at all)."
    )
    gateway_log_writer: Literal["process", "thread"] = Field(
        default="process",
        description="Where the gateway's calls become stored traces: 'process', a writer "
        "process of its own fed over a pipe (the server keeps its core and its GIL for "
        "answering), or 'thread', a thread of the server's process.",
    )
    online_workers: int = Field(
        default=2,
        ge=1,
        le=256,
        description="Online-evaluation tasks that judge at once (each keeps up to 16 judge "
        "calls in flight); on PostgreSQL they are shared by every `panopticon worker`.",
    )
    online_lease_s: float = Field(
        default=300.0,
        ge=1,
        le=86_400,
        description="Seconds a worker may hold a span it is judging; a worker that died lets "
        "go after this, and the span is judged again. Keep it above the judge's time-out "
        "times its retries.",
    )
    online_max_waiting: int = Field(
        default=100_000,
        ge=100,
        description="Backpressure: while this many selected spans wait for a judge, new spans "
        "stay in the inbox (durably) instead of being selected.",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        if url is None:
            return None
        scheme = url.split("://", 1)[0].lower() if "://" in url else None
        if scheme is None or not scheme.startswith(("sqlite", "postgresql", "postgres")):
            what = "has no scheme" if scheme is None else f"has the unknown scheme '{scheme}'"
            raise ValueError(  # the URL itself is not shown: it may hold a password
                f"the database URL {what}: give "
                "postgresql://user@host:5432/dbname or sqlite:////absolute/path.db, or unset it "
                "for the embedded SQLite database"
            )
        return url

    encryption_key: str | None = Field(
        default=None,
        repr=False,  # secrets (or a password in the URL) stay out of reprs and logs
        description="Fernet key(s) that encrypt the workspaces' stored provider credentials, "
        "comma-separated: the first encrypts, every one decrypts (to rotate, put the new key "
        "first and run `panopticon credentials rotate`). Unset: a key kept (0600) in `home`; "
        "set it when several machines share the database. Make one with "
        "`panopticon credentials new-key`.",
    )
    allowed_key_env: str = Field(
        default="",
        max_length=10_000,
        description="Environment variables of the server that workspace admins may name as a "
        "provider's key (api_key_env), comma-separated, e.g. OPENAI_API_KEY,ANTHROPIC_API_KEY. "
        "Such a key is sent only to its provider's official endpoint, or to the one URL given "
        "as NAME=https://host/v1. Empty (the default): the server uses no environment key; "
        "the CLI's own runs of suite files are not limited.",
    )
    allow_private_urls: bool = Field(
        default=True,
        description="Whether providers may be on loopback and private addresses (127.0.0.0/8, "
        "10/8, 172.16/12, 192.168/16, ::1, fc00::/7): needed for Ollama, vLLM on the LAN and "
        "the mock. Set false on a shared server. Link-local and cloud metadata addresses are "
        "always refused.",
    )
    allow_request_endpoints: bool = Field(
        default=False,
        description="Whether suites sent to the API may give their own base_url (and admins "
        "an allowed api_key_env) instead of naming registered providers.",
    )

    @property
    def key_env_allow_list(self) -> dict[str, str | None]:
        """Allowed variable -> the only base URL its key may go to (None: the provider's
        official endpoint)."""
        allowed: dict[str, str | None] = {}
        for entry in self.allowed_key_env.split(","):
            name, _, url = entry.strip().partition("=")
            if name.strip():
                allowed[name.strip()] = url.strip().rstrip("/") or None
        return allowed

    def allowed_environment(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The variables of ``environ`` a server may read keys from: the allow-listed ones
        and the operator's embedding key. The server and workers keep only these, so no
        request can reach any other (and a request may name only the allow-listed ones)."""
        names = [*self.key_env_allow_list, self.embedding_key_env]
        return {k: environ[k] for k in names if k and environ.get(k)}

    @property
    def display_database_url(self) -> str:
        """The database URL to show people: its password masked."""
        return mask_url(self.resolved_database_url)

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use, with the embedded default filled in."""
        if self.database_url:
            url = self.database_url
            if url.startswith(("postgresql://", "postgres://")):
                # SQLAlchemy's default PostgreSQL driver is psycopg2; we ship psycopg 3.
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.home / 'panopticon.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def mask_url(url: str) -> str:
    """``scheme://user:***@host/...``: a URL with its password (or token) masked."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    userinfo, _, host = authority.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not colon:
        return url
    return f"{scheme}://{user}:***@{host}{slash}{path}"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from ``PANOPTICON_*`` variables (of ``environ``, default the process's);
    explicit overrides win. A bad value is a ConfigError naming the variable."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name in Settings.model_fields:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw not in (None, ""):
            values[name] = raw
    values.update(overrides)
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        issues = [
            Issue(
                e["msg"].removeprefix("Value error, "), field=ENV_PREFIX + str(e["loc"][0]).upper()
            )
            for e in exc.errors()
        ]
        raise ConfigError(issues) from None
