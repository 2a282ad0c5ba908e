"""Hugging Face `evaluate` metric modules of this project, loaded by path (no hub needed)."""

from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path(__file__).parent


def module_path(name: str) -> str:
    """The file `evaluate.load` takes for the bundled metric `name` (`rouge_l`, `bleu`)."""
    return str(METRICS_DIR / f"{name}.py")
