"""switchover.yaml errors name the file, the line and the field, found at start-up."""

from pathlib import Path

import pytest

from shadow.config import ConfigError, load_config, parse_config
from shadow.settings import Settings

SOURCE = "deploy/switchover.yaml"

SPEC_EXAMPLE = """\
upstreams:
  openai:   {base_url: https://api.openai.com/v1, api_key_env: OPENAI_API_KEY}
  gpu-pool: {base_url: http://vllm.internal:8000/v1, api_key_env: VLLM_API_KEY,
             deployment: {gpu: H100, gpu_count: 1, hourly_usd: 2.49, replicas: 2,
                          ops_hours_per_week: 6, engineer_hourly_usd: 95}}
use_cases:
  support-chat:
    primary:   {upstream: openai,   model: gpt-4o-mini}
    candidate: {upstream: gpu-pool, model: meta-llama/Llama-3.1-8B-Instruct}
    shadow: {sample_rate: 0.25, noise_rate: 0.05, max_in_flight: 32, timeout_s: 60}
    criteria: criteria/support-chat.yaml      # or inline, see §5
"""

# Block style, one field per line, so that every error has an unambiguous line number.
VALID_LINES = [
    "upstreams:",  # 1
    "  openai: {base_url: https://api.openai.com/v1, api_key_env: OPENAI_API_KEY}",  # 2
    "  gpu-pool:",  # 3
    "    base_url: http://vllm.internal:8000/v1",  # 4
    "use_cases:",  # 5
    "  support-chat:",  # 6
    "    primary: {upstream: openai, model: gpt-4o-mini}",  # 7
    "    candidate:",  # 8
    "      upstream: gpu-pool",  # 9
    "      model: meta-llama/Llama-3.1-8B-Instruct",  # 10
    "    shadow:",  # 11
    "      sample_rate: 0.25",  # 12
    "      max_in_flight: 32",  # 13
]


def config_text(replace: dict[int, str | None] | None = None) -> str:
    """The valid block-style config with some 1-based lines replaced (None deletes the line)."""
    lines: list[str] = []
    for number, line in enumerate(VALID_LINES, start=1):
        new = (replace or {}).get(number, line)
        if new is not None:
            lines.append(new)
    return "\n".join(lines) + "\n"


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, SOURCE)
    return str(info.value)


def test_the_spec_example_parses() -> None:
    config = parse_config(SPEC_EXAMPLE, SOURCE)

    assert set(config.upstreams) == {"openai", "gpu-pool"}
    gpu_pool = config.upstreams["gpu-pool"]
    assert gpu_pool.base_url == "http://vllm.internal:8000/v1"
    assert gpu_pool.api_key_env == "VLLM_API_KEY"
    assert gpu_pool.deployment is not None
    assert gpu_pool.deployment.gpu == "H100"
    assert gpu_pool.deployment.hourly_usd == 2.49
    assert gpu_pool.deployment.replicas == 2
    use_case = config.use_cases["support-chat"]
    assert (use_case.primary.upstream, use_case.primary.model) == ("openai", "gpt-4o-mini")
    assert use_case.targets["default"].model == "meta-llama/Llama-3.1-8B-Instruct"
    assert use_case.shadow.sample_rate == 0.25
    assert use_case.shadow.noise_rate == 0.05
    assert use_case.shadow.max_in_flight == 32
    assert use_case.shadow.timeout_s == 60
    assert use_case.criteria == "criteria/support-chat.yaml"


def test_the_block_style_base_config_of_these_tests_is_valid() -> None:
    config = parse_config(config_text(), SOURCE)

    assert config.use_cases["support-chat"].targets["default"].upstream == "gpu-pool"


def test_invalid_yaml_names_the_file_and_the_line_of_the_problem() -> None:
    message = config_error(config_text({12: "      sample_rate: 0.25: 0.5"}))

    assert message.startswith(f"{SOURCE}:12: not valid YAML")


def test_a_tab_in_the_indentation_names_its_line() -> None:
    message = config_error(config_text({9: "\tupstream: gpu-pool"}))

    assert message.startswith(f"{SOURCE}:9: not valid YAML")


def test_bad_indentation_names_the_line_where_it_breaks() -> None:
    message = config_error(config_text({13: "     max_in_flight: 32"}))

    assert message.startswith(f"{SOURCE}:13: not valid YAML")


@pytest.mark.parametrize("text", ["- upstreams\n- use_cases\n", "just a string\n", ""])
def test_a_top_level_that_is_not_a_mapping_is_rejected(text: str) -> None:
    message = config_error(text)

    assert message.startswith(f"{SOURCE}:1:")
    assert "must be a mapping" in message


def test_a_misspelt_key_names_its_line_and_path() -> None:
    message = config_error(config_text({12: "      sample_rat: 0.25"}))

    assert f"{SOURCE}:12: use_cases.support-chat.shadow.sample_rat: Extra inputs" in message


def test_a_wrong_type_names_its_line_and_path() -> None:
    message = config_error(config_text({13: "      max_in_flight: many"}))

    assert f"{SOURCE}:13: use_cases.support-chat.shadow.max_in_flight:" in message
    assert "valid integer" in message


def test_an_out_of_range_value_names_its_line_and_path() -> None:
    message = config_error(config_text({12: "      sample_rate: 1.5"}))

    assert f"{SOURCE}:12: use_cases.support-chat.shadow.sample_rate:" in message
    assert "less than or equal to 1" in message


def test_a_missing_required_field_points_at_the_mapping_that_lacks_it() -> None:
    message = config_error(config_text({10: None}))

    assert f"{SOURCE}:8: use_cases.support-chat.candidate.model: Field required" in message


def test_a_base_url_without_http_scheme_is_rejected() -> None:
    message = config_error(config_text({4: "    base_url: vllm.internal:8000/v1"}))

    assert f"{SOURCE}:4: upstreams.gpu-pool.base_url:" in message
    assert "https?://" in message


def test_an_unknown_upstream_points_at_the_upstream_line_of_that_target() -> None:
    message = config_error(config_text({9: "      upstream: gpu-poool"}))

    assert f"{SOURCE}:9: use_cases.support-chat.candidate.upstream:" in message
    assert "unknown upstream 'gpu-poool'" in message
    assert "gpu-pool, openai" in message


def test_every_problem_of_the_file_is_reported_at_once() -> None:
    message = config_error(
        config_text({4: "    base_url: vllm.internal", 13: "      max_in_flight: many"})
    )

    assert f"{SOURCE}:4: upstreams.gpu-pool.base_url:" in message
    assert f"{SOURCE}:13: use_cases.support-chat.shadow.max_in_flight:" in message


def test_load_config_names_the_file_path_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "switchover.yaml"
    path.write_text(config_text({12: "      sample_rate: 1.5"}), encoding="utf-8")

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert f"\n  {path}:12: use_cases.support-chat.shadow.sample_rate:" in str(info.value)


def test_settings_load_the_configured_file(tmp_path: Path) -> None:
    path = tmp_path / "switchover.yaml"
    path.write_text(SPEC_EXAMPLE, encoding="utf-8")

    config = Settings(config=path).load_config()

    assert config.use_cases["support-chat"].shadow.sample_rate == 0.25


def test_settings_with_a_missing_config_file_fail_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "switchover.yaml"

    with pytest.raises(ConfigError) as info:
        Settings(config=path).load_config()

    assert str(info.value).startswith(f"{path}: configuration file not found")


def test_an_unreadable_config_path_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(config=tmp_path).load_config()

    assert str(info.value).startswith(f"{tmp_path}: cannot read the configuration file")


def test_a_config_file_that_is_not_utf8_fails_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "switchover.yaml"
    path.write_bytes(config_text().encode() + "# owner: José\n".encode("latin-1"))

    with pytest.raises(ConfigError) as info:
        Settings(config=path).load_config()

    assert str(info.value).startswith(f"{path}: ")
