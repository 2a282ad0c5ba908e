"""The HTTP client's error messages (httpx.MockTransport: edge cases only)."""

from __future__ import annotations

import httpx
import pytest

from dashboard.client import ApiError, Connection, ReadinessClient


def client(handler, token="swo_t"):
    return ReadinessClient(
        Connection("http://switchover.test", token), transport=httpx.MockTransport(handler)
    )


def test_the_token_is_sent_as_a_bearer_and_lists_are_returned():
    seen = {}

    def handler(request):
        seen["auth"] = request.headers["authorization"]
        seen["query"] = dict(request.url.params.multi_items())
        return httpx.Response(200, json=[{"name": "a"}])

    assert client(handler).pairs("a", "quality.rouge_l", 3) == [{"name": "a"}]
    assert seen["auth"] == "Bearer swo_t"
    assert seen["query"] == {"use_case": "a", "limit": "3", "worst_by": "quality.rouge_l"}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"detail": "unknown token"}, "refused the dashboard's token (unknown token)"),
        (403, {"detail": "this needs an admin token"}, "may not read this"),
        (500, {"detail": "boom"}, "failed (HTTP 500): boom"),
        (502, "<html>bad gateway</html>", "failed (HTTP 502): <html>bad gateway</html>"),
    ],
)
def test_error_answers_become_readable_messages(status, body, expected):
    def handler(_request):
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    with pytest.raises(ApiError) as error:
        client(handler).use_cases()
    assert expected in str(error.value)
    assert error.value.status == status


def test_cost_is_none_until_the_service_has_a_projection():
    def handler(_request):
        return httpx.Response(404, json={"detail": "Not Found"})

    assert client(handler).cost("a") is None


def test_without_a_token_nothing_is_sent():
    def handler(_request):
        raise AssertionError("no request without a token")

    with pytest.raises(ApiError, match="no viewer token"):
        client(handler, token=None).readiness_all()


def test_connection_comes_from_the_environment():
    assert Connection.from_environment({}) == Connection("http://127.0.0.1:8080", None)
    assert Connection.from_environment(
        {"SWITCHOVER_URL": "https://s.internal/", "SWITCHOVER_TOKEN": "swo_x"}
    ) == Connection("https://s.internal", "swo_x")
