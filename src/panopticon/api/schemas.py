"""Request and response bodies, named by role (``QueryCreate``, ``QueryPublic``, ...)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueryCreate(_Body):
    item: str = Field(min_length=1, max_length=100_000, description="The prompt.")
    type: str = Field(default="default", min_length=1, max_length=200, description="The theme.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    expected: str | None = Field(default=None, max_length=100_000)
    context: str | None = Field(default=None, max_length=1_000_000)
    external_id: str | None = Field(default=None, max_length=200)


class QueryUpdate(_Body):
    item: str | None = Field(default=None, min_length=1, max_length=100_000)
    type: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None
    expected: str | None = Field(default=None, max_length=100_000)
    context: str | None = Field(default=None, max_length=1_000_000)


class QueryPublic(BaseModel):
    id: int
    item: str
    type: str
    metadata: dict[str, Any]
    expected: str | None
    context: str | None
    external_id: str | None
    created_at: datetime


class MetricCreate(_Body):
    item: str = Field(min_length=1, max_length=100_000, description="The judge prompt.")
    type: str = Field(
        default="metric", min_length=1, max_length=200, description="The metric's category."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    scale: tuple[float, float] | None = None
    threshold: float | None = None


class MetricUpdate(_Body):
    item: str | None = Field(default=None, min_length=1, max_length=100_000)
    type: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None


class MetricPublic(BaseModel):
    id: int
    item: str | None
    type: str
    name: str
    kind: str
    scale: list[float] | None
    threshold: float | None
    metadata: dict[str, Any]
    version: str
    created_at: datetime


class PagePublic(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class KeyCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(pattern="^(admin|member|viewer)$")


class KeyPublic(BaseModel):
    id: int
    name: str
    prefix: str
    role: str
    workspace: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="Shown once: store it now.")


class ErrorDetail(BaseModel):
    message: str
    field: str | None = None
    hint: str | None = None


class ErrorPublic(BaseModel):
    error: ErrorDetail
    errors: list[ErrorDetail] = Field(default_factory=list)
