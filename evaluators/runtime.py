"""What a scoring process is configured with: handed down by the service when a worker starts.

The evaluators never read the service's configuration themselves (it lives in a layer above);
the worker's bootstrap calls `configure` with the `evaluators:` section and the candidates'
deployments, and the scoring tasks use `current()`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from evaluators.base import Evaluator
from evaluators.config import EvaluatorsConfig
from evaluators.pair import Deployment
from evaluators.registry import get_evaluators


@dataclass
class ScoringRuntime:
    """The evaluators of this process and what they need to know per use case."""

    config: EvaluatorsConfig
    evaluators: list[Evaluator]
    # by `deployment_key`
    deployments: Mapping[str, Deployment] = field(default_factory=dict)


def deployment_key(use_case: str, candidate: str) -> str:
    """The key of a candidate's deployment: the use case's name for its `default` candidate."""
    return use_case if candidate == "default" else f"{use_case}/{candidate}"


_runtime: ScoringRuntime | None = None
_lock = threading.Lock()


def configure(
    config: EvaluatorsConfig, deployments: Mapping[str, Deployment] | None = None
) -> ScoringRuntime:
    """Use `config` for the scoring in this process; `deployments` by `deployment_key`."""
    global _runtime
    runtime = ScoringRuntime(config, get_evaluators(config), dict(deployments or {}))
    with _lock:
        _runtime = runtime
    return runtime


def current() -> ScoringRuntime:
    """The configured runtime (the defaults when nothing configured this process)."""
    global _runtime
    with _lock:
        if _runtime is None:
            config = EvaluatorsConfig()
            _runtime = ScoringRuntime(config, get_evaluators(config))
        return _runtime
