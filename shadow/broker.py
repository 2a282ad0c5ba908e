"""The Celery application the processes talk through: Redis or RabbitMQ, a local file when embedded.

Built by `create_celery` where a process needs it (the proxy's publisher, a worker), never at
import time.
"""

from __future__ import annotations

import math
from typing import Any

from celery import Celery

from criteria.readiness.tasks import EVALUATE_ALL
from evaluators.retry import CONF_KEY as RETRY_CAP_KEY
from evaluators.tasks import SCORE_PAIRS
from shadow.jobs import PURGE_EXPIRED, SWEEP_UNSCORED
from shadow.localqueue import SCHEME
from shadow.redisqueue import TRANSPORT as REDIS_TRANSPORT
from shadow.settings import Settings


def create_celery(settings: Settings, bounded: bool = False) -> Celery:
    """A Celery app whose jobs survive a worker killed mid-task (acks late, requeue on loss).

    `bounded`: the proxy's publisher, whose shadow jobs the local queue refuses past
    `shadow_buffer_size` (a worker's retries and scoring jobs are never refused).
    """
    app = Celery("switchover", broker=settings.broker_url or f"{SCHEME}://localhost/")
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
    transport: str | None = None
    if settings.embedded:
        bounds = {settings.queue: settings.shadow_buffer_size} if bounded else {}
        transport_options = {"path": str(settings.local_queue_path), "bounds": bounds}
    elif (settings.broker_url or "").startswith("redis://"):
        # kombu's Redis transport without the gap between taking a job and recording it
        transport = REDIS_TRANSPORT
    app.conf.update(
        include=["shadow.worker.tasks", "criteria.readiness.tasks", "evaluators.tasks"],
        task_routes={SCORE_PAIRS: {"queue": settings.scoring_queue_name}},
        beat_schedule={
            "evaluate-readiness": {"task": EVALUATE_ALL, "schedule": settings.evaluate_every_s},
            "purge-expired-pairs": {"task": PURGE_EXPIRED, "schedule": settings.purge_every_s},
            "sweep-unscored-pairs": {"task": SWEEP_UNSCORED, "schedule": settings.sweep_every_s},
        },
        task_default_queue=settings.queue,
        **{RETRY_CAP_KEY: settings.retry_max_countdown_s},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_timeout=settings.broker_publish_timeout_s,
        broker_connection_retry_on_startup=True,
        broker_transport=transport,
        broker_transport_options=transport_options,
        task_publish_retry_policy={
            "max_retries": 1,
            "interval_start": 0.1,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    )
    return app
