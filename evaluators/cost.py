"""Cost per request: the API's token prices, and the self-hosted deployment at its capacity."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from evaluators.base import Values, each
from evaluators.config import ModelPrice
from evaluators.pair import PairView

log = logging.getLogger(__name__)

PRICES_FILE = Path(__file__).parent / "data" / "prices.yaml"
# Dated snapshots (gpt-4o-mini-2024-07-18, claude-3-5-haiku-20241022, gpt-4-0613) cost what
# their model does; a gateway's `provider/` prefix is not part of the model's name.
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest)$")


@dataclass(frozen=True)
class PriceTable:
    """Token prices by model name, with the date they were taken from the providers."""

    as_of: str
    prices: Mapping[str, ModelPrice]

    def lookup(self, model: str) -> ModelPrice | None:
        """The price of `model`, of its undated name, or None when it is not in the table."""
        candidates = [model, _SNAPSHOT.sub("", model)]
        if "/" in model:
            bare = model.rsplit("/", 1)[1]
            candidates += [bare, _SNAPSHOT.sub("", bare)]
        for name in candidates:
            price = self.prices.get(name)
            if price is not None:
                return price
        return None


@cache
def bundled_prices() -> PriceTable:
    """The price table shipped with Switchover."""
    data = yaml.safe_load(PRICES_FILE.read_text(encoding="utf-8"))
    prices = {name: ModelPrice.model_validate(value) for name, value in data["models"].items()}
    return PriceTable(as_of=str(data["as_of"]), prices=prices)


def price_table(overrides: Mapping[str, ModelPrice]) -> PriceTable:
    """The bundled table with the configuration's overrides and additions on top."""
    bundled = bundled_prices()
    return PriceTable(as_of=bundled.as_of, prices={**bundled.prices, **overrides})


class PrimaryCostEvaluator:
    """`cost.primary_usd`: the request's prompt and completion tokens at the API's prices."""

    name = "primary_cost"
    metrics = ("cost.primary_usd",)

    def __init__(self, table: PriceTable) -> None:
        self.table = table
        self._unknown: set[str] = set()
        self._lock = threading.Lock()

    def score(self, pairs: Sequence[PairView]) -> list[Values]:
        """The cost per pair whose model is priced and whose token counts are known."""
        return each(pairs, self._one)

    def _one(self, pair: PairView) -> Values:
        prompt, completion = pair.primary.prompt_tokens, pair.primary.completion_tokens
        if prompt is None or completion is None:
            return {}
        price = self.table.lookup(pair.primary_model)
        if price is None:
            self._warn_unknown(pair.primary_model)
            return {}
        usd = (prompt * price.input_per_mtok + completion * price.output_per_mtok) / 1_000_000
        return {"cost.primary_usd": usd}

    def _warn_unknown(self, model: str) -> None:
        with self._lock:
            if model in self._unknown:
                return
            self._unknown.add(model)
        log.warning(
            "no price for model %r in the price table (as of %s): cost.primary_usd is not "
            "recorded for it; add it under `evaluators.prices` in switchover.yaml",
            model,
            self.table.as_of,
        )


class CandidateCostEvaluator:
    """`cost.candidate_usd`: a replica's hourly cost over the requests it serves in an hour at
    the capacity a replay measured (`capacity.rps_at_slo`); no figure until one is measured."""

    name = "candidate_cost"
    metrics = ("cost.candidate_usd",)

    def score(self, pairs: Sequence[PairView]) -> list[Values]:
        """The cost per request of pairs whose deployment has a measured capacity."""
        return each(pairs, self._one)

    @staticmethod
    def _one(pair: PairView) -> Values:
        deployment = pair.deployment
        if deployment is None or not deployment.capacity_rps:
            return {}
        return {"cost.candidate_usd": deployment.hourly_usd / (3600 * deployment.capacity_rps)}
