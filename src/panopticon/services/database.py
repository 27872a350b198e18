"""The database as interfaces see it: its handle's type, and the schema's state.

Interfaces (api, web, cli, reports) hold an :data:`Engine` and hand it to services; they
never query it themselves. Migrations run through :func:`migrate`.
"""

from __future__ import annotations

from dataclasses import dataclass

from panopticon.settings import Settings
from panopticon.store.engine import HEAD_REVISION, Engine, create_engine, current_revision, upgrade
from panopticon.store.queries.catalog import ensure_workspace

__all__ = ["HEAD_REVISION", "Engine", "SchemaState", "migrate", "schema_state", "workspace_id"]


@dataclass(frozen=True)
class SchemaState:
    url: str  # the database URL with any password hidden
    revision: str | None  # None: an empty database
    head: str = HEAD_REVISION
    notes: tuple[str, ...] = ()  # what an upgrade could not set up, and how to fix it

    @property
    def up_to_date(self) -> bool:
        return self.revision == self.head


def _state(engine: Engine) -> SchemaState:
    return SchemaState(engine.url.render_as_string(hide_password=True), current_revision(engine))


def schema_state(settings: Settings) -> SchemaState:
    """The schema revision of the configured database."""
    engine = create_engine(settings)
    try:
        return _state(engine)
    finally:
        engine.dispose()


def migrate(settings: Settings) -> tuple[SchemaState, SchemaState]:
    """Apply migrations up to the newest (safe to run repeatedly): (before, after)."""
    engine = create_engine(settings)
    try:
        before = _state(engine)
        note = upgrade(engine)
        after = _state(engine)
        return before, SchemaState(after.url, after.revision, notes=(note,) if note else ())
    finally:
        engine.dispose()


def workspace_id(engine: Engine, name: str, *, create: bool = True) -> int:
    """The id of the workspace called ``name`` (the CLI's ``PANOPTICON_WORKSPACE``), created
    on first use unless ``create`` is False (then a missing one is a NotFoundError)."""
    with engine.begin() as conn:
        return ensure_workspace(conn, name, create=create)
