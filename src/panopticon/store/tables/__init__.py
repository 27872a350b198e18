"""All tables, on one ``metadata``."""

from panopticon.store.tables.access import ROLES, ApiKey
from panopticon.store.tables.base import metadata
from panopticon.store.tables.catalog import Dataset, DatasetItem, Metric, Query
from panopticon.store.tables.registry import Model, Provider
from panopticon.store.tables.runs import (
    RUN_STATUSES,
    Annotation,
    Job,
    Pairwise,
    Result,
    Run,
    Score,
)
from panopticon.store.tables.workspace import Workspace

__all__ = [
    "ROLES",
    "RUN_STATUSES",
    "Annotation",
    "ApiKey",
    "Dataset",
    "DatasetItem",
    "Job",
    "Metric",
    "Model",
    "Pairwise",
    "Provider",
    "Query",
    "Result",
    "Run",
    "Score",
    "Workspace",
    "metadata",
]
