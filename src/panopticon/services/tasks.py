"""One job system: tasks registered by name, run in process (SQLite) or by workers (PostgreSQL).

A task is an async function ``fn(ctx, **kwargs)`` registered under a name in a
:class:`TaskRegistry`; a task with ``every_s`` is periodic. The same names run in two places:

- :class:`LocalQueue`, in the ``panopticon serve`` process on SQLite: several tasks at once
  (``concurrency``), periodic tasks on their own timers, and a thread-safe :meth:`submit`
  (request handlers run in a thread pool). Job rows are the queue: a job is recorded
  ``queued`` and the runner claims it, so a lost wake-up only delays it until the next sweep
  (every ``poll_s``), never leaves it queued for ever.
- procrastinate workers on PostgreSQL (:mod:`panopticon.worker`), where a job row and its
  queue entry are written in one transaction and periodic tasks use procrastinate's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from panopticon.errors import ConfigError, Issue
from panopticon.settings import Settings
from panopticon.store.engine import Engine

__all__ = [
    "TASKS",
    "JobQueue",
    "LocalQueue",
    "Task",
    "TaskContext",
    "TaskRegistry",
]

log = logging.getLogger(__name__)

Defer = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class TaskContext:
    """What a task gets: the store, the settings, the environment for key variables, and
    ``defer(name, **kwargs)`` to queue another task (None where tasks cannot fan out)."""

    engine: Engine
    settings: Settings
    env: Mapping[str, str]
    defer: Defer | None = None


TaskFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Task:
    name: str
    fn: TaskFn
    every_s: float | None = None  # periodic: runs every this many seconds
    # kwargs -> a lock name: one copy of the task per lock queued and running at a time
    lock: Callable[[Mapping[str, Any]], str] | None = None
    # False: the lock only keeps one copy queued; copies may run at once (a task that is
    # safe to run twice, such as one that claims its work row by row). On PostgreSQL a
    # running lock held by a killed worker blocks its task until the worker is found dead.
    exclusive: bool = True


@dataclass
class TaskRegistry:
    """Tasks by name. Built-in tasks register at import of the module that defines them,
    as outside ones will."""

    tasks: dict[str, Task] = field(default_factory=dict)

    def task(
        self,
        name: str,
        *,
        every_s: float | None = None,
        lock: Callable[[Mapping[str, Any]], str] | None = None,
        exclusive: bool = True,
    ) -> Callable[[TaskFn], TaskFn]:
        def register(fn: TaskFn) -> TaskFn:
            if name in self.tasks and self.tasks[name].fn is not fn:
                raise ValueError(f"a task named '{name}' is already registered")
            if every_s is not None and every_s <= 0:
                raise ValueError("every_s must be > 0")
            self.tasks[name] = Task(name, fn, every_s, lock, exclusive)
            return fn

        return register

    def get(self, name: str) -> Task:
        try:
            return self.tasks[name]
        except KeyError:
            raise ConfigError(
                Issue(
                    f"no task named '{name}'",
                    field="task",
                    hint="registered tasks: " + ", ".join(sorted(self.tasks)),
                )
            ) from None

    def __iter__(self) -> Iterator[Task]:
        return iter(list(self.tasks.values()))

    def periodic(self) -> list[Task]:
        return [t for t in self if t.every_s is not None]


TASKS = TaskRegistry()


class JobQueue(Protocol):
    """What the API holds: record a job and queue it as one unit; queue a plain task."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def submit_job(self, workspace_id: int, kind: str, payload: dict[str, Any]) -> int: ...

    def submit(self, name: str, **kwargs: Any) -> None: ...


Item = tuple[str, dict[str, Any]]


class LocalQueue:
    """Runs registered tasks in this process, ``concurrency`` at a time (SQLite)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        env: Mapping[str, str],
        *,
        registry: TaskRegistry = TASKS,
        concurrency: int = 4,
        poll_s: float = 2.0,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.env = env
        self.registry = registry
        self.concurrency = concurrency
        self.poll_s = poll_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Item] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pending_jobs: set[int] = set()  # queued or running here: not swept again
        self._held: set[str] = set()  # task locks queued or running: one copy at a time
        self._lock = threading.Lock()

    @property
    def context(self) -> TaskContext:
        return TaskContext(self.engine, self.settings, self.env, self._defer)

    async def _defer(self, name: str, **kwargs: Any) -> None:
        self.submit(name, **kwargs)

    async def start(self) -> None:
        if self._tasks and not all(t.done() for t in self._tasks):
            return  # already running (a second lifespan on the same app)
        from panopticon.services import jobs

        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._pending_jobs = set()
        self._held = set()
        # jobs left running by a stopped process run again (they resume their runs)
        await asyncio.to_thread(jobs.requeue_abandoned, self.engine)
        self._tasks = [
            asyncio.create_task(self._consume(), name=f"panopticon-jobs-{i}")
            for i in range(self.concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._sweep(), name="panopticon-jobs-sweep"))
        for task in self.registry.periodic():
            self._tasks.append(asyncio.create_task(self._every(task), name=task.name))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        loop, self._loop = self._loop, None
        if not tasks:
            return
        if loop is asyncio.get_running_loop():
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        elif loop is not None and not loop.is_closed():
            for t in tasks:
                loop.call_soon_threadsafe(t.cancel)

    # -- submitting (any thread) ------------------------------------------------------------

    def submit_job(self, workspace_id: int, kind: str, payload: dict[str, Any]) -> int:
        """Record the job (the row is the queue entry), then wake the runner."""
        from panopticon.services import jobs

        self.registry.get(kind)
        job_id = jobs.record_job(self.engine, workspace_id, kind, payload)
        self.submit(kind, job_id=job_id)
        return job_id

    def submit(self, name: str, **kwargs: Any) -> None:
        """Queue a task; safe from any thread. Without a running loop a job stays recorded
        ``queued`` and is taken at the next start."""
        self.registry.get(name)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._put, (name, kwargs))
        except RuntimeError:  # the loop closed meanwhile: the sweep of the next start takes it
            log.debug("task %s not queued: the runner stopped", name)

    def _lock_of(self, item: Item) -> str | None:
        task = self.registry.tasks.get(item[0])
        return task.lock(item[1]) if task is not None and task.lock is not None else None

    def _put(self, item: Item) -> None:
        lock = self._lock_of(item)
        if lock is not None and set(item[1]) != {"job_id"}:
            with self._lock:
                if lock in self._held:
                    return  # a copy is queued or running: it will do the work
                self._held.add(lock)
        job_id = item[1].get("job_id")
        if isinstance(job_id, int) and set(item[1]) == {"job_id"}:
            with self._lock:
                if job_id in self._pending_jobs:
                    return
                self._pending_jobs.add(job_id)
        if self._queue is not None:
            self._queue.put_nowait(item)

    # -- running -------------------------------------------------------------------------

    async def _consume(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            name, kwargs = await queue.get()
            lock = self._lock_of((name, kwargs))
            task = self.registry.tasks.get(name)
            if lock is not None and task is not None and not task.exclusive:
                with self._lock:  # a queue-only lock: the next copy may be queued now
                    self._held.discard(lock)
            try:
                await self.run(name, **kwargs)
            finally:
                with self._lock:
                    if set(kwargs) == {"job_id"}:
                        self._pending_jobs.discard(kwargs["job_id"])
                    elif lock is not None:
                        self._held.discard(lock)

    async def run(self, name: str, **kwargs: Any) -> Any:
        """Run one task now; an error is logged (a job's is recorded on its row)."""
        try:
            return await self.registry.get(name).fn(self.context, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task %s(%s) failed", name, kwargs)
            return None

    async def _sweep(self) -> None:
        """Queued job rows not yet taken (a wake-up lost, a job recorded by another
        process): queue them."""
        from panopticon.services import jobs

        while True:
            try:
                for job_id, kind in await asyncio.to_thread(jobs.queued_jobs, self.engine):
                    if kind in self.registry.tasks:
                        self._put((kind, {"job_id": job_id}))
            except Exception:  # the database may be away for a moment: next round
                log.exception("could not read the queued jobs")
            await asyncio.sleep(self.poll_s)

    async def _every(self, task: Task) -> None:
        assert task.every_s is not None
        while True:
            await asyncio.sleep(task.every_s)
            await self.run(task.name)
