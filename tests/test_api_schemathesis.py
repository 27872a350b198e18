"""Schemathesis against the OpenAPI schema: generated requests to every operation never get
a 500, and every response matches the schema, documented errors included."""

from __future__ import annotations

import traceback
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as examples

from panopticon.api.app import create_app
from panopticon.settings import Settings

KEY = {"X-API-Key": "dev_api_key_for_testing"}


def test_every_operation_answers_generated_requests_without_500_or_schema_violation(
    settings: Settings,
) -> None:
    app = create_app(
        Settings(home=settings.home, database_url=settings.database_url, api_key=KEY["X-API-Key"]),
        env={},
    )
    failures: list[str] = []
    with TestClient(app) as client:
        client.post("/api/queries", headers=KEY, json={"item": "q", "type": "t"})
        client.post("/api/metrics", headers=KEY, json={"item": "Score from 1 to 10."})
        schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15
        for operation in operations:

            @given(case=operation.as_strategy())
            @examples(
                max_examples=12,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                # a schema-valid body may still fail a semantic check (a threshold off the
                # scale) with a 422 that names the field: that is not what this test is after
                case.call_and_validate(
                    headers=KEY, excluded_checks=[schemathesis.checks.positive_data_acceptance]
                )

            try:
                check()
            except Exception as exc:  # collect every operation's failure, then report
                failures.append(
                    f"{operation.label}: {type(exc).__name__}: {exc}\n"
                    + "".join(traceback.format_exception(exc))[-3000:]
                )
    assert failures == [], "\n\n".join(failures)
