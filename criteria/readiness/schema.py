"""The criteria file (SPEC §5) as pydantic models; errors name the line and the reason."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from criteria import yamldoc
from evaluators.catalog import CATALOG, NOISE_COUNTERPART, RELATIVE_COUNTERPART, unknown_metric

Op = Literal["<=", "<", ">=", ">"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class CriteriaError(ValueError):
    """A criteria document that cannot be used; the message names line and reason."""


def parse_duration(value: str | int | float) -> timedelta:
    """`24h`, `30m`, `7d`, `90s`, `2w`, or a number of seconds."""
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration like 30m, 24h or 7d")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class Criterion(BaseModel):
    """One success criterion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    metric: str
    stat: Literal["mean", "proportion", "quantile"] | None = None
    q: float | None = Field(None, gt=0, lt=1)
    # before `op` and `threshold`, so that their validator sees it
    mode: Literal["absolute", "relative", "noise_adjusted"] = "absolute"
    op: Op | None = None
    threshold: float | None = None
    margin: float | None = Field(None, ge=0)
    min_samples: int = Field(10, ge=1)
    critical: bool = False
    segment: str | None = None
    # live shadowing, imported traffic (`switchover import`) or both
    source: Literal["live", "import", "any"] = "any"

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in CATALOG:
            raise ValueError(unknown_metric(value))
        return value

    @field_validator("op", "threshold")
    @classmethod
    def _used_by_the_mode(cls, value: Any, info: ValidationInfo) -> Any:
        mode = info.data.get("mode", "absolute")
        if value is not None and mode != "absolute":
            raise ValueError(
                f"mode {mode} compares with `margin`; `{info.field_name}` is not used there"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Criterion:
        metric = CATALOG[self.metric]
        if metric.kind == "figure":
            if self.stat is not None or self.mode != "absolute":
                raise ValueError(f"{self.metric} is a use-case figure: no `stat`, mode absolute")
            self._need_op_threshold()
            return self
        if self.stat is None:
            raise ValueError(
                "`stat` is required for a per-pair metric: mean, proportion or quantile"
            )
        if self.stat == "quantile" and self.q is None:
            raise ValueError("a quantile criterion needs `q` (e.g. q: 0.95)")
        if self.stat != "quantile" and self.q is not None:
            raise ValueError("`q` only applies to stat: quantile")
        if self.stat == "proportion" and not metric.binary and self.mode == "absolute":
            raise ValueError(f"stat: proportion needs a 0/1 metric; {self.metric} is not one")
        if self.stat == "mean" and not metric.bounded:
            raise ValueError(
                f"stat: mean needs a bounded metric; {self.metric} has no upper bound "
                "(use stat: quantile)"
            )
        if self.mode == "absolute":
            self._need_op_threshold()
        elif self.mode == "noise_adjusted":
            if self.metric not in NOISE_COUNTERPART:
                known = ", ".join(sorted(NOISE_COUNTERPART))
                raise ValueError(f"mode noise_adjusted needs a metric with a noise floor: {known}")
            if self.stat != "mean" or self.margin is None:
                raise ValueError("mode noise_adjusted needs stat: mean and a `margin`")
        else:
            if self.metric not in RELATIVE_COUNTERPART:
                known = ", ".join(sorted(RELATIVE_COUNTERPART))
                raise ValueError(f"mode relative needs a metric measured on both sides: {known}")
            if self.stat != "quantile" or self.margin is None:
                raise ValueError(
                    "mode relative needs stat: quantile and a `margin` (e.g. 0.2 = +20%)"
                )
        return self

    def _need_op_threshold(self) -> None:
        if self.op is None or self.threshold is None:
            missing = [f for f in ("op", "threshold") if getattr(self, f) is None]
            raise ValueError(f"missing field(s) {', '.join(missing)} for mode absolute")


class CriteriaSet(BaseModel):
    """A use case's criteria document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    use_case: str = Field(min_length=1)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    min_duration: timedelta = timedelta(0)
    criteria: list[Criterion] = Field(min_length=1)

    @field_validator("min_duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        if isinstance(value, timedelta):
            return value
        return parse_duration(value)

    @model_validator(mode="after")
    def _unique_names(self) -> CriteriaSet:
        names = [c.name for c in self.criteria]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"criterion names must be unique: {', '.join(duplicates)}")
        return self


def parse_criteria(text: str, source: str = "<criteria>") -> CriteriaSet:
    """Parse a YAML (or JSON) criteria document; CriteriaError names the line and the reason."""
    try:
        data, lines = yamldoc.load(text, source)
    except yamldoc.YamlSyntaxError as exc:
        raise CriteriaError(str(exc)) from None
    if not isinstance(data, dict):
        raise CriteriaError(
            f"{source}:1: a criteria document is a mapping with `use_case` and `criteria`"
        )
    try:
        return CriteriaSet.model_validate(data)
    except ValidationError as exc:
        found = yamldoc.problems(exc, lines, source)
        raise CriteriaError("invalid criteria\n  " + "\n  ".join(found)) from None
