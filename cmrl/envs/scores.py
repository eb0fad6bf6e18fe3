"""Reference returns and D4RL-style normalised scores.

A normalised score maps a return R onto the scale where a random policy scores 0 and an expert 100:

    score = 100 * (R - ref_min) / (ref_max - ref_min)

The reference returns below are D4RL's (``d4rl/infos.py``: ``REF_MIN_SCORE`` / ``REF_MAX_SCORE``), shared
by every dataset of a task. Minari datasets carry their own ``ref_min_score`` / ``ref_max_score`` in
their metadata; prefer those for Minari data.
"""
from __future__ import annotations

from typing import NamedTuple, overload

import numpy as np


class ReferenceScores(NamedTuple):
    """The returns that map to normalised scores 0 (``ref_min``, random) and 100 (``ref_max``, expert)."""

    ref_min: float
    ref_max: float


REFERENCE_SCORES: dict[str, ReferenceScores] = {
    "hopper": ReferenceScores(-20.272305, 3234.3),
    "halfcheetah": ReferenceScores(-280.178953, 12135.0),
    "walker2d": ReferenceScores(1.629008, 4592.3),
    "ant": ReferenceScores(-325.6, 3879.7),
    "antmaze": ReferenceScores(0.0, 1.0),
}
"""D4RL reference returns by task family (the dataset-name prefix, e.g. ``hopper`` for ``hopper-medium-v2``)."""


def reference_scores(name: str) -> ReferenceScores | None:
    """D4RL's reference returns for a dataset or environment name, or None for an unknown task.

    Matches the task family case-insensitively at the start of any ``/``-separated part, so
    ``hopper-medium-v2``, ``d4rl/hopper-medium-v2``, ``mujoco/hopper/medium-v0`` and ``Hopper-v5`` all
    give hopper's. Longer families win, so ``antmaze-umaze-v2`` gets antmaze's, not ant's.
    """
    families = sorted(REFERENCE_SCORES, key=len, reverse=True)
    for part in name.lower().split("/"):
        for family in families:
            if part.startswith(family):
                return REFERENCE_SCORES[family]
    return None


def check_reference_scores(ref_min: float, ref_max: float) -> None:
    """Raise ValueError unless ``ref_max > ref_min`` (both finite numbers)."""
    if not (np.isfinite(ref_min) and np.isfinite(ref_max) and ref_max > ref_min):
        raise ValueError(
            f"reference scores must be finite with ref_max > ref_min, got ref_min={ref_min}, "
            f"ref_max={ref_max}; check the dataset's ref_min_score / ref_max_score or "
            "cmrl.envs.REFERENCE_SCORES"
        )


@overload
def normalized_score(returns: float, ref_min: float, ref_max: float) -> float: ...


@overload
def normalized_score(returns: np.ndarray, ref_min: float, ref_max: float) -> np.ndarray: ...


def normalized_score(returns: np.ndarray | float, ref_min: float, ref_max: float) -> np.ndarray | float:
    """``100 * (returns - ref_min) / (ref_max - ref_min)``, elementwise for arrays.

    Raises ValueError when ``ref_max <= ref_min`` (the scale would be degenerate or inverted).
    """
    check_reference_scores(ref_min, ref_max)
    if isinstance(returns, np.ndarray):
        return 100.0 * (returns.astype(np.float64) - ref_min) / (ref_max - ref_min)
    return 100.0 * (float(returns) - ref_min) / (ref_max - ref_min)
