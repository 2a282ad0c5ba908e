"""The LLM judge against a real (stub) OpenAI-compatible HTTP server on this machine."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from evaluators.base import PartialFailure
from evaluators.config import JudgeConfig
from evaluators.judge import JudgeEvaluator, candidate_first, parse_verdict
from evaluators.rubrics import rubrics
from tests.evaluators.conftest import make_pair


class JudgeStub(ThreadingHTTPServer):
    """Prefers the answer that contains GOOD; ties when both or neither do; 500 on BROKEN."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []


class _Handler(BaseHTTPRequestHandler):
    server: JudgeStub

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"body": body, "auth": self.headers.get("Authorization")})
        prompt = body["messages"][-1]["content"]
        a = prompt.split("[Answer A]")[1].split("[Answer B]")[0]
        b = prompt.split("[Answer B]")[1].split("Which answer")[0]
        if "BROKEN" in prompt:
            self.send_response(500)
            self.end_headers()
            return
        winner = "tie" if ("GOOD" in a) == ("GOOD" in b) else ("A" if "GOOD" in a else "B")
        content = f'Sure. {{"reason": "stub", "winner": "{winner}"}}'
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def judge_server() -> Iterator[JudgeStub]:
    server = JudgeStub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _judge(server: JudgeStub, **options) -> JudgeEvaluator:
    port = server.server_address[1]
    config = JudgeConfig(
        enabled=True, base_url=f"http://127.0.0.1:{port}/v1", model="judge", **options
    )
    return JudgeEvaluator(config)


def test_the_candidate_is_scored_whatever_side_it_is_shown_on(judge_server, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-judge")
    judge = _judge(judge_server, api_key_env="TEST_JUDGE_KEY")
    ids = [f"pair-{n}" for n in range(12)]
    better = judge.score([make_pair("meh", "GOOD answer", pair_id=i) for i in ids])
    worse = judge.score([make_pair("GOOD answer", "meh", pair_id=i) for i in ids])
    tie = judge.score([make_pair("same", "same", pair_id=i) for i in ids])
    assert better == [{"quality.judge_score": 1.0}] * 12
    assert worse == [{"quality.judge_score": 0.0}] * 12
    assert tie == [{"quality.judge_score": 0.5}] * 12
    orders = {candidate_first(i) for i in ids}
    assert orders == {True, False}, "the candidate was always shown on the same side"
    request = judge_server.requests[0]
    assert request["auth"] == "Bearer sk-judge"
    assert request["body"]["model"] == "judge"
    assert request["body"]["messages"][0]["content"] == rubrics()["pairwise-v1"]["system"]


def test_a_failing_judge_call_fails_only_its_pair(judge_server):
    judge = _judge(judge_server)
    with pytest.raises(PartialFailure) as failure:
        judge.score([make_pair("meh", "GOOD"), make_pair("x", "BROKEN"), make_pair(None, "x")])
    assert failure.value.values[0] == {"quality.judge_score": 1.0}
    assert failure.value.values[2] == {}
    assert set(failure.value.errors) == {1}
    assert "500" in failure.value.errors[1]


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ('{"winner": "A"}', "A"),
        ('{"reason": "x", "winner":"b"}', "B"),
        ('{"winner": "TIE"}', "tie"),
    ],
)
def test_verdicts_are_read_from_the_reply(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_a_reply_without_a_verdict_is_an_error():
    with pytest.raises(ValueError, match="no verdict"):
        parse_verdict("Answer A is better.")


def test_the_judge_needs_an_endpoint_and_a_known_rubric():
    with pytest.raises(ValueError, match="base_url"):
        JudgeEvaluator(JudgeConfig(enabled=True))
    with pytest.raises(ValueError, match="rubric"):
        JudgeEvaluator(JudgeConfig(enabled=True, base_url="http://x/v1", model="m", rubric="v9"))
