"""Production traces in: OTLP (protobuf or JSON) and JSON-API payloads to normalised
spans. Pure logic: no database, no web framework (ARCHITECTURE.md, layers)."""

from panopticon.ingest.model import KINDS, SCORE_SOURCES, RawSpan, Rejection, ScoreIn, Span
from panopticon.ingest.normalise import Limits, normalise
from panopticon.ingest.otlp import PayloadError, decode_json, decode_protobuf

__all__ = [
    "KINDS",
    "SCORE_SOURCES",
    "Limits",
    "PayloadError",
    "RawSpan",
    "Rejection",
    "ScoreIn",
    "Span",
    "decode_json",
    "decode_protobuf",
    "normalise",
]
