"""The judge's bundled rubrics, by version (read by the config's validation and by the judge)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

RUBRICS_FILE = Path(__file__).parent / "data" / "judge_rubrics.yaml"


@cache
def rubrics() -> dict[str, dict[str, str]]:
    """The bundled rubrics by version."""
    data: dict[str, dict[str, str]] = yaml.safe_load(RUBRICS_FILE.read_text(encoding="utf-8"))
    return data
