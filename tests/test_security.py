"""Secrets and tenants, tried as an attacker would: nothing sent to the server makes it send
its own secrets anywhere, a workspace's key never leaves the provider call it is for, and
one workspace's key reaches nothing of another's, in the API or on the dashboard."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from panopticon import web
from panopticon.api.app import create_app
from panopticon.cli import app as cli_app
from panopticon.errors import ConfigError
from panopticon.mockllm.server import MockServer
from panopticon.providers.egress import EgressPolicy, EgressRefused, guarded_resolver
from panopticon.services.access import create_key
from panopticon.services.credentials import Credentials, new_key, rotate
from panopticon.services.runs import store
from panopticon.settings import Settings
from panopticon.store.tables import Credential, metadata
from tests.conftest import write

BOOT = "pk_operator_bootstrap_key_0123456789"
SERVER_SECRETS = {
    "PANOPTICON_API_KEY": BOOT,
    "OPENAI_API_KEY": "sk-operator-openai-0123456789abcdef",
    "PANOPTICON_DATABASE_URL": "postgresql://panopticon:hunter2-db-password@db/panopticon",
}
CHAT = {
    "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    "model": "listener",
}


class Listener:
    """An endpoint on 127.0.0.1 that records the key headers of every request, and answers
    like a chat endpoint, or with a redirect to ``redirect_to``."""

    def __init__(self, redirect_to: str | None = None, echo: bool = False) -> None:
        self.seen: list[dict[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.seen.append(
                    {h: self.headers.get(h) for h in ("Authorization", "api-key", "x-api-key")}
                )
                if redirect_to:
                    self.send_response(307)
                    self.send_header("Location", redirect_to + "/chat/completions")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = dict(CHAT)
                if echo:  # answers with the key it was sent, as a hostile endpoint may
                    text = f"your key is {self.headers.get('Authorization')}"
                    answer["choices"] = [{"message": {"content": text}, "finish_reason": "stop"}]
                body = orjson.dumps(answer)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def app_for(settings: Settings, env: dict[str, str] | None = None, **changes: Any) -> Any:
    """An app for this test's database. Its lifespan (job runner, trace writer) runs once,
    as under a server: a second client of a running app is ``another_client(app)``."""
    return create_app(
        Settings(home=settings.home, database_url=settings.database_url, api_key=BOOT, **changes),
        env=env or {},
    )


def errors_of(response: Any) -> dict[str, str]:
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def another_client(app: Any) -> closing[TestClient]:
    """Another browser (its own cookies) on an app already running in a ``with
    TestClient(app)`` block: not a second start-up and shut-down of the same app."""
    return closing(TestClient(app))


def wait_for_job(api: TestClient, job_id: int, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = api.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("completed", "failed"):
            return dict(job)
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def sign_in(client: TestClient, key: str) -> Any:
    form = client.get("/ui/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    return client.post("/ui/login", data={"key": key, "csrf": token.group(1)})


def csrf_of(page: str) -> str:
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None and token.group(1)
    return token.group(1)


# -- the leak -------------------------------------------------------------------------------


def test_a_member_cannot_make_the_server_send_its_secrets_to_a_listener(
    settings: Settings, listener: Listener
) -> None:
    """The attack that worked: a suite (or a registered model) naming a variable of the
    server's environment and the attacker's URL. Each is refused with a 4xx naming the field,
    and the listener never sees a key."""
    app = app_for(settings, env={**os.environ, **SERVER_SECRETS})
    with store(settings) as engine:
        member = {"X-API-Key": create_key(engine, "evil", "member", "m")[1]}
        admin = {"X-API-Key": create_key(engine, "evil", "admin", "a")[1]}
    with TestClient(app) as api:
        for name in SERVER_SECRETS:
            model = {"id": "x", "base_url": listener.url, "api_key_env": name}
            suite = {"name": "leak", "models": [model], "queries": [{"text": "hi"}]}
            r = api.post("/api/runs", headers=member, json={"suite": suite})
            assert r.status_code == 422, r.text
            assert "cannot choose its endpoint" in errors_of(r)["models[0].base_url"]
            del model["base_url"]  # the variable alone, to the official endpoint
            r = api.post("/api/runs", headers=member, json={"suite": suite})
            assert r.status_code == 422, r.text
            assert "environment variable" in errors_of(r)["models[0].api_key_env"]
            # nor as a judge
            judged = {**suite, "models": [{"id": "y", "provider": "fake"}], "judge": model}
            r = api.post("/api/runs", headers=member, json={"suite": judged})
            assert r.status_code == 422 and "judge.api_key_env" in errors_of(r), r.text

        # a model with no key no longer spends the operator's OPENAI_API_KEY
        plain = {"name": "p", "models": [{"id": "gpt-4o"}], "queries": [{"text": "hi"}]}
        r = api.post("/api/runs", headers=member, json={"suite": plain})
        assert r.status_code == 422 and "has no key" in errors_of(r)["models[0].credential"]

        # an admin of a workspace is not the operator: no variable of the server either
        r = api.post(
            "/api/models",
            headers=admin,
            json={"id": "x", "base_url": listener.url, "api_key_env": "PANOPTICON_API_KEY"},
        )
        assert r.status_code == 422 and "not one the operator allows" in errors_of(r)["api_key_env"]
        r = api.post(
            "/api/providers",
            headers=admin,
            json={"name": "mine", "kind": "openai", "api_key_env": "OPENAI_API_KEY"},
        )
        assert r.status_code == 422 and "api_key_env" in errors_of(r)
        # registered without a key, the admin's endpoint is called without one
        r = api.post(
            "/api/models", headers=admin, json={"id": "x", "model": "m", "base_url": listener.url}
        )
        assert r.status_code == 201, r.text
        r = api.post("/api/completion", headers=member, json={"model_id": "x", "prompt": "hi"})
        assert r.status_code == 200 and r.json()["text"] == "ok", r.text
        # a member cannot register models or providers at all
        assert api.post("/api/models", headers=member, json={"id": "z"}).status_code == 403
    assert len(listener.seen) == 1
    assert listener.seen == [{"Authorization": None, "api-key": None, "x-api-key": None}]


def test_a_suite_with_its_own_endpoint_cannot_send_the_workspaces_credential_there(
    settings: Settings, listener: Listener
) -> None:
    """With PANOPTICON_ALLOW_REQUEST_ENDPOINTS on, a member's suite may give a base_url, but
    not with a credential an admin stored: that would hand the secret to the member's
    server. A model an admin registers with both is called as registered."""
    app = app_for(settings, allow_request_endpoints=True)
    with store(settings) as engine:
        member = {"X-API-Key": create_key(engine, "team", "member", "m")[1]}
        admin = {"X-API-Key": create_key(engine, "team", "admin", "a")[1]}
    secret = "sk-team-secret-0123456789abcdef"
    with TestClient(app) as api:
        cred = {"name": "team-key", "secret": secret}
        assert api.post("/api/credentials", headers=admin, json=cred).status_code == 201
        model = {"id": "x", "model": "m", "base_url": listener.url, "credential": "team-key"}
        suite = {"name": "leak", "models": [model], "queries": [{"text": "hi"}]}
        r = api.post("/api/runs", headers=member, json={"suite": suite})
        assert r.status_code == 422, r.text
        assert "credential 'team-key'" in errors_of(r)["models[0].credential"]
        judged = {**suite, "models": [{"id": "y", "provider": "fake"}], "judge": model}
        r = api.post("/api/runs", headers=member, json={"suite": judged})
        assert r.status_code == 422 and "judge.credential" in errors_of(r), r.text
        # an admin's registered model may pair them
        model = {"id": "reg", "model": "m", "base_url": listener.url, "credential": "team-key"}
        assert api.post("/api/models", headers=admin, json=model).status_code == 201
        r = api.post("/api/completion", headers=member, json={"model_id": "reg", "prompt": "hi"})
        assert r.status_code == 200 and r.json()["text"] == "ok", r.text
    assert [s["Authorization"] for s in listener.seen] == [f"Bearer {secret}"]


def test_an_allowed_variable_goes_only_where_the_operator_pinned_it(
    settings: Settings, listener: Listener
) -> None:
    env = {"OPENAI_API_KEY": "sk-operator-openai-0123456789", "LISTENER_KEY": "listener-key-1"}
    app = app_for(settings, env=env, allowed_key_env=f"OPENAI_API_KEY,LISTENER_KEY={listener.url}")
    key = {"X-API-Key": BOOT}
    with TestClient(app) as api:
        # OPENAI_API_KEY is allowed, but only towards api.openai.com
        r = api.post(
            "/api/providers",
            headers=key,
            json={
                "name": "redirected",
                "kind": "openai",
                "base_url": listener.url,
                "api_key_env": "OPENAI_API_KEY",
            },
        )
        assert r.status_code == 422 and "api.openai.com" in errors_of(r)["base_url"], r.text
        official = {"name": "official", "kind": "openai", "api_key_env": "OPENAI_API_KEY"}
        assert api.post("/api/providers", headers=key, json=official).status_code == 201
        # LISTENER_KEY is pinned to the listener: it is sent there, and nowhere else
        pinned = {
            "name": "pinned",
            "kind": "openai",
            "base_url": listener.url,
            "api_key_env": "LISTENER_KEY",
        }
        assert api.post("/api/providers", headers=key, json=pinned).status_code == 201
        r = api.post("/api/models", headers=key, json={"id": "p", "provider": "pinned"})
        assert r.status_code == 201, r.text
        r = api.post("/api/completion", headers=key, json={"model_id": "p", "prompt": "hi"})
        assert r.status_code == 200 and r.json()["text"] == "ok", r.text
    assert listener.seen[0]["Authorization"] == "Bearer listener-key-1"


def test_a_suite_over_the_api_names_registered_models_and_providers(
    settings: Settings, mock: MockServer, job_worker: None
) -> None:
    """The way that works: an admin registers the provider (endpoint and credential); a
    member's suite names it, or a registered model by its id. A change to the provider
    applies to the next call."""
    mock_with_key = MockServer(api_key="sk-mock-required-key-42").start()
    try:
        key = {"X-API-Key": BOOT}
        with TestClient(app_for(settings)) as api:
            cred = {"name": "mock-key", "secret": "sk-mock-required-key-42"}
            assert api.post("/api/credentials", headers=key, json=cred).status_code == 201
            provider = api.post(
                "/api/providers",
                headers=key,
                json={"name": "team", "kind": "openai", "base_url": mock.url},
            ).json()
            assert api.post("/api/models", headers=key, json={"id": "m", "provider": "team"})
            suite = {
                "name": "registered",
                "models": ["m", {"id": "n", "provider": "team", "model": "mock-n"}],
                "queries": [{"text": "q?"}],
            }
            r = api.post("/api/runs", headers=key, json={"suite": suite})
            assert r.status_code == 202, r.text
            assert wait_for_job(api, r.json()["id"], key)["status"] == "completed"
            # the provider moves to an endpoint that needs the stored key: the next call uses both
            r = api.patch(
                f"/api/providers/{provider['id']}",
                headers=key,
                json={"base_url": mock_with_key.url, "credential": "mock-key"},
            )
            assert r.status_code == 200, r.text
            r = api.post("/api/completion", headers=key, json={"model_id": "m", "prompt": "hi"})
            assert r.status_code == 200 and r.json()["error"] is None, r.text
            assert mock_with_key.stats.answered == 1
    finally:
        mock_with_key.stop()


def test_a_bare_json_web_token_in_a_providers_error_is_masked_and_prose_is_not() -> None:
    from panopticon.providers.redact import mask_secrets
    from tests.test_ingest_ops import JWT

    assert mask_secrets(f"token {JWT} expired.") == "token *** expired."
    assert mask_secrets(f'{{"detail": "bad id_token", "got": "{JWT}"}}') == (
        '{"detail": "bad id_token", "got": "***"}'
    )
    # unsigned ("alg": "none"): header.payload. with an empty signature, still a credential
    unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."
    assert mask_secrets(f"token={unsigned} rejected") == "token=*** rejected"
    assert mask_secrets(f"got {unsigned}, expected a signature") == "got ***, expected a signature"
    prose = "model v1.2.3 from eyJump.min.js at docs.example.org/a.b.c was eyJhbGciOiJIUzI1NiJ9"
    assert mask_secrets(prose) == prose
    # two dotted parts ending a sentence are a name, not an unsigned token: its payload
    # is a JSON object too
    for prose in ("See eyJsonParserUtil.java. It fails.", "Build eyJ1234567890.12. out."):
        assert mask_secrets(prose) == prose


def test_a_provider_echoing_the_key_does_not_leak_it(
    settings: Settings, mock: MockServer, job_worker: None
) -> None:
    secret = "sk-live-echo-0123456789abcdef"
    key = {"X-API-Key": BOOT}
    with TestClient(app_for(settings)) as api:
        r = api.post("/api/credentials", headers=key, json={"name": "echo", "secret": secret})
        assert r.status_code == 201 and secret not in r.text
        r = api.post(
            "/api/providers",
            headers=key,
            json={"name": "echoing", "kind": "openai", "base_url": mock.url, "credential": "echo"},
        )
        assert r.status_code == 201, r.text
        r = api.post("/api/models", headers=key, json={"id": "m", "provider": "echoing"})
        assert r.status_code == 201, r.text
        mock.config.echo_key_in_errors = True
        seen: list[str] = []
        r = api.post("/api/completion", headers=key, json={"model_id": "m", "prompt": "hi"})
        assert (
            r.status_code == 200 and "Incorrect API key provided: Bearer ***" in r.json()["error"]
        ), r.json()["error"]
        seen.append(r.text)
        suite = {
            "name": "echo",
            "models": ["m"],
            "queries": [{"text": "q1?"}, {"text": "q2?"}],
            "metrics": [{"name": "short", "type": "length", "max": 100}],
        }
        r = api.post("/api/runs", headers=key, json={"suite": suite})
        assert r.status_code == 202, r.text
        job = wait_for_job(api, r.json()["id"], key)
        assert job["status"] == "failed" and job["run_id"], job
        run_id = job["run_id"]
        for path in (
            f"/api/jobs/{job['id']}",
            f"/api/runs/{run_id}",
            f"/api/runs/{run_id}/export?format=json",
            f"/api/runs/{run_id}/export?format=csv",
            f"/api/runs/{run_id}/export?format=jsonl",
            "/api/judge/results",
            "/api/runs",
            "/api/models",
            "/api/providers",
            "/api/credentials",
        ):
            page = api.get(path, headers=key)
            assert page.status_code == 200, (path, page.text)
            seen.append(page.text)
        assert "Incorrect API key provided" in seen[2]  # the error is kept, the key is not
        with another_client(api.app) as browser:
            assert sign_in(browser, BOOT).status_code == 200
            for path in ("/ui/runs", f"/ui/runs/{run_id}", "/ui/results", "/ui/models"):
                page = browser.get(path)
                assert page.status_code == 200, path
                seen.append(page.text)
    for text in seen:
        assert secret not in text
    # and nothing stored holds it in clear: every row of every table, read raw
    with store(settings) as engine, engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(sa.select(table)).all()
            assert secret not in repr(rows), table.name
        (token,) = conn.execute(sa.select(Credential.c.secret)).scalars()
    assert token.startswith("gAAAAA")  # a Fernet token


# -- egress -----------------------------------------------------------------------------------


def test_metadata_link_local_and_non_http_urls_are_refused(settings: Settings) -> None:
    key = {"X-API-Key": BOOT}
    with TestClient(app_for(settings)) as api:
        for url in (
            "http://169.254.169.254/latest/meta-data",
            "http://[fd00:ec2::254]/v1",
            "http://metadata.google.internal/computeMetadata/v1",
            "http://[fe80::1]/v1",
            "http://169.254.10.10:8080/v1",
            "http://[::ffff:169.254.169.254]/v1",
            "http://0.0.0.0:8000/v1",
            # 169.254.169.254 in the other forms that reach it
            "http://[::169.254.169.254]/v1",
            "http://[64:ff9b::a9fe:a9fe]/v1",
            "http://[2002:a9fe:a9fe::]/v1",
            "http://2852039166/v1",
            "http://0251.0376.0251.0376/v1",
            "http://0xa9.0xfe.0xa9.0xfe/v1",
            "file:///etc/passwd",
            "ftp://example.com/v1",
            "gopher://127.0.0.1:6379/_",
        ):
            body = {"name": "x", "kind": "openai", "base_url": url}
            r = api.post("/api/providers", headers=key, json=body)
            assert r.status_code == 422 and "base_url" in errors_of(r), (url, r.text)
            model = {"id": "x", "base_url": url}
            r = api.post("/api/models", headers=key, json=model)
            assert r.status_code == 422 and "base_url" in errors_of(r), (url, r.text)
    # the CLI's own suite files obey the same rule
    with pytest.raises(ConfigError, match="base_url"):
        from panopticon.evaluation.suite import load_suite

        load_suite(
            write(
                settings.home / "meta.yaml",
                """
                models: [{id: m, base_url: 'http://169.254.169.254/v1'}]
                queries: [{text: hi}]
                """,
            ),
            {},
        )


def test_private_addresses_are_refused_when_the_operator_says_so(
    settings: Settings, mock: MockServer
) -> None:
    key = {"X-API-Key": BOOT}
    with TestClient(app_for(settings, allow_private_urls=False)) as api:
        for url in (
            mock.url,
            "http://localhost:11434/v1",
            "http://10.1.2.3/v1",
            "http://2130706433:11434/v1",
            "http://127.1:11434/v1",
            "http://[::127.0.0.1]:11434/v1",
            "http://[64:ff9b::a00:1]/v1",
            "http://[2002:c0a8:101::]/v1",
        ):
            r = api.post(
                "/api/providers", headers=key, json={"name": "x", "kind": "openai", "base_url": url}
            )
            assert r.status_code == 422 and "private" in errors_of(r)["base_url"], r.text
        assert (
            api.post(
                "/api/providers",
                headers=key,
                json={"name": "x", "kind": "openai", "base_url": "https://api.example.com/v1"},
            ).status_code
            == 201
        )


def test_host_names_are_checked_by_the_addresses_they_resolve_to() -> None:
    """At connect time, not only when validated: a name that resolves to a refused address
    (DNS rebinding) is refused by the resolver aiohttp connects through."""
    import asyncio

    async def resolve(host: str, policy: EgressPolicy) -> list[Any]:
        resolver = guarded_resolver(policy)
        try:
            return list(await resolver.resolve(host, 80))
        finally:
            await resolver.close()

    with pytest.raises(EgressRefused, match="loopback or private"):
        asyncio.run(resolve("localhost", EgressPolicy(allow_private=False)))
    assert asyncio.run(resolve("localhost", EgressPolicy(allow_private=True)))
    with pytest.raises(EgressRefused, match="metadata"):
        asyncio.run(resolve("metadata.google.internal", EgressPolicy()))


@pytest.mark.parametrize("kind", ["openai", "anthropic", "google"])
@pytest.mark.parametrize("form", ["name", "decimal"])
def test_a_call_to_a_host_that_resolves_to_a_private_address_is_not_sent(
    listener: Listener, kind: str, form: str
) -> None:
    """Every provider kind checks the addresses it connects to, the SDKs speaking httpx
    too: a host name, or an address written as one number, that resolves to loopback."""
    import asyncio

    from panopticon.errors import ProviderError
    from panopticon.providers.base import ChatRequest, ProviderConfig, create_provider

    host = socket.gethostname() if form == "name" else str(int(ipaddress.ip_address("127.0.0.1")))
    port = listener.url.split(":")[2].split("/")[0]
    provider = create_provider(
        ProviderConfig(
            kind=kind,
            base_url=f"http://{host}:{port}" + ("/v1" if kind == "openai" else ""),
            api_key="sk-never-sent-0123456789",
            egress=EgressPolicy(allow_private=False),
        )
    )
    addresses = {a[4][0] for a in socket.getaddrinfo(host, None)}
    if not any(EgressPolicy(allow_private=False).address_refusal(a) for a in addresses):
        pytest.skip(f"{host} resolves to a public address here")

    async def call() -> None:
        try:
            await provider.complete(ChatRequest("m", [{"role": "user", "content": "hi"}]))
        finally:
            await provider.aclose()

    with pytest.raises(ProviderError) as info:
        asyncio.run(call())
    assert info.value.kind == "egress" and listener.seen == []


def test_a_redirecting_endpoint_is_not_followed(settings: Settings, listener: Listener) -> None:
    redirecting = Listener(redirect_to=listener.url)
    key = {"X-API-Key": BOOT}
    try:
        with TestClient(app_for(settings)) as api:
            model = {"id": "r", "base_url": redirecting.url}
            assert api.post("/api/models", headers=key, json=model).status_code == 201
            r = api.post("/api/completion", headers=key, json={"model_id": "r", "prompt": "hi"})
            assert r.status_code == 200, r.text
            assert "redirect (307)" in r.json()["error"] and "not followed" in r.json()["error"]
    finally:
        redirecting.close()
    assert len(redirecting.seen) == 1 and listener.seen == []


def test_completion_params_cannot_replace_the_model_messages_or_stream(
    settings: Settings, mock: MockServer
) -> None:
    key = {"X-API-Key": BOOT}
    with TestClient(app_for(settings)) as api:
        model = {"id": "m", "model": "mock-m", "base_url": mock.url}
        assert api.post("/api/models", headers=key, json=model).status_code == 201
        for params in ({"model": "gpt-4o"}, {"messages": []}, {"stream": True}):
            r = api.post(
                "/api/completion",
                headers=key,
                json={"model_id": "m", "prompt": "hi", "params": params},
            )
            assert r.status_code == 422 and "params" in errors_of(r), r.text
        r = api.post(
            "/api/models",
            headers=key,
            json={"id": "m2", "base_url": mock.url, "params": {"stream": True}},
        )
        assert r.status_code == 422 and "stream" in r.text
    assert mock.stats.requests == 0


# -- tenants ----------------------------------------------------------------------------------


def test_every_dashboard_route_keeps_workspaces_apart(
    settings: Settings, mock: MockServer, job_worker: None
) -> None:
    """Each page, tried by a person signed in to workspace B with A's ids: a 404, or a page
    with nothing of A. The routes come from the dashboard's routers, so a new one is covered
    (or this test fails until it is mapped)."""
    with store(settings) as engine:
        a = {"X-API-Key": create_key(engine, "team-a", "admin", "a")[1]}
        b_key = create_key(engine, "team-b", "admin", "b")[1]
    app = app_for(settings)
    with TestClient(app) as api:
        model = {"id": "secret-model-a", "model": "mock-m", "base_url": mock.url}
        assert api.post("/api/models", headers=a, json=model).status_code == 201
        query = api.post(
            "/api/queries", headers=a, json={"item": "secret question of A?", "type": "t"}
        ).json()
        metric = api.post("/api/metrics", headers=a, json={"item": "secret metric 1 to 10"}).json()
        job = api.post(
            "/api/judge/evaluate/theme",
            headers=a,
            json={
                "theme": "t",
                "model_id": "secret-model-a",
                "evaluation_prompt_ids": [metric["id"]],
                "judge_model": "secret-model-a",
            },
        ).json()
        assert wait_for_job(api, job["id"], a)["status"] == "completed"
        run_id = api.get(f"/api/jobs/{job['id']}", headers=a).json()["run_id"]
        result_id = api.get("/api/judge/results", headers=a).json()["items"][0]["result_id"]
        rule = {
            "name": "secret-rule-a",
            "metrics": [{"name": "helpful", "type": "rubric", "prompt": "Helpful?"}],
            "judge": "secret-model-a",
            "sampling": {"rate": 0.1},
        }
        r = api.post("/api/online/rules", headers=a, json=rule)
        assert r.status_code == 201, r.text
        log = {"prompt": "secret trace of A?", "response": "r", "model": "m", "session_id": "s-a"}
        assert api.post("/api/logs", headers=a, json=log).status_code == 200
        trace_id = api.get("/api/traces", headers=a).json()["items"][0]["id"]
        span_id = api.get(f"/api/traces/{trace_id}", headers=a).json()["spans"][0]["span_id"]
        gateway_key = api.post(
            "/api/gateway/keys", headers=a, json={"name": "secret-gateway-key-a"}
        ).json()
        cached_answers_of_a = api.get("/api/cache", headers=a).json()["answers"]
        assert cached_answers_of_a > 0
        secrets_of_a = (
            "secret-model-a",
            "secret question of A",
            "secret metric",
            "secret-rule",
            "secret-gateway-key",
        )

        with another_client(app) as browser:
            assert sign_in(browser, b_key).status_code == 200
            csrf = csrf_of(browser.get("/ui/").text)
            ids = {
                "run_id": run_id,
                "result_id": result_id,
                "rule_name": "secret-rule-a",
                "trace_id": trace_id,
                "span_id": span_id,
                "session_id": "s-a",
                "token": "not-a-sign-in-token",  # /ui/link/{token}: only `panopticon view`'s
            }
            item_ids = {"/ui/queries/": query["id"], "/ui/metrics/": metric["id"]}
            # forms that would reach A's rows if they were not scoped: what each posts
            posts: dict[str, dict[str, Any]] = {
                "/ui/annotate": {"result_id": result_id, "metric": "secret", "value": "1"},
                "/ui/models": {"action": "delete-model", "id": "secret-model-a"},
                "/ui/queries": {"item": "b's own query", "type": "b"},
                "/ui/metrics": {"item": "b's own metric"},
                "/ui/workspace": {"key": "5"},
                "/ui/online": {"action": "delete", "name": "secret-rule-a"},
                "/ui/gateway": {"action": "revoke", "key_id": str(gateway_key["id"])},
                "/ui/cache": {"action": "clear", "delete": "on", "force": "on"},
            }
            skip = {"/ui/login", "/ui/logout"}  # no workspace data: tested below
            checked = 0
            for module in web.ROUTERS:
                for route in module.router.routes:
                    template = route.path  # type: ignore[attr-defined]
                    if template in skip:
                        continue
                    path = template
                    for name in re.findall(r"{(\w+)}", template):
                        value = ids.get(name)
                        if name == "item_id":
                            value = next(v for p, v in item_ids.items() if path.startswith(p))
                        assert value is not None, f"map '{name}' of {template} in this test"
                        path = path.replace("{" + name + "}", str(value))
                    for method in route.methods:  # type: ignore[attr-defined]
                        if method == "GET":
                            r = browser.get(path, params={"run": run_id})
                        else:
                            assert "{" in template or template in posts, f"map POST {template}"
                            r = browser.post(path, data={"csrf": csrf, **posts.get(template, {})})
                        if "{" in template:
                            assert r.status_code == 404, (method, template, r.status_code)
                        else:
                            assert r.status_code in (200, 303, 404, 422), (method, template)
                        sent = " ".join([path, *map(str, posts.get(template, {}).values())])
                        for secret in secrets_of_a:  # (an error may repeat what B sent)
                            if secret not in sent:
                                assert secret not in r.text, (method, template, secret)
                        checked += 1
            assert checked >= 25
        # and A still has everything
        assert api.get("/api/cache", headers=a).json()["answers"] == cached_answers_of_a
        assert api.get("/api/models/secret-model-a", headers=a).status_code == 200
        assert api.get(f"/api/runs/{run_id}", headers=a).status_code == 200
        assert api.get("/api/online/rules/secret-rule-a", headers=a).status_code == 200
        kept = api.get(f"/api/gateway/keys/{gateway_key['id']}", headers=a).json()
        assert kept["revoked_at"] is None


def test_credentials_stay_in_their_workspace(settings: Settings) -> None:
    with store(settings) as engine:
        a = {"X-API-Key": create_key(engine, "team-a", "admin", "a")[1]}
        b = {"X-API-Key": create_key(engine, "team-b", "admin", "b")[1]}
        m = {"X-API-Key": create_key(engine, "team-a", "member", "m")[1]}
    with TestClient(app_for(settings)) as api:
        cred = {"name": "openai", "secret": "sk-team-a-0123456789"}
        assert api.post("/api/credentials", headers=a, json=cred).status_code == 201
        assert api.get("/api/credentials", headers=b).json() == []
        assert [c["name"] for c in api.get("/api/credentials", headers=a).json()] == ["openai"]
        assert api.get("/api/credentials", headers=m).status_code == 403  # admins only
        assert api.post("/api/credentials", headers=m, json=cred).status_code == 403
        assert api.delete("/api/credentials/openai", headers=b).status_code == 404
        # B cannot point its provider at A's credential
        r = api.post(
            "/api/providers",
            headers=b,
            json={"name": "stolen", "kind": "openai", "credential": "openai"},
        )
        assert r.status_code == 422 and "credential" in errors_of(r), r.text
        # a credential in use is not deleted; a replaced one keeps its name
        p = {"name": "team", "kind": "openai", "credential": "openai"}
        assert api.post("/api/providers", headers=a, json=p).status_code == 201
        assert api.delete("/api/credentials/openai", headers=a).status_code == 409
        again = {"name": "openai", "secret": "sk-team-a-rotated-0123"}
        assert api.post("/api/credentials", headers=a, json=again).status_code == 200


def test_the_encryption_key_can_rotate_and_a_wrong_one_is_named(
    settings: Settings, engine: sa.Engine
) -> None:
    old, new, wrong = new_key(), new_key(), new_key()

    def with_key(value: str) -> Settings:
        return settings.model_copy(update={"encryption_key": value})

    Credentials(engine, 1, with_key(old)).set("k", "sk-rotate-me-0123456789")
    assert Credentials(engine, 1, with_key(f"{new},{old}")).secret("k") == "sk-rotate-me-0123456789"
    assert rotate(engine, with_key(f"{new},{old}")) == 1
    assert Credentials(engine, 1, with_key(new)).secret("k") == "sk-rotate-me-0123456789"
    with pytest.raises(ConfigError, match="cannot be decrypted: it was stored with another"):
        Credentials(engine, 1, with_key(wrong)).secret("k")
    with pytest.raises(ConfigError, match="not a valid encryption key"):
        Credentials(engine, 1, with_key("not-a-key")).secret("k")


def test_the_cli_stores_a_credential_from_stdin_and_a_suite_uses_it(
    tmp_path: Path, env: dict[str, str]
) -> None:
    server = MockServer(api_key="sk-cli-stored-0123456789").start()
    try:
        cli = CliRunner()
        r = cli.invoke(cli_app, ["credentials", "set", "mock"], input="sk-cli-stored-0123456789\n")
        assert r.exit_code == 0 and "stored" in r.output, r.output
        listed = cli.invoke(cli_app, ["credentials", "list"])
        assert "mock" in listed.output and "sk-cli-stored" not in listed.output
        suite = write(
            tmp_path / "suite.yaml",
            f"""
            models: [{{id: m, model: mock-m, base_url: '{server.url}', credential: mock}}]
            queries: [{{text: hi}}]
            """,
        )
        r = cli.invoke(cli_app, ["run", str(suite)])
        assert r.exit_code == 0, r.output
        assert server.stats.answered == 1
    finally:
        server.stop()


# -- sessions -----------------------------------------------------------------------------


def test_signing_out_ends_the_session_on_the_server(settings: Settings) -> None:
    app = app_for(settings)
    with TestClient(app) as client:
        # sign-in needs the form's token (and its cookie): another site cannot sign us in
        forged = client.post("/ui/login", data={"key": BOOT})
        assert forged.status_code == 403 and "stale" in forged.text
        assert sign_in(client, BOOT).status_code == 200
        stolen = client.cookies.get("panopticon_session")
        page = client.get("/ui/")
        assert page.status_code == 200
        assert client.post("/ui/logout").status_code == 403  # no CSRF token
        r = client.post("/ui/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ui/login"
        with another_client(app) as other:
            other.cookies.set("panopticon_session", stolen or "", path="/ui")
            r = other.get("/ui/", follow_redirects=False)
            assert r.status_code == 303 and "/ui/login" in r.headers["location"]


def test_a_session_signed_out_on_another_server_is_refused_within_seconds(
    settings: Settings,
) -> None:
    """Dashboard pages check a session's sign-out from memory for SESSION_TTL_S (not one
    database read per page): the server that signs it out refuses it at once, another
    server on the same database once that time has passed."""
    from panopticon.services.access import SESSION_TTL_S

    here, there = app_for(settings), app_for(settings)  # two replicas, one database
    reads: list[float] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "revoked_session" in statement:
            reads.append(time.monotonic())

    with TestClient(here) as browser, TestClient(there) as replica:
        assert sign_in(browser, BOOT).status_code == 200
        cookie = browser.cookies.get("panopticon_session") or ""
        replica.cookies.set("panopticon_session", cookie, path="/ui")
        sa.event.listen(there.state.engine, "before_cursor_execute", count)
        started = time.monotonic()
        for _ in range(10):
            assert replica.get("/ui/runs", follow_redirects=False).status_code == 200
        elapsed = time.monotonic() - started
        assert 1 <= len(reads) <= 1 + elapsed / SESSION_TTL_S, "a read per page"
        page = browser.get("/ui/")
        r = browser.post("/ui/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert r.status_code == 303
        signed_out = time.monotonic()
        with another_client(here) as copy:  # the cookie, copied: refused here at once
            copy.cookies.set("panopticon_session", cookie, path="/ui")
            r = copy.get("/ui/runs", follow_redirects=False)
            assert r.status_code == 303 and "/ui/login" in r.headers["location"]
        while replica.get("/ui/runs", follow_redirects=False).status_code != 303:
            assert time.monotonic() - signed_out < SESSION_TTL_S + 5, "still signed in there"
            time.sleep(0.05)
        sa.event.remove(there.state.engine, "before_cursor_execute", count)


def test_a_sign_out_while_a_page_reads_the_session_is_not_undone_by_that_read(
    settings: Settings,
) -> None:
    """A page's read of the session (signed in) that returns after the sign-out through
    this process has been remembered must not overwrite it: the stale answer kept the
    cookie working here for another SESSION_TTL_S seconds ("refused at once" broken). The
    interleaving is made exact with the database's own hook: the sign-out commits between
    the page's SELECT and the page remembering its answer."""
    import secrets
    from datetime import UTC, datetime, timedelta

    from panopticon.services.access import end_session, session_ended

    nonce = secrets.token_hex(16)
    expires = datetime.now(UTC) + timedelta(hours=1)
    with store(settings) as engine:
        signed_out: list[bool] = []

        def sign_out_meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "revoked_session" in statement and not signed_out:
                signed_out.append(True)
                end_session(engine, nonce, expires)  # another request: the user signs out

        sa.event.listen(engine, "after_cursor_execute", sign_out_meanwhile)
        try:
            session_ended(engine, nonce)  # the page's read, begun before the sign-out
        finally:
            sa.event.remove(engine, "after_cursor_execute", sign_out_meanwhile)
        assert signed_out
        assert session_ended(engine, nonce) is True, "signed out here, yet still signed in"


def test_the_last_admin_key_of_a_workspace_cannot_be_revoked(settings: Settings) -> None:
    with store(settings) as engine:
        first_id, first = create_key(engine, "team", "admin", "first")
    with TestClient(app_for(settings)) as api:
        key = {"X-API-Key": first}
        r = api.delete(f"/api/keys/{first_id}", headers=key)
        assert r.status_code == 409 and "last admin key" in r.json()["error"]["message"]
        second = api.post("/api/keys", headers=key, json={"name": "second", "role": "admin"})
        assert api.delete(f"/api/keys/{first_id}", headers=key).status_code == 204
        new = {"X-API-Key": second.json()["key"]}
        assert api.delete(f"/api/keys/{second.json()['id']}", headers=new).status_code == 409
    r = CliRunner().invoke(
        cli_app,
        ["keys", "revoke", str(second.json()["id"])],
        env={
            "PANOPTICON_HOME": str(settings.home),
            "PANOPTICON_DATABASE_URL": settings.database_url or "",
        },
    )
    assert r.exit_code != 0 and "last admin key" in r.output


def test_the_database_and_key_files_are_readable_by_their_owner_only(settings: Settings) -> None:
    from panopticon.web.session import load_secret

    with store(settings) as engine:
        Credentials(engine, 1, settings).set("k", "sk-0123456789")
        load_secret(settings)
    files = ["encryption-key", "web-secret"] + ([] if settings.database_url else ["panopticon.db"])
    for name in files:
        mode = stat.S_IMODE((settings.home / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert stat.S_IMODE(settings.home.stat().st_mode) == 0o700


def test_the_database_password_is_never_printed(tmp_path: Path) -> None:
    from panopticon.services.health import database_problem
    from panopticon.store.engine import create_engine

    url = "postgresql://panopticon:hunter2-db-password@127.0.0.1:1/panopticon"
    settings = Settings(home=tmp_path, database_url=url, api_key=BOOT, secret_key="s" * 40)
    assert "hunter2" not in settings.display_database_url
    assert "hunter2" not in repr(settings) and BOOT not in repr(settings)
    assert settings.display_database_url.startswith("postgresql+psycopg://panopticon:***@")
    engine = create_engine(settings)
    try:
        problem = database_problem(engine)
    finally:
        engine.dispose()
    assert problem is not None and "hunter2" not in problem
    r = CliRunner().invoke(
        cli_app,
        ["db", "current"],
        env={"PANOPTICON_DATABASE_URL": url, "PANOPTICON_HOME": str(tmp_path)},
    )
    assert r.exit_code != 0 and "hunter2" not in r.output and "***" in r.output


def test_an_endpoint_answering_with_the_key_does_not_get_it_stored(settings: Settings) -> None:
    echoing = Listener(echo=True)
    key = {"X-API-Key": BOOT}
    try:
        with TestClient(app_for(settings)) as api:
            cred = {"name": "k", "secret": "sk-answered-back-0123456789"}
            assert api.post("/api/credentials", headers=key, json=cred).status_code == 201
            model = {"id": "e", "base_url": echoing.url, "credential": "k"}
            assert api.post("/api/models", headers=key, json=model).status_code == 201
            r = api.post("/api/completion", headers=key, json={"model_id": "e", "prompt": "hi"})
            assert r.status_code == 200 and r.json()["text"] == "your key is Bearer ***", r.text
    finally:
        echoing.close()
    assert echoing.seen[0]["Authorization"] == "Bearer sk-answered-back-0123456789"


def test_the_server_keeps_only_the_variables_the_operator_named() -> None:
    settings = Settings(
        allowed_key_env="OPENAI_API_KEY, AZURE_KEY=https://x.openai.azure.com/",
        embedding_key_env="EMBED_KEY",
    )
    environ = {**SERVER_SECRETS, "AZURE_KEY": "a", "EMBED_KEY": "e", "HOME": "/root"}
    assert settings.allowed_environment(environ) == {
        "OPENAI_API_KEY": SERVER_SECRETS["OPENAI_API_KEY"],
        "AZURE_KEY": "a",
        "EMBED_KEY": "e",
    }
    assert settings.key_env_allow_list == {
        "OPENAI_API_KEY": None,
        "AZURE_KEY": "https://x.openai.azure.com",
    }


def test_an_admin_stores_a_credential_on_the_dashboard_and_it_is_never_shown(
    settings: Settings,
) -> None:
    secret = "sk-typed-in-the-browser-0123456789"
    with store(settings) as engine:
        _, member = create_key(engine, "default", "member", "m")
    app = app_for(settings)
    with TestClient(app) as browser:
        assert sign_in(browser, BOOT).status_code == 200
        csrf = csrf_of(browser.get("/ui/models").text)
        form = {"csrf": csrf, "action": "set-credential", "name": "team key!", "secret": secret}
        bad = browser.post("/ui/models", data=form)
        assert bad.status_code == 422 and "name" in bad.text and secret not in bad.text
        saved = browser.post("/ui/models", data={**form, "name": "team-key"})
        assert saved.status_code == 200 and secret not in saved.text
        page = browser.get("/ui/models").text
        assert 'data-testid="credentials"' in page and "team-key" in page and secret not in page
        provider = {
            "csrf": csrf,
            "action": "add-provider",
            "name": "team",
            "kind": "openai",
            "credential": "team-key",
        }
        assert browser.post("/ui/models", data=provider).status_code == 200
        assert "team" in browser.get("/ui/models").text
        with another_client(app) as viewer:  # a member sees no credentials, and cannot store one
            assert sign_in(viewer, member).status_code == 200
            page = viewer.get("/ui/models").text
            assert "team-key" not in page.split('data-testid="providers"')[0]
            assert 'data-testid="credentials"' not in page
            refused = viewer.post(
                "/ui/models",
                data={
                    "csrf": csrf_of(page),
                    "action": "set-credential",
                    "name": "x",
                    "secret": "y1234",
                },
            )
            assert "admin" in refused.text
        with another_client(app) as api:
            listed = api.get("/api/credentials", headers={"X-API-Key": BOOT}).json()
            assert [(c["name"], c["providers"]) for c in listed] == [("team-key", ["team"])]


def test_a_key_in_a_header_is_refused_by_the_server_and_masked_in_the_cli_record(
    settings: Settings, mock: MockServer, tmp_path: Path
) -> None:
    key = {"X-API-Key": BOOT}
    headers = {"X-Api-Key": "sk-in-a-header-0123456789", "OpenAI-Beta": "assistants=v2"}
    with TestClient(app_for(settings)) as api:
        provider = {"name": "mock", "kind": "openai", "base_url": mock.url}
        assert api.post("/api/providers", headers=key, json=provider).status_code == 201
        model = {"id": "h", "provider": "mock", "options": {"headers": headers}}
        suite = {"name": "h", "models": [model], "queries": [{"text": "hi"}]}
        r = api.post("/api/runs", headers=key, json={"suite": suite})
        assert r.status_code == 422 and "X-Api-Key" in errors_of(r)["models[0].options.headers"]
    from panopticon.evaluation.suite import load_suite

    loaded = load_suite(
        write(
            tmp_path / "s.yaml",
            f"""
            models: [{{id: m, base_url: '{mock.url}', options: {{headers: {headers}}}}}]
            queries: [{{text: hi}}]
            """,
        ),
        {},
    )
    record = loaded.snapshot()["models"][0]["options"]["headers"]
    assert record == {"X-Api-Key": "***", "OpenAI-Beta": "assistants=v2"}
    assert loaded.endpoints["m"].options["headers"]["X-Api-Key"] == headers["X-Api-Key"]


def test_a_job_recorded_before_the_rules_is_refused_when_it_runs(
    settings: Settings, listener: Listener
) -> None:
    """Jobs are checked again where they run (the server here, a worker on PostgreSQL): a
    suite queued by an older version, naming a variable and a foreign endpoint, fails with
    the field named and sends nothing."""
    if settings.database_url:
        pytest.skip("on PostgreSQL a recorded job runs once a worker is told of it")
    from panopticon.store.tables import Job
    from panopticon.store.tables.base import utcnow

    suite = {
        "name": "queued",
        "models": [{"id": "x", "base_url": listener.url, "api_key_env": "PANOPTICON_API_KEY"}],
        "queries": [{"text": "hi"}],
    }
    with store(settings) as engine, engine.begin() as conn:
        job_id = conn.execute(
            sa.insert(Job)
            .values(
                workspace_id=1,
                kind="run_suite",
                status="queued",
                payload=suite,
                created_at=utcnow(),
            )
            .returning(Job.c.id)
        ).scalar_one()
    with TestClient(app_for(settings, env={"PANOPTICON_API_KEY": BOOT})) as api:
        job = wait_for_job(api, job_id, {"X-API-Key": BOOT})
    assert job["status"] == "failed" and "models[0].base_url" in job["error"], job
    assert listener.seen == []


def test_the_cli_says_a_keys_scope_when_it_makes_one_and_lists_it(settings: Settings) -> None:
    env = {
        "PANOPTICON_HOME": str(settings.home),
        "PANOPTICON_DATABASE_URL": settings.database_url or "",
    }
    made = CliRunner().invoke(
        cli_app,
        ["keys", "create", "--name", "otel", "--role", "member", "--scope", "ingest"],
        env=env,
    )
    assert made.exit_code == 0, made.output
    assert "scope ingest: it may only send traces, logs and scores" in made.output
    listed = CliRunner().invoke(cli_app, ["keys", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    (row,) = [line for line in listed.output.splitlines() if " otel " in line]
    assert " ingest " in row and "…" not in listed.output
