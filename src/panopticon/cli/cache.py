"""``panopticon cache``: what the answer cache holds, and clearing or expiring it.

The cache is the result store, which is also every run's checkpoint and record: by default
clearing *retires* answers (later runs no longer reuse them) and deletes nothing."""

from __future__ import annotations

import typer

from panopticon.cli.output import console, handle_errors, money
from panopticon.cli.tables import FORMAT_HELP, Column, check_format, show_rows

__all__ = ["app"]

app = typer.Typer(
    help="The answer cache: stats, clear, expire (retire by default; delete with --delete).",
    no_args_is_help=True,
)

_DELETE = typer.Option(
    False,
    "--delete",
    help="Also delete the results of runs that are not completed (they restart those "
    "answers on resume).",
)
_FORCE = typer.Option(
    False,
    "--force",
    help="With --delete: also delete the results of completed runs (their reports lose them).",
)


@app.command("stats")
@handle_errors
def stats_cmd(
    fmt: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
) -> None:
    """Reusable answers by model, their age and cost, and reusable judge answers."""
    from panopticon.services.cache import cache_stats
    from panopticon.services.runs import store
    from panopticon.settings import load_settings

    check_format(fmt)
    settings = load_settings()
    with store(settings) as engine:
        stats = cache_stats(engine, settings.workspace)
    show_rows(
        console,
        [
            "model",
            Column("answers", right=True),
            Column("oldest (UTC)", right=True),
            Column("newest (UTC)", right=True),
            Column("paid", money, right=True),
        ],
        [
            [
                m["model"],
                m["answers"],
                f"{m['oldest']:%Y-%m-%d %H:%M}",
                f"{m['newest']:%Y-%m-%d %H:%M}",
                m["cost_usd"],
            ]
            for m in stats.models
        ],
        fmt,
        title=f"Answer cache of workspace '{settings.workspace}'",
        key="models",
    )
    if fmt in ("json", "csv"):
        return
    console.print(
        f"{stats.answers} reusable answers, {stats.judge_answers} reusable judge answers; "
        f"{stats.retired} answers retired (kept in their runs, never reused).",
        soft_wrap=True,
    )


def _clear(older_than: str | None, delete: bool, force: bool) -> None:
    from panopticon.services.cache import clear_cache, parse_age
    from panopticon.services.runs import store
    from panopticon.settings import load_settings

    age = parse_age(older_than) if older_than is not None else None
    settings = load_settings()
    with store(settings) as engine:
        out = clear_cache(engine, settings.workspace, older_than=age, delete=delete, force=force)
    scope = f" older than {older_than}" if older_than else ""
    console.print(
        f"retired {out.retired} stored answers{scope}: later runs will call the providers "
        "again for them. Every result stays in its run (show, report, export and --resume "
        "are unchanged).",
        soft_wrap=True,
    )
    if delete:
        console.print(f"deleted {out.deleted} results{scope}", soft_wrap=True)
        if out.runs_restarted:
            console.print(
                "runs not completed lost those answers (a resume sends them again): "
                + ", ".join(map(str, out.runs_restarted)),
                soft_wrap=True,
            )
        if out.runs_emptied:
            console.print(
                "completed runs lost those answers from their reports (--force): "
                + ", ".join(map(str, out.runs_emptied)),
                soft_wrap=True,
            )
        elif not force:
            console.print("completed runs were kept whole (add --force to delete theirs too)")
        if out.skipped_running:
            console.print(
                "running runs were not touched: " + ", ".join(map(str, out.skipped_running))
            )


@app.command("clear")
@handle_errors
def clear_cmd(
    older_than: str | None = typer.Option(
        None, "--older-than", help="Only answers older than this: 30m, 12h, 7d, 2w."
    ),
    delete: bool = _DELETE,
    force: bool = _FORCE,
) -> None:
    """Stop reusing stored answers (all of them, or --older-than)."""
    _clear(older_than, delete, force)


@app.command("expire")
@handle_errors
def expire_cmd(
    older_than: str = typer.Option(..., "--older-than", help="30m, 12h, 7d, 2w."),
    delete: bool = _DELETE,
    force: bool = _FORCE,
) -> None:
    """Stop reusing stored answers older than an age (as `clear --older-than`)."""
    _clear(older_than, delete, force)
