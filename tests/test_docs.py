"""The README and docs/ say what the code has: every endpoint, setting, metric and field."""

from __future__ import annotations

import re
from pathlib import Path

from criteria.readiness.schema import CriteriaSet, Criterion
from evaluators.catalog import CATALOG
from shadow.app import create_app
from shadow.config import parse_config
from shadow.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONFIG = """\
upstreams:
  api: {base_url: http://127.0.0.1:9/v1}
use_cases:
  default:
    primary: {upstream: api, model: m}
    candidate: {upstream: api, model: c}
"""


def _routes() -> set[tuple[str, str]]:
    """Every operation of the app's OpenAPI schema, and the schema and its pages themselves."""
    app = create_app(Settings(), parse_config(CONFIG, "<test>"))
    found = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    for path in (app.openapi_url, app.docs_url, app.redoc_url):
        if path:
            found.add(("GET", path))
    return found


def _table_names(text: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE))


def test_the_readme_cites_no_file_outside_the_repository():
    assert "../" not in README
    assert "SPEC" not in README
    for target in re.findall(r"\]\(([^)#]+)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_every_endpoint_is_named_in_the_readme_and_every_one_named_exists():
    routes = _routes()
    named = set(re.findall(r"`(GET|POST|PUT|DELETE|PATCH) (/[^`\s?…]*)", README))
    named |= set(re.findall(r"\b(GET|POST|PUT|DELETE|PATCH) `(/[^`\s?…]*)", README))
    assert routes - named == set(), "routes the README does not name"
    assert named - routes == set(), "the README names routes that do not exist"
    paths = {path for _, path in routes}
    # Other paths under /v1 are the primary's (passed through unchanged): only Switchover's own
    # API paths must exist as routes.
    for path in re.findall(r"`(/api/v1/[^`\s?…]*)", README):
        assert path in paths, path


def test_every_setting_is_named_in_the_readme_and_every_variable_named_exists():
    fields = {f"SWITCHOVER_{name.upper()}" for name in Settings.model_fields}
    named = set(re.findall(r"\bSWITCHOVER_[A-Z_]*[A-Z]", README))
    assert fields - named == set(), "settings the README does not name"
    sources = "\n".join(
        path.read_text(encoding="utf-8")
        for folder in ("shadow", "dashboard", "criteria", "storage", "tests", "bench")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "test_docs.py"
    )
    for variable in sorted(named - fields):
        assert f'"{variable}"' in sources, f"{variable}: named in the README, read nowhere"


def test_docs_metrics_lists_exactly_the_catalog():
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert _table_names(text) == set(CATALOG)
    for name, metric in CATALOG.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"| {metric.better} |" in row, name


def test_docs_criteria_names_every_field():
    text = (ROOT / "docs" / "criteria.md").read_text(encoding="utf-8")
    fields = set(CriteriaSet.model_fields) | set(Criterion.model_fields)
    assert fields - _table_names(text) == set()
    assert _table_names(text) - fields == set()
