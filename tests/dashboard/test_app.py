"""The Streamlit app (AppTest) against a running service with seeded evidence."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from streamlit.testing.v1 import AppTest

import dashboard
from shadow.serving import serve_in_thread
from tests.dashboard.conftest import EXPECTED_VERDICTS, Service

APP = str(Path(dashboard.__file__).parent / "app.py")
USE_CASE_PAGE = "views/use_case.py"
WORDS = {"GO": "GO", "NO_GO": "NO GO", "INSUFFICIENT_DATA": "INSUFFICIENT DATA"}
HEADING = re.compile(r"^### (?P<name>\S+) &nbsp; <span[^>]*>(?P<verdict>[A-Z ]+)</span>")


def start(monkeypatch, url, token, use_case=None) -> AppTest:
    monkeypatch.setenv("SWITCHOVER_URL", url)
    if token is None:
        monkeypatch.delenv("SWITCHOVER_TOKEN", raising=False)
    else:
        monkeypatch.setenv("SWITCHOVER_TOKEN", token)
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    if use_case is not None:
        app.query_params["use_case"] = use_case
        app.switch_page(USE_CASE_PAGE).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def texts(app: AppTest) -> str:
    return "\n".join(
        str(element.value)
        for kind in ("markdown", "info", "error", "warning", "caption", "header", "subheader")
        for element in getattr(app, kind)
    )


def test_overview_lists_every_use_case_with_its_verdict(readiness_service, monkeypatch):
    app = start(monkeypatch, readiness_service.url, readiness_service.viewer)
    shown = {}
    for element in app.markdown:
        found = HEADING.match(str(element.value))
        if found:
            shown[found["name"]] = found["verdict"]
    assert shown == {name: WORDS[verdict] for name, verdict in EXPECTED_VERDICTS.items()}
    page = texts(app)
    assert "reliability fails" in page  # what decides ticket-triage's NO GO
    assert "all 3 criteria pass" in page
    assert "no request pairs captured yet" in page  # agent-tools
    assert not app.error


def test_use_case_page_shows_the_criteria(readiness_service, monkeypatch):
    app = start(monkeypatch, readiness_service.url, readiness_service.viewer, "ticket-triage")
    assert app.selectbox(key="use_case_choice").value == "ticket-triage"
    assert "ticket-triage" in app.markdown[0].value or "ticket-triage" in texts(app)
    criteria = app.table[0].value
    rows = {row["criterion"]: row for row in criteria.to_dict("records")}
    assert set(rows) == {"answer quality", "tail latency", "reliability"}
    assert rows["reliability"]["verdict"] == "fails"
    assert rows["answer quality"]["verdict"] == "passes"
    assert rows["tail latency"]["measures"] == "95th percentile of self-hosted latency (ms)"
    assert rows["tail latency"]["target"] == "at most 3,000"
    headers = [h.value for h in app.header]
    assert headers == [
        "Success criteria",
        "Rollout",
        "Latency",
        "Answer quality",
        "Cost",
        "Verdict history",
        "Worst pairs",
    ]
    assert "Cost is not measured yet" in texts(app)
    assert not app.error


def test_worst_pairs_filter_orders_by_the_chosen_metric(readiness_service, monkeypatch):
    app = start(monkeypatch, readiness_service.url, readiness_service.viewer, "support-chat")
    app.selectbox(key="worst_by").set_value("quality.rouge_l").run()
    labels = [e.label for e in app.expander]
    assert len(labels) == 5
    values = [float(label.rsplit(" ", 1)[1]) for label in labels]
    assert all("ROUGE-L overlap" in label for label in labels)
    assert values == sorted(values)


def test_use_case_without_pairs_shows_an_empty_state(readiness_service, monkeypatch):
    app = start(monkeypatch, readiness_service.url, readiness_service.viewer, "agent-tools")
    messages = [i.value for i in app.info]
    assert any("No request pairs have been captured for agent-tools yet" in m for m in messages)
    assert [h.value for h in app.header] == ["Success criteria"]
    assert not app.error


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("swo_not-a-token", "refused the dashboard's token"),
        (None, "has no viewer token"),
    ],
)
def test_a_refused_or_missing_token_reads_as_a_message(
    readiness_service, monkeypatch, token, expected
):
    app = start(monkeypatch, readiness_service.url, token)
    assert len(app.error) == 1
    assert expected in app.error[0].value
    assert "switchover tokens create --role viewer" in app.error[0].value


def test_an_unreachable_service_reads_as_a_message(monkeypatch):
    app = start(monkeypatch, "http://127.0.0.1:9", "swo_whatever")
    assert len(app.error) == 1
    assert "Cannot reach the Switchover service at http://127.0.0.1:9" in app.error[0].value
    use_case = start(monkeypatch, "http://127.0.0.1:9", "swo_whatever", "support-chat")
    assert "Cannot reach the Switchover service" in use_case.error[0].value


COST = {
    "use_case": "support-chat",
    "monthly_primary_usd": 4200.0,
    "monthly_candidate_usd": 1500.0,
    "monthly_savings_usd": 2700.0,
    "candidate_usd_per_request": 0.0005,
    "primary_usd_per_request": 0.0014,
    "monthly_requests": 3_000_000.0,
    "peak_rps": 4.0,
    "replicas_needed": 1,
    "break_even_requests_per_month": 1_071_429.0,
    "inputs": {},
    "missing": [],
}


@pytest.fixture
def service_with_cost(readiness_service: Service) -> Iterator[str]:
    """The seeded service behind a pass-through that answers /cost with a measured projection
    (the projection's own inputs, replay runs and prices, are the cost feature's tests)."""
    app = FastAPI()

    @app.get("/api/v1/use-cases/{use_case}/cost")
    def cost(use_case: str) -> dict[str, object]:
        return COST | {"use_case": use_case}

    @app.get("/{path:path}")
    def forward(path: str, request: Request) -> Response:
        answer = httpx.get(
            f"{readiness_service.url}/{path}?{request.url.query}",
            headers={"authorization": request.headers.get("authorization", "")},
            timeout=60,
        )
        return Response(answer.content, answer.status_code, media_type="application/json")

    with serve_in_thread(app) as url:
        yield url


def test_cost_panel_shows_the_measured_projection(
    service_with_cost, readiness_service, monkeypatch
):
    app = start(monkeypatch, service_with_cost, readiness_service.viewer, "support-chat")
    figures = {m.label: m.value for m in app.metric}
    assert figures["API per month"] == "$4,200"
    assert figures["self-hosted per month"] == "$1,500"
    assert figures["savings per month"] == "$2,700"
    assert figures["break-even traffic"] == "1,071,429 requests/month"
    assert "Cost is not measured yet" not in texts(app)


def test_use_case_page_shows_the_rollout_and_its_steps(readiness_service, monkeypatch):
    admin = {"authorization": f"Bearer {readiness_service.admin}"}
    moved = httpx.post(
        f"{readiness_service.url}/api/v1/use-cases/order-extraction/rollout",
        json={"action": "advance", "force": True, "reason": "pilot customers only"},
        headers=admin,
        timeout=60,
    )
    assert moved.status_code == 200, moved.text
    app = start(monkeypatch, readiness_service.url, readiness_service.viewer, "order-extraction")
    figures = {m.label: m.value for m in app.metric}
    assert figures["mode"] == "canary"
    assert figures["live traffic to the self-hosted model"] == "1 %"
    assert figures["fallback rate"] == "—"  # no live request has reached it yet
    assert figures["next step"] == "5 %"
    assert "Steps: **1 %** → 5 % → 25 % → 50 % → 100 %" in texts(app)
    events = app.dataframe[0].value.to_dict("records")
    assert events[0]["event"] == "advanced (forced)"
    assert events[0]["by"] == "ml-team"
    assert events[0]["live share"] == "0 % → 1 %"
    assert events[0]["reason"] == "pilot customers only"
    assert not app.error


def test_a_use_case_whose_traffic_stopped_says_since_when(readiness_service, monkeypatch):
    # the seeded pairs are days old: traffic has stopped, whatever the pace was
    app = start(monkeypatch, readiness_service.url, readiness_service.viewer, "order-extraction")
    figures = {m.label: m.value for m in app.metric}
    assert figures["time to a decision"].startswith("no traffic since ")
    assert "+00:00" not in figures["time to a decision"]
    assert "at the current pace" not in texts(app)
    intervals = app.table[0].value["interval"].tolist()
    assert not [i for i in intervals if "—" in i and i != "—"]  # never "608 to —"
    assert "samples needed (total)" in app.table[0].value.columns


@pytest.fixture
def service_with_a_warning(readiness_service: Service) -> Iterator[str]:
    """The seeded service behind a pass-through that adds a criterion warning, as the service
    sends for a noise-adjusted criterion of a use case whose noise_rate is 0."""
    app = FastAPI()
    never = "can never get data: no noise re-asks are made (the use case's noise_rate is 0)"

    @app.get("/{path:path}")
    def forward(path: str, request: Request) -> Response:
        answer = httpx.get(
            f"{readiness_service.url}/{path}?{request.url.query}",
            headers={"authorization": request.headers.get("authorization", "")},
            timeout=60,
        )
        body = answer.json()
        if path.startswith("api/v1/readiness") and answer.status_code == 200:
            for readiness in body if isinstance(body, list) else [body]:
                if readiness["use_case"] == "order-extraction":
                    row = readiness["criteria"][0]
                    row.update(verdict="NO_DATA", needed_n=None, note=never, warning=never)
        return Response(json.dumps(body), answer.status_code, media_type="application/json")

    with serve_in_thread(app) as url:
        yield url


def test_a_criterion_that_can_never_decide_is_named_on_the_dashboard(
    service_with_a_warning, readiness_service, monkeypatch
):
    overview = start(monkeypatch, service_with_a_warning, readiness_service.viewer)
    assert "never as configured: answer quality can never get data" in texts(overview)
    page = start(monkeypatch, service_with_a_warning, readiness_service.viewer, "order-extraction")
    warnings = [w.value for w in page.warning]
    assert any("**answer quality** can never get data" in w for w in warnings)
    assert {m.label: m.value for m in page.metric}["time to a decision"] == ("never, as configured")
