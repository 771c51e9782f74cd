"""Background work on a real task queue: Huey.

Storage: SQLite beside the database by default (`QUEUE_SQLITE_PATH`, nothing else to run), or
Redis when `QUEUE_REDIS_URL` is set (any number of consumers on any number of machines). A
consumer runs as its own process (`flask queue work`), next to gunicorn.

Rules every task keeps:
- The request that enqueues commits its own change first (`enqueue()` is called after the
  commit). If the queue cannot take the task (Redis down), the task is kept in the database
  (`deferred_tasks`) and re-enqueued by a periodic task once the queue answers again: the
  change already stands, so nothing is lost and the request still succeeds.
- Tasks are idempotent (notices claim a key in `sent_notices` before sending) and are retried
  with exponential back-off (`QUEUE_RETRIES`, `QUEUE_RETRY_DELAY_SECONDS`). A task that fails
  after its last retry is logged, counted and kept in `failed_tasks`.
- Sign-in codes never go through the queue: the person is waiting and must be told at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from functools import wraps
from pathlib import Path

from flask import Flask, current_app, has_app_context
from huey import Huey
from huey.consumer import Consumer
from huey.signals import SIGNAL_ERROR
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage
from redis.exceptions import RedisError

from portal import clock, redis_client
from portal.extensions import db

logger = logging.getLogger("portal.tasks")

# One queue for the process; `init_app` points it at the configured storage.
huey = Huey("portal", results=False, utc=True, storage_class=MemoryStorage)

# The application tasks run in: the consumer's own (set by `start_consumer`).
_worker_app: Flask | None = None
_registry: dict[str, object] = {}


def init_app(app: Flask) -> None:
    """Point the queue at the configured storage."""
    config = app.config
    if config.get("QUEUE_REDIS_URL"):
        # Fail fast, never retry on its own (a request that enqueues must not hang on a hung Redis),
        # and poll rather than block, so no wait outlasts the socket timeout.
        client = redis_client.connect(config["QUEUE_REDIS_URL"], timeout=config["QUEUE_SOCKET_TIMEOUT"])
        storage = RedisStorage("portal", connection_pool=client.connection_pool, blocking=False)
    else:
        Path(config["QUEUE_SQLITE_PATH"]).parent.mkdir(parents=True, exist_ok=True)
        storage = SqliteStorage("portal", filename=config["QUEUE_SQLITE_PATH"], timeout=5)
    huey.storage = storage
    app.extensions["portal.tasks"] = huey
    from portal import metrics

    metrics.set_queue_depth_source(queue_depth, failed_kept)


def failed_kept() -> int:
    """How many tasks failed for good and are kept in `failed_tasks`."""
    from sqlalchemy import func, select

    from portal.models import FailedTask

    return db.session.scalar(select(func.count(FailedTask.id)))


def task(fn):
    """Register `fn` as a queued task that runs inside the consumer's application context."""

    @wraps(fn)
    def run(*args, **kwargs):
        app = _worker_app or (current_app._get_current_object() if has_app_context() else None)
        if app is None:
            raise RuntimeError("no application for the task queue: start it with `flask queue work`")
        with app.app_context():
            try:
                return fn(*args, **kwargs)
            finally:
                db.session.remove()

    wrapper = huey.task(name=fn.__name__)(run)
    _registry[fn.__name__] = wrapper
    return wrapper


def periodic(schedule):
    """Register a periodic task (a huey `crontab`), run by every consumer's scheduler; periodic
    tasks are written to be safe when two consumers run them at once."""

    def decorator(fn):
        @wraps(fn)
        def run():
            app = _worker_app
            if app is None:
                return None
            with app.app_context():
                try:
                    return fn()
                finally:
                    db.session.remove()

        return huey.periodic_task(schedule, name=fn.__name__)(run)

    return decorator


def enqueue(task_wrapper, *args, **kwargs) -> bool:
    """Hand a task to the queue, after the caller has committed its change.

    Returns False when the queue did not answer: the task is then kept in `deferred_tasks`
    (committed) and re-enqueued later, so the change that caused it loses nothing.
    """
    config = current_app.config
    options = dict(retries=config["QUEUE_RETRIES"], retry_delay=config["QUEUE_RETRY_DELAY_SECONDS"], retry_backoff=2)
    try:
        huey.enqueue(task_wrapper.s(*args, **kwargs, **options))
        return True
    except Exception as error:  # the storage's own errors differ: redis, sqlite3, OS
        if not _is_outage(error):
            raise
        from portal.models import DeferredTask

        logger.warning("queue unavailable (%s): %s kept for later", type(error).__name__, task_wrapper.name)
        db.session.add(DeferredTask(name=task_wrapper.name, arguments=json.dumps({"args": args, "kwargs": kwargs}),
                                    created_at=clock.now()))
        db.session.commit()
        _count("deferred")
        return False


def _is_outage(error: Exception) -> bool:
    import sqlite3

    return isinstance(error, (RedisError, OSError, sqlite3.OperationalError))


def queue_depth() -> int | None:
    """How many tasks wait to run now (None when the queue does not answer)."""
    try:
        return huey.pending_count()
    except Exception as error:
        if _is_outage(error):
            return None
        raise


def requeue_deferred(limit: int = 500) -> int:
    """Hand tasks kept during an outage back to the queue; returns how many went."""
    from sqlalchemy import delete, select

    from portal.models import DeferredTask

    statement = select(DeferredTask).order_by(DeferredTask.id).limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    moved = 0
    for row in db.session.scalars(statement).all():
        wrapper = _registry.get(row.name)
        if wrapper is None:
            logger.error("deferred task %s has no handler; kept", row.name)
            continue
        arguments = json.loads(row.arguments)
        config = current_app.config
        try:
            huey.enqueue(wrapper.s(*arguments["args"], **arguments["kwargs"], retries=config["QUEUE_RETRIES"],
                                   retry_delay=config["QUEUE_RETRY_DELAY_SECONDS"], retry_backoff=2))
        except Exception as error:
            if not _is_outage(error):
                raise
            break
        db.session.execute(delete(DeferredTask).where(DeferredTask.id == row.id))
        moved += 1
    db.session.commit()
    return moved


@huey.signal(SIGNAL_ERROR)
def _failed(signal, task, exc=None) -> None:
    """After the last retry: log it, count it and keep it (never lost silently)."""
    if task.retries:
        return
    from portal.models import FailedTask

    logger.error("task %s failed for good: %s", task.name, type(exc).__name__)
    _count("failed", task.name)
    app = _worker_app
    if app is None:
        return
    with app.app_context():
        try:
            db.session.add(FailedTask(name=task.name, arguments=json.dumps({"args": list(task.args),
                                                                          "kwargs": task.kwargs}, default=str),
                                      error=type(exc).__name__[:200], failed_at=clock.now()))
            db.session.commit()
        finally:
            db.session.remove()


def _count(what: str, name: str | None = None) -> None:
    """Tell the metrics, when they are there."""
    try:
        from portal import metrics
    except ImportError:  # pragma: no cover - metrics are optional for the queue
        return
    if what == "failed" and hasattr(metrics, "task_failed"):
        metrics.task_failed(name)


# -- consumers ---------------------------------------------------------------------------


class _InProcessConsumer(Consumer):
    """A consumer started from code (tests, `flask queue work`'s own loop): no signal handlers
    of its own, so the host process keeps its Ctrl-C."""

    def _set_signal_handlers(self):
        pass


def start_consumer(app: Flask, *, workers: int = 1, periodic: bool = True, poll_seconds: float = 0.1) -> Consumer:
    """Start worker threads that run queued tasks inside `app`. Returns the consumer (`stop()` it)."""
    global _worker_app
    _worker_app = app
    consumer = _InProcessConsumer(huey, workers=workers, worker_type="thread", periodic=periodic,
                                  initial_delay=poll_seconds, backoff=1.15, max_delay=max(poll_seconds, 1.0),
                                  check_worker_health=True)
    consumer.start()
    return consumer


def bind_worker_app(app: Flask | None) -> None:
    """Run tasks inside `app` from now on (the consumer keeps running)."""
    global _worker_app
    _worker_app = app


def drain(timeout: float = 15.0) -> bool:
    """Wait until nothing is queued, scheduled (retries) or running. True if it got there."""
    def idle() -> bool:
        return not huey._tasks_in_flight and huey.pending_count() == 0 and huey.scheduled_count() == 0

    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if idle():
                time.sleep(0.05)  # a task may be between dequeue and execution: look twice
                if idle():
                    return True
            time.sleep(0.02)
    except Exception as error:
        if not _is_outage(error):
            raise
    return False


def run_consumer(app: Flask, *, workers: int) -> None:
    """Run a consumer until Ctrl-C or SIGTERM (`flask queue work`)."""
    import signal

    consumer = start_consumer(app, workers=workers, poll_seconds=0.1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logger.info("queue consumer running with %s worker thread(s)", workers)
    while not stop.is_set():
        stop.wait(1)
    consumer.stop(graceful=True)


from portal.tasks import jobs  # noqa: E402,F401  (registers the tasks)
