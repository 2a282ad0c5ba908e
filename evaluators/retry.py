"""How long a task waits before trying again: doubling, capped below the visibility timeout.

The cap is a deployment setting (`SWITCHOVER_RETRY_MAX_COUNTDOWN_S`, checked at start-up to
be shorter than `SWITCHOVER_BROKER_VISIBILITY_TIMEOUT_S`) that the Celery app carries in its
configuration: a Redis broker hands an unacknowledged message to another worker once the
visibility timeout passes, so a countdown longer than it would copy the job at every retry.
"""

from __future__ import annotations

from typing import Any

DEFAULT_MAX_COUNTDOWN_S = 60
# The key of the cap in a Celery app's configuration (`shadow.broker.create_celery`).
CONF_KEY = "switchover_retry_max_countdown_s"


def countdown(app: Any, attempt: int) -> int:
    """Seconds to wait before attempt `attempt + 1`: 1, 2, 4, … up to `app`'s cap."""
    cap = int(app.conf.get(CONF_KEY) or DEFAULT_MAX_COUNTDOWN_S)
    wait: int = max(1, min(cap, 2 ** min(max(attempt, 0), 6)))
    return wait
