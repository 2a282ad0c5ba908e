"""A pair for review: request, answers and the word-level diff."""

from __future__ import annotations

from dashboard.pairs import diff_html, pair_view, request_text, word_diff


def test_word_diff_marks_changed_words_only():
    assert word_diff("the cat sat", "the dog sat") == [
        ("equal", "the", "the"),
        ("replace", "cat", "dog"),
        ("equal", "sat", "sat"),
    ]
    old, new = diff_html("a link arrives", "a link arrives today")
    assert old == "a link arrives"
    assert new.startswith("a link arrives <span")
    assert ">today</span>" in new


def test_diff_html_escapes_model_output():
    _, new = diff_html("plain", "<script>alert(1)</script>")
    assert "<script>" not in new
    assert "&lt;script&gt;" in new


def test_pair_view_shows_the_question_and_both_answers():
    pair = {
        "id": "p1",
        "created_at": "2026-11-20T00:00:00",
        "request": {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Where is my order?"}]},
            ]
        },
        "primary": {"text": "It ships today.", "tool_calls": None},
        "candidate": {"text": None, "tool_calls": None, "error": "timeout after 60 s"},
        "scores": {"quality.rouge_l": 0.2, "candidate.error": 1.0},
    }
    view = pair_view(pair)
    assert view.request == "Where is my order?"
    assert view.api_answer == "It ships today."
    assert view.self_hosted_answer == "(error: timeout after 60 s)"
    assert view.self_hosted_failed
    assert view.scores == [("ROUGE-L overlap", 0.2), ("self-hosted error", 1.0)]


def test_tool_calls_and_prompts_are_shown_as_text():
    assert request_text({"prompt": "Say hi"}) == "Say hi"
    view = pair_view(
        {
            "id": "p2",
            "request": None,
            "primary": {"tool_calls": [{"name": "lookup"}]},
            "candidate": {},
        }
    )
    assert '"name": "lookup"' in view.api_answer
    assert view.self_hosted_answer == "(no answer)"
