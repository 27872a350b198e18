"""The suite file: what to run. Validated whole, before any paid call.

Every problem is reported at once, each with its file, line and field and a fix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from panopticon.errors import ConfigError, Issue
from panopticon.evaluation.endpoints import Access, Directory, Endpoint, Problem, resolve_endpoint
from panopticon.evaluation.prompts import PromptVariant, arm_label, prompt_variants
from panopticon.evaluation.queries import MetricEntry, QueryItem, resolve_queries
from panopticon.evaluation.sources import (
    Located,
    dedupe_issues,
    load_yaml,
    validation_issues,
)
from panopticon.evaluation.spec import (
    MessageSpec,
    ModelSpec,
    PriceSpec,
    PromptSpec,
    QueryFileSpec,
    QuerySpec,
    Suite,
    model_price,
)
from panopticon.evaluation.templates import check_template, render_messages
from panopticon.judges.base import MetricSpec, metric_types, spec_class
from panopticon.providers.base import missing_package
from panopticon.providers.egress import EgressPolicy
from panopticon.providers.pricing import Price

__all__ = [
    "LoadedSuite",
    "MessageSpec",
    "ModelSpec",
    "PriceSpec",
    "PromptSpec",
    "PromptVariant",
    "QueryFileSpec",
    "QueryItem",
    "QuerySpec",
    "Suite",
    "load_suite",
    "parse_suite",
    "render_messages",
    "spec_needs_judge",
]


@dataclass(frozen=True)
class LoadedSuite:
    suite: Suite
    path: Path | None
    queries: list[QueryItem]
    metrics: list[MetricSpec]
    judge: ModelSpec | None
    endpoints: dict[str, Endpoint]  # model id -> where it is called, with its key (memory only)
    prices: dict[str, Price | None]  # model id -> price
    warnings: list[str] = field(default_factory=list)
    # names of the metrics that score every query; the others score only the queries that
    # name them (QueryItem.metrics). None: every metric scores every query.
    suite_metrics: frozenset[str] | None = None
    # only some of the suite's queries (--filter, --limit): its files are not recorded as
    # datasets, whose items would otherwise shrink to the selection
    partial: bool = False
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    # the options that chose them, as typed (["--filter", "theme=billing", "--limit", "2"]):
    # kept with the run, so that a resume chooses the same queries
    selection: tuple[str, ...] = ()

    @property
    def api_keys(self) -> dict[str, str | None]:
        """Model id -> its key (never stored)."""
        return {k: e.api_key for k, e in self.endpoints.items()}

    @property
    def models(self) -> list[ModelSpec]:
        return list(self.suite.models)

    @property
    def prompts(self) -> list[PromptVariant]:
        return prompt_variants(self.suite)

    def arm_models(self) -> list[ModelSpec]:
        """With prompt variants: each evaluated model once per prompt, named model@prompt
        (what runs store and compare); without: none."""
        if not self.suite.prompts:
            return []
        return [
            m.model_copy(update={"id": arm_label(m.id, p.id), "model": m.provider_model})
            for p in self.suite.prompts
            for m in self.suite.models
        ]

    def metrics_for(self, query: QueryItem) -> list[MetricSpec]:
        """The metrics that score this query: the suite-wide ones and its own."""
        if self.suite_metrics is None:
            return self.metrics
        return [m for m in self.metrics if m.name in self.suite_metrics or m.name in query.metrics]

    @property
    def judge_models(self) -> list[ModelSpec]:
        """Judges that are not evaluated models: the suite's judge and its extra judges."""
        evaluated = {m.id for m in self.suite.models}
        out = [self.judge] if self.judge and self.judge.id not in evaluated else []
        return out + [j for j in self.suite.judges if j not in out]

    def dataset_files(self) -> dict[str, list[int]]:
        """Absolute path of each query file -> the indexes of its queries, in file order."""
        suite_file = str(self.path) if self.path else None
        files: dict[str, list[int]] = {}
        resolved: dict[str, str] = {}  # a file's absolute path, found once per file
        for i, q in enumerate(self.queries):
            file = q.source.rsplit(":", 1)[0]
            if file != suite_file:
                if file not in resolved:
                    resolved[file] = str(Path(file).resolve())
                files.setdefault(resolved[file], []).append(i)
        return files

    def query_places(self) -> list[tuple[str, int] | None]:
        """Where each query was read: (absolute path of the suite or dataset file, line),
        or None for a suite sent without a file (through the API)."""
        resolved: dict[str, str] = {}
        out: list[tuple[str, int] | None] = []
        for q in self.queries:
            file, _, line = q.source.rpartition(":")
            if not file or not line.isdigit() or int(line) < 1:
                out.append(None)
                continue
            if file not in resolved:
                resolved[file] = str(Path(file).resolve())
            out.append((resolved[file], int(line)))
        return out

    def snapshot(self) -> dict[str, Any]:
        """The suite as run (no secrets), for the run record and the resume check."""
        # fields added later are left out while unused, so that older runs keep their
        # fingerprint
        exclude = {"queries", "metrics"}
        if not self.suite.prompts:
            exclude.add("prompts")
        if not self.suite.gates:
            exclude.add("gates")
        data = self.suite.model_dump(mode="json", by_alias=True, exclude=exclude)
        data["models"] = [m.record() for m in self.suite.models]
        data["judges"] = [m.record() for m in self.suite.judges]
        data["metrics"] = [m.model_dump(mode="json", by_alias=True) for m in self.metrics]
        data["judge"] = self.judge.record() if self.judge else None
        data["query_hashes"] = [q.content_hash for q in self.queries]
        if self.suite_metrics is not None:
            data["suite_metrics"] = sorted(self.suite_metrics)
            data["query_metrics"] = [list(q.metrics) for q in self.queries]
        if self.suite.prompts:
            data["prompt_hashes"] = {p.id: p.content_hash for p in self.prompts}
        if self.selection:
            data["selection"] = list(self.selection)
        return data

    @property
    def fingerprint(self) -> str:
        # gates judge a run, they do not change it: a resume may change them
        data = {k: v for k, v in self.snapshot().items() if k != "gates"}
        return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


_SUITE_HINT = "remove it or check its spelling (see the suite reference in README)"


def _issues_from(
    err: ValidationError, doc: Located, base: tuple[str | int, ...] = ()
) -> list[Issue]:
    return validation_issues(err, doc, base, unknown_hint=_SUITE_HINT)


def load_suite(
    path: str | Path,
    env: Mapping[str, str],
    *,
    access: Access | None = None,
    directory: Directory | None = None,
) -> LoadedSuite:
    """Read, substitute, validate and resolve a suite file. Raises ConfigError."""
    path = Path(path)
    doc = load_yaml(path, env)
    return parse_suite(
        doc, env, base_dir=path.parent, path=path, access=access, directory=directory
    )


def parse_suite(
    doc: Located,
    env: Mapping[str, str],
    *,
    base_dir: Path,
    path: Path | None = None,
    access: Access | None = None,
    directory: Directory | None = None,
) -> LoadedSuite:
    """``access`` says who sends the suite (default: the CLI's local rules) and
    ``directory`` finds the workspace's registered providers and credentials."""
    access = access or Access()
    if not isinstance(doc.data, dict):
        raise ConfigError(
            Issue(
                "a suite must be a mapping with models, queries and metrics",
                file=doc.file,
                line=1,
                hint="see examples/demo/suite.yaml",
            )
        )
    data = dict(doc.data)
    issues: list[Issue] = list(doc.issues)
    if directory is not None:
        issues += _expand_registered(data, doc, directory)
    # query entries are either a query or a file reference: choose by the 'file' key so
    # errors speak about the shape the user meant
    try:
        suite = Suite.model_validate(data)
    except ValidationError as err:
        issues.extend(_suite_issues(err, doc, data))
        issues.extend(_partial_issues(data, doc, base_dir))
        # still report missing keys of the models that are well-formed: one pass, all problems
        for i, raw in enumerate(
            data.get("models") or [] if isinstance(data.get("models"), list) else []
        ):
            try:
                m = ModelSpec.model_validate(raw)
            except ValidationError:
                continue
            found = resolve_endpoint(m, env, access, directory)
            if isinstance(found, Problem):
                issues.append(
                    doc.issue(
                        found.message,
                        ("models", i),
                        field=f"models[{i}].{found.field}",
                        hint=found.hint,
                    )
                )
        raise ConfigError(dedupe_issues(issues)) from None

    issues += _check_models(suite, doc)
    metrics, metric_issues = _parse_metrics(suite.metrics, doc, base_dir)
    issues += metric_issues
    judge = _resolve_judge(suite, doc, metrics, issues)
    queries = resolve_queries(suite, doc, base_dir, issues)
    origin: dict[str, MetricEntry] = {}
    queries, suite_metrics = _query_metrics(queries, metrics, doc, base_dir, issues, origin)
    issues += _check_query_metric_judges(suite, judge, metrics, origin)
    issues += _check_prompts(suite, doc, metrics)
    issues += _check_metric_inputs(suite, metrics, queries, doc)
    if suite.template and queries:
        issues += check_template(suite.template, queries, doc)
    for i, p in enumerate(suite.prompts):
        if p.template and queries:
            issues += check_template(p.template, queries, doc, ("prompts", i, "template"))
    issues += _check_gates(suite, doc, metrics)
    all_models = list(suite.models) + ([judge] if judge and judge not in suite.models else [])
    all_models += [j for j in suite.judges if j not in all_models]
    endpoints: dict[str, Endpoint] = {}
    prices: dict[str, Price | None] = {}
    warnings: list[str] = []
    if suite_metrics is not None:
        for spec in metrics:
            if spec.name in origin or spec.name in suite_metrics:
                continue  # a query's own metric, or a suite metric that scores every query
            count = sum(1 for q in queries if spec.name in q.metrics)
            warnings.append(
                f"suite metric '{spec.name}' is named by {count} "
                f"quer{'y' if count == 1 else 'ies'}, so it scores only those (name it "
                "nowhere to score every query)"
            )
    for i, m in enumerate(all_models):
        # a model that is not evaluated (the judge, an extra judge) is reported at 'judge'
        where = ("models", i) if m in suite.models else ("judge",)
        found = resolve_endpoint(m, env, access, directory)
        if isinstance(found, Problem):
            issues.append(
                doc.issue(
                    found.message,
                    where,
                    field=f"{_model_field(suite, m, i)}.{found.field}",
                    hint=found.hint,
                )
            )
            kind = m.provider
        else:
            endpoints[m.id] = found
            kind = found.kind
            missing = missing_package(kind)
            if missing is not None:
                issue = missing.issues[0]
                issues.append(
                    doc.issue(
                        f"model '{m.id}': {issue.message}",
                        where,
                        field=f"{_model_field(suite, m, i)}.provider",
                        hint=f"{issue.hint}, or use another provider",
                    )
                )
        price = model_price(m, kind)
        prices[m.id] = price
        if price is None and kind != "fake":
            warnings.append(
                f"model '{m.id}' ({m.provider_model}) has no known price: its cost "
                "is reported as unknown; add price: {input: .., output: ..}"
            )
    if suite.budget_usd is not None:
        unpriced = [
            m.id
            for m in all_models
            if prices[m.id] is None and m.id in endpoints and endpoints[m.id].kind != "fake"
        ]
        if unpriced:
            issues.append(
                doc.issue(
                    f"budget_usd is set but these models have no price: {', '.join(unpriced)}",
                    ("budget_usd",),
                    hint="add price: {input: <USD per 1M>, output: <USD per 1M>} to each, so the "
                    "budget can be enforced",
                )
            )
    if issues:
        raise ConfigError(dedupe_issues(issues))
    return LoadedSuite(
        suite,
        path,
        queries,
        metrics,
        judge,
        endpoints,
        prices,
        warnings,
        suite_metrics,
        egress=access.egress,
    )


def _expand_registered(data: dict[str, Any], doc: Located, directory: Directory) -> list[Issue]:
    """``models`` and ``judges`` entries that are just an id (``- gpt-4o``), and a ``judge``
    id that no model of the suite has, name models of the workspace's registry: each is
    replaced (in ``data``) by the model as registered. A suite uses a registered model this
    way; an inline definition of one must be the registered one (store.queries.catalog)."""
    issues: list[Issue] = []

    def expand(entry: Any, where: tuple[str | int, ...]) -> Any:
        if not isinstance(entry, str):
            return entry
        spec = directory.model(entry)
        if spec is None:
            issues.append(
                doc.issue(
                    f"no model '{entry}' is registered in this workspace",
                    where,
                    hint="define it here ({id: ..., provider: ..., model: ...}), or register it "
                    "(POST /api/models, or the dashboard's Models page)",
                )
            )
            return entry
        return spec.model_dump(mode="json", exclude_none=True)

    for key in ("models", "judges"):
        if isinstance(data.get(key), list):
            data[key] = [expand(m, (key, i)) for i, m in enumerate(data[key])]
    judge = data.get("judge")
    named = {m.get("id") for m in data.get("models") or [] if isinstance(m, dict)}
    if isinstance(judge, str) and judge not in named and directory.model(judge) is not None:
        data["judge"] = expand(judge, ("judge",))
    return issues


def _model_field(suite: Suite, m: ModelSpec, i: int) -> str:
    if m in suite.models:
        return f"models[{i}]"
    if isinstance(suite.judge, ModelSpec) and m == suite.judge:
        return "judge"
    return f"judges[{suite.judges.index(m)}]" if m in suite.judges else f"models.{m.id}"


def _partial_issues(data: dict[str, Any], doc: Located, base_dir: Path) -> list[Issue]:
    """When the suite itself is invalid, the problems of its well-formed metrics and query
    files still: every problem is reported in one pass, not one round at a time."""
    issues: list[Issue] = []
    raw_metrics = data.get("metrics")
    if isinstance(raw_metrics, list):
        issues += _parse_metrics([m for m in raw_metrics if isinstance(m, dict)], doc, base_dir)[1]
    entries = []
    for q in data.get("queries") or [] if isinstance(data.get("queries"), list) else []:
        shape: type[BaseModel] = QueryFileSpec if isinstance(q, dict) and "file" in q else QuerySpec
        try:
            entries.append(shape.model_validate(q))
        except ValidationError:
            continue  # reported by the suite's validation
    system = data.get("system") if isinstance(data.get("system"), str) else None
    partial = Suite.model_construct(queries=entries, system=system, template=None)
    resolve_queries(partial, doc, base_dir, issues)
    return issues


def _check_metric_inputs(
    suite: Suite, metrics: list[MetricSpec], queries: list[QueryItem], doc: Located
) -> list[Issue]:
    """Metrics that need a field every query must have (faithfulness needs a context): the
    queries without it are named now, not found one by one at run time."""
    from panopticon.judges.base import build_metric

    issues = []
    for i, spec in enumerate(metrics):
        if not getattr(build_metric(spec), "needs_context", False):
            continue
        missing = [q for q in queries if not q.context]
        if missing:
            shown = ", ".join(q.source for q in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            issues.append(
                doc.issue(
                    f"metric '{spec.name}' ({spec.type}) needs each query's 'context', and "
                    f"{len(missing)} of {len(queries)} queries have none: {shown}{more}",
                    ("metrics", i),
                    hint="add 'context' (the retrieved passages) to those queries, or use "
                    "answer_relevance, which needs none",
                )
            )
    return issues


def _suite_issues(err: ValidationError, doc: Located, data: dict[str, Any]) -> list[Issue]:
    # Re-validate query entries one by one with the shape each one asks for, so that a
    # mistake in a query says "queries[3].txt: unknown key", not a union error dump.
    issues = []
    query_errors = any(e["loc"][:1] == ("queries",) and len(e["loc"]) > 2 for e in err.errors())
    for e in err.errors():
        if query_errors and e["loc"][:1] == ("queries",) and len(e["loc"]) > 2:
            continue
        issues += _issues_from(ValidationError.from_exception_data(err.title, [e]), doc)  # type: ignore[list-item]
    if query_errors:
        for i, q in enumerate(data.get("queries") or []):
            shape: type[BaseModel] = (
                QueryFileSpec if isinstance(q, dict) and "file" in q else QuerySpec
            )
            try:
                shape.model_validate(q)
            except ValidationError as qerr:
                issues += _issues_from(qerr, doc, ("queries", i))
    return dedupe_issues(issues)


def _check_models(suite: Suite, doc: Located) -> list[Issue]:
    issues = []
    first: dict[str, int] = {}
    # an unknown provider is found where the endpoint is resolved (it may be registered)
    for i, m in enumerate(suite.models):
        if m.id in first:
            issues.append(
                doc.issue(
                    f"two models have the id '{m.id}' (the other is models[{first[m.id]}], line "
                    f"{doc.line_of(('models', first[m.id], 'id'))})",
                    ("models", i, "id"),
                    hint="give each model a unique id; use 'model:' for the provider's name",
                )
            )
        else:
            first[m.id] = i
    return issues


def _parse_metrics(
    raw_metrics: list[dict[str, Any]], doc: Located, base_dir: Path
) -> tuple[list[MetricSpec], list[Issue]]:
    specs: list[MetricSpec] = []
    issues: list[Issue] = []
    names: dict[str, int] = {}
    for i, raw in enumerate(raw_metrics):
        loc = ("metrics", i)
        spec = _parse_metric(raw, doc, loc, base_dir, issues)
        if spec is None:
            continue
        if spec.name in names:
            issues.append(
                doc.issue(
                    f"two metrics are named '{spec.name}'",
                    (*loc, "name"),
                    hint="give each metric a unique name",
                )
            )
        names[spec.name] = i
        specs.append(spec)
    return specs, issues


def _parse_metric(
    raw: dict[str, Any],
    doc: Located,
    loc: tuple[str | int, ...],
    base_dir: Path,
    issues: list[Issue],
) -> MetricSpec | None:
    """One metric mapping as a spec, or None with its problems added to ``issues``."""
    type_name = raw.get("type")
    cls = spec_class(type_name) if isinstance(type_name, str) else None
    if cls is None:
        issues.append(
            doc.issue(
                "missing 'type'" if type_name is None else f"unknown metric type '{type_name}'",
                (*loc, "type"),
                hint="use one of: " + ", ".join(metric_types()),
            )
        )
        return None
    raw = dict(raw)
    if "schema_file" in raw and isinstance(raw["schema_file"], str):
        schema_path = (base_dir / raw["schema_file"]).resolve()
        if not schema_path.is_file():
            issues.append(
                doc.issue(
                    "schema file not found", (*loc, "schema_file"), hint=f"looked for {schema_path}"
                )
            )
            return None
        try:
            orjson.loads(schema_path.read_bytes())
        except orjson.JSONDecodeError as exc:
            issues.append(Issue(f"schema file is not JSON: {exc}", file=str(schema_path)))
            return None
        raw["schema_file"] = str(schema_path)
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        issues += _issues_from(err, doc, loc)
        return None


def _query_metrics(
    queries: list[QueryItem],
    metrics: list[MetricSpec],
    doc: Located,
    base_dir: Path,
    issues: list[Issue],
    origin: dict[str, MetricEntry],
) -> tuple[list[QueryItem], frozenset[str] | None]:
    """Resolve each query's own metrics (promptfoo's per-test ``assert``).

    An entry is a metric mapping (same schema as the suite's ``metrics``) or the name of a
    suite metric. A suite metric named by some query scores only the queries that name it;
    the others score every query. Metrics (``metrics`` is extended in place) are unique by
    name: one name, one definition."""
    if not any(q.metric_entries for q in queries):
        return queries, None
    by_name = {m.name: m for m in metrics}
    suite_names = set(by_name)
    named: set[str] = set()
    out: list[QueryItem] = []
    for q in queries:
        names: list[str] = []
        for entry in q.metric_entries:
            here = Located(entry.value, {(): entry.line} if entry.line else {}, entry.file)
            spec = _entry_spec(entry, here, by_name, base_dir, issues)
            if spec is None:
                continue
            if spec.name in suite_names and not isinstance(entry.value, dict):
                named.add(spec.name)
            if spec.name not in by_name:
                by_name[spec.name] = spec
                metrics.append(spec)
                origin[spec.name] = entry
            if spec.name not in names:
                names.append(spec.name)
        out.append(replace(q, metrics=tuple(names)))
    return out, frozenset(suite_names - named)


def _check_query_metric_judges(
    suite: Suite, judge: ModelSpec | None, metrics: list[MetricSpec], origin: dict[str, MetricEntry]
) -> list[Issue]:
    """A query's own metric needs a judge that exists, as a suite metric does (those are
    checked by _resolve_judge, with their place in the suite). ``origin``: where each
    query's own metric was written."""
    known = {m.id for m in suite.models} | {j.id for j in suite.judges}
    if judge is not None:
        known.add(judge.id)
    issues = []
    for spec in metrics:
        entry = origin.get(spec.name)
        if entry is None:
            continue
        own = getattr(spec, "judge", None)
        named = [own] if own is not None else []
        named += list(getattr(spec, "judges", None) or [])
        for name in named:
            if name not in known:
                issues.append(
                    Issue(
                        f"judge '{name}' is not one of the models",
                        file=entry.file,
                        line=entry.line,
                        field=entry.field,
                        hint="name ids from 'models', 'judge' or 'judges'",
                    )
                )
        if not named and judge is None and spec_needs_judge(spec):
            issues.append(
                Issue(
                    f"metric '{spec.name}' needs a judge model",
                    file=entry.file,
                    line=entry.line,
                    field=entry.field,
                    hint="add 'judge: <model id>' to the suite or to the metric",
                )
            )
    return issues


def _entry_spec(
    entry: MetricEntry,
    here: Located,
    by_name: dict[str, MetricSpec],
    base_dir: Path,
    issues: list[Issue],
) -> MetricSpec | None:
    if isinstance(entry.value, str):
        spec = by_name.get(entry.value)
        if spec is None:
            issues.append(
                Issue(
                    f"no metric is named '{entry.value}'",
                    file=entry.file,
                    line=entry.line,
                    field=entry.field,
                    hint="name a metric of the suite's 'metrics', or write the metric here "
                    "({type: ..., name: ...}); known: " + (", ".join(sorted(by_name)) or "none"),
                )
            )
        return spec
    if not isinstance(entry.value, dict):
        issues.append(
            Issue(
                "a query's metric must be a metric mapping or a suite metric's name",
                file=entry.file,
                line=entry.line,
                field=entry.field,
            )
        )
        return None
    found: list[Issue] = []
    spec = _parse_metric(entry.value, here, (), base_dir, found)
    issues += [
        replace(i, field=f"{entry.field}.{i.field}" if i.field else entry.field) for i in found
    ]
    if spec is None:
        return None
    known = by_name.get(spec.name)
    if known is not None and known != spec:
        issues.append(
            Issue(
                f"another metric is already named '{spec.name}' with other settings",
                file=entry.file,
                line=entry.line,
                field=f"{entry.field}.name",
                hint="give this metric its own name, or refer to the other by its name",
            )
        )
        return None
    return spec


def _check_prompts(suite: Suite, doc: Located, metrics: list[MetricSpec]) -> list[Issue]:
    issues = []
    first: dict[str, int] = {}
    for i, p in enumerate(suite.prompts):
        if p.id in first:
            issues.append(
                doc.issue(
                    f"two prompts have the id '{p.id}' (the other is prompts[{first[p.id]}])",
                    ("prompts", i, "id"),
                    hint="give each prompt a unique id",
                )
            )
        first.setdefault(p.id, i)
        if "@" in p.id:
            issues.append(
                doc.issue(
                    f"a prompt id cannot contain '@' ('{p.id}')",
                    ("prompts", i, "id"),
                    hint="results are labelled model@prompt: use letters, digits, - or _",
                )
            )
    return issues


def _check_gates(suite: Suite, doc: Located, metrics: list[MetricSpec]) -> list[Issue]:
    issues = []
    names = {m.name for m in metrics}
    for name, value in suite.gates.items():
        if name not in names:
            issues.append(
                doc.issue(
                    f"gate on '{name}', which is not a metric of this suite",
                    ("gates", name),
                    hint="name one of: " + (", ".join(sorted(names)) or "(no metrics)"),
                )
            )
        if not 0 <= value <= 1:
            issues.append(
                doc.issue(
                    f"gate {value} is not between 0 and 1",
                    ("gates", name),
                    hint="a gate is the least pass rate (or mean normalised score), e.g. 0.8",
                )
            )
    return issues


def _resolve_judge(
    suite: Suite, doc: Located, metrics: list[MetricSpec], issues: list[Issue]
) -> ModelSpec | None:
    by_id = {m.id: m for m in suite.models}
    for i, extra in enumerate(suite.judges):
        if extra.id in by_id:
            issues.append(
                doc.issue(
                    f"judges[{i}] has the id '{extra.id}' of a model",
                    ("judges", i, "id"),
                    hint="refer to that model by its id instead of repeating it",
                )
            )
    judge_ids = {*by_id, *(j.id for j in suite.judges)}
    judge: ModelSpec | None
    if isinstance(suite.judge, str):
        judge = by_id.get(suite.judge) or next(
            (j for j in suite.judges if j.id == suite.judge), None
        )
        if judge is None:
            issues.append(
                doc.issue(
                    f"judge '{suite.judge}' is not one of the models",
                    ("judge",),
                    hint="name a model id from 'models', or give a model here: "
                    "judge: {id: ..., provider: ..., model: ...}",
                )
            )
    else:
        judge = suite.judge
        if judge is not None and judge.id in by_id:
            issues.append(
                doc.issue(
                    f"the judge's id '{judge.id}' is also a model's id",
                    ("judge", "id"),
                    hint="write judge: <id> to reuse that model, or give the judge another id",
                )
            )
    for i, spec in enumerate(metrics):
        own = getattr(spec, "judge", None)
        panel = list(getattr(spec, "judges", None) or [])
        for name in panel:
            if name not in judge_ids and (judge is None or name != judge.id):
                issues.append(
                    doc.issue(
                        f"panel judge '{name}' is not a model",
                        ("metrics", i, "judges"),
                        hint="list ids from 'models', 'judge' or 'judges'",
                    )
                )
        if own is not None and own not in judge_ids and (judge is None or own != judge.id):
            issues.append(
                doc.issue(f"judge '{own}' is not one of the models", ("metrics", i, "judge"))
            )
        for name in getattr(spec, "models", None) or []:
            if name not in by_id:
                issues.append(
                    doc.issue(
                        f"metric '{spec.name}' pairs the model '{name}', which is not in 'models'",
                        ("metrics", i, "models"),
                        hint="list ids from 'models': " + ", ".join(by_id),
                    )
                )
        needs = spec_needs_judge(spec)
        if needs and own is None and not panel and judge is None and suite.judge is None:
            issues.append(
                doc.issue(
                    f"metric '{spec.name}' needs a judge model",
                    ("metrics", i),
                    hint="add 'judge: <model id>' to the suite or to the metric",
                )
            )
    return judge


def spec_needs_judge(spec: MetricSpec) -> bool:
    from panopticon.judges.base import build_metric

    return bool(build_metric(spec).needs_judge)
