"""The answer cache: what it holds, and clearing or expiring it (admins), through the same
service as ``panopticon cache stats|clear|expire`` and ``/api/cache``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from panopticon.errors import ConfigError, Issue
from panopticon.services.access import AuthError, Principal
from panopticon.services.cache import cache_stats, clear_cache, parse_age
from panopticon.web.common import check_csrf, error_context, posted, principal_of, render
from panopticon.web.session import Session

router = APIRouter(prefix="/ui", include_in_schema=False)


def _page(
    request: Request,
    principal: Principal,
    session: Session,
    *,
    error: dict[str, Any] | None = None,
    form: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    stats = cache_stats(request.app.state.engine, principal.workspace)
    done = request.query_params  # what the last clear did (after its redirect)
    return render(
        request,
        "cache.html",
        {"stats": stats, "error": error, "form": form or {}, "done": done},
        status=status,
        principal=principal,
        session=session,
    )


@router.get("/cache")
def cache_page(request: Request) -> Response:
    principal, session = principal_of(request)
    return _page(request, principal, session)


@router.post("/cache")
async def cache_action(request: Request) -> Response:
    return await posted(request, _cache_action)


def _cache_action(request: Request, form: dict[str, Any]) -> Response:
    principal, session = principal_of(request)
    check_csrf(request, session, form)
    action = form.get("action", "")
    older_than = form.get("older_than", "").strip() or None
    try:
        principal.require("admin")
        if action not in ("clear", "expire"):
            raise ConfigError(Issue(f"unknown action '{action}'", field="action"))
        if action == "expire" and older_than is None:
            raise ConfigError(
                Issue("give an age to expire answers older than it", field="older_than")
            )
        delete, force = form.get("delete") == "on", form.get("force") == "on"
        if force and not delete:
            raise ConfigError(
                Issue(
                    "deleting completed runs' results needs 'also delete' checked",
                    field="force",
                )
            )
        out = clear_cache(
            request.app.state.engine,
            principal.workspace,
            older_than=parse_age(older_than, "older_than") if older_than else None,
            delete=delete,
            force=force,
        )
    except (ConfigError, AuthError) as exc:
        status = exc.status if isinstance(exc, AuthError) else 422
        return _page(
            request, principal, session, error=error_context(exc), form=form, status=status
        )
    done = {"retired": out.retired, "older_than": older_than or ""}
    if delete:
        done |= {
            "deleted": out.deleted,
            "restarted": ", ".join(map(str, out.runs_restarted)),
            "emptied": ", ".join(map(str, out.runs_emptied)),
            "running": ", ".join(map(str, out.skipped_running)),
        }
    return RedirectResponse("/ui/cache?" + urlencode(done), status_code=303)
