"""``run --dry-run``: what a suite would send and cost, without sending anything.

Counts every call (answers, and judge calls: one per judged metric and answer, one per
judge of a panel, two per pair for pairwise metrics) and estimates tokens and cost from the
price table. Tokens are estimates (4 characters a token; an answer's length is its
``max_tokens``, else 256 tokens); a model with no known price is said to be unknown,
never counted as free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from panopticon.evaluation.plan import build_cases
from panopticon.evaluation.suite import LoadedSuite, spec_needs_judge
from panopticon.judges.base import MetricSpec
from panopticon.settings import Settings

__all__ = ["DEFAULT_ANSWER_TOKENS", "CallEstimate", "DryRun", "dry_run", "stored_answer_keys"]

DEFAULT_ANSWER_TOKENS = 256
_JUDGE_PROMPT_TOKENS = 200  # a judge prompt's own instructions, around the answer


@dataclass
class CallEstimate:
    model: str
    role: str  # "answers" or "judge"
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0  # None: the model's price is unknown


@dataclass
class DryRun:
    answers: int  # cases: queries x prompts x models x repeats
    queries: int
    models: int
    prompts: int
    repeats: int
    rows: list[CallEstimate] = field(default_factory=list)
    reused: int = 0  # answers the cache holds already: no call, nor judge calls, for them

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.rows)

    @property
    def judge_calls(self) -> int:
        return sum(r.calls for r in self.rows if r.role == "judge")

    @property
    def cost_usd(self) -> float | None:
        """The total, or None when any model's price is unknown."""
        costs = [r.cost_usd for r in self.rows if r.calls]
        return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)

    @property
    def known_cost_usd(self) -> float:
        return sum(r.cost_usd or 0.0 for r in self.rows)


def _judge_calls(spec: MetricSpec) -> list[str | None]:
    """The judges one answer's score asks (None: the metric's or the suite's judge)."""
    panel = list(getattr(spec, "judges", None) or [])
    if panel:
        return panel
    return [getattr(spec, "judge", None)] if spec_needs_judge(spec) else []


def stored_answer_keys(settings: Settings, loaded: LoadedSuite) -> frozenset[str] | None:
    """The cache keys of this suite's answers that the store holds already, read only:
    None when there is no store to ask yet (no database file, or an older schema)."""
    from panopticon.store.queries.cache import stored_keys_read_only

    arms = loaded.arm_models()
    ids = {m.id: i for i, m in enumerate(loaded.models + arms)}
    keys = [c.cache_key for c in build_cases(loaded, list(range(len(loaded.queries))), ids)]
    return stored_keys_read_only(settings, keys)


def dry_run(loaded: LoadedSuite, stored: frozenset[str] = frozenset()) -> DryRun:
    """``stored``: cache keys of answers already stored (see :func:`stored_answer_keys`);
    those cases cost nothing, and neither do their judges, whose answers are stored too."""
    arms = loaded.arm_models()
    model_ids = {m.id: i for i, m in enumerate(loaded.models + arms)}
    cases = build_cases(loaded, list(range(len(loaded.queries))), model_ids)
    out = DryRun(
        len(cases),
        len(loaded.queries),
        len(loaded.models),
        len(loaded.prompts),
        loaded.suite.repeats,
    )
    rows: dict[tuple[str, str], CallEstimate] = {}

    def add(model_id: str, role: str, tin: int, tout: int) -> None:
        row = rows.setdefault((model_id, role), CallEstimate(model_id, role))
        row.calls += 1
        row.input_tokens += tin
        row.output_tokens += tout

    judge_default = loaded.judge.id if loaded.judge else None
    per_query: dict[str, list[MetricSpec]] = {}
    for case in cases:
        if case.cache_key in stored:
            out.reused += 1
            continue
        params = case.params
        answer = int(params.get("max_tokens") or DEFAULT_ANSWER_TOKENS)
        tin = sum(len(m["content"]) for m in case.messages) // 4 + 1
        add(case.model.id, "answers", tin, answer)
        key = case.query.content_hash
        if key not in per_query:
            per_query[key] = loaded.metrics_for(case.query)
        for spec in per_query[key]:
            if spec.type == "pairwise":
                continue
            for judge in _judge_calls(spec):
                name = judge or judge_default
                if name is not None:
                    add(name, "judge", tin + answer + _JUDGE_PROMPT_TOKENS, DEFAULT_ANSWER_TOKENS)
    # pairwise: every pair of (allowed) arms, per query and repeat, judged in both orders
    labels = [a.id for a in arms] or [m.id for m in loaded.models]
    for spec in loaded.metrics:
        if spec.type != "pairwise":
            continue
        wanted = set(getattr(spec, "models", None) or [])
        allowed = [a for a in labels if not wanted or a in wanted or a.rsplit("@", 1)[0] in wanted]
        k = len(allowed)
        pairs = k * (k - 1) // 2 * len(loaded.queries) * loaded.suite.repeats
        if stored and out.reused == out.answers:
            pairs = 0  # every answer is stored: so are the judgements on their pairs
        name = getattr(spec, "judge", None) or judge_default
        if name is not None:
            for _ in range(2 * pairs):
                add(name, "judge", 2 * DEFAULT_ANSWER_TOKENS + _JUDGE_PROMPT_TOKENS, 128)
    models = {m.id: m for m in loaded.models + loaded.judge_models}
    for row in rows.values():
        model = models.get(row.model)
        price = loaded.prices.get(row.model)
        if model is not None and model.provider == "fake":
            row.cost_usd = 0.0
        elif price is None:
            row.cost_usd = None
        else:
            row.cost_usd = price.cost(row.input_tokens, row.output_tokens)
    out.rows = sorted(rows.values(), key=lambda r: (r.role != "answers", r.model))
    return out
