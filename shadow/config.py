"""The `switchover.yaml` file: upstreams and use cases, parsed into pydantic models.

Errors name the file, the line and the field, so a bad edit is found at start-up rather than
on the first request that needs the broken part.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from criteria import yamldoc
from criteria.rollout.rules import RolloutConfig
from evaluators.config import EvaluatorsConfig
from shadow.apis.families import DEFAULT_FORMS, Api

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Deployment(BaseModel):
    """What a self-hosted upstream costs to run (used by the cost metrics)."""

    model_config = _STRICT

    gpu: str
    gpu_count: int = Field(1, ge=1)
    hourly_usd: float = Field(ge=0, description="price of one GPU for one hour")
    replicas: int = Field(1, ge=1)
    ops_hours_per_week: float = Field(0, ge=0)
    engineer_hourly_usd: float = Field(0, ge=0)
    headroom: float = Field(0.3, ge=0, description="spare capacity kept when sizing replicas")


Endpoint = Literal["chat.completions", "completions", "responses", "messages"]


class Upstream(BaseModel):
    """An HTTP endpoint of one API family; its key is read from the named env var."""

    model_config = _STRICT

    base_url: str = Field(pattern=r"^https?://")
    api: Api = Field("openai", description="openai: base_url ends in /v1; anthropic: the root")
    endpoints: tuple[Endpoint, ...] | None = Field(
        None, description="the request forms it serves; default: all of its API's"
    )
    api_key_env: str | None = None
    deployment: Deployment | None = None
    timeout_s: float = Field(600, gt=0, description="primary call timeout on the hot path")
    forward_headers: tuple[str, ...] = Field(
        (), description="client headers also passed under the proxy's own key (`x-team-*`)"
    )

    @property
    def forms(self) -> tuple[str, ...]:
        """The endpoints (request forms) this upstream answers."""
        return self.endpoints or DEFAULT_FORMS[self.api]

    def url(self, path: str) -> str:
        """The URL of an API path (`/chat/completions`, `/messages`) on this upstream."""
        root = self.base_url.rstrip("/")
        return root + ("/v1" + path if self.api == "anthropic" else path)

    def api_key(self) -> str | None:
        """The key from the environment, or None when the upstream has none configured."""
        if self.api_key_env is None:
            return None
        return os.environ.get(self.api_key_env) or None


class Target(BaseModel):
    """Which upstream answers, with which model name."""

    model_config = _STRICT

    upstream: str
    model: str


# A candidate's name: in URLs (`?candidate=`), metric labels and the dashboard's legend.
CandidateName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
DEFAULT_CANDIDATE = "default"


class Candidate(Target):
    """A self-hosted model under evaluation; unset fields take the use case's `shadow:` ones."""

    sample_rate: float | None = Field(None, ge=0, le=1)
    max_in_flight: int | None = Field(None, ge=1)
    timeout_s: float | None = Field(None, gt=0)
    deployment: Deployment | None = Field(
        None, description="what it runs on; default the upstream's `deployment:`"
    )


class ShadowSettings(BaseModel):
    """How much traffic is mirrored to the candidate and how hard it may be pushed."""

    model_config = _STRICT

    sample_rate: float = Field(0.1, ge=0, le=1)
    noise_rate: float = Field(0.0, ge=0, le=1)
    max_in_flight: int = Field(8, ge=1)
    timeout_s: float = Field(60, gt=0)
    forward_urls: bool = Field(
        False, description="mirror requests whose parts name URLs the candidate would fetch"
    )


def _regex(pattern: str) -> str:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    if compiled.fullmatch(""):
        raise ValueError("the pattern matches the empty string")
    return pattern


Regex = Annotated[str, AfterValidator(_regex)]
PatternName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]


class PrivacySettings(BaseModel):
    """What of a pair's text is stored, with what masked, and for how long.

    Top level: the defaults of every use case; under a use case, the fields given there
    replace the top-level ones.
    """

    model_config = _STRICT

    store_text: bool = Field(True, description="false: metrics and hashes only")
    redact: tuple[Literal["email", "phone", "card"], ...] = ()
    patterns: dict[PatternName, Regex] = Field(
        default_factory=dict, description="name: regex; matches are stored as [NAME]"
    )
    retention_days: float | None = Field(None, gt=0, description="pairs older are purged")


class UseCase(BaseModel):
    """One LLM feature: the API model it runs on today and the candidates that may replace it.

    `candidate:` is one candidate, named `default`; `candidates:` names several.
    """

    model_config = _STRICT

    primary: Target
    candidate: Candidate | None = None
    candidates: dict[CandidateName, Candidate] = Field(default_factory=dict)
    shadow: ShadowSettings = ShadowSettings()
    # Where live traffic starts; once a rollout change is stored, the stored state wins.
    mode: Literal["shadow", "canary", "candidate"] = "shadow"
    rollout: RolloutConfig | None = None
    criteria: str | dict[str, Any] | None = None
    privacy: PrivacySettings | None = None

    @model_validator(mode="after")
    def _one_way_to_name_candidates(self) -> UseCase:
        if self.candidate is not None and self.candidates:
            raise _Located(("candidates",), "give `candidate:` or `candidates:`, not both")
        if self.candidate is None and not self.candidates:
            raise _Located(("candidate",), "Field required (or `candidates:`)")
        seen: dict[tuple[str, str], str] = {}
        for name, target in self.candidates.items():
            first = seen.setdefault((target.upstream, target.model), name)
            if first != name:
                raise _Located(
                    ("candidates", name),
                    f"duplicate of candidate {first!r} (same upstream and model)",
                )
        wanted = self.rollout.candidate if self.rollout is not None else None
        if wanted is not None and wanted not in self.targets:
            known = ", ".join(self.targets)
            raise _Located(
                ("rollout", "candidate"), f"unknown candidate {wanted!r} (configured: {known})"
            )
        return self

    @property
    def targets(self) -> dict[str, Candidate]:
        """Every candidate by name, in configuration order."""
        if self.candidate is not None:
            return {DEFAULT_CANDIDATE: self.candidate}
        return dict(self.candidates)

    @property
    def lead(self) -> str:
        """The candidate a rollout moves and a plain read reports: `rollout.candidate` or first."""
        wanted = self.rollout.candidate if self.rollout is not None else None
        return wanted or next(iter(self.targets))

    def shadow_for(self, candidate: str) -> ShadowSettings:
        """The use case's `shadow:` with the candidate's own overrides."""
        target = self.targets[candidate]
        own = {
            field: getattr(target, field)
            for field in ("sample_rate", "max_in_flight", "timeout_s")
            if getattr(target, field) is not None
        }
        return self.shadow.model_copy(update=own) if own else self.shadow

    @property
    def rollout_plan(self) -> RolloutConfig:
        """The `rollout:` section, or the default plan when the use case has none."""
        return self.rollout or RolloutConfig()


class SwitchoverConfig(BaseModel):
    """The whole file."""

    model_config = _STRICT

    upstreams: dict[str, Upstream]
    use_cases: dict[str, UseCase]
    evaluators: EvaluatorsConfig = EvaluatorsConfig()
    privacy: PrivacySettings = PrivacySettings()
    passthrough: str | None = Field(
        None, description="upstream answering (unmirrored) models that match no use case"
    )

    @model_validator(mode="after")
    def _targets_name_known_upstreams(self) -> SwitchoverConfig:
        for name, use_case in self.use_cases.items():
            sides: list[tuple[tuple[str, ...], Target]] = [(("primary",), use_case.primary)]
            if use_case.candidate is not None:
                sides.append((("candidate",), use_case.candidate))
            sides += [(("candidates", c), t) for c, t in use_case.candidates.items()]
            for side, target in sides:
                if target.upstream not in self.upstreams:
                    known = ", ".join(sorted(self.upstreams)) or "none"
                    raise _Located(
                        ("use_cases", name, *side, "upstream"),
                        f"unknown upstream {target.upstream!r} (configured: {known})",
                    )
        if self.passthrough is not None and self.passthrough not in self.upstreams:
            known = ", ".join(sorted(self.upstreams)) or "none"
            raise _Located(
                ("passthrough",),
                f"unknown upstream {self.passthrough!r} (configured: {known})",
            )
        return self

    def deployment_for(self, use_case: str, candidate: str) -> Deployment | None:
        """What a candidate runs on: its own `deployment:`, else its upstream's."""
        target = self.use_cases[use_case].targets[candidate]
        return target.deployment or self.upstreams[target.upstream].deployment

    def privacy_for(self, use_case: str) -> PrivacySettings:
        """The top-level `privacy:` with the fields a use case sets replaced (any name works)."""
        own = self.use_cases[use_case].privacy if use_case in self.use_cases else None
        if own is None:
            return self.privacy
        return self.privacy.model_copy(
            update={field: getattr(own, field) for field in own.model_fields_set}
        )

    def secrets(self) -> list[str]:
        """The values of every configured API key that is set in the environment."""
        keys = [upstream.api_key() for upstream in self.upstreams.values()]
        judge_env = self.evaluators.judge.api_key_env
        keys.append(os.environ.get(judge_env) if judge_env else None)
        return [key for key in keys if key]


class ConfigError(Exception):
    """The configuration file cannot be used; the message names file, line and field."""


class _Located(ValueError):
    """A model validator's error about one field; `loc` is relative to the model raising it."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _located(error: dict[str, Any]) -> tuple[str, ...] | None:
    ctx_error = (error.get("ctx") or {}).get("error")
    if not isinstance(ctx_error, _Located):
        return None
    return (*error["loc"], *ctx_error.loc)


def parse_config(text: str, source: str = "<string>") -> SwitchoverConfig:
    """Parse YAML text into a validated config, or raise ConfigError naming line and field."""
    try:
        data, lines = yamldoc.load(text, source)
    except yamldoc.YamlSyntaxError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}:1: the file must be a mapping with `upstreams` and `use_cases`"
        )
    try:
        return SwitchoverConfig.model_validate(data)
    except ValidationError as exc:
        found = yamldoc.problems(exc, lines, source, _located)
        raise ConfigError("invalid configuration\n  " + "\n  ".join(found)) from None


def load_config(path: Path) -> SwitchoverConfig:
    """Read and validate the configuration file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_config(text, str(path))
