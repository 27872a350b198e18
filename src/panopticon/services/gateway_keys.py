"""Gateway keys: who may call the gateway (``/v1/...``) for a workspace, with what limits,
budgets, guardrails and cache. Created once (the key is shown once, stored hashed),
listed, updated, revoked. The gateway caches what :func:`lookup_gateway_key` returns for a
few seconds (``gateway_key_ttl_s``), so a revocation takes effect within that time.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from panopticon.errors import ConfigError, Issue, NotFoundError
from panopticon.judges.base import spec_class
from panopticon.store.engine import Engine
from panopticon.store.queries import catalog
from panopticon.store.queries import gateway as q

__all__ = [
    "GUARDRAIL_METRICS",
    "GatewayKeyConfig",
    "GatewayKeyInfo",
    "GuardrailSpec",
    "create_gateway_key",
    "get_gateway_key",
    "hash_gateway_key",
    "key_spend",
    "list_gateway_keys",
    "lookup_gateway_key",
    "parse_key_config",
    "revoke_gateway_key",
    "update_gateway_key",
]

KEY_PREFIX = "pgw_"
# The metrics a guardrail may run: the heuristic and safety ones (no reference answer)
GUARDRAIL_METRICS = (
    "pii",
    "prompt_injection",
    "regex",
    "json_valid",
    "json_schema",
    "length",
    "rubric",  # an LLM judge: needs 'judge' (a registered model) and 'threshold'
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuardrailSpec(_Strict):
    """One check on the input and/or output of every call made with the key."""

    metric: dict[str, Any] = Field(
        description="A metric as in a suite: {type: pii | prompt_injection | regex | "
        "json_valid | json_schema | length | rubric, ...its settings}. 'name' defaults to "
        "the type; 'judge' names a registered model for the LLM-judge checks."
    )
    on: Literal["input", "output", "both"] = "input"
    action: Literal["block", "redact", "flag"] = "flag"

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: dict[str, Any]) -> dict[str, Any]:
        kind = v.get("type")
        if kind not in GUARDRAIL_METRICS:
            raise ValueError(
                f"unknown guardrail metric type {kind!r}; use one of: "
                + ", ".join(GUARDRAIL_METRICS)
            )
        spec = spec_class(str(kind))
        assert spec is not None
        body = {"name": kind, **v}
        if kind == "pii":
            body.setdefault("target", "response")  # the text under check
        if kind == "prompt_injection":
            body.setdefault("target", "response")
        if kind == "rubric" and (not body.get("judge") or body.get("threshold") is None):
            raise ValueError(
                "an LLM-judge guardrail needs 'judge' (a registered model) and 'threshold' "
                "(the lowest passing score)"
            )
        try:
            spec.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"metric.{where}: {first['msg']}") from None
        return body


class GatewayKeyConfig(_Strict):
    """What a gateway key may do. Every limit is optional (None: no limit)."""

    rpm: int | None = Field(default=None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens per minute.")
    budget_day_usd: float | None = Field(default=None, gt=0, description="USD per UTC day.")
    budget_month_usd: float | None = Field(
        default=None, gt=0, description="USD per calendar month (UTC)."
    )
    models: list[str] | None = Field(
        default=None, description="Models this key may call (None: every registered model)."
    )
    default_model: str | None = Field(
        default=None, description="Model for seed-style /chat calls that name none."
    )
    fallbacks: dict[str, list[str]] = Field(
        default_factory=dict,
        description="model -> models tried in order when it fails (5xx, 429, time-out).",
    )
    retries: int = Field(default=1, ge=0, le=5, description="Retries of a failed call.")
    max_retry_after_s: float = Field(
        default=5.0, ge=0, le=60, description="Longest Retry-After honoured before falling back."
    )
    guardrails: list[GuardrailSpec] = Field(default_factory=list)
    cache_ttl_s: int | None = Field(
        default=None, ge=1, le=30 * 86400, description="Exact-match response cache (None: off)."
    )
    log: bool = Field(default=True, description="Log calls as traces.")


def parse_key_config(body: dict[str, Any] | None, field: str = "config") -> GatewayKeyConfig:
    try:
        return GatewayKeyConfig.model_validate(body or {})
    except ValidationError as exc:
        raise ConfigError(
            [
                Issue(
                    str(e["msg"]).removeprefix("Value error, "),
                    field=".".join([field, *(str(p) for p in e["loc"])]),
                )
                for e in exc.errors()
            ]
        ) from None


@dataclass(frozen=True)
class GatewayKeyInfo:
    id: int
    workspace_id: int
    workspace: str
    name: str
    prefix: str
    config: GatewayKeyConfig
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _info(row: q.GatewayKeyRow) -> GatewayKeyInfo:
    try:
        config = GatewayKeyConfig.model_validate(row.config or {})
    except ValidationError:  # a config stored by a newer version: its limits still apply
        config = GatewayKeyConfig.model_construct(**(row.config or {}))
    return GatewayKeyInfo(
        row.id,
        row.workspace_id,
        row.workspace,
        row.name,
        row.prefix,
        config,
        row.created_at,
        row.revoked_at,
    )


def hash_gateway_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_gateway_key(
    engine: Engine, workspace: str, name: str, config: GatewayKeyConfig
) -> tuple[GatewayKeyInfo, str]:
    """A new key: its record and the key itself, which is never shown again."""
    if not name.strip():
        raise ConfigError(Issue("a key needs a name", field="name"))
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        ws = catalog.ensure_workspace(conn, workspace)
        key_id = q.insert_gateway_key(
            conn,
            ws,
            name.strip()[:200],
            key[:12],
            hash_gateway_key(key),
            config.model_dump(mode="json", exclude_defaults=True),
        )
        row = q.list_gateway_keys(conn, ws, key_id)[0]
    return _info(row), key


def list_gateway_keys(engine: Engine, workspace_id: int | None = None) -> list[GatewayKeyInfo]:
    with engine.connect() as conn:
        return [_info(r) for r in q.list_gateway_keys(conn, workspace_id)]


def get_gateway_key(engine: Engine, key_id: int, workspace_id: int | None) -> GatewayKeyInfo:
    with engine.connect() as conn:
        rows = q.list_gateway_keys(conn, workspace_id, key_id)
    if not rows:
        raise NotFoundError(f"no gateway key {key_id} in this workspace")
    return _info(rows[0])


def update_gateway_key(
    engine: Engine, key_id: int, workspace_id: int | None, config: GatewayKeyConfig
) -> GatewayKeyInfo:
    with engine.begin() as conn:
        if not q.update_gateway_key(
            conn, key_id, workspace_id, config.model_dump(mode="json", exclude_defaults=True)
        ):
            raise NotFoundError(f"no gateway key {key_id} in this workspace")
    return get_gateway_key(engine, key_id, workspace_id)


def revoke_gateway_key(engine: Engine, key_id: int, workspace_id: int | None = None) -> None:
    """Revoke an active key; the gateway refuses it within ``gateway_key_ttl_s``."""
    with engine.begin() as conn:
        if not q.revoke_gateway_key(conn, key_id, workspace_id):
            raise NotFoundError(
                f"no active gateway key {key_id}"
                + (" in this workspace" if workspace_id is not None else "")
                + "; `panopticon gateway keys list` shows them"
            )


def lookup_gateway_key(engine: Engine, key_hash: str) -> GatewayKeyInfo | None:
    """The key with this hash, revoked or not; None when there is none. Blocking."""
    with engine.connect() as conn:
        row = q.find_gateway_key(conn, key_hash)
    return _info(row) if row else None


def key_spend(
    engine: Engine, key_ids: list[int], day: str, month: str
) -> dict[int, tuple[float, float]]:
    """USD each key spent on ``day`` (YYYY-MM-DD) and in ``month`` (YYYY-MM), as the
    replicas last added it (about a second behind)."""
    names = {k: (f"key:{k}:day:{day}", f"key:{k}:month:{month}") for k in key_ids}
    with engine.connect() as conn:
        totals = q.read_spend(conn, [n for pair in names.values() for n in pair])
    return {k: (totals[d], totals[m]) for k, (d, m) in names.items()}
