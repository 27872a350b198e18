"""Judge calls as a unit of their own: which judge model a metric asks, the cache key of each
call, reuse of a cached judgement, the spending gate every call passes, and turning a
metric's crash into a recorded failure.

The runner uses it for offline runs; online evaluation uses the same unit on production
traces with its own cache and gate (a budget held per call), so a judgement means the same
thing wherever it was made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from panopticon.evaluation.keys import judge_key
from panopticon.evaluation.spec import ModelSpec
from panopticon.judges.base import JudgeCall, JudgeReply, Metric, MetricContext, MetricResult
from panopticon.providers.base import ChatRequest, ChatResponse
from panopticon.providers.client import ModelClient

__all__ = ["CachedJudgement", "CallEstimate", "JudgeGate", "Judging", "Scored"]

# a stored judgement: (text, judge model id, input tokens, output tokens, cost)
CachedJudgement = tuple[str, str, int | None, int | None, float | None]


@dataclass(frozen=True, eq=False)
class CallEstimate:
    """How big one judge call may be, known before it is sent: ``tokens`` is a guess
    (characters / 4 plus the answer), ``max_input_tokens`` a bound (no tokenizer makes more
    tokens than the UTF-8 bytes, plus a few per message) and ``max_output_tokens`` the
    call's ``max_tokens`` (None: unbounded). Each call has its own estimate: a gate that
    holds money for a call finds its hold again by it."""

    tokens: int
    max_input_tokens: int
    max_output_tokens: int | None


class JudgeGate(Protocol):
    """What each judge call that would leave the process passes through."""

    async def open(self, spec: ModelSpec, estimate: CallEstimate) -> str | None:
        """None: the call may be sent. Otherwise why not (a budget, a stopping run); the
        reason becomes the judgement's error."""

    async def close(
        self,
        spec: ModelSpec,
        estimate: CallEstimate,
        response: ChatResponse | None,
        attempts: int,
    ) -> float | None:
        """The call ended (``response`` None: it failed after ``attempts`` requests).
        Returns what it cost, None when unknown. Called once for every open that said yes."""


def estimate_call(messages: list[dict[str, Any]], params: Mapping[str, Any]) -> CallEstimate:
    texts = [str(m.get("content", "")) for m in messages]
    max_out = params.get("max_tokens")
    return CallEstimate(
        tokens=sum(len(t) for t in texts) // 4 + 256,
        max_input_tokens=sum(len(t.encode()) + 8 for t in texts),
        max_output_tokens=int(max_out) if isinstance(max_out, int) else None,
    )


@dataclass(frozen=True)
class Scored:
    """One metric's result on one answer, and the cache keys of the judge calls it made
    (the last one is the judgement the score rests on)."""

    result: MetricResult
    keys: list[str]
    # a judge call it needed was never sent (the run is stopping, its budget is spent): not
    # a failure, and not a judgement; the runner leaves it to the resume
    not_sent: bool = False


def judge_params(spec: ModelSpec) -> dict[str, Any]:
    """A judge's sampling parameters: deterministic unless the model's params say otherwise."""
    return {"temperature": 0, **spec.params}


class Judging:
    """Judge calls for metrics.

    ``specs``: every model a metric may name as its judge (by id), ``clients`` their
    clients (retries, rate limits and concurrency live there). ``cache``: judgements by key,
    read when ``reuse`` and written after every successful call."""

    def __init__(
        self,
        clients: Mapping[str, ModelClient],
        specs: Mapping[str, ModelSpec],
        gate: JudgeGate,
        *,
        cache: MutableMapping[str, CachedJudgement],
        reuse: bool = True,
    ) -> None:
        self.clients = clients
        self.specs = specs
        self.gate = gate
        self.cache = cache
        self.reuse = reuse

    def call_for(
        self, default: ModelSpec | None, keys: list[str], refused: list[str] | None = None
    ) -> JudgeCall:
        """The judge call a metric gets: ``default`` (its own or the suite's judge), or with
        ``model=`` any judge in ``specs`` (a panel asks several). Each call's key is
        appended to ``keys``; each call the gate refused (never sent), to ``refused``."""
        refusals = refused if refused is not None else []
        callers: dict[str, JudgeCall] = {}

        async def call(
            messages: list[dict[str, str]], json_mode: bool, model: str | None = None
        ) -> JudgeReply:
            spec = self.specs.get(model) if model is not None else default
            if spec is None:
                if model is not None:
                    return JudgeReply(None, model, error=f"no judge model '{model}'")
                return JudgeReply(None, "none", error="no judge model for this metric")
            if spec.id not in callers:
                callers[spec.id] = self._caller(spec, keys, refusals)
            return await callers[spec.id](messages, json_mode)

        return call

    def _caller(self, spec: ModelSpec, keys: list[str], refusals: list[str]) -> JudgeCall:
        client = self.clients[spec.id]
        params = judge_params(spec)
        fingerprint = {**spec.settings_fingerprint(), "params": params}
        allow_json = bool(spec.options.get("json_mode", True))

        async def call(
            messages: list[dict[str, str]], json_mode: bool, model: str | None = None
        ) -> JudgeReply:
            json_mode = json_mode and allow_json
            key = judge_key(fingerprint, messages, json_mode)
            keys.append(key)
            hit = self.cache.get(key) if self.reuse else None
            if hit is not None:
                text, judge_model, tokens_in, tokens_out, cost = hit
                return JudgeReply(text, judge_model, tokens_in, tokens_out, cost, cached=True)
            estimate = estimate_call(messages, params)
            refused = await self.gate.open(spec, estimate)
            if refused is not None:
                refusals.append(refused)
                return JudgeReply(None, spec.id, error=refused)
            response: ChatResponse | None = None
            attempts = 0
            try:
                outcome = await client.call(
                    ChatRequest(spec.provider_model, messages, params, json_mode), estimate.tokens
                )
                response, attempts = outcome.response, outcome.attempts
            finally:
                cost = await asyncio.shield(self.gate.close(spec, estimate, response, attempts))
            if response is None:
                assert outcome.error is not None
                return JudgeReply(None, spec.id, error=outcome.error.message)
            r = response
            self.cache[key] = (r.text, spec.id, r.input_tokens, r.output_tokens, cost)
            return JudgeReply(r.text, spec.id, r.input_tokens, r.output_tokens, cost)

        return call

    async def score(self, metric: Metric, ctx: MetricContext, default: ModelSpec | None) -> Scored:
        """Score one answer. A metric that crashes is a recorded failure, never a crash of
        the caller (STYLE.md: failures are data)."""
        keys: list[str] = []
        refused: list[str] = []
        judge = self.call_for(default, keys, refused) if metric.needs_judge else None
        try:
            result = await metric.score(ctx, judge)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            result = MetricResult(
                None, None, None, error=f"metric crashed: {type(exc).__name__}: {exc}"
            )
        return Scored(result, keys, not_sent=bool(refused))
