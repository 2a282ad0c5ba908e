"""The proxy's view of the gradual cut-over: live percentages in memory, counts to flush.

The hot path reads a percentage from a dict and bumps a counter; a background task refreshes
the percentages from the database every second or so and adds the counts there (per minute
and outcome, summed over every proxy), so the evaluation cycle can compute the fallback rate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from criteria.rollout import service as rollout_service
from criteria.rollout.rules import starting_percent
from criteria.rollout.service import LiveState
from criteria.usecases import Catalog
from shadow.config import SwitchoverConfig
from shadow.metrics import LIVE_OUTCOMES, LIVE_PERCENT
from storage.db import session_scope

log = logging.getLogger(__name__)

_Key = tuple[str, int, str]


class LiveTraffic:
    """Live percentage and candidate per use case, and outcome counts not yet stored."""

    def __init__(self, percent: dict[str, float], candidate: dict[str, str] | None = None) -> None:
        self.percent = dict(percent)
        # the candidate that takes the live share (absent: the use case's lead candidate)
        self.candidate = dict(candidate or {})
        self._counts: dict[_Key, int] = {}
        for name, value in percent.items():
            LIVE_PERCENT.labels(name).set(value)

    @classmethod
    def from_config(cls, config: SwitchoverConfig) -> LiveTraffic:
        """The starting percentages of the configured modes."""
        return cls(
            {
                name: starting_percent(use_case.mode, use_case.rollout_plan)
                for name, use_case in config.use_cases.items()
            }
        )

    def count(self, use_case: str, outcome: str) -> None:
        """One live request routed to the candidate ended with `outcome`."""
        key = (use_case, int(time.time() // 60), outcome)
        self._counts[key] = self._counts.get(key, 0) + 1
        LIVE_OUTCOMES.labels(use_case, outcome).inc()

    def take(self) -> dict[_Key, int]:
        """The counts so far, leaving none behind."""
        counts, self._counts = self._counts, {}
        return counts

    def restore(self, counts: dict[_Key, int]) -> None:
        """Put back counts that could not be stored, for the next attempt."""
        for key, n in counts.items():
            self._counts[key] = self._counts.get(key, 0) + n

    def update(self, states: dict[str, LiveState]) -> None:
        """Take the stored percentages and candidates."""
        for name, (value, candidate) in states.items():
            if self.percent.get(name) != value or self.candidate.get(name, candidate) != candidate:
                log.warning("use case %s: %g%% of live traffic to %s", name, value, candidate)
                LIVE_PERCENT.labels(name).set(value)
        self.percent = {name: state.percent for name, state in states.items()}
        self.candidate = {name: state.candidate for name, state in states.items()}


def _store(catalog: Catalog, counts: dict[_Key, int]) -> dict[str, LiveState]:
    by_minute = {
        (use_case, datetime.fromtimestamp(minute * 60, UTC), outcome): n
        for (use_case, minute, outcome), n in counts.items()
    }
    with session_scope() as session:
        return rollout_service.sync_live(session, catalog, by_minute)


class LiveSync:
    """The background task that keeps `LiveTraffic` and the database in step."""

    def __init__(self, live: LiveTraffic, catalog: Catalog, every_s: float) -> None:
        self._live = live
        self._catalog = catalog
        self._every_s = every_s
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    async def sync(self) -> None:
        """One exchange with the database; on failure the counts wait for the next one."""
        counts = self._live.take()
        try:
            percent = await asyncio.to_thread(_store, self._catalog, counts)
        except Exception as exc:
            self._live.restore(counts)
            if not self._failing:
                log.warning("live rollout state not synced with the database: %s", exc)
            self._failing = True
            return
        if self._failing:
            log.warning("live rollout state synced with the database again")
        self._failing = False
        self._live.update(percent)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            await self.sync()

    def start(self) -> None:
        """Run `sync` every `every_s` seconds in the event loop."""
        self._task = asyncio.create_task(self._run(), name="switchover-live-sync")

    async def stop(self) -> None:
        """Stop the loop and store the last counts."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.sync()
