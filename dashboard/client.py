"""The readiness API over HTTP, with errors a stakeholder can read."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
Params = Mapping[str, str | int | bool | Sequence[str]]


class ApiError(Exception):
    """The service could not answer; the message says why in plain words."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Connection:
    """Where the service is and the viewer token the dashboard reads it with."""

    url: str
    token: str | None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Connection:
        """SWITCHOVER_URL and SWITCHOVER_TOKEN, as `switchover dashboard` sets them."""
        environ = os.environ if environ is None else environ
        url = environ.get("SWITCHOVER_URL") or DEFAULT_URL
        return cls(url=url.rstrip("/"), token=environ.get("SWITCHOVER_TOKEN") or None)


def _whose(candidate: str | None) -> dict[str, str]:
    """The `candidate` query parameter, left out for the lead (so one-candidate reads stay)."""
    return {"candidate": candidate} if candidate is not None else {}


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(body)[:300]


def explain(url: str, response: httpx.Response) -> ApiError:
    """An ApiError for an answer other than 200, worded for the person at the dashboard."""
    status = response.status_code
    detail = _detail(response)
    if status == 401:
        message = (
            f"The Switchover service at {url} refused the dashboard's token ({detail}). "
            "Start the dashboard with a viewer token: `switchover tokens create --role viewer`, "
            "then `switchover dashboard --token …` (or set SWITCHOVER_TOKEN)."
        )
    elif status == 403:
        message = f"The dashboard's token may not read this ({detail})."
    elif status == 404:
        message = f"Not found at {url}: {detail}"
    elif status >= 500:
        message = f"The Switchover service at {url} failed (HTTP {status}): {detail}"
    else:
        message = f"The Switchover service at {url} answered HTTP {status}: {detail}"
    return ApiError(message, status)


class ReadinessClient:
    """GET requests to /api/v1 with a bearer token; every failure becomes an ApiError."""

    def __init__(
        self,
        connection: Connection,
        timeout_s: float = 20,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.connection = connection
        headers = {"authorization": f"Bearer {connection.token}"} if connection.token else {}
        self._http = httpx.Client(
            base_url=connection.url, headers=headers, timeout=timeout_s, transport=transport
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ReadinessClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(self, path: str, params: Params | None = None) -> Any:
        """The JSON body of GET /api/v1{path}; ApiError for anything but a 200."""
        url = self.connection.url
        if self.connection.token is None:
            raise ApiError(
                "The dashboard has no viewer token. Create one with "
                "`switchover tokens create --role viewer` and start the dashboard with "
                "`switchover dashboard --token …` (or set SWITCHOVER_TOKEN)."
            )
        try:
            response = self._http.get(f"/api/v1{path}", params=params)
        except httpx.TimeoutException:
            raise ApiError(f"The Switchover service at {url} did not answer in time.") from None
        except httpx.HTTPError as exc:
            raise ApiError(
                f"Cannot reach the Switchover service at {url} ({exc.__class__.__name__}: "
                f"{exc}). Is `switchover serve` running there?"
            ) from None
        if response.status_code != 200:
            raise explain(url, response)
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"The service at {url} did not answer with JSON.") from None

    def use_cases(self) -> list[dict[str, Any]]:
        """Configured use cases with their pair counts."""
        body: list[dict[str, Any]] = self.get("/use-cases")
        return body

    def readiness_all(self) -> list[dict[str, Any]]:
        """Every use case's current verdict."""
        body: list[dict[str, Any]] = self.get("/readiness")
        return body

    def readiness(self, use_case: str, candidate: str | None = None) -> dict[str, Any]:
        """One use case's verdict with its criteria (`candidate`'s; default the lead one)."""
        body: dict[str, Any] = self.get(f"/readiness/{use_case}", _whose(candidate))
        return body

    def optional(self, path: str, params: Params | None = None) -> dict[str, Any] | None:
        """Like `get`, but None when the service has nothing there (404)."""
        try:
            body: dict[str, Any] = self.get(path, params)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return body

    def criteria(self, use_case: str) -> dict[str, Any] | None:
        """The criteria document in force, or None when the use case has none."""
        return self.optional(f"/use-cases/{use_case}/criteria")

    def history(
        self, use_case: str, limit: int = 200, candidate: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored verdicts, newest first."""
        params: Params = {"limit": limit, **_whose(candidate)}
        body: list[dict[str, Any]] = self.get(f"/readiness/{use_case}/history", params)
        return body

    def pairs(
        self, use_case: str, worst_by: str | None, limit: int = 10, candidate: str | None = None
    ) -> list[dict[str, Any]]:
        """Pairs with their scores, the worst by `worst_by` first (newest first without it)."""
        params: dict[str, str | int] = {"use_case": use_case, "limit": limit, **_whose(candidate)}
        if worst_by:
            params["worst_by"] = worst_by
        body: list[dict[str, Any]] = self.get("/pairs", params)
        return body

    def distributions(
        self,
        use_case: str,
        metrics: Sequence[str],
        shared: bool = True,
        bins: int = 30,
        candidate: str | None = None,
    ) -> dict[str, Any]:
        """Histograms and quantiles of per-pair scores."""
        params: Params = {"metric": list(metrics), "shared": shared, "bins": bins}
        body: dict[str, Any] = self.get(
            f"/use-cases/{use_case}/distributions", {**params, **_whose(candidate)}
        )
        return body

    def timeline(
        self, use_case: str, metric: str, buckets: int = 40, candidate: str | None = None
    ) -> dict[str, Any]:
        """A per-pair score's median and 90th percentile over time."""
        params: Params = {"metric": metric, "buckets": buckets, **_whose(candidate)}
        body: dict[str, Any] = self.get(f"/use-cases/{use_case}/timeline", params)
        return body

    def cost(self, use_case: str, candidate: str | None = None) -> dict[str, Any] | None:
        """The monthly cost projection, or None while the service has none."""
        return self.optional(f"/use-cases/{use_case}/cost", _whose(candidate) or None)

    def rollout(self, use_case: str) -> dict[str, Any]:
        """The live rollout: mode, percentage, steps, fallback rate and history."""
        body: dict[str, Any] = self.get(f"/use-cases/{use_case}/rollout")
        return body
