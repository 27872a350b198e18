"""Judge calls as a unit of their own, outside any run: the judge a metric asks, cached
judgements reused, the spending gate, and crashes recorded as failures."""

from __future__ import annotations

import asyncio
from typing import Any

from panopticon.evaluation.judging import CachedJudgement, CallEstimate, Judging
from panopticon.evaluation.spec import ModelSpec
from panopticon.judges.base import MetricContext, build_metric, spec_class
from panopticon.mockllm.server import MockServer
from panopticon.providers.base import ChatResponse, ProviderConfig, create_provider
from panopticon.providers.client import ModelClient

CTX = MetricContext(
    query="What is the capital of France?",
    response="Paris.",
    messages=[{"role": "user", "content": "What is the capital of France?"}],
)


class Gate:
    """Records what passed; refuses while ``closed`` says why."""

    def __init__(self, closed: str | None = None) -> None:
        self.closed = closed
        self.opened = 0
        self.closed_calls: list[tuple[bool, int]] = []

    async def open(self, spec: ModelSpec, estimate: CallEstimate) -> str | None:
        if self.closed is None:
            self.opened += 1
        return self.closed

    async def close(
        self,
        spec: ModelSpec,
        estimate: CallEstimate,
        response: ChatResponse | None,
        attempts: int,
    ) -> float | None:
        self.closed_calls.append((response is not None, attempts))
        return 0.001 if response is not None else None


def rubric() -> Any:
    cls = spec_class("rubric")
    assert cls is not None
    return build_metric(cls.model_validate({"name": "q", "type": "rubric", "prompt": "Correct?"}))


def judging(mock: MockServer, gate: Gate, cache: dict[str, CachedJudgement]) -> Judging:
    spec = ModelSpec(id="judge", model="mock-judge", base_url=mock.url)
    provider = create_provider(ProviderConfig("openai", base_url=mock.url, timeout_s=5))
    client = ModelClient(provider, concurrency=2)
    return Judging({"judge": client}, {"judge": spec}, gate, cache=cache)


def test_a_metric_is_judged_outside_a_run_and_the_judgement_is_reused(mock: MockServer) -> None:
    gate, cache = Gate(), {}

    async def go() -> tuple[Any, Any]:
        unit = judging(mock, gate, cache)
        spec = unit.specs["judge"]
        first = await unit.score(rubric(), CTX, spec)
        again = await unit.score(rubric(), CTX, spec)
        await unit.clients["judge"].aclose()
        return first, again

    first, again = asyncio.run(go())
    assert first.result.error is None and first.result.value is not None
    assert first.result.judge.cost_usd == 0.001 and not first.result.judge.cached
    assert again.result.judge.cached and again.result.value == first.result.value
    assert first.keys == again.keys and len(cache) == 1
    assert gate.opened == 1 and gate.closed_calls == [(True, 1)]  # the second call was free
    assert mock.stats.by_route["chat"] == 1


def test_a_call_the_gate_refuses_is_a_failed_judgement_and_is_not_sent(mock: MockServer) -> None:
    gate = Gate(closed="the rule:helpfulness day budget would be passed")

    async def go() -> Any:
        unit = judging(mock, gate, {})
        try:
            return await unit.score(rubric(), CTX, unit.specs["judge"])
        finally:
            await unit.clients["judge"].aclose()

    scored = asyncio.run(go())
    assert scored.result.value is None and "budget would be passed" in (scored.result.error or "")
    assert mock.stats.by_route.get("chat", 0) == 0 and gate.closed_calls == []


def test_a_metric_that_crashes_is_recorded_as_a_failure(mock: MockServer) -> None:
    class Broken:
        needs_judge = False

        async def score(self, ctx: MetricContext, judge: Any) -> Any:
            raise ZeroDivisionError("division by zero")

    async def go() -> Any:
        unit = judging(mock, Gate(), {})
        try:
            return await unit.score(Broken(), CTX, None)  # type: ignore[arg-type]
        finally:
            await unit.clients["judge"].aclose()

    scored = asyncio.run(go())
    assert scored.result.error == "metric crashed: ZeroDivisionError: division by zero"
