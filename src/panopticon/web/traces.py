"""The trace explorer's pages under /ui: the trace list with filters, a trace as a
waterfall with each span's conversation, a session as one thread, and people's labels on
traces and spans. They call the same services as ``/api/traces``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from panopticon.errors import ConfigError, Issue
from panopticon.services import traces as service
from panopticon.services.ledger import OnlineLedger
from panopticon.services.traces import TraceFilters
from panopticon.web.common import check_csrf, float_param, principal_of, read_form, render

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

PERIODS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
FILTER_KEYS = (
    "period",
    "model",
    "user_id",
    "session_id",
    "tag",
    "status",
    "span_kind",
    "text",
    "min_latency_ms",
    "min_cost",
    "score_name",
    "max_score",
    "metadata_key",
    "metadata_value",
    "sort",
)


def _params(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip() for k in FILTER_KEYS}


def _filters(p: dict[str, str]) -> TraceFilters:
    period = PERIODS.get(p["period"])
    kinds = ("llm", "embedding", "retrieval", "tool", "agent", "chain", "guardrail", "other")
    if p["span_kind"] and p["span_kind"] not in kinds:
        raise ConfigError(Issue("unknown span kind", field="span_kind", hint=", ".join(kinds)))
    return TraceFilters(
        since=datetime.now(UTC) - period if period else None,
        model=p["model"] or None,
        user_id=p["user_id"] or None,
        session_id=p["session_id"] or None,
        tag=p["tag"] or None,
        status=p["status"] if p["status"] in ("ok", "error") else None,
        span_kind=p["span_kind"] or None,
        text=p["text"][:200] or None,
        min_latency_ms=float_param(p["min_latency_ms"], "min_latency_ms"),
        min_cost=float_param(p["min_cost"], "min_cost"),
        score_name=p["score_name"] or None,
        max_score=float_param(p["max_score"], "max_score"),
        metadata_key=p["metadata_key"] or None,
        metadata_value=p["metadata_value"] or None,
    )


@router.get("/traces")
def traces_page(request: Request) -> Response:
    principal, session = principal_of(request)
    p = _params(request)
    sort = p["sort"] if p["sort"] in service.SORTS else "-start_time"
    page = service.find_traces(
        request.app.state.engine,
        principal.workspace_id,
        _filters(p),
        sort=sort,
        limit=50,
        cursor=request.query_params.get("cursor") or None,
    )
    chosen = {k: v for k, v in p.items() if v}
    return render(
        request,
        "traces.html",
        {
            "page": page,
            "params": p,
            "periods": list(PERIODS),
            "sorts": service.SORTS,
            "next_href": (
                "/ui/traces?" + urlencode({**chosen, "cursor": page.next_cursor})
                if page.next_cursor
                else None
            ),
            "export": urlencode({k: v for k, v in chosen.items() if k != "period" and k != "sort"}),
        },
        principal=principal,
        session=session,
    )


def _pretty(value: Any) -> str:
    """JSON for a ``<pre>``, indented (the template escapes it); orjson: a trace page
    shows it for each of up to thousands of spans."""
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    return orjson.dumps(value, option=options, default=str).decode()


# a trace of up to this many spans is shown with every span open (a gateway call is one
# span); a bigger one shows its tree, and each span is read when opened
OPEN_SPANS = 3


def _waterfall(trace: dict[str, Any], *, open_spans: bool = False) -> list[SimpleNamespace]:
    """Each span of the tree with its bar (offset and width as percentages of the trace's
    duration), and with ``open_spans`` what its opened row shows. Objects, not dicts: the
    template reads a dozen fields of each of up to thousands of spans, and Jinja tries an
    attribute before a key (a dict's miss raises)."""
    start, end = trace["start_time"], trace["end_time"]
    total = max((end - start).total_seconds(), 1e-6)
    bars = []
    for s in trace["spans"]:
        offset = (s["start_time"] - start).total_seconds() / total * 100
        width = max((s["end_time"] - s["start_time"]).total_seconds() / total * 100, 0.4)
        bar = SimpleNamespace(
            **s,
            offset=round(min(offset, 99.6), 2),
            width=round(min(width, 100 - offset), 2),
            opened=None,
        )
        if open_spans:
            bar.opened = _opened(
                s,
                [x for x in trace["scores"] if x["span_id"] == s["span_id"]],
                [x for x in trace["labels"] if x["span_id"] == s["span_id"]],
            )
        bars.append(bar)
    return bars


def _opened(span: dict[str, Any], scores: list[Any], labels: list[Any]) -> dict[str, Any]:
    """What ``_trace_span.html`` shows of one span."""
    return {
        "s": SimpleNamespace(**{**span, "scores": scores, "labels": labels}),
        "attributes_json": _pretty(span["attributes"] or {}),
        "events_json": _pretty(span["events"]) if span["events"] else None,
    }


@router.get("/traces/{trace_id}")
def trace_page(request: Request, trace_id: str) -> Response:
    """The trace and its span tree (names, timings, status, models, tokens, cost); each
    span's input, output, documents, scores and attributes are read when it is opened."""
    principal, session = principal_of(request)
    engine = request.app.state.engine
    trace = service.get_trace(engine, principal.workspace_id, trace_id, details=False)
    small = trace["span_count"] <= OPEN_SPANS
    if small:
        trace = service.get_trace(engine, principal.workspace_id, trace_id)
    return render(
        request,
        "trace.html",
        {
            "trace": trace,
            "bars": _waterfall(trace, open_spans=small),
            "metadata_json": _pretty(trace["metadata"]) if trace["metadata"] else None,
            "online": OnlineLedger(request.app.state.engine, principal.workspace_id).for_trace(
                trace_id
            ),
            "saved": request.query_params.get("saved"),
            "annotator": f"key {principal.key_id or 'admin'}",
        },
        principal=principal,
        session=session,
    )


@router.get("/traces/{trace_id}/spans/{span_id}")
def span_page(request: Request, trace_id: str, span_id: str) -> Response:
    """One span whole: under its row in the trace's waterfall (htmx), or as its own page."""
    principal, session = principal_of(request)
    span = service.get_span(request.app.state.engine, principal.workspace_id, trace_id, span_id)
    return render(
        request,
        "_trace_span.html" if request.headers.get("HX-Request") else "trace_span.html",
        {
            **_opened(span, span["scores"], span["labels"]),
            "trace_id": trace_id.lower(),
            "fragment": bool(request.headers.get("HX-Request")),
        },
        principal=principal,
        session=session,
    )


@router.post("/traces/{trace_id}/label")
async def label(request: Request, trace_id: str) -> Response:
    principal, session = principal_of(request)
    form = await read_form(request)
    check_csrf(request, session, form)
    principal.require("member")
    passed = {"pass": True, "fail": False}.get(form.get("passed", ""))
    span_id = (form.get("span_id") or "").strip() or None
    annotator = (form.get("annotator") or "").strip()[:200] or f"key {principal.key_id or 'admin'}"
    service.label_trace(
        request.app.state.engine,
        principal.workspace_id,
        trace_id,
        span_id,
        form.get("metric", ""),
        annotator,
        value=float_param(form.get("value"), "value"),
        passed=passed,
        comment=(form.get("comment") or "").strip()[:10_000] or None,
    )
    return RedirectResponse(f"/ui/traces/{trace_id}?saved=1#labels", status_code=303)


def _turns(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A session as a thread: per trace, the newest user message and the answer."""
    turns = []
    for t in traces:
        spans = t["llm_spans"]
        user = None
        answer = None
        if spans:
            inputs = spans[0].get("input_messages") or []
            user = next((m for m in reversed(inputs) if m.get("role") == "user"), None)
            outputs = spans[-1].get("output_messages") or []
            answer = outputs[-1] if outputs else None
        turns.append(
            {
                "trace": t,
                "user": (user or {}).get("content") or t.get("input_text"),
                "answer": (answer or {}).get("content") or t.get("output_text"),
                "tool_calls": (answer or {}).get("tool_calls") or [],
            }
        )
    return turns


@router.get("/sessions/{session_id}")
def session_page(request: Request, session_id: str) -> Response:
    principal, session = principal_of(request)
    traces = service.get_session(request.app.state.engine, principal.workspace_id, session_id)
    return render(
        request,
        "traces_session.html",
        {"session_id": session_id, "turns": _turns(traces), "traces": traces},
        principal=principal,
        session=session,
    )
