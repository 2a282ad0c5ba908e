"""What the dashboard's process is given: the service URL and a viewer token, no other secret."""

from __future__ import annotations

from shadow.cli.dashboard import dashboard_environment


def test_the_dashboard_gets_no_database_broker_or_upstream_secrets(monkeypatch):
    monkeypatch.setenv("SWITCHOVER_DATABASE_URL", "postgresql://app:db-password@db/switchover")
    monkeypatch.setenv("SWITCHOVER_BROKER_URL", "redis://:broker-password@redis:6379/0")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream-secret")
    monkeypatch.setenv("SWITCHOVER_TOKEN", "swo_some-admin-token")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    env = dashboard_environment("http://service:8080/", "swo_viewer")
    assert env["SWITCHOVER_URL"] == "http://service:8080"
    assert env["SWITCHOVER_TOKEN"] == "swo_viewer"
    assert env["LC_ALL"] == "C.UTF-8"
    assert "PATH" in env
    text = repr(env)
    for secret in ("db-password", "broker-password", "sk-upstream-secret", "some-admin-token"):
        assert secret not in text
