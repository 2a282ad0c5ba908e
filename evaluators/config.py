"""The `evaluators:` section of switchover.yaml: embedding model, prices, LLM judge.

Defined here, referenced from the service's configuration, and handed to the evaluators when a
worker starts (`evaluators.runtime.configure`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evaluators.catalog import EVALUATOR_NAMES
from evaluators.rubrics import rubrics

_STRICT = ConfigDict(extra="forbid", frozen=True)

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class ModelPrice(BaseModel):
    """What an API charges per million tokens."""

    model_config = _STRICT

    input_per_mtok: float = Field(ge=0, description="USD per million prompt tokens")
    output_per_mtok: float = Field(ge=0, description="USD per million completion tokens")


class JudgeConfig(BaseModel):
    """An optional LLM-as-judge on any OpenAI-compatible endpoint (off by default)."""

    model_config = _STRICT

    enabled: bool = False
    base_url: str | None = Field(None, pattern=r"^https?://")
    model: str | None = None
    api_key_env: str | None = Field(None, description="env var holding the judge's key")
    rubric: str = Field("pairwise-v1", description="version of the bundled rubric")
    timeout_s: float = Field(60, gt=0)
    max_concurrency: int = Field(4, ge=1, description="judge calls in flight per batch")

    @model_validator(mode="after")
    def _endpoint_when_enabled(self) -> JudgeConfig:
        if self.enabled and not (self.base_url and self.model):
            raise ValueError("an enabled judge needs `base_url` and `model`")
        return self

    @field_validator("rubric")
    @classmethod
    def _known_rubric(cls, rubric: str) -> str:
        if rubric not in rubrics():
            raise ValueError(f"unknown rubric (bundled: {', '.join(sorted(rubrics()))})")
        return rubric


class EvaluatorsConfig(BaseModel):
    """How pairs are scored."""

    model_config = _STRICT

    embedding_model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="sentence-transformers model name or local path; the default is bundled",
    )
    embedding_batch_size: int = Field(64, ge=1)
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict, description="overrides and additions to the bundled price table"
    )
    judge: JudgeConfig = JudgeConfig()
    disabled: tuple[str, ...] = Field((), description="evaluators not to run, by name")

    @field_validator("disabled")
    @classmethod
    def _known_evaluators(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(names) - set(EVALUATOR_NAMES))
        if unknown:
            known = ", ".join(EVALUATOR_NAMES)
            raise ValueError(f"unknown evaluator(s) {', '.join(unknown)} (known: {known})")
        return names
