"""The Celery application: Redis or RabbitMQ in distributed mode, in-process when embedded."""

from __future__ import annotations

import math
import threading
from typing import Any

from celery import Celery

from criteria.readiness.tasks import EVALUATE_ALL
from evaluators.pair import Deployment
from evaluators.runtime import configure
from evaluators.tasks import SCORE_PAIRS
from shadow.config import SwitchoverConfig
from shadow.settings import Settings, get_settings
from shadow.worker.retention import PURGE_EXPIRED

EMBEDDED_BROKER = "memory://localhost/"


def create_celery(settings: Settings) -> Celery:
    """A Celery app whose jobs survive a worker killed mid-task (acks late, requeue on loss)."""
    app = Celery("switchover", broker=settings.broker_url or EMBEDDED_BROKER)
    visibility_s = settings.broker_visibility_timeout_s
    transport_options: dict[str, Any] = {
        "visibility_timeout": visibility_s,
        # Redis: look for jobs of dead workers every 5 s x throttle, about a tenth of the
        # visibility timeout (kombu's default is every 100 s).
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": max(1, math.ceil(visibility_s / 50)),
        "socket_connect_timeout": settings.broker_publish_timeout_s,
        "socket_timeout": settings.broker_publish_timeout_s,
    }
    if settings.embedded:
        transport_options = {"polling_interval": 0.05}
    app.conf.update(
        include=["shadow.worker.tasks", "criteria.readiness.tasks", "evaluators.tasks"],
        task_routes={SCORE_PAIRS: {"queue": settings.scoring_queue_name}},
        beat_schedule={
            "evaluate-readiness": {"task": EVALUATE_ALL, "schedule": settings.evaluate_every_s},
            "purge-expired-pairs": {"task": PURGE_EXPIRED, "schedule": settings.purge_every_s},
        },
        task_default_queue=settings.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_timeout=settings.broker_publish_timeout_s,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        task_publish_retry_policy={
            "max_retries": 1,
            "interval_start": 0.1,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    )
    return app


celery_app = create_celery(get_settings())


def configure_evaluators(config: SwitchoverConfig) -> None:
    """Hand the `evaluators:` section and the candidates' deployments to the scoring."""
    deployments = {}
    for name, use_case in config.use_cases.items():
        deployment = config.upstreams[use_case.candidate.upstream].deployment
        if deployment is not None:
            # Per replica, like the capacity a replay measures.
            hourly = deployment.hourly_usd * deployment.gpu_count
            deployments[name] = Deployment(hourly_usd=hourly)
    configure(config.evaluators, deployments)


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


def start_embedded_worker(app: Celery, settings: Settings) -> EmbeddedWorker:
    """Run a thread-pool worker inside this process (embedded mode)."""
    import shadow.worker.tasks  # noqa: F401 - registers the tasks with every app

    # Pool threads run tasks from the default app's registry, and a task's own `self.app`
    # publishes its follow-ups (scoring, retries): that must be this worker's app.
    app.set_default()
    worker = app.WorkController(
        pool_cls="threads",
        concurrency=settings.embedded_worker_concurrency,
        queues=[settings.queue, settings.scoring_queue_name],
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="WARNING",
    )
    thread = threading.Thread(target=worker.start, name="switchover-embedded-worker", daemon=True)
    thread.start()
    return EmbeddedWorker(worker, thread)
