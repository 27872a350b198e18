"""Token prices: a table shipped as data (``prices.json``), overridable per model.

Lookup is by exact name, then by the longest known prefix (so ``gpt-4o-2024-08-06`` costs
what ``gpt-4o`` costs and ``gpt-4o-mini-...`` what ``gpt-4o-mini`` costs). A model with no
price has cost ``None`` ("unknown"), never 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

__all__ = ["Price", "cost_text", "known_cost", "lookup_price", "usd"]


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float | None:
        if input_tokens is None or output_tokens is None:
            return None
        # to a millionth of a millionth of a dollar: the float arithmetic's last digits
        # (2.2049999999999997e-05) are not a cost anyone paid, and were in every export
        return round((input_tokens * self.input + output_tokens * self.output) / 1_000_000, 12)


@cache
def _table() -> dict[str, dict[str, list[float]]]:
    text = resources.files("panopticon.providers").joinpath("prices.json").read_text("utf-8")
    data: dict[str, dict[str, list[float]]] = json.loads(text)
    data.pop("_about", None)
    return data


@lru_cache(maxsize=4096)  # a pure function of the shipped table: ingestion asks per span
def lookup_price(provider_kind: str, model: str) -> Price | None:
    """The shipped price for a model, or None when it is unknown."""
    tables = _table()
    # OpenAI-compatible endpoints often serve other vendors' models (OpenRouter: vendor/model)
    name = model.split("/")[-1].lower()
    search = [tables.get(provider_kind, {})] + [t for k, t in tables.items() if k != provider_kind]
    for table in search:
        if name in table:
            return Price(*table[name])
    best: tuple[int, list[float]] | None = None
    for table in search:
        for known, price in table.items():
            if name.startswith(known + "-") and (best is None or len(known) > best[0]):
                best = (len(known), price)
        if best:
            return Price(*best[1])
    return None


# -- showing a cost: one rule for the CLI, the dashboard and the API ---------------------


def known_cost(cost_usd: float | None, unknown: int | None) -> float | None:
    """The priced part of a cost; None when nothing of it is priced and some answers have
    no price, so that an unknown cost is never read as $0."""
    if unknown and not cost_usd:
        return None
    return cost_usd


def usd(value: float) -> str:
    return f"${value:.4f}" if value < 100 else f"${value:,.2f}"


def cost_text(cost_usd: float | None, unknown: int | None) -> str:
    """ "$0.0123"; "≥ $0.0123 (5 answers of unknown cost)" when some answers have no price;
    "unknown (5 answers of unknown cost)" when none has one."""
    known = known_cost(cost_usd, unknown)
    if not unknown:
        return usd(known or 0.0)
    note = f"({unknown} answer{'' if unknown == 1 else 's'} of unknown cost)"
    return f"unknown {note}" if known is None else f"≥ {usd(known)} {note}"
