"""The one typed configuration object. Built by :func:`load_settings` and passed in.

Nothing else in Panopticon reads ``os.environ`` for configuration; suites read the
environment only through their documented ``${VAR}`` substitution and ``api_key_env``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Process-wide settings, read from ``PANOPTICON_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="PANOPTICON_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".panopticon",
        description="Directory for the embedded SQLite database and reports.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Unset: a SQLite file in `home`. "
        "postgresql://user@host/db selects PostgreSQL (needs panopticon[postgres]).",
    )
    workspace: str = Field(default="default", description="Workspace the CLI works in.")

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use, with the embedded default filled in."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                # SQLAlchemy's default PostgreSQL driver is psycopg2; we ship psycopg 3.
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.home / 'panopticon.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]
