"""The suite file: what to run. Validated whole, before any paid call.

Every problem is reported at once, each with its file, line and field and a fix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from panopticon.errors import ConfigError, Issue
from panopticon.evaluation.queries import QueryItem, resolve_queries
from panopticon.evaluation.sources import Located, dotted, load_yaml
from panopticon.evaluation.spec import (
    DEFAULT_KEY_ENV,
    MessageSpec,
    ModelSpec,
    PriceSpec,
    QueryFileSpec,
    QuerySpec,
    Suite,
)
from panopticon.evaluation.templates import check_template, render_messages
from panopticon.judges.base import MetricSpec, metric_types, spec_class
from panopticon.providers.pricing import Price, lookup_price

__all__ = [
    "LoadedSuite",
    "MessageSpec",
    "ModelSpec",
    "PriceSpec",
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
    api_keys: dict[str, str | None]  # model id -> key (never stored)
    prices: dict[str, Price | None]  # model id -> price
    warnings: list[str] = field(default_factory=list)

    @property
    def models(self) -> list[ModelSpec]:
        return list(self.suite.models)

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
        for i, q in enumerate(self.queries):
            file = q.source.rsplit(":", 1)[0]
            if file != suite_file:
                files.setdefault(str(Path(file).resolve()), []).append(i)
        return files

    def snapshot(self) -> dict[str, Any]:
        """The suite as run (no secrets), for the run record and the resume check."""
        data = self.suite.model_dump(mode="json", by_alias=True, exclude={"queries", "metrics"})
        data["metrics"] = [m.model_dump(mode="json", by_alias=True) for m in self.metrics]
        data["judge"] = self.judge.model_dump(mode="json") if self.judge else None
        data["query_hashes"] = [q.content_hash for q in self.queries]
        return data

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(
            orjson.dumps(self.snapshot(), option=orjson.OPT_SORT_KEYS)
        ).hexdigest()[:16]


_UNION_TAGS = frozenset({"str", "ModelSpec", "QuerySpec", "QueryFileSpec"})


def _issues_from(
    err: ValidationError, doc: Located, base: tuple[str | int, ...] = ()
) -> list[Issue]:
    issues = []
    for e in err.errors():
        # pydantic names the member of a union it tried (``str``, ``ModelSpec``): not a key
        loc = base + tuple(p for p in e["loc"] if p not in _UNION_TAGS)
        msg = e["msg"]
        hint = None
        if e["type"] == "extra_forbidden" and e["loc"]:
            msg = f"unknown key '{e['loc'][-1]}'"
            hint = "remove it or check its spelling (see the suite reference in README)"
        elif e["type"] == "missing":
            msg = "this field is required"
        issues.append(
            Issue(
                msg.removeprefix("Value error, "),
                file=doc.file,
                line=doc.line_of(loc),
                field=dotted(loc),
                hint=hint,
            )
        )
    return _dedupe(issues)


def _dedupe(issues: list[Issue]) -> list[Issue]:
    seen: set[str] = set()
    out = []
    for i in issues:
        if str(i) not in seen:
            seen.add(str(i))
            out.append(i)
    return out


def load_suite(path: str | Path, env: Mapping[str, str]) -> LoadedSuite:
    """Read, substitute, validate and resolve a suite file. Raises ConfigError."""
    path = Path(path)
    doc = load_yaml(path, env)
    return parse_suite(doc, env, base_dir=path.parent, path=path)


def parse_suite(
    doc: Located, env: Mapping[str, str], *, base_dir: Path, path: Path | None = None
) -> LoadedSuite:
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
    # query entries are either a query or a file reference: choose by the 'file' key so
    # errors speak about the shape the user meant
    issues: list[Issue] = []
    try:
        suite = Suite.model_validate(data)
    except ValidationError as err:
        issues.extend(_suite_issues(err, doc, data))
        # still report missing keys of the models that are well-formed: one pass, all problems
        for i, raw in enumerate(
            data.get("models") or [] if isinstance(data.get("models"), list) else []
        ):
            try:
                m = ModelSpec.model_validate(raw)
            except ValidationError:
                continue
            problem = _api_key(m, env)[1]
            if problem:
                issues.append(
                    Issue(
                        problem[0],
                        file=doc.file,
                        field=f"models[{i}]",
                        line=doc.line_of(("models", i)),
                        hint=problem[1],
                    )
                )
        raise ConfigError(issues) from None

    issues += _check_models(suite, doc)
    metrics, metric_issues = _parse_metrics(suite, doc, base_dir)
    issues += metric_issues
    judge = _resolve_judge(suite, doc, metrics, issues)
    queries = resolve_queries(suite, doc, base_dir, issues)
    if suite.template and queries:
        issues += check_template(suite.template, queries, doc)
    all_models = list(suite.models) + ([judge] if judge and judge not in suite.models else [])
    all_models += [j for j in suite.judges if j not in all_models]
    api_keys = {}
    prices: dict[str, Price | None] = {}
    warnings: list[str] = []
    for i, m in enumerate(all_models):
        api_keys[m.id], problem = _api_key(m, env)
        if problem:
            issues.append(
                Issue(
                    problem[0],
                    file=doc.file,
                    field=f"models.{m.id}",
                    line=doc.line_of(("models", i))
                    if m in suite.models
                    else doc.line_of(("judge",)),
                    hint=problem[1],
                )
            )
        price = (
            Price(m.price.input, m.price.output)
            if m.price
            else lookup_price(m.provider, m.provider_model)
        )
        prices[m.id] = price
        if price is None and m.provider != "fake":
            warnings.append(
                f"model '{m.id}' ({m.provider_model}) has no known price: its cost "
                "is reported as unknown; add price: {input: .., output: ..}"
            )
    if suite.budget_usd is not None:
        unpriced = [m.id for m in all_models if prices[m.id] is None and m.provider != "fake"]
        if unpriced:
            issues.append(
                Issue(
                    f"budget_usd is set but these models have no price: {', '.join(unpriced)}",
                    file=doc.file,
                    line=doc.line_of(("budget_usd",)),
                    field="budget_usd",
                    hint="add price: {input: <USD per 1M>, output: <USD per 1M>} to each, so the "
                    "budget can be enforced",
                )
            )
    if issues:
        raise ConfigError(_dedupe(issues))
    return LoadedSuite(suite, path, queries, metrics, judge, api_keys, prices, warnings)


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
    return _dedupe(issues)


def _check_models(suite: Suite, doc: Located) -> list[Issue]:
    issues = []
    first: dict[str, int] = {}
    from panopticon.providers.base import provider_names

    known = provider_names()
    for i, m in enumerate(suite.models):
        line = doc.line_of(("models", i, "id"))
        if m.id in first:
            issues.append(
                Issue(
                    f"two models have the id '{m.id}' (the other is models[{first[m.id]}], line "
                    f"{doc.line_of(('models', first[m.id], 'id'))})",
                    file=doc.file,
                    line=line,
                    field=f"models[{i}].id",
                    hint="give each model a unique id; use 'model:' for the provider's name",
                )
            )
        else:
            first[m.id] = i
        if m.provider not in known:
            issues.append(
                Issue(
                    f"unknown provider '{m.provider}'",
                    file=doc.file,
                    line=doc.line_of(("models", i, "provider")),
                    field=f"models[{i}].provider",
                    hint="use one of: " + ", ".join(known),
                )
            )
    return issues


def _parse_metrics(
    suite: Suite, doc: Located, base_dir: Path
) -> tuple[list[MetricSpec], list[Issue]]:
    specs: list[MetricSpec] = []
    issues: list[Issue] = []
    names: dict[str, int] = {}
    for i, raw in enumerate(suite.metrics):
        loc = ("metrics", i)
        type_name = raw.get("type")
        cls = spec_class(type_name) if isinstance(type_name, str) else None
        if cls is None:
            issues.append(
                Issue(
                    "missing 'type'" if type_name is None else f"unknown metric type '{type_name}'",
                    file=doc.file,
                    line=doc.line_of((*loc, "type")),
                    field=f"metrics[{i}].type",
                    hint="use one of: " + ", ".join(metric_types()),
                )
            )
            continue
        raw = dict(raw)
        if "schema_file" in raw and isinstance(raw["schema_file"], str):
            schema_path = (base_dir / raw["schema_file"]).resolve()
            if not schema_path.is_file():
                issues.append(
                    Issue(
                        "schema file not found",
                        file=doc.file,
                        line=doc.line_of((*loc, "schema_file")),
                        field=f"metrics[{i}].schema_file",
                        hint=f"looked for {schema_path}",
                    )
                )
                continue
            try:
                orjson.loads(schema_path.read_bytes())
            except orjson.JSONDecodeError as exc:
                issues.append(Issue(f"schema file is not JSON: {exc}", file=str(schema_path)))
                continue
            raw["schema_file"] = str(schema_path)
        try:
            spec = cls.model_validate(raw)
        except ValidationError as err:
            issues += _issues_from(err, doc, loc)
            continue
        if spec.name in names:
            issues.append(
                Issue(
                    f"two metrics are named '{spec.name}'",
                    file=doc.file,
                    line=doc.line_of((*loc, "name")),
                    field=f"metrics[{i}].name",
                    hint="give each metric a unique name",
                )
            )
        names[spec.name] = i
        specs.append(spec)
    return specs, issues


def _resolve_judge(
    suite: Suite, doc: Located, metrics: list[MetricSpec], issues: list[Issue]
) -> ModelSpec | None:
    by_id = {m.id: m for m in suite.models}
    for i, extra in enumerate(suite.judges):
        if extra.id in by_id:
            issues.append(
                Issue(
                    f"judges[{i}] has the id '{extra.id}' of a model",
                    file=doc.file,
                    line=doc.line_of(("judges", i, "id")),
                    field=f"judges[{i}].id",
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
                Issue(
                    f"judge '{suite.judge}' is not one of the models",
                    file=doc.file,
                    line=doc.line_of(("judge",)),
                    field="judge",
                    hint="name a model id from 'models', or give a model here: "
                    "judge: {id: ..., provider: ..., model: ...}",
                )
            )
    else:
        judge = suite.judge
        if judge is not None and judge.id in by_id:
            issues.append(
                Issue(
                    f"the judge's id '{judge.id}' is also a model's id",
                    file=doc.file,
                    line=doc.line_of(("judge", "id")),
                    field="judge.id",
                    hint="write judge: <id> to reuse that model, or give the judge another id",
                )
            )
    for i, spec in enumerate(metrics):
        own = getattr(spec, "judge", None)
        panel = list(getattr(spec, "judges", None) or [])
        for name in panel:
            if name not in judge_ids and (judge is None or name != judge.id):
                issues.append(
                    Issue(
                        f"panel judge '{name}' is not a model",
                        file=doc.file,
                        line=doc.line_of(("metrics", i, "judges")),
                        field=f"metrics[{i}].judges",
                        hint="list ids from 'models', 'judge' or 'judges'",
                    )
                )
        if own is not None and own not in judge_ids and (judge is None or own != judge.id):
            issues.append(
                Issue(
                    f"judge '{own}' is not one of the models",
                    file=doc.file,
                    line=doc.line_of(("metrics", i, "judge")),
                    field=f"metrics[{i}].judge",
                )
            )
        needs = spec_needs_judge(spec)
        if needs and own is None and not panel and judge is None and suite.judge is None:
            issues.append(
                Issue(
                    f"metric '{spec.name}' needs a judge model",
                    file=doc.file,
                    line=doc.line_of(("metrics", i)),
                    field=f"metrics[{i}]",
                    hint="add 'judge: <model id>' to the suite or to the metric",
                )
            )
    return judge


def spec_needs_judge(spec: MetricSpec) -> bool:
    from panopticon.judges.base import build_metric

    return bool(build_metric(spec).needs_judge)


def _api_key(m: ModelSpec, env: Mapping[str, str]) -> tuple[str | None, tuple[str, str] | None]:
    if m.provider == "fake":
        return None, None
    name = m.api_key_env
    if name is None:
        if m.base_url is not None:
            return None, None  # a local or self-hosted endpoint: a key is optional
        name = DEFAULT_KEY_ENV.get(m.provider)
        if name is None:
            return None, None
        if m.provider == "google" and not env.get(name) and env.get("GEMINI_API_KEY"):
            name = "GEMINI_API_KEY"
    value = env.get(name)
    if not value:
        return None, (
            f"model '{m.id}' needs an API key, and the environment variable {name} is not set",
            f"export {name}=... (or set api_key_env to the variable that holds the key)",
        )
    return value, None
