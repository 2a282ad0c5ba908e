"""`switchover criteria apply`: its errors read like the configuration's, with file and line."""

from __future__ import annotations

GOOD = """\
use_case: {use_case}
criteria:
  - {{name: reliability, metric: candidate.error, stat: proportion, op: "<=", threshold: 0.05}}
"""


def test_a_yaml_syntax_error_names_the_file_and_line(run, workdir):
    (workdir / "crit.yaml").write_text(
        "use_case: support-chat\ncriteria:\n  - {name: q, metric: [oops\n  - other\n",
        encoding="utf-8",
    )
    result = run("criteria", "apply", "-f", "crit.yaml")
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert message.startswith("switchover: crit.yaml:"), message
    assert ": not valid YAML: " in message
    assert len(message.splitlines()) == 1, "one sentence, not a PyYAML dump"
    line = int(message.split(":")[2])
    assert 3 <= line <= 5


def test_an_unknown_metric_suggests_the_closest_name(run, workdir):
    (workdir / "crit.yaml").write_text(
        "use_case: support-chat\ncriteria:\n"
        "  - {name: quality, metric: quality.semantic_similarty, stat: mean, op: '>=',"
        " threshold: 0.8}\n",
        encoding="utf-8",
    )
    result = run("criteria", "apply", "-f", "crit.yaml")
    assert result.exit_code == 2
    assert (
        "crit.yaml:3: criteria.0.metric: unknown metric 'quality.semantic_similarty'; "
        "did you mean quality.semantic_similarity?"
    ) in result.stderr
    assert "quality.rouge_l" not in result.stderr, "the whole catalog is not listed"


def test_a_use_case_not_in_the_config_is_refused_with_the_configured_names(run, workdir):
    assert run("db", "upgrade").exit_code == 0
    (workdir / "crit.yaml").write_text(GOOD.format(use_case="support-chta"), encoding="utf-8")
    refused = run("criteria", "apply", "-f", "crit.yaml")
    assert refused.exit_code == 2
    assert "'support-chta' is not configured" in refused.stderr
    assert "support-chat, ticket-triage" in refused.stderr
    assert "--force" in refused.stderr
    assert run("criteria", "show", "support-chta").exit_code == 1, "nothing was stored"

    forced = run("criteria", "apply", "-f", "crit.yaml", "--force")
    assert forced.exit_code == 0, forced.output
    assert forced.stdout.strip() == "support-chta: criteria version 1 stored"


def test_apply_and_show_for_a_configured_use_case(run, workdir):
    assert run("db", "upgrade").exit_code == 0
    (workdir / "crit.yaml").write_text(GOOD.format(use_case="support-chat"), encoding="utf-8")
    stored = run("criteria", "apply", "support-chat", "-f", "crit.yaml", "--author", "ml-team")
    assert stored.stdout.strip() == "support-chat: criteria version 1 stored"
    shown = run("criteria", "show", "--use-case", "support-chat")
    assert shown.stdout.startswith("# support-chat v1 by ml-team at ")
    assert "candidate.error" in shown.stdout
    other = run("criteria", "apply", "ticket-triage", "-f", "crit.yaml")
    assert other.exit_code == 2
    assert "the file is for 'support-chat', not 'ticket-triage'" in other.stderr
