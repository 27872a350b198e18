"""``panopticon mock-server``: the bundled OpenAI-compatible server, for tests and demos."""

from __future__ import annotations

import typer

from panopticon import aio
from panopticon.cli.output import console, handle_errors
from panopticon.errors import ConfigError, Issue

__all__ = ["mock_server", "parse_pairs"]


def parse_pairs(values: list[str], option: str) -> dict[str, float]:
    out = {}
    for item in values:
        name, sep, number = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = float(number)
        except ValueError:
            raise ConfigError(
                Issue(
                    f"'{item}' is not NAME=NUMBER",
                    field=option,
                    hint=f"for example {option} mock-frontier=0.9",
                )
            ) from None
    return out


@handle_errors
def mock_server(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8765, help="Port (0 picks a free one)."),
    profile: str = typer.Option(
        "default", help="'demo' sets the demo models' quality and latency."
    ),
    latency_ms: float | None = typer.Option(None, help="Latency of every answer."),
    jitter_ms: float | None = typer.Option(None, help="Uniform jitter around the latency."),
    rate_429: float | None = typer.Option(None, min=0, max=1, help="Share answered 429."),
    rate_500: float | None = typer.Option(None, min=0, max=1, help="Share answered 500."),
    rate_timeout: float | None = typer.Option(
        None, min=0, max=1, help="Share held until the client times out."
    ),
    retry_after: float | None = typer.Option(None, help="Retry-After of a 429, seconds."),
    judge_nonsense_rate: float | None = typer.Option(
        None, min=0, max=1, help="Share of judge answers with no score."
    ),
    quality: list[str] = typer.Option(
        [], help="MODEL=0..1: how judges score that model's answers (repeatable)."
    ),
    model_latency: list[str] = typer.Option(
        [], help="MODEL=MS: latency of one model (repeatable)."
    ),
    seed: int = typer.Option(0, help="Seed of the fault injection."),
    api_key: str | None = typer.Option(None, help="Require this key (401 otherwise)."),
) -> None:
    """Serve a mock LLM (OpenAI, Anthropic and Gemini formats) with injected faults."""
    from panopticon.mockllm.behaviour import MockConfig
    from panopticon.mockllm.server import serve_forever

    if profile not in ("default", "demo"):
        raise ConfigError(
            Issue(f"unknown profile '{profile}'", field="--profile", hint="use default or demo")
        )
    config = MockConfig.demo() if profile == "demo" else MockConfig()
    changes = {
        "latency_ms": latency_ms,
        "jitter_ms": jitter_ms,
        "rate_429": rate_429,
        "rate_500": rate_500,
        "rate_timeout": rate_timeout,
        "retry_after_s": retry_after,
        "judge_nonsense_rate": judge_nonsense_rate,
    }
    config.update({k: v for k, v in changes.items() if v is not None})
    config.seed = seed
    config.quality.update(parse_pairs(quality, "--quality"))
    config.model_latency_ms.update(parse_pairs(model_latency, "--model-latency"))

    def ready(root: str) -> None:
        console.print(
            f"mock LLM listening on {root} (OpenAI base_url: {root}/v1; stats: {root}/_mock/stats)",
            highlight=False,
        )

    try:
        aio.run(serve_forever(config, host, port, api_key, on_ready=ready))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise ConfigError(
            Issue(
                f"cannot listen on {host}:{port}: {exc.strerror}",
                field="--port",
                hint="choose another --port, or 0",
            )
        ) from None
