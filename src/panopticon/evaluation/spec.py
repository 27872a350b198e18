"""The suite file's schema: models, queries, prompts and run settings, as pydantic models.

Validation with file and line lives in :mod:`panopticon.evaluation.suite`; this module only
says what each field may hold."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from panopticon.providers.base import RESERVED_PARAMS
from panopticon.providers.pricing import Price, lookup_price

__all__ = [
    "MessageSpec",
    "ModelSpec",
    "PriceSpec",
    "PromptSpec",
    "QueryFileSpec",
    "QuerySpec",
    "Suite",
    "check_params",
    "model_price",
]


_SECRET_HEADER = re.compile(r"(?i)auth|key|token|secret|cookie|password")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class PriceSpec(_Strict):
    input: float = Field(ge=0, description="USD per million input tokens.")
    output: float = Field(ge=0, description="USD per million output tokens.")


class ModelSpec(_Strict):
    id: str = Field(min_length=1, description="Unique name of this model in the suite.")
    provider: str = Field(
        default="openai",
        description="A provider kind (openai, anthropic, google, fake) or the name of a "
        "provider registered in the workspace.",
    )
    model: str | None = Field(default=None, description="Name sent to the provider; default: id.")
    base_url: str | None = Field(default=None, max_length=500)
    api_key_env: str | None = Field(
        default=None, max_length=200, description="Environment variable with the key."
    )
    credential: str | None = Field(
        default=None, max_length=200, description="A credential stored in the workspace."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="temperature, max_tokens...")
    concurrency: int | None = Field(default=None, ge=1, le=10_000)
    rpm: int | None = Field(default=None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens per minute.")
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=50)
    adaptive_concurrency: bool = True
    price: PriceSpec | None = None
    options: dict[str, Any] = Field(default_factory=dict, description="Provider-specific.")

    @field_validator("params")
    @classmethod
    def _params_keep_the_request(cls, params: dict[str, Any]) -> dict[str, Any]:
        return check_params(params)

    @property
    def provider_model(self) -> str:
        return self.model or self.id

    def secret_headers(self) -> list[str]:
        """Names in ``options.headers`` that look like they carry a credential."""
        headers = self.options.get("headers")
        if not isinstance(headers, dict):
            return []
        return [str(k) for k in headers if _SECRET_HEADER.search(str(k))]

    def record(self, **dump: Any) -> dict[str, Any]:
        """The model as stored in a run's record or the registry: JSON, with the values of
        headers that carry credentials (``options.headers``) masked."""
        data = self.model_dump(mode="json", **dump)
        if data.get("credential") is None:  # added later: older runs keep their fingerprint
            data.pop("credential", None)
        headers = (data.get("options") or {}).get("headers")
        if isinstance(headers, dict):
            data["options"] = {
                **data["options"],
                "headers": {
                    k: "***" if _SECRET_HEADER.search(str(k)) else v for k, v in headers.items()
                },
            }
        return data

    def settings_fingerprint(self) -> dict[str, Any]:
        """What determines the answer: it keys the result cache."""
        return {
            "provider": self.provider,
            "base_url": self.base_url,
            "model": self.provider_model,
            "params": self.params,
        }


class MessageSpec(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class QuerySpec(_Strict):
    text: str | None = None
    messages: list[MessageSpec] | None = None
    theme: str | None = None
    expected: str | None = None
    context: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    id: str | None = Field(default=None, description="Your own id for this query.")
    metrics: list[dict[str, Any] | str] = Field(
        default_factory=list,
        description="Metrics for this query only: a metric, or the name of a suite metric.",
    )


class QueryFileSpec(_Strict):
    file: str
    format: Literal["auto", "jsonl", "csv"] = "auto"
    theme: str | None = Field(default=None, description="Theme for rows that have none.")
    limit: int | None = Field(default=None, ge=1)
    metrics: list[dict[str, Any] | str] = Field(
        default_factory=list,
        description="Metrics for this file's queries only: a metric, or a suite metric's name.",
    )


class PromptSpec(_Strict):
    """One prompt variant: a system prompt and/or a template, evaluated on every model."""

    id: str = Field(min_length=1, max_length=100, description="Unique name of this prompt.")
    system: str | None = Field(default=None, description="System prompt; default: the suite's.")
    template: str | None = Field(default=None, description="User template; default: the suite's.")
    description: str | None = None


class Suite(_Strict):
    name: str = "suite"
    description: str | None = None
    models: list[ModelSpec] = Field(min_length=1)
    judge: str | ModelSpec | None = Field(default=None, description="Model id or a model.")
    judges: list[ModelSpec] = Field(
        default_factory=list, description="More judge models (for panels), not evaluated."
    )
    system: str | None = Field(default=None, description="System prompt for every query.")
    template: str | None = Field(
        default=None,
        description="User message built from {text}, {context}, {theme} and metadata fields.",
    )
    prompts: list[PromptSpec] = Field(
        default_factory=list,
        description="Prompt variants, each run on every model (default: system and template).",
    )
    queries: list[QuerySpec | QueryFileSpec] = Field(min_length=1)
    metrics: list[dict[str, Any]] = Field(default_factory=list)
    repeats: int = Field(default=1, ge=1, le=100)
    concurrency: int = Field(default=10, ge=1, le=10_000)
    params: dict[str, Any] = Field(default_factory=dict, description="Defaults for all models.")
    budget_usd: float | None = Field(default=None, gt=0)
    gates: dict[str, float] = Field(
        default_factory=dict,
        description="CI gates: metric name -> the least pass rate (or mean normalised score, "
        "for a metric without a threshold) every model must reach, 0..1.",
    )

    @field_validator("params")
    @classmethod
    def _params_keep_the_request(cls, params: dict[str, Any]) -> dict[str, Any]:
        return check_params(params)


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters tune a request; they cannot replace what it is (model, messages, stream)."""
    reserved = sorted(RESERVED_PARAMS.intersection(params))
    if reserved:
        raise ValueError(
            f"params cannot set {', '.join(reserved)}: the model and messages are the "
            "request's own, and answers are not streamed here"
        )
    return params


def model_price(spec: ModelSpec, kind: str | None = None) -> Price | None:
    """The price a model costs: its own ``price``, else the shipped table's (None: unknown).
    ``kind`` is its provider kind when ``spec.provider`` names a registered provider."""
    if spec.price is not None:
        return Price(spec.price.input, spec.price.output)
    return lookup_price(kind or spec.provider, spec.provider_model)
