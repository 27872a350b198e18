"""Is A better than B? Paired comparisons of two models in a run, or of two runs.

Items are paired by their dataset identity (the query's ``id``, else its text), not by the
messages sent: two runs of one dataset under two system prompts or templates (prompt v1
against prompt v2) pair item by item. With repeats, an item's value is its mean over
repeats. Values
are the normalised scores (0..1, higher is better; pass/fail for threshold-only metrics).
Failed answers and score errors leave an item out of that metric's pairs, and the count of
items left out is reported. Each metric's test follows its type (pass/fail or scale), and
every test shown together (all the models two runs share) is corrected together (Holm).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from panopticon.errors import ConfigError, Issue
from panopticon.services.metric_kinds import run_kinds
from panopticon.stats.kinds import ScoreKind
from panopticon.stats.paired import PairedResult, compare_families
from panopticon.stats.summary import comparable_value
from panopticon.store.engine import Engine
from panopticon.store.queries import runs as run_queries

__all__ = [
    "PROMPTS_NOTE",
    "PROMPTS_SPLIT_NOTE",
    "UNPAIRED_NOTE",
    "Comparison",
    "PairwiseTally",
    "UnpairedScores",
    "check_baseline",
    "compare_models",
    "compare_prompts",
    "compare_runs",
    "run_models",
    "with_production",
    "worse",
]

UNPAIRED_NOTE = (
    "Production scores are unpaired: a production trace is not an item of the runs, so no "
    "production score is in the paired test. Each is shown on its own, with a 95% interval "
    "clustered by trace."
)
# two prompts on one model: production scores are the model's, under whatever prompt served
PROMPTS_NOTE = (
    "They are the model's production scores whichever prompt served the traffic: they say "
    "nothing of prompt A against prompt B."
)
# ... unless the scores' spans say which prompt served them (prompt.version, as rules read it)
PROMPTS_SPLIT_NOTE = (
    "They are split by the prompt version their spans (or their traces' metadata) carry, "
    "'prompt.version' as online rules read it: only traffic served by '{a}' or '{b}'. "
    "{other} other production score(s) of the model, under another prompt version or none, "
    "are left out."
)


@dataclass(frozen=True)
class UnpairedScores:
    """A compared model's production scores on one metric from one source (online rules,
    guardrails, outside clients), beside the paired comparison and never in it. The mean
    and its 95% interval are normalised (0..1) and clustered by trace, because several
    scores of one trace are not independent. ``n`` counts scores and ``traces`` the
    clusters; a single trace gives no interval."""

    model: str
    source: str
    metric: str
    n: int
    traces: int
    mean: float | None
    low: float | None
    high: float | None
    prompt: str | None = None  # in a prompts comparison, the prompt version that served
    # the scores no mean can use (labels without a value, values on no 0..1 scale), said in
    # words; with no mean (n=0) it is why there is none
    note: str | None = None


@dataclass(frozen=True)
class Comparison:
    label_a: str
    label_b: str
    results: list[PairedResult]
    unpaired: dict[str, int] = field(default_factory=dict)  # metric -> items left out
    tests: int = 0  # tests corrected together (Holm), across every comparison shown
    pairwise: list[PairwiseTally] = field(default_factory=list)  # a judge's verdicts on A vs B
    models: tuple[str, str] = ("", "")  # the model ids behind label_a and label_b
    production: list[UnpairedScores] = field(default_factory=list)  # see with_production
    production_caveat: str | None = None  # added to UNPAIRED_NOTE (a prompts comparison's)
    prompts: tuple[str, str] | None = None  # the prompt variants compared, when they are

    @property
    def production_note(self) -> str | None:
        if not self.production:
            return None
        return UNPAIRED_NOTE + (f" {self.production_caveat}" if self.production_caveat else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.label_a,
            "b": self.label_b,
            "unpaired": self.unpaired,
            "tests": self.tests,
            "metrics": [asdict(r) for r in self.results],
            "pairwise": [asdict(p) for p in self.pairwise],
            "production": [asdict(p) for p in self.production],
            "production_note": self.production_note,
        }


@dataclass(frozen=True)
class PairwiseTally:
    """A pairwise metric's verdicts on A against B in one run (both orders agreeing)."""

    metric: str
    a_wins: int
    b_wins: int
    ties: int
    errors: int


def _tallies(pairs: list[dict[str, Any]], model_a: str, model_b: str) -> list[PairwiseTally]:
    out = []
    for metric in sorted({p["metric"] for p in pairs}):
        wins = {"a": 0, "b": 0, "tie": 0}
        errors = 0
        for p in pairs:
            if p["metric"] != metric or {p["model_a"], p["model_b"]} != {model_a, model_b}:
                continue
            if p["error"] is not None or p["final"] is None:
                errors += 1
                continue
            final = p["final"]
            if final != "tie" and p["model_a"] != model_a:  # stored the other way round
                final = "a" if final == "b" else "b"
            wins[final] += 1
        if sum(wins.values()) or errors:
            out.append(PairwiseTally(metric, wins["a"], wins["b"], wins["tie"], errors))
    return out


Values = dict[str, dict[str, float]]  # metric -> item identity -> mean normalised value


def _values(rows: list[dict[str, Any]], model: str) -> Values:
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["model"] != model or row["error"] is not None:
            continue
        for metric, s in row["scores"].items():
            value = comparable_value(s)
            if value is not None:
                acc[metric][row["item"]].append(value)
    return {m: {q: sum(v) / len(v) for q, v in items.items()} for m, items in acc.items()}


Pairs = dict[str, tuple[list[float], list[float]]]


def _pairs(a: Values, b: Values) -> tuple[Pairs, dict[str, int]]:
    pairs = {}
    unpaired = {}
    for metric in sorted(set(a) & set(b)):
        common = sorted(set(a[metric]) & set(b[metric]))
        unpaired[metric] = len(set(a[metric]) ^ set(b[metric]))
        if common:
            pairs[metric] = ([a[metric][q] for q in common], [b[metric][q] for q in common])
    return pairs, unpaired


def _unpaired(
    model: str, source: str, metric: str, cell: Any, prompt: str | None = None
) -> UnpairedScores:
    """A production cell (``dashboard.production_cells``) as an unpaired row."""
    return UnpairedScores(
        model,
        source,
        metric,
        cell.n,
        cell.clusters,
        cell.mean,
        cell.low,
        cell.high,
        prompt,
        cell.unscored_note,
    )


def with_production(
    engine: Engine, workspace_id: int, comparisons: list[Comparison]
) -> list[Comparison]:
    """Each comparison with its models' production scores, unpaired (UNPAIRED_NOTE). In a
    prompts comparison whose model has production scores of traffic served by prompt
    version A or B, those are split by prompt (PROMPTS_SPLIT_NOTE); else they are the
    model's, whichever prompt served (PROMPTS_NOTE)."""
    from panopticon.services.dashboard import production_cells, production_cells_by_prompt

    wanted = {m for c in comparisons for m in c.models if m}
    found = production_cells(engine, workspace_id, wanted) if wanted else []
    prompted = {m for c in comparisons if c.prompts is not None for m in c.models if m}
    by_prompt = production_cells_by_prompt(engine, workspace_id, prompted) if prompted else []
    out = []
    for c in comparisons:
        production = [
            _unpaired(model, source, metric, cell)
            for model, source, metric, cell in found
            if model in c.models
        ]
        caveat = c.production_caveat
        if c.prompts is not None:
            caveat = PROMPTS_NOTE
            order = {c.prompts[0]: 0, c.prompts[1]: 1}
            mine = [row for row in by_prompt if row[0] in c.models]
            split = sorted(
                (row for row in mine if row[1] in order),
                key=lambda r: (r[0], order[r[1] or ""], r[2], r[3]),
            )
            if split:
                other = sum(cell.n + cell.unscored for _, p, _, _, cell in mine if p not in order)
                caveat = PROMPTS_SPLIT_NOTE.format(a=c.prompts[0], b=c.prompts[1], other=other)
                production = [
                    _unpaired(model, source, metric, cell, prompt)
                    for model, prompt, source, metric, cell in split
                ]
        out.append(replace(c, production=production, production_caveat=caveat))
    return out


def _compare(
    sides: list[tuple[Values, Values, str, str]],
    kinds: dict[str, ScoreKind],
    min_effect: float | None,
) -> list[Comparison]:
    """One comparison per (A, B, labels), every test corrected together."""
    paired = [_pairs(a, b) for a, b, _, _ in sides]
    results = compare_families([p for p, _ in paired], kinds=kinds, min_effect=min_effect)
    tests = sum(len(r) for r in results)
    return [
        Comparison(label_a, label_b, r, unpaired, tests)
        for (_, _, label_a, label_b), (_, unpaired), r in zip(sides, paired, results, strict=True)
    ]


def _models(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({r["model"] for r in rows})


def compare_models(
    engine: Engine,
    run_id: int,
    model_a: str,
    model_b: str,
    *,
    min_effect: float | None = None,
    field: str = "--models",
) -> Comparison:
    """Two models of one run; ``field`` is what names them where the call came from (the
    CLI's --models, the API's models parameter), for the error of an unknown one."""
    with engine.connect() as conn:
        rows = run_queries.summary_inputs(conn, run_id)
        pairs = run_queries.pairwise_rows(conn, run_id)
    kinds = run_kinds(engine, run_id)
    known = _models(rows)
    for name in (model_a, model_b):
        if name not in known:
            raise ConfigError(
                Issue(
                    f"run {run_id} has no model '{name}'",
                    field=field,
                    hint="its models are: " + ", ".join(known),
                )
            )
    (comparison,) = _compare(
        [
            (
                _values(rows, model_a),
                _values(rows, model_b),
                f"{model_a} (run {run_id})",
                f"{model_b} (run {run_id})",
            )
        ],
        kinds,
        min_effect,
    )
    return replace(
        comparison, pairwise=_tallies(pairs, model_a, model_b), models=(model_a, model_b)
    )


def run_models(engine: Engine, run_id: int) -> list[str]:
    """The models (``model@prompt`` with prompt variants) a run has answers of, sorted."""
    with engine.connect() as conn:
        return run_queries.run_model_names(conn, run_id)


def check_baseline(baseline_id: int, theirs: list[str], models: list[str]) -> None:
    """Refuse, before a run pays for anything, a ``--baseline`` that :func:`compare_runs`
    could not compare with it afterwards: a run (whose models are ``theirs``) sharing no
    model with ``models`` (the new run's), unless both have one model."""
    if set(theirs) & set(models) or (len(theirs) == 1 and len(models) == 1):
        return
    raise ConfigError(
        Issue(
            f"baseline run {baseline_id} shares no model with this suite ("
            + (", ".join(theirs) if theirs else "it has no answers")
            + f" against {', '.join(models)}), so there would be nothing to compare",
            field="--baseline",
            hint="give a run of the same models as the baseline (`panopticon runs` lists "
            "them), or keep the models' ids the same as in that run",
        )
    )


def compare_runs(
    engine: Engine, run_a: int, run_b: int, *, min_effect: float | None = None
) -> list[Comparison]:
    """One comparison per model the runs share; two single-model runs compare their models
    whatever their names (prompt A on model X against prompt B on model Y)."""
    with engine.connect() as conn:
        rows_a = run_queries.summary_inputs(conn, run_a)
        rows_b = run_queries.summary_inputs(conn, run_b)
    kinds = run_kinds(engine, run_a, run_b)
    models_a, models_b = _models(rows_a), _models(rows_b)
    if len(models_a) == 1 and len(models_b) == 1:
        matched = [(models_a[0], models_b[0])]
    else:
        matched = [(m, m) for m in models_a if m in models_b]
    if not matched:
        raise ConfigError(
            Issue(
                f"runs {run_a} and {run_b} share no model ({', '.join(models_a)} against "
                f"{', '.join(models_b)})",
                hint="compare runs of the same models, or two single-model runs",
            )
        )
    comparisons = _compare(
        [
            (_values(rows_a, ma), _values(rows_b, mb), f"{ma} (run {run_a})", f"{mb} (run {run_b})")
            for ma, mb in matched
        ],
        kinds,
        min_effect,
    )
    comparisons = [replace(c, models=pair) for c, pair in zip(comparisons, matched, strict=True)]
    items_a, items_b = {r["item"] for r in rows_a}, {r["item"] for r in rows_b}
    if not items_a & items_b:
        raise ConfigError(
            Issue(
                f"runs {run_a} and {run_b} have no item in common",
                hint="items pair by their dataset id (a query's 'id'), else by their text: "
                "compare runs of the same queries",
            )
        )
    return comparisons


def compare_prompts(
    engine: Engine, run_id: int, prompt_a: str, prompt_b: str, *, min_effect: float | None = None
) -> list[Comparison]:
    """Two prompt variants of one run, compared on each model that ran both
    (``model@A`` against ``model@B``), every test corrected together."""
    with engine.connect() as conn:
        rows = run_queries.summary_inputs(conn, run_id)
    known = _models(rows)
    models = [
        m.rsplit("@", 1)[0]
        for m in known
        if m.endswith(f"@{prompt_a}") and f"{m.rsplit('@', 1)[0]}@{prompt_b}" in known
    ]
    if not models:
        prompts = sorted({m.rsplit("@", 1)[1] for m in known if "@" in m})
        raise ConfigError(
            Issue(
                f"run {run_id} has no model with both prompts '{prompt_a}' and '{prompt_b}'",
                field="--prompts",
                hint="its prompts are: " + (", ".join(prompts) or "none (a single-prompt run)"),
            )
        )
    comparisons = _compare(
        [
            (
                _values(rows, f"{m}@{prompt_a}"),
                _values(rows, f"{m}@{prompt_b}"),
                f"{m}@{prompt_a} (run {run_id})",
                f"{m}@{prompt_b} (run {run_id})",
            )
            for m in models
        ],
        run_kinds(engine, run_id),
        min_effect,
    )
    # both sides are one model (its production scores, for with_production, are its own,
    # split by these prompts where their spans say which served them)
    return [
        replace(c, models=(m, m), production_caveat=PROMPTS_NOTE, prompts=(prompt_a, prompt_b))
        for c, m in zip(comparisons, models, strict=True)
    ]


def worse(comparisons: list[Comparison]) -> list[tuple[Comparison, PairedResult]]:
    """The metrics on which B is significantly worse than A (A the baseline)."""
    return [(c, r) for c in comparisons for r in c.results if r.verdict == "A better"]
