"""A provider with the policies every call needs: retries, back-off, limits, a breaker.

:meth:`ModelClient.call` never raises for a failed call: it returns a :class:`CallOutcome`
holding the error, so the runner records it (failures are data).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from panopticon.errors import ProviderError
from panopticon.providers.base import ChatRequest, ChatResponse, Provider
from panopticon.providers.limits import AdaptiveLimiter, RateBucket, TokenBucket
from panopticon.providers.redact import mask_secrets

__all__ = ["CallOutcome", "ModelClient", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 120.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before attempt ``attempt + 1``: Retry-After if given, else jittered 2^n."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s) * (1.0 + 0.1 * rng.random())
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return ceiling / 2 + rng.random() * ceiling / 2


@dataclass(frozen=True)
class CallOutcome:
    response: ChatResponse | None
    error: ProviderError | None
    attempts: int
    latency_ms: float | None
    sent: bool = True  # False when no request left this process (breaker open, stopped)


class ModelClient:
    """One model endpoint with its limits. Shared by every call to that endpoint in a run."""

    def __init__(
        self,
        provider: Provider,
        *,
        concurrency: int,
        rpm: int | RateBucket | None = None,
        tpm: int | RateBucket | None = None,
        retry: RetryPolicy | None = None,
        adaptive: bool = True,
        should_stop: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], object] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.limiter = AdaptiveLimiter(concurrency, adaptive=adaptive)
        self.rpm = TokenBucket(rpm) if isinstance(rpm, int) else rpm
        self.tpm = TokenBucket(tpm) if isinstance(tpm, int) else tpm
        self.retry = retry or RetryPolicy()
        self.should_stop = should_stop
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._successes = 0
        self.down_reason: str | None = None
        self.retries = 0  # calls sent again after a failure (progress shows them)
        self.rate_limited = 0  # 429 answers among those failures
        config = provider.config
        headers = (config.options.get("headers") or {}) if config.options else {}
        # whatever an error says, these never leave this object
        self._secrets = [config.api_key, *(str(v) for v in headers.values())]

    async def call(self, request: ChatRequest, estimated_tokens: int = 0) -> CallOutcome:
        outcome = await self._call(request, estimated_tokens)
        if outcome.error is not None:
            error = outcome.error
            masked = ProviderError(
                mask_secrets(error.message, self._secrets),
                status=error.status,
                retry_after=error.retry_after,
                retryable=error.retryable,
                kind=error.kind,
            )
            return CallOutcome(None, masked, outcome.attempts, outcome.latency_ms, outcome.sent)
        response = outcome.response
        if response is not None and any(k and k in response.text for k in self._secrets):
            # an endpoint that answers with the key it was sent: the key is not an answer
            clean = dataclasses.replace(
                response, text=mask_secrets(response.text, self._secrets, limit=None)
            )
            return dataclasses.replace(outcome, response=clean)
        return outcome

    async def _call(self, request: ChatRequest, estimated_tokens: int) -> CallOutcome:
        attempt = 0
        while True:
            attempt += 1
            if self.down_reason is not None:
                return CallOutcome(
                    None,
                    ProviderError(self.down_reason, kind="connection"),
                    attempt - 1,
                    None,
                    sent=attempt > 1,
                )
            if attempt > 1 and self.should_stop():
                return CallOutcome(
                    None,
                    ProviderError("interrupted before the next retry", kind="interrupted"),
                    attempt - 1,
                    None,
                    sent=True,
                )
            if self.rpm is not None:
                await self.rpm.take(1)
            if self.tpm is not None:
                await self.tpm.take(estimated_tokens)
            generation = await self.limiter.acquire()
            started = time.perf_counter()
            try:
                response = await self.provider.complete(request)
            except ProviderError as error:
                self.limiter.release()
                if error.kind == "rate_limit":
                    self.limiter.on_rate_limited(generation)
                    self.rate_limited += 1
                if attempt > self.retry.max_retries or not self.provider.should_retry(error):
                    if attempt > 1:
                        error = ProviderError(
                            f"{error.message} (after {attempt} attempts)",
                            status=error.status,
                            retry_after=error.retry_after,
                            retryable=error.retryable,
                            kind=error.kind,
                        )
                    if error.kind == "connection" and self._successes == 0:
                        # One call has used all its retries on an endpoint that never
                        # answered: the others fail now instead of each retrying for minutes.
                        self.down_reason = (
                            f"not sent: the endpoint did not answer any call "
                            f"({error.message}); resume the run once it is up"
                        )
                    return CallOutcome(None, error, attempt, None)
                self.retries += 1
                await self._sleep(
                    self.retry.delay(
                        attempt,
                        error.retry_after,  # type: ignore[misc]
                        self._rng,
                    )
                )
                continue
            latency_ms = (time.perf_counter() - started) * 1000.0
            self.limiter.release()
            self.limiter.on_success()
            self._successes += 1
            if self.tpm is not None:
                used = (response.input_tokens or 0) + (response.output_tokens or 0)
                await self.tpm.adjust(used - estimated_tokens)
            return CallOutcome(response, None, attempt, latency_ms)

    async def aclose(self) -> None:
        await self.provider.aclose()
