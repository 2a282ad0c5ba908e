"""The configured use cases handed down to the readiness service (`criteria`): one mapping."""

from __future__ import annotations

from pathlib import Path

from criteria.cost.model import Deployment
from criteria.errors import InvalidCriteria
from criteria.readiness.service import Catalog, UseCaseInfo, inline_criteria_text, parse_for
from shadow.config import ConfigError, SwitchoverConfig


def catalog_for(
    config: SwitchoverConfig, config_dir: Path | None, evaluate_every_s: float = 60.0
) -> Catalog:
    """The use cases with their criteria text and declared figures."""
    infos = []
    for name, use_case in config.use_cases.items():
        criteria = use_case.criteria
        if isinstance(criteria, str):
            path = Path(criteria)
            if not path.is_absolute() and config_dir is not None:
                path = config_dir / path
            try:
                text: str | None = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"use_cases.{name}.criteria: cannot read {path}: {exc.strerror}"
                ) from None
            source = str(path)
        elif isinstance(criteria, dict):
            text = inline_criteria_text(name, criteria)
            source = f"use_cases.{name}.criteria"
        else:
            text = None
        if text is not None:
            try:
                parse_for(name, text, source)
            except InvalidCriteria as exc:
                raise ConfigError(str(exc)) from None
        figures: dict[str, float] = {}
        deployment = config.upstreams[use_case.candidate.upstream].deployment
        costs = None
        if deployment is not None:
            figures["ops.hours_per_week"] = deployment.ops_hours_per_week
            costs = Deployment(
                gpu=deployment.gpu,
                gpu_count=deployment.gpu_count,
                hourly_usd=deployment.hourly_usd,
                replicas=deployment.replicas,
                ops_hours_per_week=deployment.ops_hours_per_week,
                engineer_hourly_usd=deployment.engineer_hourly_usd,
            )
        infos.append(
            UseCaseInfo(
                name=name,
                mode=use_case.mode,
                sample_rate=use_case.shadow.sample_rate,
                noise_rate=use_case.shadow.noise_rate,
                primary_model=use_case.primary.model,
                candidate_model=use_case.candidate.model,
                criteria_text=text,
                figures=figures,
                deployment=costs,
                headroom=deployment.headroom if deployment is not None else 0.3,
                rollout=use_case.rollout,
            )
        )
    return Catalog(infos, fresh_for_s=evaluate_every_s)
