"""Embedded mode's worker: a thread-pool Celery worker on the local queue file.

`switchover serve` runs it in processes of its own (`python -m shadow.worker.embedded`,
supervised by `shadow.supervisor`), so the candidate calls and the scoring never share the
proxy's process; `create_app` can still host one in a thread (tests, a library caller).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from shadow.localqueue import LocalQueue
from shadow.serving import lower_priority
from shadow.settings import Settings, get_settings

log = logging.getLogger(__name__)

_BEAT_S = 2.0


class EmbeddedWorker:
    """A thread-pool Celery worker running in a thread of the server process."""

    def __init__(self, controller: Any, thread: threading.Thread) -> None:
        self._controller = controller
        self._thread = thread

    def is_alive(self) -> bool:
        """Whether the worker thread still runs."""
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop consuming, let running jobs finish (up to `timeout_s`)."""
        self._controller.stop(in_sighandler=False)
        self._thread.join(timeout_s)


def _worker_options(settings: Settings) -> dict[str, Any]:
    return {
        "pool_cls": "threads",
        "concurrency": settings.embedded_worker_concurrency,
        "queues": [settings.queue, settings.scoring_queue_name],
        "without_heartbeat": True,
        "without_mingle": True,
        "without_gossip": True,
        "loglevel": "WARNING",
        "quiet": True,
    }


def start_embedded_worker(app: Celery, settings: Settings) -> EmbeddedWorker:
    """Run a thread-pool worker inside this process."""
    import shadow.worker.tasks  # noqa: F401 - registers the tasks with every app

    # Pool threads run tasks from the default app's registry, and a task's own `self.app`
    # publishes its follow-ups (scoring, retries): that must be this worker's app.
    app.set_default()
    worker = app.WorkController(**_worker_options(settings))
    thread = threading.Thread(target=worker.start, name="switchover-embedded-worker", daemon=True)
    thread.start()
    return EmbeddedWorker(worker, thread)


def _watch(queue: LocalQueue, parent: int, ready: threading.Event) -> None:
    """Report this process alive in the queue file; stop warmly when the supervisor is gone."""
    stop = threading.Event()
    while not stop.wait(_BEAT_S):
        if os.getppid() != parent:
            log.warning("the supervising `switchover serve` is gone; stopping")
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if ready.is_set():
            queue.beat(os.getpid())


def main(argv: list[str] | None = None) -> None:
    """One embedded worker process: shadow jobs and scoring, the periodic work in worker 0."""
    parser = argparse.ArgumentParser(prog="python -m shadow.worker.embedded")
    parser.add_argument("--index", type=int, default=0, help="0 also runs the periodic work")
    args = parser.parse_args(argv)
    from shadow.startup import configure_logging

    configure_logging("info")
    from criteria.readiness.tasks import configure as configure_readiness
    from shadow.broker import create_celery
    from shadow.catalog import catalog_for
    from shadow.worker.measure import build_runtime, configure_evaluators, use_runtime
    from shadow.worker.periodic import Periodic, PeriodicEvaluation
    from shadow.worker.retention import purge_expired
    from storage.db import configure_database

    settings = get_settings()
    # On the proxies' machine, a busy worker (the scoring model) takes only the CPU they leave.
    lower_priority(settings.embedded_worker_nice, settings.embedded_worker_idle)
    config = settings.load_config()
    configure_database(settings.database_url.get_secret_value())
    catalog = catalog_for(config, settings.config_dir(), settings.evaluate_every_s)
    configure_readiness(catalog)
    use_runtime(build_runtime(settings, config))
    configure_evaluators(config)
    celery_app = create_celery(settings)
    if args.index == 0:
        from shadow.worker.tasks import sweep_unscored

        PeriodicEvaluation(catalog, settings.evaluate_every_s)
        Periodic(lambda: purge_expired(config), settings.purge_every_s, "switchover-retention")
        Periodic(lambda: sweep_unscored(celery_app), settings.sweep_every_s, "switchover-sweep")
    queue = LocalQueue(settings.local_queue_path)
    ready = threading.Event()

    def on_ready(**_: Any) -> None:
        ready.set()
        queue.beat(os.getpid())

    worker_ready.connect(on_ready, weak=False)
    threading.Thread(
        target=_watch, args=(queue, os.getppid(), ready), name="switchover-watch", daemon=True
    ).start()
    # See `switchover worker`: the scoring's encoding thread needs the GIL back quickly.
    sys.setswitchinterval(settings.worker_switch_interval_ms / 1000)
    import shadow.worker.tasks  # noqa: F401 - registers the tasks

    try:
        celery_app.Worker(**_worker_options(settings)).start()
    finally:
        queue.gone(os.getpid())


if __name__ == "__main__":
    main()
