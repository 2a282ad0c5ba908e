"""The configured use cases handed down to the readiness service (`criteria`): one mapping."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from criteria.cost.model import Deployment
from criteria.errors import InvalidCriteria
from criteria.readiness.service import inline_criteria_text, parse_for
from criteria.usecases import Catalog, UseCaseInfo
from evaluators.catalog import CATALOG
from evaluators.config import EvaluatorsConfig
from shadow.config import ConfigError, SwitchoverConfig, Upstream


def produced_metrics(evaluators: EvaluatorsConfig) -> frozenset[str]:
    """The per-pair metrics the enabled evaluators produce (the judge only when it is on)."""
    off = set(evaluators.disabled)
    if not evaluators.judge.enabled:
        off.add("judge")
    return frozenset(
        m.name for m in CATALOG.values() if m.evaluator is not None and m.evaluator not in off
    )


def missing_key(upstream: Upstream) -> str | None:
    """Why the upstream has no key in this process, or None when it has one."""
    if upstream.api_key_env is None:
        return "no api_key_env configured"
    if upstream.api_key() is None:
        return f"{upstream.api_key_env} is not set"
    return None


def catalog_for(
    config: SwitchoverConfig, config_dir: Path | None, evaluate_every_s: float = 60.0
) -> Catalog:
    """The use cases with their criteria text and declared figures."""
    infos = []
    produced = produced_metrics(config.evaluators)
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
        order = tuple(use_case.targets)
        each = []
        for candidate, target in use_case.targets.items():
            figures: dict[str, float] = {}
            deployment = config.deployment_for(name, candidate)
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
            each.append(
                UseCaseInfo(
                    name=name,
                    mode=use_case.mode,
                    sample_rate=use_case.shadow_for(candidate).sample_rate,
                    noise_rate=use_case.shadow.noise_rate,
                    primary_model=use_case.primary.model,
                    candidate_model=target.model,
                    criteria_text=text,
                    figures=figures,
                    deployment=costs,
                    headroom=deployment.headroom if deployment is not None else 0.3,
                    rollout=use_case.rollout,
                    primary_key_missing=missing_key(config.upstreams[use_case.primary.upstream]),
                    produced_metrics=produced,
                    candidate=candidate,
                    candidate_order=order,
                )
            )
        lead = next(i for i in each if i.candidate == use_case.lead)
        infos.append(replace(lead, others=tuple(i for i in each if i is not lead)))
    return Catalog(infos, fresh_for_s=evaluate_every_s)
