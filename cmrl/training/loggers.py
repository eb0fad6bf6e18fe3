"""Metric logging: one ``log(metrics, step)`` call fans out to the console, JSONL and CSV files in the
run directory, and Weights & Biases.

Files in the run directory:

- ``metrics.jsonl``: one JSON object per ``log`` call, ``{"step": ..., "<key>": <float>, ...}``; the
  canonical record, read back by :func:`read_metrics`. Non-finite values are written as ``NaN`` /
  ``Infinity`` (Python's json reads them back).
- ``metrics.csv``: the same records in wide format, one row per ``log`` call, a column per key in the
  order keys first appeared, empty cells where a call did not log a key. When a call brings a new key
  the file is rewritten (atomically) with the wider header; keys settle after the first evaluation,
  so this happens a handful of times per run.

Both files are flushed after every call, so a crashed run keeps everything logged before the crash.
Resuming in the same directory with ``resume_step=S`` drops the records of steps after S, which the
resumed run will log again.
"""
from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from tqdm import tqdm

from cmrl.errors import ConfigError

JSONL_NAME = "metrics.jsonl"
CSV_NAME = "metrics.csv"
WANDB_MODES = ("online", "offline", "disabled")
EVAL_PREFIX = "eval/"


@dataclass
class LoggerConfig:
    """Where metrics go and how often (the ``logger`` config group)."""

    mode: str = "disabled"  # wandb mode: online (needs network) | offline (sync later: `wandb sync`) | disabled
    project: str = "cmrl"  # wandb project
    group: Optional[str] = None  # wandb group, e.g. one per sweep, to aggregate seeds
    name: Optional[str] = None  # wandb run name; None lets wandb choose
    tags: list[str] = field(default_factory=list)  # wandb tags
    log_every: int = 1000  # training metrics every N steps
    console_every: int = 10_000  # a console line every N steps (and whenever eval metrics arrive); 0 = only evals
    console: bool = True  # print metric lines to the terminal
    progress_bar: bool = True  # a tqdm bar over the training steps

    def validate(self) -> None:
        """Raise ConfigError (a ValueError) naming the first bad key and its allowed values."""
        if self.mode not in WANDB_MODES:
            raise ConfigError(f"logger.mode must be one of {', '.join(WANDB_MODES)}; got {self.mode!r}")
        if not isinstance(self.project, str) or not self.project:
            raise ConfigError(f"logger.project must be a non-empty string; got {self.project!r}")
        for key in ("group", "name"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"logger.{key} must be a non-empty string or null; got {value!r}")
        if not all(isinstance(tag, str) and tag for tag in self.tags):
            raise ConfigError(f"logger.tags must be a list of non-empty strings; got {list(self.tags)!r}")
        if self.log_every < 1:
            raise ConfigError(f"logger.log_every must be >= 1; got {self.log_every}")
        if self.console_every < 0:
            raise ConfigError(f"logger.console_every must be >= 0 (0: only on evaluations); got {self.console_every}")


class Logger:
    """Fans metrics out to the console, ``metrics.jsonl``, ``metrics.csv`` and wandb; use as a context
    manager or call :meth:`close`.

    Args:
        config: the logger settings (validated here).
        run_dir: the run directory; created if missing. wandb writes under ``run_dir/wandb``.
        run_config: the run's full configuration, recorded by wandb.
        total_steps: the length of the progress bar.
        resume_step: continue a run in the same directory after step ``resume_step``: records of later
            steps are dropped from the files and the progress bar starts there. None keeps the files
            as they are and appends.
        fresh: start the files empty (a new run in a directory that a run killed before its first
            checkpoint left records in).
    """

    def __init__(self, config: LoggerConfig, run_dir: str | os.PathLike, run_config: Mapping[str, Any],
                 total_steps: int, resume_step: int | None = None, fresh: bool = False):
        config.validate()
        self.config = config
        self.total_steps = total_steps
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl_path = self.run_dir / JSONL_NAME
        self._csv_path = self.run_dir / CSV_NAME
        records = read_metrics(self.run_dir) if self._jsonl_path.exists() and not fresh else []
        if resume_step is not None:
            records = [r for r in records if r["step"] <= resume_step]
        # wandb starts before any file is touched and after the last check that can fail
        self._wandb_run = _init_wandb(config, self.run_dir, dict(run_config)) if config.mode != "disabled" else None
        self._last_step = max((r["step"] for r in records), default=None)
        self._csv_columns = _columns(records)
        _write_jsonl(self._jsonl_path, records)
        _write_csv(self._csv_path, self._csv_columns, records)
        # kept open for the run's appends; close() closes them
        self._jsonl = open(self._jsonl_path, "a", encoding="utf-8")  # noqa: SIM115
        self._csv = open(self._csv_path, "a", encoding="utf-8", newline="")  # noqa: SIM115

        start = resume_step or 0
        self._last_console_step = start
        self._bar = None
        if config.progress_bar:
            interactive = sys.stderr.isatty()  # in a batch log, redraw rarely instead of every 0.1 s
            self._bar = tqdm(total=total_steps, initial=start, unit="step", dynamic_ncols=True,
                             mininterval=0.1 if interactive else 60.0)

    def should_log(self, step: int) -> bool:
        """Whether training metrics are due at ``step`` (every ``log_every`` steps)."""
        return step % self.config.log_every == 0

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Record scalar metrics at ``step``.

        Values may be Python numbers, NumPy scalars or one-element tensors; they are converted to float
        once, here. Steps must not decrease (wandb drops out-of-order steps).
        """
        if self._last_step is not None and step < self._last_step:
            raise ValueError(f"log step {step} is before the previous step {self._last_step}: steps must not decrease")
        if "step" in metrics:
            raise ValueError("'step' is reserved for the step argument; rename the metric")
        step = int(step)
        values = {key: _to_float(key, value) for key, value in metrics.items()}
        self._last_step = step
        record = {"step": step, **values}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        self._write_csv_row(record)
        if self._wandb_run is not None:
            self._wandb_run.log(values, step=step)
        if self.config.console and self._console_due(values, step):
            self._last_console_step = step
            self._print(_format_line(record, self.total_steps))

    def advance(self, step: int) -> None:
        """Move the progress bar to ``step`` (cheap enough to call every step)."""
        if self._bar is not None and step > self._bar.n:
            self._bar.update(step - self._bar.n)

    def close(self) -> None:
        """Flush and close the files, close the progress bar and finish the wandb run."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        for f in (self._jsonl, self._csv):
            if not f.closed:
                f.flush()
                os.fsync(f.fileno())
                f.close()
        if self._wandb_run is not None:
            import wandb

            self._wandb_run.finish()
            # wandb 0.31's finish() returns before its service has written the run file (offline runs
            # lose their last records ~1 in 3 times if the process is killed right after); shutting
            # the service down waits for the write. The next wandb.init starts a new service.
            wandb.teardown()
            self._wandb_run = None

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _console_due(self, values: Mapping[str, float], step: int) -> bool:
        if any(key.startswith(EVAL_PREFIX) for key in values):
            return True
        every = self.config.console_every
        return every > 0 and step - self._last_console_step >= every

    def _print(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line, flush=True)

    def _write_csv_row(self, record: dict[str, float]) -> None:
        new_keys = [key for key in record if key not in self._csv_columns]
        if new_keys:  # widen the header: rewrite the file with the old rows and the new columns
            self._csv.close()
            self._csv_columns = self._csv_columns + new_keys
            _write_csv(self._csv_path, self._csv_columns, _read_csv(self._csv_path))
            self._csv = open(self._csv_path, "a", encoding="utf-8", newline="")  # noqa: SIM115 (closed by close())
        csv.DictWriter(self._csv, fieldnames=self._csv_columns, restval="").writerow(record)
        self._csv.flush()


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, float]]:
    """All records of ``run_dir/metrics.jsonl`` in logging order, each ``{"step": int, key: float, ...}``.

    A last line without its newline is the trace of a run killed mid-write; it is skipped.
    """
    path = Path(run_dir) / JSONL_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {JSONL_NAME} in {run_dir}: pass a run directory written by scripts/train.py")
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} line {number} is not a JSON record ({err}); the file was edited or "
                             "corrupted: fix or delete that line") from err
    return records


def _to_float(key: str, value: Any) -> float:
    """A metric value as a Python float, or a TypeError naming the metric."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        size = value.numel() if isinstance(value, torch.Tensor) else value.size
        if size != 1:
            raise TypeError(f"metric {key!r} has shape {tuple(value.shape)}; log scalars (one element)")
        return float(value.item())
    if isinstance(value, (int, float, np.number, np.bool_)):
        return float(value)
    raise TypeError(f"metric {key!r} must be a number or a one-element tensor/array; got {type(value).__name__}")


def _format_line(record: Mapping[str, float], total_steps: int) -> str:
    """``step 1000/10000 | eval/return_mean 123.4 | train/loss 0.0123``."""
    parts = [f"{key} {value:.4g}" for key, value in record.items() if key != "step"]
    return " | ".join([f"step {record['step']}/{total_steps}", *parts])


def _columns(records: list[dict[str, float]]) -> list[str]:
    """CSV columns: ``step``, then every key in the order it first appears."""
    columns = {"step": None}
    for record in records:
        columns.update(dict.fromkeys(record))
    return list(columns)


def _write_csv(path: Path, columns: list[str], records: list[dict[str, Any]]) -> None:
    """Atomically replace ``path`` with a CSV of ``records`` under the header ``columns``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(records)
    os.replace(tmp, path)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _write_jsonl(path: Path, records: list[dict[str, float]]) -> None:
    """Atomically replace ``path`` with ``records``, one JSON object a line."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(record) + "\n" for record in records)
    os.replace(tmp, path)


def _init_wandb(config: LoggerConfig, run_dir: Path, run_config: dict[str, Any]) -> Any:
    """Start a wandb run writing under ``run_dir/wandb``; a clear error when it cannot start."""
    import wandb  # imported only when used: it takes about a second

    try:
        return wandb.init(mode=config.mode, project=config.project,  # type: ignore[arg-type]  # mode: one of WANDB_MODES
                          group=config.group, name=config.name, tags=list(config.tags), dir=str(run_dir),
                          config=run_config)
    except Exception as err:  # wandb raises many types (CommError, UsageError, timeouts)
        hint = (" With no network, use logger.mode=offline and upload later with `wandb sync "
                f"{run_dir}/wandb/offline-run-*`." if config.mode == "online" else "")
        raise RuntimeError(f"wandb.init failed in mode {config.mode!r}: {err}.{hint}") from err
