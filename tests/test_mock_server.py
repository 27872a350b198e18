"""The bundled mock server speaks the OpenAI API well enough for the official SDK."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import openai

from panopticon.mockllm.server import MockServer
from tests.conftest import free_port


def test_the_official_openai_sdk_can_chat_stream_embed_and_list(mock: MockServer) -> None:
    client = openai.OpenAI(base_url=mock.url, api_key="unused")
    plain = client.chat.completions.create(
        model="m1", messages=[{"role": "user", "content": "Tell me a fact."}]
    )
    text = plain.choices[0].message.content or ""
    assert text.startswith("[m1] Tell me a fact.") and plain.usage is not None
    stream = client.chat.completions.create(
        model="m1",
        messages=[{"role": "user", "content": "Tell me a fact."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    emb = client.embeddings.create(
        model="e", input=["billing invoice", "invoice billing", "kittens"]
    )
    a, b, c = (d.embedding for d in emb.data)
    dot = lambda x, y: sum(i * j for i, j in zip(x, y, strict=True))  # noqa: E731
    assert dot(a, b) > 0.99 and dot(a, c) < 0.5
    assert any(m.id == "m1" for m in client.models.list())
    client.close()


def test_answers_are_deterministic_and_counted(mock: MockServer) -> None:
    client = openai.OpenAI(base_url=mock.url, api_key="x", max_retries=0)
    msgs = [{"role": "user", "content": "same"}]
    first = client.chat.completions.create(model="m", messages=msgs)  # type: ignore[arg-type]
    second = client.chat.completions.create(model="m", messages=msgs)  # type: ignore[arg-type]
    assert first.choices[0].message.content == second.choices[0].message.content
    stats = mock.stats.as_dict()
    assert stats["answered"] == 2 and stats["answered_duplicates"] == 1
    client.close()


def test_json_is_returned_when_json_is_asked(mock: MockServer) -> None:
    client = openai.OpenAI(base_url=mock.url, api_key="x")
    r = client.chat.completions.create(
        model="judge",
        response_format={"type": "json_object"},
        messages=[
            {"role": "user", "content": "Score from 1 to 5.\n<response>\n[m] hi\n</response>"}
        ],
    )
    data = json.loads(r.choices[0].message.content or "")
    assert 1 <= data["score"] <= 5 and data["reasoning"]
    client.close()


def test_injected_429s_carry_retry_after_and_the_config_changes_at_run_time(
    mock: MockServer,
) -> None:
    req = urllib.request.Request(
        mock.root + "/_mock/config", method="POST", data=b'{"rate_429": 1.0, "retry_after_s": 3}'
    )
    with urllib.request.urlopen(req) as resp:
        assert json.load(resp)["rate_429"] == 1.0
    client = openai.OpenAI(base_url=mock.url, api_key="x", max_retries=0)
    try:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    except openai.RateLimitError as exc:
        assert exc.response.headers["retry-after"] == "3"
        assert exc.response.headers["retry-after-ms"] == "3000"
    else:
        raise AssertionError("expected a 429")
    finally:
        client.close()
    bad = urllib.request.Request(mock.root + "/_mock/config", method="POST", data=b'{"nope": 1}')
    try:
        urllib.request.urlopen(bad)
    except urllib.error.HTTPError as exc:
        assert exc.code == 400 and b"unknown mock setting" in exc.read()


def test_the_cli_serves_the_mock_until_stopped() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "panopticon",
            "mock-server",
            "--port",
            str(port),
            "--quality",
            "x=0.9",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_mock/config") as resp:
            assert json.load(resp)["quality"] == {"x": 0.9}
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
