"""Prompt variants: stored once per (name, content) in a workspace."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.evaluation.prompts import PromptVariant
from panopticon.store.tables import Prompt
from panopticon.store.tables.base import utcnow

__all__ = ["upsert_prompts"]


def upsert_prompts(
    conn: Connection, workspace_id: int, variants: list[PromptVariant]
) -> dict[str, int]:
    """The stored id of each variant (by its id in the suite), inserting new ones."""
    out: dict[str, int] = {}
    for v in variants:
        where = (
            Prompt.c.workspace_id == workspace_id,
            Prompt.c.name == v.id,
            Prompt.c.content_hash == v.content_hash,
        )
        found = conn.execute(sa.select(Prompt.c.id).where(*where)).scalar()
        if found is None:
            found = conn.execute(
                sa.insert(Prompt)
                .values(
                    workspace_id=workspace_id,
                    name=v.id,
                    content_hash=v.content_hash,
                    system=v.system,
                    template=v.template,
                    created_at=utcnow(),
                )
                .returning(Prompt.c.id)
            ).scalar_one()
        out[v.id] = int(found)
    return out
