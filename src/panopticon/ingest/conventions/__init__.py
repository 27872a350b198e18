"""Convention mappers: each reads the attributes of one dialect onto a :class:`Span`.

They run in order (:data:`MAPPERS`); a field already set by an earlier one is kept, so the
more specific dialect wins. Each takes only the attributes it understands; what no mapper
takes stays on the span as its raw attributes.
"""

from __future__ import annotations

from collections.abc import Callable

from panopticon.ingest.attrs import Attrs
from panopticon.ingest.conventions import common, genai, openinference, openlit, traceloop
from panopticon.ingest.model import RawSpan, ScoreIn, Span

__all__ = ["MAPPERS", "Mapper"]

Mapper = Callable[[Attrs, RawSpan, Span, list[ScoreIn]], None]

MAPPERS: tuple[Mapper, ...] = (
    openinference.apply,
    genai.apply,
    traceloop.apply,
    openlit.apply,
    common.apply,
)
