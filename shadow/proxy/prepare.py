"""Readying a shadow job for its candidate, in the mirror's thread (never the request path).

A Responses turn is kept for the turns after it, and a turn that builds on an earlier one gets
that history written in; a request goes to the candidate in the form its upstream serves.
What cannot be asked faithfully is skipped and counted in `switchover_shadow_skipped_total`.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from shadow.apis.responses import completed_response, input_items, output_items, self_contained
from shadow.apis.translate import Untranslatable, for_candidate
from shadow.config import SwitchoverConfig
from shadow.jobs import ShadowJob
from shadow.metrics import SHADOW_SKIPPED
from shadow.proxy.turns import TurnStore

log = logging.getLogger(__name__)

UNTRANSLATABLE = "untranslatable"
UNKNOWN_PREVIOUS_TURN = "unknown_previous_response"
CONVERSATION = "conversation_state"


class _Skip(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class JobPreparer:
    """Turns kept, history written in, translation: the job as the candidate must get it."""

    def __init__(self, config: SwitchoverConfig, turns: TurnStore) -> None:
        self._config = config
        self._turns = turns

    def ready_as_is(self, job: ShadowJob) -> bool:
        """Whether the job goes out unchanged: no turn to keep, nothing to translate.

        Cheap enough for the event loop (the mirror writes such jobs from there).
        """
        if job.endpoint == "responses" or job.turn_only:
            return False
        use_case = self._config.use_cases.get(job.use_case)
        if use_case is None:
            return False
        if job.candidate is not None or job.primary is None:
            return True
        target = use_case.targets.get(job.candidate_name)
        return target is not None and job.endpoint in self._config.upstreams[target.upstream].forms

    def __call__(self, job: ShadowJob) -> ShadowJob | None:
        """The job to publish, or None when there is nothing to mirror."""
        if self.ready_as_is(job):
            return job
        use_case = self._config.use_cases.get(job.use_case)
        if use_case is None:
            return None
        try:
            request = self._stateful(job) if job.endpoint == "responses" else None
            if job.turn_only or job.candidate is not None or job.primary is None:
                # the candidate already answered (canary), or there is nothing to ask it
                return None if job.turn_only else job
            target = use_case.targets.get(job.candidate_name)
            if target is None:
                return None
            forms = self._config.upstreams[target.upstream].forms
            if request is None and job.endpoint in forms:
                return job
            if request is None:
                request = orjson.loads(job.request_body)
            try:
                form, body = for_candidate(job.endpoint, request, forms)
            except Untranslatable as exc:
                raise _Skip(UNTRANSLATABLE, str(exc)) from None
        except _Skip as skip:
            if not job.turn_only:
                SHADOW_SKIPPED.labels(job.use_case, skip.reason).inc()
                log.info("pair %s not mirrored (%s): %s", job.pair_id, skip.reason, skip)
            return None
        return job.model_copy(
            update={
                "candidate_endpoint": form,
                "candidate_request": orjson.dumps(body).decode(),
            }
        )

    def _stateful(self, job: ShadowJob) -> dict[str, Any] | None:
        """Keep this turn; the self-contained request when it builds on an earlier one."""
        request = orjson.loads(job.request_body)
        if request.get("conversation") is not None:
            raise _Skip(CONVERSATION, "a conversation's items live with the API only")
        previous = request.get("previous_response_id")
        history: list[Any] = []
        if previous is not None:
            found = self._turns.get(str(previous))
            if found is None:
                raise _Skip(UNKNOWN_PREVIOUS_TURN, f"turn {previous} did not pass through here")
            history = found
        if job.primary is not None and request.get("store") is not False:
            response = completed_response(job.primary.body.encode(), job.stream)
            if response is not None and isinstance(response.get("id"), str):
                turn = [*history, *input_items(request), *output_items(response)]
                self._turns.put(response["id"], turn)
        return self_contained(request, history) if previous is not None else None
