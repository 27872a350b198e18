"""Provider rate limits hold across processes: every process on one store spends one bucket."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from panopticon.mockllm.server import MockServer
from panopticon.store.limits import SharedBucket, bucket_key
from panopticon.store.tables import RateLimit, Run
from tests.conftest import suite_yaml, write


def test_a_shared_bucket_paces_two_engines_together(engine: sa.Engine) -> None:
    """Two engines stand for two processes: together they get the rate, not twice it."""
    other = sa.create_engine(engine.url)
    key = bucket_key("rpm", {"model": "x"})
    a, b = SharedBucket(engine, key, 600), SharedBucket(other, key, 600)  # 10 a second
    a.reserve(600)  # drain the initial burst
    done: list[float] = []

    def worker(bucket: SharedBucket) -> None:
        async def go() -> None:
            for _ in range(5):
                await bucket.take(1)
                done.append(time.monotonic())

        asyncio.run(go())

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(x,)) for x in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.dispose()
    # ten takes at ten a second, after an empty start: about one second, not half of it
    assert len(done) == 10
    assert max(done) - started >= 0.9
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(RateLimit)) == 1


def test_giving_back_never_fills_beyond_the_capacity(engine: sa.Engine) -> None:
    bucket = SharedBucket(engine, bucket_key("tpm", {"model": "y"}), 1000)
    assert bucket.reserve(10) == 0.0
    asyncio.run(bucket.adjust(-5000))  # an estimate far too high, corrected
    with engine.connect() as conn:
        assert conn.scalar(sa.select(RateLimit.c.tokens)) <= 1000.0
    assert bucket.reserve(1000) == 0.0  # full again, not more
    assert bucket.reserve(60) > 0.0


def test_two_runs_in_two_processes_share_the_models_rpm(
    tmp_path: Path, mock: MockServer, env: dict[str, str], engine: sa.Engine
) -> None:
    """The RPM a suite gives a model holds for all processes using it at once."""
    mock.config.latency_ms = 5
    suite = write(
        tmp_path / "suite.yaml",
        suite_yaml(
            mock.url,
            queries=10,
            models=("good",),
            judge=False,
            model_extra=", rpm: 600",  # 10 a second
            metrics="  - {name: short, type: length, max: 2000}",
        ),
    )
    identity = {"provider": "openai", "base_url": mock.url, "model": "mock-good", "key": None}
    bucket = SharedBucket(engine, bucket_key("rpm", identity), 600)
    bucket.reserve(610)  # in debt: no call is allowed for the first second
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "panopticon", "run", str(suite), "--no-progress", "--no-cache"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    # Until both processes are running their runs, keep the bucket in debt: a process that
    # starts late (a busy machine) must not find a full bucket and send its calls in a burst.
    deadline = time.monotonic() + 60
    while True:
        if bucket.reserve(0) < 0.5:  # seconds of debt left: owe 2 s more
            bucket.reserve(20)
        with engine.connect() as conn:
            running = conn.scalar(
                sa.select(sa.func.count()).select_from(Run).where(Run.c.status == "running")
            )
        if running == 2 or any(p.poll() is not None for p in procs):
            break
        assert time.monotonic() < deadline, "the two runs did not start"
        time.sleep(0.02)
    released, answered = time.time(), mock.stats.answered  # the mock's clock
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert mock.stats.answered == 20
    last = mock.stats.last_answer_at
    assert last is not None
    # At the release the bucket owed at least 5 calls (0.5 s), and at most 8 of the calls
    # not yet answered (4 workers a process) had reserved their turn: the others' turns come
    # one every 0.1 s after the debt. A busy machine makes calls later than their turn, never
    # earlier. With a bucket per process, each would send its calls at once.
    after = 20 - answered
    assert after >= 10, "one process ran most of its calls before the other started"
    assert last - released >= (5 + (after - 8) - 1) / 10
