"""JUnit XML for CI: one test case per query and model (``model@prompt`` with prompt
variants), failed when an answer failed, a score failed or a score did not pass."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Any

from panopticon.evaluation.queries import place_label

__all__ = ["render_junit"]


def _case_name(row: dict[str, Any]) -> str:
    text = " ".join(str(row["query"]).split())
    text = text if len(text) <= 80 else text[:79] + "…"
    place = place_label(row.get("query_file"), row.get("query_line"))
    ident = row.get("query_external_id")
    if ident is not None and place:
        ident = f"{ident} ({place})"
    ident = ident or place
    return f"{ident}: {text}" if ident else text


def render_junit(run: dict[str, Any], rows: list[dict[str, Any]]) -> bytes:
    """``run``: the run's id and name; ``rows``: its results with their scores, as
    :func:`panopticon.services.runs.summary_rows` gives them."""
    cases: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        cases[(row["model"], row["query_id"])].append(row)
    suite = ET.Element(
        "testsuite",
        name=f"panopticon run {run['id']}: {run['name']}",
        tests=str(len(cases)),
    )
    failures = errors = 0
    for (model, _), results in sorted(cases.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        case = ET.SubElement(
            suite,
            "testcase",
            classname=model,
            name=_case_name(results[0]),
            time=f"{sum((r['latency_ms'] or 0) for r in results) / 1000:.3f}",
        )
        problems: list[str] = []
        failed_errors: list[str] = []
        for r in sorted(results, key=lambda r: r["repeat"]):
            where = f" (repeat {r['repeat']})" if len(results) > 1 else ""
            if r["error"]:
                failed_errors.append(f"answer failed{where}: {r['error']}")
            for metric, s in sorted(r["scores"].items()):
                if s["error"]:
                    failed_errors.append(f"{metric}{where}: score error: {s['error']}")
                elif s["passed"] is False:
                    value = "" if s["value"] is None else f" = {s['value']:g}"
                    reason = f": {s['reasoning']}" if s.get("reasoning") else ""
                    problems.append(f"{metric}{value} did not pass{where}{reason}")
        if failed_errors:
            errors += 1
            node = ET.SubElement(case, "error", message=failed_errors[0][:200])
            node.text = "\n".join(failed_errors + problems)
        elif problems:
            failures += 1
            node = ET.SubElement(case, "failure", message=problems[0][:200])
            node.text = "\n".join(problems)
        answer = results[0].get("response")
        if answer:
            ET.SubElement(case, "system-out").text = answer
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    ET.indent(suite)
    data: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    return data + b"\n"
