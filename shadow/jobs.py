"""The shadow job: what the proxy hands to the queue after the primary has answered.

It never carries the client's `Authorization` header or any key; the worker uses the keys of
its own configuration.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel

# The Celery task names both processes agree on (the worker registers them, the proxy and
# beat send them): names, not imports, so that the proxy never loads the worker's code.
MIRROR_PAIR = "shadow.mirror_pair"
PURGE_EXPIRED = "shadow.purge_expired"
SWEEP_UNSCORED = "shadow.sweep_unscored"

# The endpoints served, by the name a job and a stored pair carry, and their path under an
# upstream's API root (`Upstream.url`; the proxy serves the same paths under `/v1`).
ENDPOINT_PATHS = {
    "chat.completions": "/chat/completions",
    "completions": "/completions",
    "responses": "/responses",
    "messages": "/messages",
}


class PrimaryCapture(BaseModel):
    """The primary's answer as the proxy saw it pass."""

    status_code: int
    body: str
    latency_ms: float
    first_byte_ms: float
    request_id: str | None = None
    # (bytes received so far, seconds since the request) per chunk of a streamed answer
    arrivals: list[tuple[int, float]] | None = None


class CandidateCapture(BaseModel):
    """The candidate's live answer (canary), or how it failed before the primary took over."""

    status_code: int | None = None
    body: str = ""
    latency_ms: float
    first_byte_ms: float | None = None
    request_id: str | None = None
    arrivals: list[tuple[int, float]] | None = None
    error: str | None = None
    error_kind: str | None = None


class ShadowJob(BaseModel):
    """One sampled request, waiting to be replayed to the side that did not answer it live.

    In shadow mode the primary answered and the candidate is asked. When the candidate answered
    live (canary), `primary` is None and the worker asks the primary instead (the reverse
    shadow); when the candidate failed and the primary answered, both sides are captured.
    """

    pair_id: str
    use_case: str
    endpoint: str
    received_at: float
    request_body: str
    stream: bool
    client_auth: bool
    primary: PrimaryCapture | None
    candidate: CandidateCapture | None = None
    feature: str | None = None
    # the noise re-ask the proxy made itself, with the client's own key (never stored here)
    noise: PrimaryCapture | None = None
    # the request as the candidate gets it, when that differs from `request_body`: translated
    # to the form its upstream serves, or with the earlier Responses turns written in
    candidate_endpoint: str | None = None
    candidate_request: str | None = None
    # a Responses turn kept for later turns only: never mirrored, never leaves the proxy
    turn_only: bool = False
    # which of the use case's candidates this job is for
    candidate_name: str = "default"
    # whether this job may re-ask the primary: of the jobs one request gives its candidates,
    # one does, so that a single re-ask serves them all
    reask: bool = True


def unit_interval(pair_id: str, salt: str) -> float:
    """A number in [0, 1) fixed by the pair id, so the proxy and a re-run job choose alike."""
    digest = hashlib.sha256(f"{salt}:{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
