"""All tables, on one ``metadata``."""

from panopticon.store.tables.access import ROLES, SCOPES, ApiKey, RevokedSession
from panopticon.store.tables.base import metadata
from panopticon.store.tables.catalog import Dataset, DatasetItem, Metric, Query
from panopticon.store.tables.gateway import GatewayKey, GatewaySpend
from panopticon.store.tables.online import (
    OnlineBudget,
    OnlineInbox,
    OnlineOutcome,
    OnlineRule,
    OnlineRuleVersion,
    OnlineSettings,
)
from panopticon.store.tables.prompts import Prompt
from panopticon.store.tables.registry import Credential, Model, Provider, RateLimit
from panopticon.store.tables.runs import (
    RUN_STATUSES,
    Annotation,
    Job,
    JobShard,
    Pairwise,
    Result,
    Run,
    RunQuery,
    Score,
)
from panopticon.store.tables.traces import Span, Trace, TraceSettings
from panopticon.store.tables.workspace import Workspace

__all__ = [
    "ROLES",
    "RUN_STATUSES",
    "SCOPES",
    "Annotation",
    "ApiKey",
    "Credential",
    "Dataset",
    "DatasetItem",
    "GatewayKey",
    "GatewaySpend",
    "Job",
    "JobShard",
    "Metric",
    "Model",
    "OnlineBudget",
    "OnlineInbox",
    "OnlineOutcome",
    "OnlineRule",
    "OnlineRuleVersion",
    "OnlineSettings",
    "Pairwise",
    "Prompt",
    "Provider",
    "Query",
    "RateLimit",
    "Result",
    "RevokedSession",
    "Run",
    "RunQuery",
    "Score",
    "Span",
    "Trace",
    "TraceSettings",
    "Workspace",
    "metadata",
]
