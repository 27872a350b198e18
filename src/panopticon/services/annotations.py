"""People's labels: importing them, and how well each judge agrees with them."""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from panopticon.errors import ConfigError, Issue
from panopticon.evaluation.sources import iter_csv, iter_jsonl
from panopticon.evaluation.text import unstorable
from panopticon.stats.agreement import cohen_kappa, spearman
from panopticon.stats.intervals import ClusterSums, bounded_interval
from panopticon.store.engine import Engine
from panopticon.store.queries import annotations as queries
from panopticon.store.queries import catalog

__all__ = ["Calibration", "calibrate", "calibrate_production", "import_labels", "label_result"]

_TRUE = {"1", "true", "yes", "y", "pass", "passed"}
_FALSE = {"0", "false", "no", "n", "fail", "failed"}


def _bool(raw: Any, file: str, line: int) -> bool | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(
        Issue(
            f"'passed' must be true or false, not {raw!r}",
            file=file,
            line=line,
            field="passed",
            hint="use true/false, yes/no or 1/0",
        )
    )


def _float(raw: Any, file: str, line: int, name: str) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            Issue(f"'{name}' must be a number, not {raw!r}", file=file, line=line, field=name)
        ) from None


def off_scale(
    value: float | None, scale: tuple[float, float] | None, metric: str
) -> tuple[str, str] | None:
    """The problem with a label's value outside its metric's scale (a 42 on 1 to 10)."""
    if value is None or scale is None or scale[0] <= value <= scale[1]:
        return None
    return (
        f"{value:g} is outside the scale of '{metric}' ({scale[0]:g} to {scale[1]:g})",
        f"give a value from {scale[0]:g} to {scale[1]:g}",
    )


def import_labels(engine: Engine, workspace: str, path: Path, annotator: str) -> tuple[int, int]:
    """Validate every row, then store them all (or none): (new labels, replaced labels)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise ConfigError(Issue("labels must be a .csv or .jsonl file", file=str(path)))
    rows = list(iter_csv(path) if suffix == ".csv" else iter_jsonl(path))
    file = str(path)
    issues: list[Issue] = []
    parsed: list[tuple[int, dict[str, Any]]] = []
    for line, row in rows:
        # every problem of a row is said at once (a bad 'passed' and a value off its scale
        # were said in two rounds): each field is checked on its own, and a row whose
        # result and metric are readable goes on to the scale check below either way
        here: list[Issue] = []
        unknown = set(row) - {
            "result_id",
            "metric",
            "passed",
            "value",
            "score",
            "comment",
            "annotator",
        }
        if unknown:
            here.append(
                Issue(
                    f"unknown column(s) {', '.join(sorted(unknown))}",
                    file=file,
                    line=line,
                    hint="columns: result_id, metric, passed, value (or score), comment, annotator",
                )
            )
        result_id: uuid.UUID | None = None
        try:
            result_id = uuid.UUID(str(row.get("result_id", "")))
        except ValueError:
            here.append(
                Issue(
                    "'result_id' is missing or not a result id",
                    file=file,
                    line=line,
                    field="result_id",
                    hint="take ids from `panopticon export RUN`",
                )
            )
        if not row.get("metric"):
            here.append(Issue("'metric' is missing", file=file, line=line, field="metric"))
        passed = value = None
        try:
            passed = _bool(row.get("passed"), file, line)
        except ConfigError as err:
            here += err.issues
        try:
            value = _float(row.get("value", row.get("score")), file, line, "value")
        except ConfigError as err:
            here += err.issues
        if not here and passed is None and value is None:
            here.append(Issue("a label needs 'passed', 'value' or both", file=file, line=line))
        issues += here
        if result_id is not None and row.get("metric"):
            parsed.append(
                (
                    line,
                    {
                        "result_id": result_id,
                        "metric": str(row["metric"]),
                        "passed": passed,
                        "value": value,
                        "comment": row.get("comment") or None,
                        "annotator": str(row.get("annotator") or annotator),
                        "source": file,
                    },
                )
            )
    if not parsed and not issues:
        raise ConfigError(Issue("the file has no labels", file=file))
    with engine.begin() as conn:
        ws = catalog.ensure_workspace(conn, workspace)
        known = queries.result_metrics(conn, ws, [p["result_id"] for _, p in parsed])
        for line, p in parsed:
            metrics = known.get(p["result_id"])
            if metrics is None:
                issues.append(
                    Issue(
                        f"no result {p['result_id']} in this workspace",
                        file=file,
                        line=line,
                        field="result_id",
                    )
                )
            elif p["metric"] not in metrics:
                issues.append(
                    Issue(
                        f"the result's run has no metric '{p['metric']}'",
                        file=file,
                        line=line,
                        field="metric",
                        hint="its metrics: " + (", ".join(sorted(metrics)) or "none"),
                    )
                )
            else:
                p["metric_id"] = metrics[p["metric"]]
        scales = queries.metric_scales(
            conn, [p["metric_id"] for _, p in parsed if "metric_id" in p]
        )
        for line, p in parsed:
            problem = off_scale(p.get("value"), scales.get(p.get("metric_id", -1)), p["metric"])
            if problem:
                issues.append(
                    Issue(problem[0], file=file, line=line, field="value", hint=problem[1])
                )
        if issues:  # nothing stored: the transaction is rolled back
            raise ConfigError(sorted(issues, key=lambda i: i.line or 0))
        return queries.upsert_annotations(conn, ws, [p for _, p in parsed])


@dataclass(frozen=True)
class Calibration:
    """A judge against people for one metric (and, in production, one score source)."""

    metric: str
    labelled: int
    judge_errors: int
    pass_pairs: int
    agreement: float | None
    kappa: float | None
    kappa_low: float | None
    kappa_high: float | None
    value_pairs: int
    spearman: float | None
    spearman_low: float | None
    spearman_high: float | None
    # subjects labelled (a run's answers, or production spans and traces): the intervals'
    # sample size, since labels cluster by their subject
    results: int = 0
    source: str = "run"  # run, or the production score's source (online, guardrail, api)
    # the agreement's 95% interval, clustered by subject as kappa's (None: too few subjects)
    agreement_low: float | None = None
    agreement_high: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _calibration(metric: str, source: str, rows: list[dict[str, Any]]) -> Calibration:
    """Cohen's kappa on pass/fail and Spearman's rho on scores for one metric's label
    pairs; each row's ``subject`` is its cluster (several people's labels of one subject
    are not independent: a cluster bootstrap over subjects)."""
    judged = [p for p in rows if p["judge_error"] is None]
    pf = [
        (p["judge_passed"], p["human_passed"], p["subject"])
        for p in judged
        if p["judge_passed"] is not None and p["human_passed"] is not None
    ]
    vs = [
        (p["judge_value"], p["human_value"], p["subject"])
        for p in judged
        if p["judge_value"] is not None and p["human_value"] is not None
    ]
    kappa = (
        cohen_kappa([a for a, _, _ in pf], [b for _, b, _ in pf], clusters=[c for *_, c in pf])
        if pf
        else None
    )
    rho = (
        spearman([a for a, _, _ in vs], [b for _, b, _ in vs], clusters=[c for *_, c in vs])
        if len(vs) >= 3
        else None
    )
    if rho is not None and math.isnan(rho.estimate):
        rho = None  # one side gave a single value: no rank correlation to speak of
    agreed: dict[str, list[float]] = {}
    for a, b, subject in pf:
        agreed.setdefault(subject, []).append(float(a == b))
    agreement = (
        bounded_interval(ClusterSums.of(list(agreed.values())), 0.0, 1.0, binary=True)
        if agreed
        else None
    )
    return Calibration(
        metric,
        len(rows),
        len(rows) - len(judged),
        len(pf),
        sum(1 for a, b, _ in pf if a == b) / len(pf) if pf else None,
        kappa.estimate if kappa else None,
        kappa.low if kappa else None,
        kappa.high if kappa else None,
        len(vs),
        rho.estimate if rho else None,
        rho.low if rho else None,
        rho.high if rho else None,
        len({p["subject"] for p in rows}),
        source,
        agreement.low if agreement else None,
        agreement.high if agreement else None,
    )


def calibrate(engine: Engine, run_id: int) -> list[Calibration]:
    """Per metric: Cohen's kappa between the judge's and people's pass/fail, Spearman's rho
    between their scores, each with a 95% interval; several people's labels of one answer
    are clustered by the answer (a cluster bootstrap over answers)."""
    with engine.connect() as conn:
        pairs = queries.calibration_pairs(conn, run_id)
    for p in pairs:
        p["subject"] = str(p["result_id"])
    return [
        _calibration(metric, "run", [p for p in pairs if p["metric"] == metric])
        for metric in sorted({p["metric"] for p in pairs})
    ]


def calibrate_production(
    engine: Engine, workspace_id: int, source: str | None = "production"
) -> list[Calibration]:
    """The same statistics for production: people's labels on traces and spans (the trace
    label form) beside the newest score of the same metric on the same span (or trace) from
    each source: an online rule's judge, a guardrail, an outside client. One row per metric
    and source; labels cluster by their span (or trace). ``source``: ``production`` (every
    one) or one source's name."""
    if source in (None, "production"):
        sources = None
    elif source in ("online", "guardrail", "api"):
        sources = (source,)
    else:
        raise ConfigError(
            Issue(
                f"no calibration for source '{source}'",
                field="source",
                hint="production, online, guardrail or api (or a run)",
            )
        )
    with engine.connect() as conn:
        pairs = queries.production_calibration_pairs(conn, workspace_id, sources)
    for p in pairs:
        p["subject"] = f"{p['trace_id']}/{p['span_id'] or ''}"
    groups = sorted({(p["metric"], p["source"]) for p in pairs})
    return [
        _calibration(metric, src, [p for p in pairs if (p["metric"], p["source"]) == (metric, src)])
        for metric, src in groups
    ]


def label_result(
    engine: Engine,
    workspace_id: int,
    result_id: str,
    metric: str,
    annotator: str,
    *,
    value: float | None,
    passed: bool | None,
    comment: str | None,
) -> bool:
    """A person's label on one answer for one metric (from the web UI); replaces their
    earlier label. True when it replaced one. Raises ConfigError naming the field."""
    from panopticon.services.results import get_result

    if value is None and passed is None:
        raise ConfigError(
            Issue("a label needs a score or a pass/fail", field="value", hint="give one or both")
        )
    problem = unstorable(comment, "comment") or unstorable(annotator, "annotator")
    if problem:
        raise ConfigError(Issue(problem.split(": ", 1)[1], field=problem.split(":", 1)[0]))
    found = get_result(engine, workspace_id, result_id)
    metric_ids = {s.metric: s.metric_id for s in found.scores}
    if metric not in metric_ids:
        raise ConfigError(
            Issue(
                f"this answer has no score for the metric '{metric}'",
                field="metric",
                hint="label one of: " + ", ".join(sorted(metric_ids)),
            )
        )
    with engine.begin() as conn:
        scale = queries.metric_scales(conn, [metric_ids[metric]]).get(metric_ids[metric])
        off = off_scale(value, scale, metric)
        if off:
            raise ConfigError(Issue(off[0], field="value", hint=off[1]))
        _, replaced = queries.upsert_annotations(
            conn,
            workspace_id,
            [
                {
                    "result_id": found.id,
                    "metric_id": metric_ids[metric],
                    "annotator": annotator,
                    "value": value,
                    "passed": passed,
                    "comment": comment or None,
                    "source": "web",
                }
            ],
        )
    return replaced > 0
