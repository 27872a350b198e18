"""Online evaluation as pure logic: rules (what to judge on which production traffic),
deterministic sampling, budgets by reservation, deduplication keys and the ledger's
outcomes. No database and no framework here: services persist rules and outcomes, and the
job system runs the judging (ARCHITECTURE.md, "The production flow")."""

from panopticon.online.budget import BudgetWindow, Reservation, period_start
from panopticon.online.outcomes import Decision, Outcome
from panopticon.online.rules import RuleFilter, RuleSpec, Sampling, parse_rule, rule_version
from panopticon.online.select import Candidate, decide, dedup_key, filter_reason, sample_point

__all__ = [
    "BudgetWindow",
    "Candidate",
    "Decision",
    "Outcome",
    "Reservation",
    "RuleFilter",
    "RuleSpec",
    "Sampling",
    "decide",
    "dedup_key",
    "filter_reason",
    "parse_rule",
    "period_start",
    "rule_version",
    "sample_point",
]
