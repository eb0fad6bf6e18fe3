"""Find and read the run directories written by scripts/train.py.

A finished run directory holds ``summary.json`` (cmrl.training.loop.RunSummary), ``config.yaml`` (the
full TrainConfig) and ``metrics.jsonl`` (cmrl.training.loggers). A directory with a config or metrics
but no summary is a run that failed or has not finished yet: it is reported, never scored.
"""
from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import yaml

SUMMARY_NAME = "summary.json"
CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.jsonl"
NORMALIZED_KEY = "eval/normalized_mean"
RETURN_KEY = "eval/return_mean"
# Keys that differ between the seeds of one experiment without making it another: seeds, where and how
# it ran, and per-run paths (a distilled student's teacher is the teacher trained with the same seed).
NON_VARIANT_KEYS = ("seed", "resume", "device", "threads", "eval_envs", "checkpoint_every", "init_from",
                    "agent.consistency.teacher_checkpoint")
NON_VARIANT_PREFIXES = ("logger.",)
SKIP_DIRS = {"wandb", ".hydra", ".submitit", "__pycache__"}


@dataclass
class RunResult:
    """One finished run: its summary, flattened config and evaluation curve."""

    run_dir: Path
    dataset: str
    env_id: str
    algo: str
    seed: int
    steps: int
    eval_episodes: int
    wall_time_s: float
    final_return_mean: float
    final_return_std: float
    final_normalized: Optional[float]
    best_normalized: Optional[float]
    dataset_normalized: Optional[float]
    dataset_mean_return: Optional[float] = None
    dataset_fingerprint: Optional[str] = None  # None in summaries written before fingerprints were recorded
    config: dict[str, Any] = field(default_factory=dict)  # flattened: {"agent.eta": 1.0, ...}
    curve_steps: np.ndarray = field(default_factory=lambda: np.empty(0))
    curve_normalized: np.ndarray = field(default_factory=lambda: np.empty(0))  # NaN where not logged
    curve_return: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def has_normalized(self) -> bool:
        return self.final_normalized is not None


def find_run_dirs(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """(finished, unfinished) run directories under ``paths``.

    Each path may be a run directory or any folder above run directories (a sweep directory, ``runs/``).
    Finished runs hold summary.json; unfinished ones hold config.yaml, metrics.jsonl or Hydra's .hydra/
    folder (a job that failed before training started) without it.
    Raises FileNotFoundError for a path that does not exist.
    """
    finished: set[Path] = set()
    unfinished: set[Path] = set()
    for path in paths:
        root = Path(path)
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist")
        for folder, subdirs, files in os.walk(root):
            hydra_job = ".hydra" in subdirs  # a Hydra job directory, even if the job failed before writing
            subdirs[:] = sorted(d for d in subdirs if d not in SKIP_DIRS)
            here = Path(folder).resolve()
            if SUMMARY_NAME in files:
                finished.add(here)
            elif CONFIG_NAME in files or METRICS_NAME in files or hydra_job:
                unfinished.add(here)
    return sorted(finished), sorted(unfinished - finished)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}, "c": [1, 2]} -> {"a.b": 1, "c": [1, 2]} (lists are leaves)."""
    if not isinstance(tree, dict):
        return {prefix: tree} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def read_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, normalised score, return) of every evaluation logged in ``metrics.jsonl``."""
    path = run_dir / METRICS_NAME
    steps, normalized, returns = [], [], []
    if not path.is_file():
        return np.empty(0), np.empty(0), np.empty(0)
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if RETURN_KEY in record or NORMALIZED_KEY in record:
                steps.append(float(record["step"]))
                normalized.append(float(record.get(NORMALIZED_KEY, math.nan)))
                returns.append(float(record.get(RETURN_KEY, math.nan)))
    return np.asarray(steps), np.asarray(normalized), np.asarray(returns)


def _optional_float(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def load_run(run_dir: str | os.PathLike) -> RunResult:
    """Read one finished run directory. Raises ValueError naming the file when it is malformed."""
    folder = Path(run_dir)
    try:
        summary = json.loads((folder / SUMMARY_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read {folder / SUMMARY_NAME}: {err}") from err
    config: dict[str, Any] = {}
    if (folder / CONFIG_NAME).is_file():
        with open(folder / CONFIG_NAME, encoding="utf-8") as f:
            config = flatten(yaml.safe_load(f) or {})
    steps, normalized, returns = read_curve(folder)
    try:
        return RunResult(
            run_dir=folder,
            dataset=str(summary["dataset"]),
            env_id=str(summary["env_id"]),
            algo=str(summary["algo"]),
            seed=int(summary["seed"]),
            steps=int(summary["steps"]),
            eval_episodes=int(summary["eval_episodes"]),
            wall_time_s=float(summary.get("wall_time_s", math.nan)),
            final_return_mean=float(summary["final_return_mean"]),
            final_return_std=float(summary["final_return_std"]),
            final_normalized=_optional_float(summary.get("final_normalized")),
            best_normalized=_optional_float(summary.get("best_normalized")),
            dataset_normalized=_optional_float(summary.get("dataset_normalized")),
            dataset_mean_return=_optional_float(summary.get("dataset_mean_return")),
            dataset_fingerprint=summary.get("dataset_fingerprint"),
            config=config,
            curve_steps=steps,
            curve_normalized=normalized,
            curve_return=returns,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{folder / SUMMARY_NAME} is not a cmrl run summary: {err!r}") from err


def is_variant_key(key: str) -> bool:
    """Whether a config key can make two runs of the same dataset and algorithm different experiments."""
    return key not in NON_VARIANT_KEYS and not key.startswith(NON_VARIANT_PREFIXES)


@functools.cache
def schema_defaults() -> dict[str, Any]:
    """The flattened defaults of cmrl's configuration schema (TrainConfig). A run whose config.yaml
    lacks a key was written by a cmrl without that option, and it ran as the option's default does.
    Read once, and only when some config lacks a key (the schema imports torch)."""
    from dataclasses import asdict

    from cmrl.training.config import TrainConfig

    return flatten(asdict(TrainConfig()))


RETIRED_OPTION_DEFAULTS: dict[str, Any] = {
    "agent.lr_schedule": "cosine", "agent.n_step": 1, "agent.actor_q": "mean", "agent.q_normalizer": "value",
    "agent.advantage_beta": 0.0, "agent.critic_return_scaling": False,
}
"""Options that earlier releases had and that were retired (docs/experiments.md), with the value
every run that lacks them ran with: runs before and after the retirement group together."""


def config_value(run: RunResult, key: str) -> Any:
    """The run's value of a config key; the schema default where its config predates the key, or the
    retired option's only remaining value where it postdates it."""
    if key in run.config:
        return run.config[key]
    return RETIRED_OPTION_DEFAULTS[key] if key in RETIRED_OPTION_DEFAULTS else schema_defaults().get(key)


def varying_keys(runs: list[RunResult]) -> list[str]:
    """Config keys (not seeds or bookkeeping) whose values differ between ``runs``, sorted. A key that
    some configs lack takes the schema default there (`config_value`)."""
    keys = sorted({k for r in runs for k in r.config if is_variant_key(k)})
    return [k for k in keys if len({repr(config_value(r, k)) for r in runs}) > 1]


def _format_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_format_value(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass
class RunGroup:
    """The seeds of one experiment: same dataset, environment, algorithm and configuration."""

    dataset: str
    env_id: str
    algo: str
    variant: str  # "key=value ..." of the config keys that tell this group from its siblings; "" if none
    runs: list[RunResult]

    @property
    def seeds(self) -> list[int]:
        return sorted(r.seed for r in self.runs)

    @property
    def steps(self) -> list[int]:
        return sorted({r.steps for r in self.runs})

    @property
    def eval_episodes(self) -> list[int]:
        return sorted({r.eval_episodes for r in self.runs})

    @property
    def has_normalized(self) -> bool:
        return all(r.has_normalized for r in self.runs)

    @property
    def label(self) -> str:
        return f"{self.algo} ({self.variant})" if self.variant else self.algo


def check_same_data(runs: list[RunResult]) -> None:
    """Raise ValueError when runs that name the same dataset and environment trained on different files.

    Two files made by the same generator and seed on different CPUs can differ (the rollouts diverge
    from the last bit of a matrix product on), and their scores are not comparable. A file is told by
    the summary's ``dataset_fingerprint``; summaries written before it was recorded are told by the
    data's mean episode return, which differs between such files.
    """
    by_data: dict[tuple[str, str], list[RunResult]] = {}
    for run in runs:
        by_data.setdefault((run.dataset, run.env_id), []).append(run)
    for (dataset, env_id), members in sorted(by_data.items()):
        for what, value_of in (("fingerprint", lambda r: r.dataset_fingerprint),
                               ("mean return", lambda r: None if r.dataset_mean_return is None
                                else f"{r.dataset_mean_return:.6f}")):
            versions: dict[str, list[RunResult]] = {}
            for run in members:
                value = value_of(run)
                if value is not None:
                    versions.setdefault(value, []).append(run)
            if len(versions) > 1:
                listed = "; ".join(
                    f"data {what} {value}: {len(found)} run(s), e.g. {found[0].run_dir}"
                    for value, found in sorted(versions.items(), key=lambda item: -len(item[1])))
                raise ValueError(
                    f"the runs on dataset {dataset!r} ({env_id}) trained on {len(versions)} different files "
                    f"({listed}); scores on different files are not comparable: report the runs of one file at a time")


def group_runs(runs: list[RunResult]) -> list[RunGroup]:
    """Group runs into experiments: by (dataset, env_id, algo), then by the values of the config keys
    that differ within that set (e.g. ``agent.eta`` in a sweep over it, or ``steps``). Sorted by
    dataset, algorithm and variant. Runs of one dataset name must come from one file (check_same_data)."""
    check_same_data(runs)
    by_task: dict[tuple[str, str, str], list[RunResult]] = {}
    for run in runs:
        by_task.setdefault((run.dataset, run.env_id, run.algo), []).append(run)
    groups = []
    for (dataset, env_id, algo), members in by_task.items():
        keys = varying_keys(members)
        by_variant: dict[str, list[RunResult]] = {}
        for run in members:
            variant = " ".join(f"{k}={_format_value(config_value(run, k))}" for k in keys)
            by_variant.setdefault(variant, []).append(run)
        for variant, seeds in by_variant.items():
            seeds = sorted(seeds, key=lambda r: (r.seed, str(r.run_dir)))
            groups.append(RunGroup(dataset, env_id, algo, variant, seeds))
    return sorted(groups, key=lambda g: (g.dataset, g.env_id, g.algo, g.variant))
