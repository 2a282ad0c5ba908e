"""`candidates:` in switchover.yaml: several named candidates, `candidate:` meaning `default`."""

import pytest

from shadow.config import ConfigError, parse_config

SOURCE = "deploy/switchover.yaml"

LINES = [
    "upstreams:",  # 1
    "  openai: {base_url: https://api.openai.com/v1}",  # 2
    "  gpu-pool:",  # 3
    "    base_url: http://vllm.internal:8000/v1",  # 4
    "    deployment: {gpu: H100, hourly_usd: 2.49}",  # 5
    "use_cases:",  # 6
    "  support-chat:",  # 7
    "    primary: {upstream: openai, model: gpt-4o-mini}",  # 8
    "    shadow: {sample_rate: 0.25, max_in_flight: 32, timeout_s: 60}",  # 9
    "    candidates:",  # 10
    "      llama-70b:",  # 11
    "        upstream: gpu-pool",  # 12
    "        model: meta-llama/Llama-3.3-70B-Instruct",  # 13
    "      qwen-32b:",  # 14
    "        upstream: gpu-pool",  # 15
    "        model: Qwen/Qwen2.5-32B-Instruct",  # 16
    "        sample_rate: 0.1",  # 17
    "        max_in_flight: 2",  # 18
    "        deployment: {gpu: L4, hourly_usd: 0.8}",  # 19
]


def text(replace: dict[int, str | None] | None = None, extra: list[str] | None = None) -> str:
    lines = []
    for number, line in enumerate(LINES, start=1):
        new = (replace or {}).get(number, line)
        if new is not None:
            lines.append(new)
    return "\n".join([*lines, *(extra or [])]) + "\n"


def error(config: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(config, SOURCE)
    return str(info.value)


def test_candidates_are_named_in_order_with_their_own_overrides() -> None:
    use_case = parse_config(text(), SOURCE).use_cases["support-chat"]
    assert list(use_case.targets) == ["llama-70b", "qwen-32b"]
    assert use_case.lead == "llama-70b"
    llama, qwen = use_case.shadow_for("llama-70b"), use_case.shadow_for("qwen-32b")
    assert (llama.sample_rate, llama.max_in_flight, llama.timeout_s) == (0.25, 32, 60)
    assert (qwen.sample_rate, qwen.max_in_flight, qwen.timeout_s) == (0.1, 2, 60)


def test_a_candidate_runs_on_its_own_deployment_else_its_upstreams() -> None:
    config = parse_config(text(), SOURCE)
    own = config.deployment_for("support-chat", "qwen-32b")
    shared = config.deployment_for("support-chat", "llama-70b")
    assert own is not None
    assert own.gpu == "L4"
    assert shared is not None
    assert shared.gpu == "H100"


def test_one_candidate_is_named_default() -> None:
    single = text(dict.fromkeys(range(10, 20)), ["    candidate: {upstream: gpu-pool, model: m}"])
    use_case = parse_config(single, SOURCE).use_cases["support-chat"]
    assert list(use_case.targets) == ["default"]
    assert use_case.lead == "default"
    assert use_case.candidate is not None
    assert use_case.candidate.model == "m"


def test_rollout_candidate_is_the_lead() -> None:
    config = parse_config(text(extra=["    rollout: {candidate: qwen-32b}"]), SOURCE)
    assert config.use_cases["support-chat"].lead == "qwen-32b"


def test_rollout_of_an_unknown_candidate_names_its_line() -> None:
    message = error(text(extra=["    rollout:", "      candidate: mistral"]))
    assert f"{SOURCE}:21: use_cases.support-chat.rollout.candidate: unknown candidate" in message


def test_an_invalid_name_is_refused_with_its_line() -> None:
    message = error(text({14: "      qwen 32b!:"}))
    assert f"{SOURCE}:14: use_cases.support-chat.candidates.qwen 32b!" in message


def test_a_name_given_twice_is_refused_with_the_second_line() -> None:
    message = error(text({14: "      llama-70b:"}))
    assert f"{SOURCE}:14: use_cases.support-chat.candidates.llama-70b: duplicate key" in message


def test_the_same_model_twice_is_refused_with_its_line() -> None:
    message = error(text({16: "        model: meta-llama/Llama-3.3-70B-Instruct"}))
    assert f"{SOURCE}:14: use_cases.support-chat.candidates.qwen-32b: duplicate of" in message


def test_candidate_and_candidates_together_are_refused() -> None:
    message = error(text(extra=["    candidate: {upstream: gpu-pool, model: m}"]))
    assert "use_cases.support-chat.candidates: give `candidate:` or `candidates:`" in message


def test_an_unknown_upstream_of_a_candidate_names_its_line() -> None:
    message = error(text({15: "        upstream: gpu-poll"}))
    assert f"{SOURCE}:15: use_cases.support-chat.candidates.qwen-32b.upstream: unknown" in message


def test_a_bad_override_names_its_line() -> None:
    message = error(text({17: "        sample_rate: 2"}))
    assert f"{SOURCE}:17: use_cases.support-chat.candidates.qwen-32b.sample_rate" in message
