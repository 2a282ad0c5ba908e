"""The pages' reads of the readiness API, cached briefly: figures move as pairs arrive."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard.client import Connection, ReadinessClient

CACHE_TTL_S = 20


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Reading the readiness API…")
def _read(url: str, token: str | None, call: str, args: tuple[Any, ...]) -> Any:
    with ReadinessClient(Connection(url, token)) as client:
        return getattr(client, call)(*args)


class Api:
    """ReadinessClient's reads through the cache; errors (ApiError) are never cached."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def _get(self, call: str, *args: Any) -> Any:
        return _read(self.connection.url, self.connection.token, call, args)

    def use_cases(self) -> list[dict[str, Any]]:
        """Configured use cases with their pair counts."""
        body: list[dict[str, Any]] = self._get("use_cases")
        return body

    def readiness_all(self) -> list[dict[str, Any]]:
        """Every use case's current verdict."""
        body: list[dict[str, Any]] = self._get("readiness_all")
        return body

    def readiness(self, use_case: str, candidate: str | None = None) -> dict[str, Any]:
        """One use case's verdict with its criteria (and every candidate's rank)."""
        body: dict[str, Any] = self._get("readiness", use_case, candidate)
        return body

    def criteria(self, use_case: str) -> dict[str, Any] | None:
        """The criteria document in force, or None when there is none."""
        body: dict[str, Any] | None = self._get("criteria", use_case)
        return body

    def history(self, use_case: str, candidate: str | None = None) -> list[dict[str, Any]]:
        """Stored verdicts, newest first."""
        body: list[dict[str, Any]] = self._get("history", use_case, 200, candidate)
        return body

    def pairs(
        self, use_case: str, worst_by: str | None, limit: int, candidate: str | None = None
    ) -> list[dict[str, Any]]:
        """Pairs, the worst by `worst_by` first."""
        body: list[dict[str, Any]] = self._get("pairs", use_case, worst_by, limit, candidate)
        return body

    def distributions(
        self,
        use_case: str,
        metrics: tuple[str, ...],
        shared: bool,
        candidate: str | None = None,
    ) -> Any:
        """Histograms and quantiles of per-pair scores."""
        return self._get("distributions", use_case, metrics, shared, 30, candidate)

    def timeline(self, use_case: str, metric: str, candidate: str | None = None) -> dict[str, Any]:
        """A per-pair score over time."""
        body: dict[str, Any] = self._get("timeline", use_case, metric, 40, candidate)
        return body

    def cost(self, use_case: str, candidate: str | None = None) -> dict[str, Any] | None:
        """The monthly cost projection, None until the service has one."""
        body: dict[str, Any] | None = self._get("cost", use_case, candidate)
        return body

    def rollout(self, use_case: str) -> dict[str, Any]:
        """The live rollout and its history."""
        body: dict[str, Any] = self._get("rollout", use_case)
        return body


def refresh() -> None:
    """Forget every cached answer, so the next run reads the service afresh."""
    _read.clear()
