"""What the mock model answers. Pure functions of (config, model, messages): deterministic.

Answers carry their model's name as ``[model]`` so a judge request that quotes an answer can
be scored by the quality configured for the model that wrote it. A request is treated as a
judge request when its last message quotes an answer inside ``<response>...</response>``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

__all__ = ["MockAnswer", "MockConfig", "embed", "estimate_tokens", "respond"]

_WORDS = [
    "the",
    "model",
    "considers",
    "the",
    "question",
    "carefully",
    "and",
    "answers",
    "with",
    "a",
    "concise",
    "explanation",
    "covering",
    "the",
    "main",
    "points",
    "trade",
    "offs",
    "examples",
    "and",
    "caveats",
    "that",
    "a",
    "careful",
    "reader",
    "expects",
]
_SCALE = re.compile(r"from\s+(-?\d+(?:\.\d+)?)\s+to\s+(-?\d+(?:\.\d+)?)", re.I)
_TAG = re.compile(r"\[([A-Za-z0-9_.:/@-]+)\]")
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass
class MockConfig:
    """Behaviour of the mock server; every field can be changed at run time."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    timeout_hang_s: float = 30.0
    retry_after_s: float = 1.0
    judge_nonsense_rate: float = 0.0
    position_bias: float = 0.0  # share of pairwise judgements that pick the first shown
    default_quality: float = 0.7
    quality: dict[str, float] = field(default_factory=dict)
    model_latency_ms: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    rate_garbage: float = 0.0  # share of answers that are 200 with a body that is not JSON
    stream_chunks: int = 0  # content chunks per stream (0: one per four words)
    stream_chunk_delay_ms: float = 0.0  # pause before each content chunk of a stream
    stream_reset_after: int = 0  # cut the connection after this many chunks (0: never)
    # answer every call with a 401 that repeats the key it was sent, as careless servers do:
    # tests check that such a key is masked before it is stored or shown
    echo_key_in_errors: bool = False

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(
                f"unknown mock setting(s): {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(names))}"
            )
        for key, value in changes.items():
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def latency_for(self, model: str) -> float:
        return self.model_latency_ms.get(model, self.latency_ms)

    @classmethod
    def demo(cls) -> MockConfig:
        """The demo's models: clearly different quality and speed, and a few 429s."""
        return cls(
            latency_ms=40.0,
            jitter_ms=10.0,
            rate_429=0.03,
            retry_after_s=0.2,
            quality={"mock-frontier": 0.86, "mock-balanced": 0.72, "mock-tiny": 0.45},
            model_latency_ms={
                "mock-frontier": 120.0,
                "mock-balanced": 70.0,
                "mock-tiny": 25.0,
                "mock-judge": 30.0,
            },
        )


@dataclass(frozen=True)
class MockAnswer:
    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int


def _unit(*parts: str) -> float:
    """A deterministic number in [0, 1) from the given strings."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def respond(
    config: MockConfig,
    model: str,
    messages: list[dict[str, Any]],
    json_mode: bool = False,
    max_tokens: int | None = None,
) -> MockAnswer:
    """The mock's answer to one chat request."""
    contents = [_content_text(m.get("content")) for m in messages]
    prompt = "\n".join(contents)
    last = contents[-1] if contents else ""
    first = _between(last, "<response_a>", "</response_a>")
    second = _between(last, "<response_b>", "</response_b>")
    quoted = _between(last, "<response>", "</response>")
    if quoted is None and len(contents) > 1 and "score" in last.lower():
        # a follow-up in a judge's conversation (a debate round): judge the quoted answer
        earlier = next((c for c in reversed(contents[:-1]) if "<response>" in c), None)
        if earlier is not None:
            quoted = _between(earlier, "<response>", "</response>")
    if first is not None and second is not None:
        text = _pairwise(config, model, prompt, first, second, json_mode)
    elif quoted is not None:
        text = _judge(config, model, prompt, quoted, json_mode)
    else:
        text = _answer(model, last, json_mode)
    out_tokens = estimate_tokens(text)
    finish = "stop"
    if max_tokens is not None and out_tokens > max_tokens:
        text = text[: max_tokens * 4]
        out_tokens = max_tokens
        finish = "length"
    in_tokens = sum(estimate_tokens(c) + 4 for c in contents)
    return MockAnswer(text, finish, in_tokens, out_tokens)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI/Anthropic content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _between(text: str, start: str, end: str) -> str | None:
    i = text.rfind(start)
    if i < 0:
        return None
    j = text.find(end, i + len(start))
    return text[i + len(start) : j if j >= 0 else len(text)].strip()


def _answer(model: str, question: str, json_mode: bool) -> str:
    n = 8 + int(_unit(model, question) * 40)
    start = int(_unit(question, model) * len(_WORDS))
    words = [_WORDS[(start + i) % len(_WORDS)] for i in range(n)]
    body = f"[{model}] {question.strip()[:120]} -> " + " ".join(words) + "."
    if json_mode:
        return orjson.dumps({"model": model, "answer": body}).decode()
    return body


def _judge(config: MockConfig, judge_model: str, prompt: str, quoted: str, json_mode: bool) -> str:
    tag = _TAG.search(quoted)
    author = tag.group(1) if tag else ""
    quality = config.quality.get(author, config.default_quality)
    u = _unit(judge_model, prompt)
    if (
        config.judge_nonsense_rate
        and _unit("nonsense", prompt, str(config.seed)) < config.judge_nonsense_rate
    ):
        return "Hmm, hard to say. The weather is lovely today."
    noise = (u - 0.5) * 0.2
    level = min(1.0, max(0.0, quality + noise))
    reasoning = f"The response by {author or 'the model'} is judged at {level:.2f} of the best."
    wants_json = json_mode or "json" in prompt.lower()
    if '"injection"' in prompt:  # the prompt-injection classifier
        risky = any(
            w in quoted.lower() for w in ("ignore", "disregard", "jailbreak", "system prompt")
        )
        verdict = "injection" if risky else "clean"
        if wants_json:
            return orjson.dumps({"verdict": verdict, "reasoning": reasoning}).decode()
        return f"Reasoning: {reasoning}\nVerdict: {verdict}"
    if "verdict" in prompt.lower():
        verdict = "correct" if u < quality else "incorrect"
        if wants_json:
            return orjson.dumps({"verdict": verdict, "reasoning": reasoning}).decode()
        return f"Reasoning: {reasoning}\nVerdict: {verdict}"
    scale = _SCALE.search(prompt)
    lo, hi = (float(scale.group(1)), float(scale.group(2))) if scale else (1.0, 10.0)
    score = round(lo + (hi - lo) * level)
    if wants_json:
        return orjson.dumps({"score": score, "reasoning": reasoning}).decode()
    return f"Reasoning: {reasoning}\nScore: {score}"


def _quality_of(config: MockConfig, answer: str) -> float:
    tag = _TAG.search(answer)
    return config.quality.get(tag.group(1) if tag else "", config.default_quality)


def _pairwise(
    config: MockConfig, judge_model: str, prompt: str, first: str, second: str, json_mode: bool
) -> str:
    if (
        config.judge_nonsense_rate
        and _unit("nonsense", prompt, str(config.seed)) < config.judge_nonsense_rate
    ):
        return "Both have their merits. The weather is lovely today."
    qa, qb = _quality_of(config, first), _quality_of(config, second)
    if config.position_bias and _unit("bias", judge_model, prompt) < config.position_bias:
        verdict = "A"
    elif abs(qa - qb) < 0.05:
        verdict = "tie"
    else:
        verdict = "A" if qa > qb else "B"
    reasoning = f"Response A is at {qa:.2f} and response B at {qb:.2f} of the best."
    if json_mode or "json" in prompt.lower():
        return orjson.dumps({"reasoning": reasoning, "verdict": verdict}).decode()
    return f"Reasoning: {reasoning}\nVerdict: {verdict}"


def embed(text: str, dimensions: int = 256) -> list[float]:
    """A bag-of-words hashing embedding: texts sharing words are close, deterministically."""
    vec = [0.0] * dimensions
    for token in _TOKEN.findall(text.lower()):
        h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "big")
        vec[h % dimensions] += 1.0 if (h >> 16) & 1 else -1.0
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]


def tool_call_for(
    tools: Any, tool_choice: Any, messages: list[dict[str, Any]]
) -> tuple[str, str] | None:
    """The mock's tool call, if it makes one: (function name, JSON arguments).

    It calls a tool when the request offers tools and either requires one
    (``tool_choice: "required"`` or a named function) or the last user message says
    "use the <name> tool". The arguments quote the last user message: ``{"query": ...}``."""
    names = [
        str((t.get("function") or {}).get("name"))
        for t in tools or ()
        if isinstance(t, dict) and (t.get("function") or {}).get("name")
    ]
    if not names:
        return None
    last = next(
        (_content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
        "",
    )
    chosen: str | None = None
    if isinstance(tool_choice, dict):
        chosen = str((tool_choice.get("function") or {}).get("name") or "") or None
    elif tool_choice == "required":
        chosen = names[0]
    elif tool_choice != "none":
        chosen = next((n for n in names if f"use the {n} tool" in last.lower()), None)
    if chosen is None:
        return None
    return chosen, orjson.dumps({"query": last[:200]}).decode()
