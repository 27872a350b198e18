"""``panopticon gateway keys``: the keys apps use to call the gateway, with their limits,
budgets, guardrails and cache. A key is printed once; only its hash is stored."""

from __future__ import annotations

import json
from typing import Any

import typer

from panopticon.cli.output import console, handle_errors
from panopticon.cli.tables import FORMAT_HELP, check_format, show_rows
from panopticon.errors import ConfigError, Issue

app = typer.Typer(help="The gateway: its keys.", no_args_is_help=True)
keys_app = typer.Typer(help="Gateway keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _json(value: str, field: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            Issue(f"not valid JSON: {exc.msg} at character {exc.pos}", field=field)
        ) from None


@keys_app.command("create")
@handle_errors
def create_cmd(
    name: str = typer.Option(..., "--name", help="A label to recognise the key by."),
    workspace: str = typer.Option("default", "--workspace", "-w", help="Workspace."),
    rpm: int | None = typer.Option(None, "--rpm", help="Requests per minute."),
    tpm: int | None = typer.Option(None, "--tpm", help="Tokens per minute."),
    budget_day: float | None = typer.Option(None, "--budget-day", help="USD per UTC day."),
    budget_month: float | None = typer.Option(None, "--budget-month", help="USD per month."),
    model: list[str] = typer.Option([], "--model", help="A model it may call (repeat)."),
    default_model: str | None = typer.Option(None, "--default-model", help="For /chat."),
    cache_ttl: int | None = typer.Option(None, "--cache-ttl", help="Cache answers (seconds)."),
    guardrail: list[str] = typer.Option(
        [],
        "--guardrail",
        help='A guardrail as JSON (repeat), e.g. \'{"metric": {"type": "pii"}, "on": "input", '
        '"action": "redact"}\'.',
    ),
    config: str | None = typer.Option(None, "--config", help="Every setting as one JSON object."),
) -> None:
    """Create a gateway key. It is printed once."""
    from panopticon.services.gateway_keys import create_gateway_key, parse_key_config
    from panopticon.services.runs import store
    from panopticon.settings import load_settings

    body: dict[str, Any] = _json(config, "--config") if config else {}
    given = {
        "rpm": rpm,
        "tpm": tpm,
        "budget_day_usd": budget_day,
        "budget_month_usd": budget_month,
        "default_model": default_model,
        "cache_ttl_s": cache_ttl,
    }
    body.update({k: v for k, v in given.items() if v is not None})
    if model:
        body["models"] = model
    if guardrail:
        body["guardrails"] = [_json(g, "--guardrail") for g in guardrail]
    settings_ = parse_key_config(body, field="--config")
    with store(load_settings()) as engine:
        info, key = create_gateway_key(engine, workspace, name, settings_)
    console.print(
        f"gateway key {info.id} ('{info.name}', workspace '{workspace}'):", highlight=False
    )
    console.print(key, highlight=False, soft_wrap=True)
    console.print(
        "Store it now: it cannot be shown again. Apps send it as the OpenAI SDK's api_key "
        "with base_url http://HOST:PORT/v1."
    )


@keys_app.command("list")
@handle_errors
def list_cmd(
    workspace: str | None = typer.Option(None, "--workspace", "-w"),
    fmt: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
) -> None:
    """List gateway keys and their settings (never the keys themselves)."""
    from panopticon.services.gateway_keys import list_gateway_keys
    from panopticon.services.runs import store
    from panopticon.settings import load_settings

    check_format(fmt)
    with store(load_settings()) as engine:
        rows = list_gateway_keys(engine)
    show_rows(
        console,
        ["id", "workspace", "name", "prefix", "settings", "created", "state"],
        [
            [
                k.id,
                k.workspace,
                k.name,
                k.prefix + "...",
                json.dumps(k.config.model_dump(mode="json", exclude_defaults=True)),
                f"{k.created_at:%Y-%m-%d}",
                "revoked" if k.revoked_at else "active",
            ]
            for k in rows
            if not workspace or k.workspace == workspace
        ],
        fmt,
        key="gateway_keys",
    )


@keys_app.command("revoke")
@handle_errors
def revoke_cmd(key_id: int = typer.Argument(...)) -> None:
    """Revoke a gateway key: refused within gateway_key_ttl_s (10 s by default)."""
    from panopticon.services.gateway_keys import revoke_gateway_key
    from panopticon.services.runs import store
    from panopticon.settings import load_settings

    with store(load_settings()) as engine:
        revoke_gateway_key(engine, key_id)
    console.print(f"gateway key {key_id} revoked (refused within the gateway's key TTL)")
