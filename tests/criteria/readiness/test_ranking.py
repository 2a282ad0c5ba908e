"""The ranking of a use case's candidates (README: "Several candidates")."""

from dataclasses import dataclass

from criteria.readiness.ranking import Standing, rank


@dataclass(frozen=True)
class Judged:
    name: str
    verdict: str
    critical: bool = False
    needed_n: int | None = None


def _ranks(*standings: Standing) -> dict[str, int]:
    return {r.candidate: r.rank for r in rank(standings)}


def test_those_that_can_take_over_come_first_the_cheapest_first() -> None:
    ranked = _ranks(
        Standing("open", "INSUFFICIENT_DATA", [Judged("q", "INCONCLUSIVE", needed_n=10)], 100),
        Standing("dear", "GO", [Judged("q", "PASS")], 9000),
        Standing("cheap", "GO", [Judged("q", "PASS")], 1200),
        Standing("failing", "NO_GO", [Judged("q", "FAIL")], 10),
    )
    assert ranked == {"cheap": 1, "dear": 2, "open": 3, "failing": 4}


def test_a_go_without_a_known_cost_comes_after_the_priced_ones() -> None:
    ranked = _ranks(
        Standing("unpriced", "GO", [Judged("q", "PASS")], None),
        Standing("priced", "GO", [Judged("q", "PASS")], 5000),
    )
    assert ranked == {"priced": 1, "unpriced": 2}


def test_the_closest_open_candidate_has_fewer_open_criteria_then_fewer_pairs_to_go() -> None:
    ranked = _ranks(
        Standing(
            "two-open",
            "INSUFFICIENT_DATA",
            [Judged("q", "INCONCLUSIVE", needed_n=5), Judged("l", "NO_DATA", needed_n=5)],
        ),
        Standing("far", "INSUFFICIENT_DATA", [Judged("q", "INCONCLUSIVE", needed_n=900)]),
        Standing("near", "INSUFFICIENT_DATA", [Judged("q", "INCONCLUSIVE", needed_n=40)]),
        Standing("unknown", "INSUFFICIENT_DATA", [Judged("q", "INCONCLUSIVE")]),
    )
    assert ranked == {"near": 1, "far": 2, "unknown": 3, "two-open": 4}


def test_among_no_go_a_critical_failure_ranks_below_any_number_of_plain_ones() -> None:
    ranked = _ranks(
        Standing("critical", "NO_GO", [Judged("r", "FAIL", critical=True), Judged("q", "PASS")]),
        Standing("two-plain", "NO_GO", [Judged("a", "FAIL"), Judged("b", "FAIL")]),
        Standing("one-plain", "NO_GO", [Judged("a", "FAIL"), Judged("b", "PASS")]),
    )
    assert ranked == {"one-plain": 1, "two-plain": 2, "critical": 3}


def test_ties_keep_the_configuration_order_and_ranks_come_back_in_the_order_given() -> None:
    found = rank(
        [
            Standing("b", "GO", [Judged("q", "PASS")], 100),
            Standing("a", "GO", [Judged("q", "PASS")], 100),
        ]
    )
    assert [(r.candidate, r.rank) for r in found] == [("b", 1), ("a", 2)]


def test_each_reason_says_what_the_candidate_still_needs_or_why_it_cannot() -> None:
    found = {
        r.candidate: r.summary
        for r in rank(
            [
                Standing("good", "GO", [Judged("answer quality", "PASS")], 900),
                Standing("also", "GO", [Judged("answer quality", "PASS")], 2000),
                Standing(
                    "open",
                    "INSUFFICIENT_DATA",
                    [Judged("answer quality", "INCONCLUSIVE", needed_n=120)],
                ),
                Standing("bad", "NO_GO", [Judged("tail latency", "FAIL")]),
            ]
        )
    }
    assert found["good"] == "can take over, the cheapest of the 2 that can"
    assert "#2 of the 2" in found["also"]
    assert found["open"] == "still needs 'answer quality' (about 120 more pairs)"
    assert found["bad"] == "cannot take over: fails 'tail latency'"


def test_when_none_can_take_over_the_first_is_called_the_closest() -> None:
    found = rank(
        [
            Standing("bad", "NO_GO", [Judged("q", "FAIL")]),
            Standing("open", "INSUFFICIENT_DATA", [Judged("q", "INCONCLUSIVE", needed_n=3)]),
        ]
    )
    assert found[1].rank == 1
    assert found[1].summary.startswith("closest to taking over; still needs")


def test_one_candidate_is_ranked_first_without_comparisons() -> None:
    (only,) = rank([Standing("default", "INSUFFICIENT_DATA", [Judged("q", "NO_DATA")])])
    assert only.rank == 1
    assert not only.summary.startswith("closest")
