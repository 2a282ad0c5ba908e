"""Every route under /api/v1, taken from the app's own route table, checks its token.

A route added later is enumerated too, so it cannot slip through without a token check.
"""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from criteria.access.auth import create_token, hash_token
from shadow.app import create_app
from shadow.config import parse_config
from shadow.settings import Settings
from storage.db import make_engine, session_scope
from storage.models import ApiToken
from tests.conftest import CapturedJobs, config_text, table_dump

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# POSTs that only read: Flagger's confirm-promotion webhook POSTs to the gate.
READ_ONLY_POSTS = {("POST", "/api/v1/gate/{use_case}")}


@pytest.fixture
def api(sqlite_url, monkeypatch):
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", sqlite_url)
    config = config_text("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1")
    app = create_app(
        Settings(broker_url="redis://127.0.0.1:9/0"), parse_config(config), CapturedJobs().publish
    )
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        tokens = {role: create_token(session, role, f"{role}-test") for role in ("viewer", "admin")}
    engine.dispose()
    return app, TestClient(app), tokens, sqlite_url


def _routes(app):
    """(method, path) of every route under /api/v1, included routers flattened."""
    found = []
    for context in iter_route_contexts(app.routes):
        path = context.path or ""
        if not path.startswith("/api/v1"):
            continue
        assert isinstance(context.original_route, APIRoute), f"{path}: not an API route"
        found += [(method, path) for method in sorted(context.methods or ())]
    return found


def _call(client, method, path, token=None):
    url = re.sub(r"\{[^}]+\}", "default", path)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return client.request(method, url, headers=headers, content=b"{}")


def test_the_route_table_is_what_is_checked(api):
    app, *_ = api
    routes = _routes(app)
    assert ("GET", "/api/v1/readiness") in routes
    assert ("PUT", "/api/v1/use-cases/{use_case}/criteria") in routes
    assert len(routes) >= 12


def test_no_token_or_an_unknown_one_is_401_everywhere(api):
    app, client, _, _ = api
    for method, path in _routes(app):
        assert _call(client, method, path).status_code == 401, (method, path)
        unknown = _call(client, method, path, "swo_not-a-real-token")
        assert unknown.status_code == 401, (method, path)


def test_writes_need_an_admin_token(api):
    app, client, tokens, _ = api
    writes = [(m, p) for m, p in _routes(app) if m in WRITE_METHODS]
    assert writes
    for method, path in writes:
        answered = _call(client, method, path, tokens["viewer"])
        if (method, path) in READ_ONLY_POSTS:
            assert answered.status_code not in (401, 403), (method, path)
        else:
            assert answered.status_code == 403, (method, path)


def test_reads_take_a_viewer_token(api):
    app, client, tokens, _ = api
    reads = [(m, p) for m, p in _routes(app) if m not in WRITE_METHODS]
    for method, path in reads:
        for role in ("viewer", "admin"):
            answered = _call(client, method, path, tokens[role])
            assert answered.status_code not in (401, 403), (method, path, role)


def test_tokens_are_stored_as_hashes_only(api):
    _, _, tokens, url = api
    dump = table_dump(url)
    for token in tokens.values():
        assert token not in dump
        assert hash_token(token) in dump
    assert ApiToken.__table__.c.keys() == ["id", "name", "role", "token_sha256", "created_at"]
