"""Online evaluation: rules and their versions, the ledger of what each rule did with each
production span, and budget windows shared by every worker."""

from __future__ import annotations

import sqlalchemy as sa

from panopticon.store.tables.base import JSONType, UTCDateTime, created_at, metadata, utcnow

__all__ = [
    "OnlineBudget",
    "OnlineInbox",
    "OnlineOutcome",
    "OnlineRule",
    "OnlineRuleVersion",
    "OnlineSettings",
]

# A rule by name; ``version`` is the one in force (its spec is in online_rule_version).
OnlineRule = sa.Table(
    "online_rule",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("priority", sa.Integer, nullable=False, default=0),
    sa.Column("version", sa.String(16), nullable=False),
    created_at(),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    sa.UniqueConstraint("workspace_id", "name"),
)

# Every version a rule has had, kept so that each score can say what produced it.
OnlineRuleVersion = sa.Table(
    "online_rule_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("rule_id", sa.ForeignKey("online_rule.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("spec", JSONType, nullable=False),
    created_at(),
    sa.UniqueConstraint("rule_id", "version"),
)

# The ledger: one row per (rule version, span): what happened and why.
OnlineOutcome = sa.Table(
    "online_outcome",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("rule_id", sa.ForeignKey("online_rule.id", ondelete="CASCADE"), nullable=False),
    sa.Column("rule_version", sa.String(16), nullable=False),
    sa.Column("trace_id", sa.String(64), nullable=False),
    sa.Column("span_id", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("dedup_key", sa.String(64)),
    sa.Column("cost_usd", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    # the sampling segment (``model=gpt-4o``) its per-hour minimum counts in
    sa.Column("segment", sa.String(200)),
    sa.Column("priority", sa.Integer, nullable=False, default=0),
    # waiting entries (pending, rate_limited) are not taken before this moment
    sa.Column("not_before", UTCDateTime),
    # running: when a worker took it (a worker that died lets go after the lease)
    sa.Column("claimed_at", UTCDateTime),
    # a backfill's entries carry its job (and are charged to its budget)
    sa.Column("job_id", sa.Integer),
    created_at(),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    sa.UniqueConstraint("rule_id", "rule_version", "trace_id", "span_id"),
    sa.Index("ix_online_outcome_trace", "workspace_id", "trace_id"),
    sa.Index("ix_online_outcome_rule_time", "rule_id", "created_at"),
    # workers take waiting entries by priority, oldest first
    sa.Index("ix_online_outcome_waiting", "outcome", "priority", "id"),
    sa.Index("ix_online_outcome_dedup", "workspace_id", "dedup_key"),
)

# New spans of workspaces that have an enabled rule, written by the trace writer in the
# transaction that stores them; the selector takes them (oldest first) and records what each
# rule does with each span in the ledger.
OnlineInbox = sa.Table(
    "online_inbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("workspace_id", sa.Integer, nullable=False),
    sa.Column("trace_id", sa.String(32), nullable=False),
    sa.Column("span_id", sa.String(16), nullable=False),
    sa.Column("start_time", UTCDateTime, nullable=False),
    created_at(),
)

# A budget over one period (scope: the workspace, or one rule), updated atomically.
OnlineBudget = sa.Table(
    "online_budget",
    metadata,
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), primary_key=True),
    sa.Column("scope", sa.String(80), primary_key=True),  # "workspace" or "rule:<name>"
    sa.Column("period", sa.String(8), primary_key=True),  # "day" or "month"
    sa.Column("period_start", UTCDateTime, primary_key=True),
    sa.Column("limit_usd", sa.Float, nullable=False),
    sa.Column("spent_usd", sa.Float, nullable=False, default=0.0),
    sa.Column("reserved_usd", sa.Float, nullable=False, default=0.0),
)

# A workspace's own online-evaluation budgets (each rule has its own in its spec).
OnlineSettings = sa.Table(
    "online_settings",
    metadata,
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), primary_key=True),
    sa.Column("usd_per_day", sa.Float),
    sa.Column("usd_per_month", sa.Float),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
)
