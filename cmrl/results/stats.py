"""Score statistics over seeds: mean and sample std, the interquartile mean (IQM), and percentile
bootstrap confidence intervals (Agarwal et al. 2021, "Deep RL at the edge of the statistical
precipice"; rliable). Pure NumPy functions, deterministic given their ``seed``.

IQM: the mean of the middle 50% of the sorted scores. Each of the ``n`` sorted scores covers an
interval of width 1 on [0, n]; the IQM averages over [n/4, 3n/4], so a score at the quartile
boundary counts with the fraction of its interval that lies inside. For n divisible by 4 this is
exactly ``scipy.stats.trim_mean(x, 0.25)`` (rliable's IQM); for other n it still trims 25% at each
end, where trim_mean would trim only floor(n/4) scores (none at all for n = 3, giving the plain mean).

Bootstrap CI: resample the seeds with replacement ``n_resamples`` times, recompute the statistic on
each resample, and take the (1 - c)/2 and (1 + c)/2 quantiles (percentile method). With few seeds
(3-5) the interval is crude and tends to be too narrow; it describes seed variability, nothing more.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

STATISTICS = ("iqm", "mean", "median")


def iqm_weights(n: int) -> np.ndarray:
    """Weights of the ``n`` sorted scores in the IQM; they sum to 1."""
    if n < 1:
        raise ValueError(f"need at least one score, got n={n}")
    lo, hi = n / 4.0, 3.0 * n / 4.0
    left = np.arange(n, dtype=np.float64)
    overlap = np.clip(np.minimum(left + 1.0, hi) - np.maximum(left, lo), 0.0, None)
    return overlap / (hi - lo)


def _as_scores(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("need at least one score")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"scores must be finite, got {x.tolist()}")
    return x


def interquartile_mean(scores: Sequence[float] | np.ndarray) -> float:
    """The IQM of ``scores`` (see the module docstring for how quartile boundaries are weighted)."""
    x = np.sort(_as_scores(scores))
    return float(x @ iqm_weights(x.size))


def _rowwise(statistic: str) -> Callable[[np.ndarray], np.ndarray]:
    """The statistic applied to every row of a (resamples, n) array."""
    if statistic == "iqm":
        return lambda rows: np.sort(rows, axis=1) @ iqm_weights(rows.shape[1])
    if statistic == "mean":
        return lambda rows: rows.mean(axis=1)
    if statistic == "median":
        return lambda rows: np.median(rows, axis=1)
    raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}; got {statistic!r}")


def bootstrap_ci(scores: Sequence[float] | np.ndarray, statistic: str = "iqm", n_resamples: int = 10_000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over ``scores`` (one per seed).

    Returns (low, high); a single score gives the degenerate interval (x, x).
    """
    x = _as_scores(scores)
    _check_bootstrap_args(n_resamples, confidence)
    stat = _rowwise(statistic)
    rng = np.random.default_rng(seed)
    resampled = stat(x[rng.integers(0, x.size, size=(n_resamples, x.size))])
    return _percentile_interval(resampled, confidence)


def stratified_bootstrap_ci(groups: Sequence[Sequence[float] | np.ndarray], statistic: str = "iqm",
                            n_resamples: int = 10_000, confidence: float = 0.95,
                            seed: int = 0) -> tuple[float, float]:
    """Bootstrap CI of ``statistic`` over the pooled scores of several groups (e.g. datasets),
    resampling seeds within each group so that every group keeps its size (rliable's stratified
    bootstrap for aggregate scores across tasks)."""
    if not groups:
        raise ValueError("need at least one group of scores")
    arrays = [_as_scores(g) for g in groups]
    _check_bootstrap_args(n_resamples, confidence)
    stat = _rowwise(statistic)
    rng = np.random.default_rng(seed)
    pooled = np.concatenate([g[rng.integers(0, g.size, size=(n_resamples, g.size))] for g in arrays], axis=1)
    return _percentile_interval(stat(pooled), confidence)


def _check_bootstrap_args(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def probability_of_improvement(x_groups: Sequence[Sequence[float] | np.ndarray],
                               y_groups: Sequence[Sequence[float] | np.ndarray]) -> float:
    """P(X > Y) of algorithm X over algorithm Y on M tasks (rliable, Agarwal et al. 2021, Eq. in Sec. 4.3):

        P(X > Y) = (1 / M) sum_m P(X_m > Y_m),
        P(X_m > Y_m) = (1 / (N K)) sum_{i, j} S(x_{m,i}, y_{m,j}),   S(x, y) = 1 if x > y, 1/2 if x = y, else 0

    with N runs of X and K runs of Y on task m (``x_groups[m]``, ``y_groups[m]``): the probability that
    a run of X on a random task beats a run of Y on the same task.
    """
    if len(x_groups) != len(y_groups) or not x_groups:
        raise ValueError(f"need the same number (>= 1) of tasks for X and Y, got {len(x_groups)} and {len(y_groups)}")
    per_task = []
    for xs, ys in zip(x_groups, y_groups):
        x, y = _as_scores(xs)[:, None], _as_scores(ys)[None, :]
        per_task.append(float(((x > y) + 0.5 * (x == y)).mean()))
    return float(np.mean(per_task))


def probability_of_improvement_ci(x_groups: Sequence[Sequence[float] | np.ndarray],
                                  y_groups: Sequence[Sequence[float] | np.ndarray], n_resamples: int = 10_000,
                                  confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile CI of `probability_of_improvement` by the stratified bootstrap: the runs of X and of Y
    are resampled with replacement within each task, independently (as rliable does)."""
    _check_bootstrap_args(n_resamples, confidence)
    xs = [_as_scores(g) for g in x_groups]
    ys = [_as_scores(g) for g in y_groups]
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    for r in range(n_resamples):
        values[r] = probability_of_improvement([x[rng.integers(0, x.size, x.size)] for x in xs],
                                               [y[rng.integers(0, y.size, y.size)] for y in ys])
    return _percentile_interval(values, confidence)


@dataclass(frozen=True)
class ScoreStats:
    """Summary of one score per seed."""

    n: int  # number of seeds (runs)
    mean: float
    std: float  # sample standard deviation over seeds (ddof=1); NaN for a single seed
    iqm: float  # interquartile mean
    iqm_ci: tuple[float, float]  # percentile bootstrap CI of the IQM
    min: float
    max: float


def summarize(scores: Sequence[float] | np.ndarray, n_resamples: int = 10_000, confidence: float = 0.95,
              seed: int = 0) -> ScoreStats:
    """Mean, sample std, IQM with its bootstrap CI, min and max of one score per seed."""
    x = _as_scores(scores)
    return ScoreStats(
        n=int(x.size),
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if x.size > 1 else math.nan,
        iqm=interquartile_mean(x),
        iqm_ci=bootstrap_ci(x, "iqm", n_resamples, confidence, seed),
        min=float(x.min()),
        max=float(x.max()),
    )


def aggregate_curves(steps: Sequence[np.ndarray], values: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray,
                                                                                          np.ndarray]:
    """Mean and sample std over runs of learning curves evaluated at possibly different steps.

    Every run is linearly interpolated onto the union of all runs' evaluation steps, restricted to the
    range every run covers (from the latest first evaluation to the earliest last one), so a point is
    never extrapolated. Returns (grid, mean, std); std is 0 for a single run. Empty arrays when the
    runs share no range.
    """
    if not steps or len(steps) != len(values):
        raise ValueError("need one value array per step array, and at least one run")
    runs = []
    for s, v in zip(steps, values):
        s, v = np.asarray(s, dtype=np.float64), np.asarray(v, dtype=np.float64)
        if s.shape != v.shape or s.ndim != 1:
            raise ValueError(f"steps and values of a run must be 1-D and of equal length; got {s.shape}, {v.shape}")
        keep = np.isfinite(v)
        s, v = s[keep], v[keep]
        order = np.argsort(s, kind="stable")
        runs.append((s[order], v[order]))
    if any(s.size == 0 for s, _ in runs):
        return np.empty(0), np.empty(0), np.empty(0)
    lo = max(s[0] for s, _ in runs)
    hi = min(s[-1] for s, _ in runs)
    grid = np.unique(np.concatenate([s for s, _ in runs]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    if grid.size == 0:
        return grid, np.empty(0), np.empty(0)
    table = np.stack([np.interp(grid, s, v) for s, v in runs])
    std = table.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(grid.size)
    return grid, table.mean(axis=0), std
