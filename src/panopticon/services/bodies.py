"""The base of every body that comes in (API JSON or a web form shaped into one): unknown
fields refused, and nothing a database cannot store (see ``evaluation.text``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from panopticon.evaluation.text import unstorable

__all__ = ["Body"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:
        problem = unstorable(value, info.field_name or "")
        if problem:
            raise ValueError(problem)
        return value
