"""Colours and plain-language words, the same on every chart and page."""

from __future__ import annotations

# Whose answers a series shows. One colour each, everywhere.
API = "API"
SELF_HOSTED = "self-hosted"
SIDE_COLOURS = {API: "#3b6fb6", SELF_HOSTED: "#8e44ad"}
# Several candidates: one colour each, in configuration order, none of them the API's blue
# (the first is the single candidate's purple).
CANDIDATE_PALETTE = ("#8e44ad", "#e67e22", "#16a085", "#c0392b", "#7f8c8d", "#d4ac0d")


def candidate_colours(names: list[str]) -> dict[str, str]:
    """Each candidate's colour, by its place in the configuration."""
    return {name: CANDIDATE_PALETTE[i % len(CANDIDATE_PALETTE)] for i, name in enumerate(names)}


VERDICT_COLOURS = {"GO": "#2e7d32", "NO_GO": "#c62828", "INSUFFICIENT_DATA": "#f0a202"}
VERDICT_WORDS = {"GO": "GO", "NO_GO": "NO GO", "INSUFFICIENT_DATA": "INSUFFICIENT DATA"}
VERDICT_MEANING = {
    "GO": "the self-hosted model meets every success criterion",
    "NO_GO": "the self-hosted model falls short of a success criterion",
    "INSUFFICIENT_DATA": "not enough evidence yet to decide",
}

CRITERION_COLOURS = {
    "PASS": "#2e7d32",
    "FAIL": "#c62828",
    "INCONCLUSIVE": "#f0a202",
    "NO_DATA": "#9e9e9e",
}
CRITERION_WORDS = {
    "PASS": "passes",
    "FAIL": "fails",
    "INCONCLUSIVE": "not sure yet",
    "NO_DATA": "no data yet",
}
OPERATOR_WORDS = {"<=": "at most", "<": "below", ">=": "at least", ">": "above"}

# Labels of metrics for places where no API response names them (the worst-pairs filter and
# the scores of a pair); restated here because the dashboard talks to the service over HTTP.
METRIC_LABELS = {
    "primary.latency_ms": "API latency (ms)",
    "candidate.latency_ms": "self-hosted latency (ms)",
    "primary.ttft_ms": "API time to first token (ms)",
    "candidate.ttft_ms": "self-hosted time to first token (ms)",
    "candidate.tpot_ms": "self-hosted time per output token (ms)",
    "candidate.error": "self-hosted error",
    "latency.ratio": "latency, self-hosted / API",
    "quality.semantic_similarity": "answer similarity",
    "quality.rouge_l": "ROUGE-L overlap",
    "quality.bleu": "BLEU overlap",
    "quality.exact_match": "exact match",
    "quality.json_valid": "valid JSON",
    "quality.json_match": "JSON fields reproduced",
    "quality.tool_call_match": "same tool call",
    "quality.refusal": "refused where the API answered",
    "quality.length_ratio": "answer length, self-hosted / API",
    "quality.judge_score": "judge's preference",
    "noise.semantic_similarity": "API agreeing with itself",
    "cost.primary_usd": "API cost per request (USD)",
    "cost.candidate_usd": "self-hosted cost per request (USD)",
    "cost.monthly_primary_usd": "API cost per month",
    "cost.monthly_candidate_usd": "self-hosted cost per month",
    "cost.monthly_savings_usd": "savings per month",
    "capacity.rps_at_slo": "requests/s within the latency target",
    "ops.hours_per_week": "operations hours per week",
}

# Metrics to rank pairs by, worst first, in the order the filter offers them.
WORST_BY = (
    "quality.semantic_similarity",
    "quality.rouge_l",
    "quality.bleu",
    "quality.json_match",
    "quality.tool_call_match",
    "quality.judge_score",
    "quality.json_valid",
    "quality.exact_match",
    "quality.refusal",
    "candidate.error",
    "candidate.latency_ms",
    "latency.ratio",
    "candidate.ttft_ms",
)

# Quality scores shown as distributions; the 0/1 ones are shown as shares instead.
QUALITY_METRICS = (
    "quality.rouge_l",
    "quality.bleu",
    "quality.json_match",
    "quality.tool_call_match",
    "quality.judge_score",
    "quality.length_ratio",
    "quality.json_valid",
    "quality.exact_match",
    "quality.refusal",
)


def metric_label(metric: str) -> str:
    """A plain-language name for a metric id (the id itself only when it is unknown)."""
    return METRIC_LABELS.get(metric, metric)


def verdict_badge(verdict: str, font_size: str = "1rem") -> str:
    """The verdict's word on its colour, as an HTML badge."""
    colour = VERDICT_COLOURS.get(verdict, "#757575")
    text = "#1f1f1f" if verdict == "INSUFFICIENT_DATA" else "#ffffff"
    return (
        f'<span style="background:{colour};color:{text};padding:0.15em 0.6em;'
        f'border-radius:0.4em;font-weight:700;font-size:{font_size};white-space:nowrap">'
        f"{VERDICT_WORDS.get(verdict, verdict)}</span>"
    )
