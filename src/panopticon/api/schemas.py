"""Request and response bodies, named by role (``QueryCreate``, ``QueryPublic``, ...).

The catalog's input bodies live with their service (``services.catalog``), which also
shapes the dashboard's forms into them; they are re-exported here."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, Field

from panopticon.services.bodies import Body
from panopticon.services.catalog import MetricCreate as MetricCreate
from panopticon.services.catalog import MetricUpdate as MetricUpdate
from panopticon.services.catalog import QueryCreate as QueryCreate
from panopticon.services.catalog import QueryUpdate as QueryUpdate
from panopticon.services.gateway_keys import GatewayKeyConfig
from panopticon.services.moments import out_of_range
from panopticon.services.registry import CredentialCreate as CredentialCreate
from panopticon.services.registry import ModelCreate as ModelCreate
from panopticon.services.registry import ProviderCreate as ProviderCreate
from panopticon.services.registry import ProviderUpdate as ProviderUpdate

T = TypeVar("T")
RowId = Annotated[int, Field(ge=1, le=2_147_483_647)]


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_time(value: Any) -> Any:
    """A time as ISO 8601 text, never a bare number: the schema says ``date-time``, and a
    Unix time would be read in seconds or milliseconds by guess (``since=-76555`` was taken
    for 1969)."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and not _ISO_DATE.match(value.strip())
    ):
        raise ValueError("not an ISO 8601 time: give one with its zone, e.g. 2026-12-03T10:00:00Z")
    return value


def _representable(moment: datetime) -> datetime:
    """A time that can be put in UTC and compared, years from its ends (out_of_range)."""
    problem = out_of_range(moment)
    if problem:
        raise ValueError(problem)
    return moment


# A time a request names (since, until): ISO 8601 with its zone, as the schema says, within
# the years a database and Python can compare (9999-12-31T23:59:59-14:00 was a 500).
Moment = Annotated[AwareDatetime, BeforeValidator(_iso_time), AfterValidator(_representable)]


_Body = Body  # every body refuses unknown fields and what a database cannot store


class QueryPublic(BaseModel):
    id: int
    item: str
    type: str
    metadata: dict[str, Any]
    expected: str | None
    context: str | None
    external_id: str | None
    created_at: datetime


class MetricPublic(BaseModel):
    id: int
    item: str | None
    type: str
    name: str
    kind: str
    scale: list[float] | None
    threshold: float | None
    metadata: dict[str, Any]
    version: str
    created_at: datetime


class PagePublic(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
    total_exact: bool = Field(
        default=True,
        description="False when there are more matches than were counted: total is then a "
        "lower bound (results count up to 1,000 matches, or the end of the page asked for).",
    )


class KeyCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(pattern="^(admin|member|viewer)$")
    scope: str | None = Field(
        default=None,
        pattern="^ingest$",
        description="'ingest': the key may only send traces and scores (for apps).",
    )


class KeyPublic(BaseModel):
    id: int
    name: str
    prefix: str
    role: str
    scope: str | None = None
    workspace: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="Shown once: store it now.")


class ErrorDetail(BaseModel):
    message: str
    field: str | None = None
    hint: str | None = None


class ErrorPublic(BaseModel):
    error: ErrorDetail
    errors: list[ErrorDetail] = Field(default_factory=list)


class ModelPublic(BaseModel):
    id: str
    provider: str
    provider_name: str
    model: str
    base_url: str | None
    api_key_env: str | None
    credential: str | None
    params: dict[str, Any]
    concurrency: int | None
    price: dict[str, float] | None
    created_at: datetime
    updated_at: datetime


class ProviderPublic(BaseModel):
    id: int
    name: str
    kind: str
    base_url: str | None
    api_key_env: str | None
    credential: str | None
    created_at: datetime


class EvaluateQuery(_Body):
    query: str = Field(min_length=1, max_length=100_000)
    model_id: str = Field(min_length=1, max_length=200)
    theme: str | None = Field(default=None, max_length=200)
    evaluation_prompt_ids: list[RowId] = Field(default_factory=list, max_length=100)
    judge_model: str | None = Field(default=None, max_length=200)


class ScorePublic(BaseModel):
    metric: str
    value: float | None
    normalized: float | None
    passed: bool | None
    reasoning: str | None
    error: str | None
    judge_model: str | None


class EvaluationPublic(BaseModel):
    run_id: int
    status: str
    query_id: int
    model_id: str
    theme: str | None
    response: str | None
    error: str | None
    cached: bool
    latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    scores: list[ScorePublic]


class ResultPublic(BaseModel):
    """A score with its subject: a run's answer (run_id, result_id, query, theme), or a
    production trace or span (trace_id, span_id; the span's model, input and output)."""

    id: Any
    run_id: int | None
    result_id: Any
    query_id: int | None
    query: str | None
    theme: str | None
    model_id: str | None
    metric_id: int
    metric: str
    value: float | None
    normalized: float | None
    passed: bool | None
    label: str | None = None
    reasoning: str | None
    error: str | None
    judge_model: str | None
    response: str | None
    latency_ms: float | None
    cost_usd: float | None
    created_at: datetime
    source: str = Field(description="run, online, guardrail, human or api")
    trace_id: str | None = None
    span_id: str | None = None
    rule_version: str | None = None


class CalibrationPublic(BaseModel):
    """A judge against people for one metric (and score source): Cohen's kappa on pass/fail,
    Spearman's rho on scores, each with its 95% interval clustered by subject."""

    metric: str
    source: str = Field(description="run, or a production score's source: online, guardrail, api")
    labelled: int = Field(description="labels paired with a judge's score (or its error)")
    results: int = Field(description="subjects labelled (answers, spans or traces): the n")
    judge_errors: int
    pass_pairs: int
    agreement: float | None
    agreement_low: float | None = Field(
        default=None, description="95% interval, clustered by subject (None: too few)"
    )
    agreement_high: float | None = None
    kappa: float | None
    kappa_low: float | None
    kappa_high: float | None
    value_pairs: int
    spearman: float | None
    spearman_low: float | None
    spearman_high: float | None


class ProductionScorePublic(BaseModel):
    """One model's production scores from one source, on one metric (``metric`` null: every
    quality metric, latency and cost left out, as the dashboard's mean by model)."""

    model: str = Field(
        description="The span's model (served, else requested); for a score of a whole trace, "
        "the trace's model, '(several models)' or '(model unknown)'"
    )
    source: str = Field(description="online, guardrail, human or api")
    label: str = Field(description="'model (source)', as the dashboard names the row")
    metric: str | None
    n: int = Field(description="scores with a value or a pass/fail")
    traces: int = Field(description="the traces behind them: the independent units")
    mean: float | None = Field(description="normalised 0..1, higher is better")
    low: float | None = Field(description="95% interval clustered by trace (null: too few)")
    high: float | None
    pass_rate: float | None
    pass_low: float | None
    pass_high: float | None
    errors: int = Field(description="scores that are errors (a judge that failed)")
    unscored: int = Field(
        description="scores with neither a 0..1 value nor a pass/fail (a label such as "
        "'thumbs_up'): in no mean"
    )
    labels: dict[str, int] = Field(description="the unscored scores' labels, with counts")
    verdict: str = Field(
        description="ok; 'too few' (one trace: a mean but no interval); 'no values' (no "
        "score with a value or a pass/fail)"
    )
    message: str | None = Field(description="why, when the verdict is not ok")


class ProductionTotalsPublic(BaseModel):
    source: str
    traces: int = Field(description="traces scored")
    scores: int
    score_errors: int
    input_tokens: int = Field(description="the judges' tokens")
    output_tokens: int
    cost_usd: float = Field(description="the judges' cost (cache hits free)")


class ProductionFiltersPublic(BaseModel):
    since: datetime | None
    model: str | None
    metric: str | None
    source: str | None = Field(description="null: every production source")


class ProductionSummaryPublic(BaseModel):
    """Production scores apart from the runs', as the dashboard's summary shows them."""

    filters: ProductionFiltersPublic
    totals: list[ProductionTotalsPublic] = Field(
        description="per source, every model and metric of it (the filters' since and source)"
    )
    models: list[ProductionScorePublic] = Field(
        description="per model and source, over every quality metric (or the metric asked for)"
    )
    scores: list[ProductionScorePublic] = Field(description="per model, source and metric")


class ProductionRowPublic(BaseModel):
    label: str
    model: str
    source: str
    overall: ProductionScorePublic | None = Field(
        description="every quality metric (the themes heatmap's 'production' cell); null "
        "when the row has only latency or cost scores"
    )
    cells: dict[str, ProductionScorePublic] = Field(description="metric -> its cell")


class ProductionHeatmapPublic(BaseModel):
    """Model (source) x metric, as the dashboard's heatmaps show production rows."""

    filters: ProductionFiltersPublic
    metrics: list[str]
    rows: list[ProductionRowPublic]


class EvaluateTheme(_Body):
    theme: str = Field(min_length=1, max_length=200)
    model_id: str = Field(min_length=1, max_length=200)
    evaluation_prompt_ids: list[RowId] = Field(default_factory=list, max_length=100)
    judge_model: str | None = Field(default=None, max_length=200)
    limit: int | None = Field(default=None, ge=1, le=1_000_000)


class JobShardPublic(BaseModel):
    shard: int
    status: str
    error: str | None


class JobPublic(BaseModel):
    id: int
    kind: str
    status: str
    run_id: int | None
    payload: dict[str, Any]
    done: int
    failed: int
    total: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    shards: list[JobShardPublic] = Field(
        description="On PostgreSQL, the slices a large job is split into for workers to share."
    )
    cost_usd: float | None = Field(
        default=None,
        description="The cost so far: a backfill's judging, a run's answers and judgements "
        "(the priced part; null when nothing is priced).",
    )
    unknown_cost: int = Field(default=0, description="Answers of unknown cost (no price).")


class QueryMatch(QueryPublic):
    score: float


class MetricMatch(MetricPublic):
    score: float


class SearchPublic(BaseModel, Generic[T]):
    mode: str = Field(description="semantic (embeddings) or text (matching words)")
    note: str | None
    items: list[T]


class RunPublic(BaseModel):
    id: int
    name: str
    status: str
    state: str = Field(description="status, or 'abandoned' for a run whose process died")
    stop_reason: str | None
    planned: int
    totals: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunDetail(RunPublic):
    suite: dict[str, Any]
    summary: dict[str, Any]
    gates: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The suite's gates: per model and metric, the value, threshold and passed.",
    )


class RunCreate(_Body):
    suite: dict[str, Any] = Field(description="A suite, as in a suite file, with inline queries.")


class AnswerScorePublic(BaseModel):
    metric: str
    value: float | None
    passed: bool | None
    reasoning: str | None
    error: str | None


class AnswerPublic(BaseModel):
    result_id: str
    model: str = Field(description="The model, or model@prompt with prompt variants.")
    prompt: str | None
    repeat: int
    response: str | None
    error: str | None
    latency_ms: float | None
    cost_usd: float | None
    scores: list[AnswerScorePublic]


class QueryAnswersPublic(BaseModel):
    query_id: int
    external_id: str | None
    theme: str
    text: str
    expected: str | None
    answers: list[AnswerPublic]
    file: str | None = Field(description="The file the run read it from (None: sent inline).")
    line: int | None
    label: str = Field(description="How messages name it: dataset id and file:line, else text.")


class CacheStatsPublic(BaseModel):
    answers: int = Field(description="Stored answers that later runs reuse unpaid.")
    judge_answers: int
    retired: int = Field(description="Answers kept in their runs but never reused.")
    models: list[dict[str, Any]]


class CacheClear(_Body):
    older_than: str | None = Field(
        default=None, max_length=20, description="Only answers older than this: 30m, 12h, 7d."
    )
    delete: bool = Field(default=False, description="Also delete results of runs not completed.")
    force: bool = Field(default=False, description="With delete: of completed runs too.")


class CacheClearPublic(BaseModel):
    retired: int
    deleted: int
    runs_emptied: list[int]
    runs_restarted: list[int]
    skipped_running: list[int]


class ComparisonPublic(BaseModel):
    a: str
    b: str
    unpaired: dict[str, int]
    tests: int = Field(
        default=0, description="tests corrected together (Holm), across every comparison returned"
    )
    metrics: list[dict[str, Any]]
    pairwise: list[dict[str, Any]] = []
    production: list[dict[str, Any]] = Field(
        default=[],
        description="The compared models' production scores (model, source, metric, n, "
        "traces, mean, low, high, prompt, note), unpaired: not in the paired test, each with "
        "its own 95% interval clustered by trace. `prompt`: in a prompts comparison, the "
        "prompt version that served the traffic (its spans' prompt.version), when they say "
        "so. `note`: the scores no mean can use (labels without a value, values on no 0..1 "
        "scale), in words; with no mean, why there is none",
    )
    production_note: str | None = Field(
        default=None, description="Why production scores are not paired (when there are any)"
    )


class ChatMessage(_Body):
    role: str = Field(pattern="^(system|user|assistant)$")
    content: str = Field(max_length=1_000_000)


class CompletionCreate(_Body):
    model_id: str = Field(min_length=1, max_length=200)
    prompt: str | None = Field(default=None, min_length=1, max_length=1_000_000)
    messages: list[ChatMessage] | None = Field(default=None, min_length=1, max_length=1000)
    params: dict[str, Any] = Field(default_factory=dict)


class CompletionPublic(BaseModel):
    model_id: str
    text: str | None
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    latency_ms: float | None
    attempts: int
    error: str | None


class CredentialPublic(BaseModel):
    """A credential's name and dates; the secret itself is never returned."""

    name: str
    created_at: datetime
    updated_at: datetime
    providers: list[str] = Field(description="Providers that use it.")


# -- gateway keys -----------------------------------------------------------------------------


class GatewayKeyCreate(GatewayKeyConfig, _Body):
    """A new gateway key: a name and its settings (every limit optional)."""

    name: str = Field(min_length=1, max_length=200)


class GatewayKeyPublic(BaseModel):
    id: int
    name: str
    prefix: str
    workspace: str
    config: GatewayKeyConfig
    created_at: datetime
    revoked_at: datetime | None


class GatewayKeyCreated(GatewayKeyPublic):
    key: str = Field(
        description="Shown once: store it now. Send it as the OpenAI SDK's api_key "
        "(Authorization: Bearer) or as x-api-key."
    )
