"""cmrl.training.loggers: JSONL/CSV files, console lines, progress bar, wandb offline."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from cmrl.errors import ConfigError
from cmrl.training.loggers import Logger, LoggerConfig, read_metrics


def quiet(**overrides) -> LoggerConfig:
    return LoggerConfig(**{"console": False, "progress_bar": False, **overrides})


def read_csv(run_dir) -> tuple[list[str], list[list[str]]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


@pytest.mark.parametrize("overrides, key", [
    ({"mode": "cloud"}, "logger.mode"), ({"project": ""}, "logger.project"), ({"group": ""}, "logger.group"),
    ({"tags": ["ok", 3]}, "logger.tags"), ({"log_every": 0}, "logger.log_every"),
    ({"console_every": -1}, "logger.console_every"),
])
def test_config_validate_names_the_bad_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        LoggerConfig(**overrides).validate()
    LoggerConfig().validate()


def test_jsonl_and_wide_csv_with_growing_columns(tmp_path):
    with Logger(quiet(), tmp_path, {}, total_steps=3000) as log:
        log.log({"train/loss": torch.tensor(0.5)}, 1000)
        log.log({"train/loss": np.float32(0.25), "eval/return_mean": 10, "eval/ok": np.bool_(True)}, 2000)
        log.log({"train/loss": torch.tensor([0.125]), "train/q": float("nan")}, np.int64(3000))
    records = read_metrics(tmp_path)
    assert records[:2] == [
        {"step": 1000, "train/loss": 0.5},
        {"step": 2000, "train/loss": 0.25, "eval/return_mean": 10.0, "eval/ok": 1.0},
    ]
    assert records[2]["step"] == 3000 and records[2]["train/loss"] == 0.125 and math.isnan(records[2]["train/q"])
    assert all(type(v) is float for r in records for k, v in r.items() if k != "step")

    header, rows = read_csv(tmp_path)
    assert header == ["step", "train/loss", "eval/return_mean", "eval/ok", "train/q"]
    assert rows == [["1000", "0.5", "", "", ""], ["2000", "0.25", "10.0", "1.0", ""], ["3000", "0.125", "", "", "nan"]]


def test_log_rejects_bad_values_and_steps(tmp_path):
    with Logger(quiet(), tmp_path, {}, total_steps=10) as log:
        with pytest.raises(TypeError, match=r"'train/q' has shape \(2,\)"):
            log.log({"train/q": torch.zeros(2)}, 1)
        with pytest.raises(TypeError, match="'name' must be a number"):
            log.log({"name": "x"}, 1)
        with pytest.raises(ValueError, match="reserved"):
            log.log({"step": 1.0}, 1)
        log.log({"a": 1.0}, 5)
        with pytest.raises(ValueError, match="step 4 is before the previous step 5"):
            log.log({"a": 1.0}, 4)
    assert read_metrics(tmp_path) == [{"step": 5, "a": 1.0}]


def test_resume_drops_later_records_and_appends(tmp_path):
    with Logger(quiet(), tmp_path, {}, total_steps=5) as log:
        for step in range(1, 6):
            log.log({"a": float(step)} if step < 4 else {"a": float(step), "late": 1.0}, step)
    with Logger(quiet(), tmp_path, {}, total_steps=5, resume_step=3) as log:
        log.log({"a": 40.0}, 4)
    assert read_metrics(tmp_path) == [{"step": 1, "a": 1.0}, {"step": 2, "a": 2.0}, {"step": 3, "a": 3.0},
                                      {"step": 4, "a": 40.0}]
    header, rows = read_csv(tmp_path)
    assert header == ["step", "a"]
    assert rows == [["1", "1.0"], ["2", "2.0"], ["3", "3.0"], ["4", "40.0"]]

    with Logger(quiet(), tmp_path, {}, total_steps=5) as log:  # no resume_step: keep and append
        log.log({"a": 50.0}, 5)
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5]


def test_console_lines_on_eval_and_every_n_steps(tmp_path, capsys):
    config = LoggerConfig(console=True, progress_bar=False, console_every=2000)
    with Logger(config, tmp_path, {}, total_steps=10_000) as log:
        for step in (1000, 2000, 3000):
            log.log({"train/loss": 0.123456}, step)
        log.log({"eval/return_mean": 1234.5678}, 3000)
        log.log({"train/loss": 0.1}, 4000)
        log.log({"train/loss": 0.2}, 5000)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "step 2000/10000 | train/loss 0.1235",
        "step 3000/10000 | eval/return_mean 1235",
        "step 5000/10000 | train/loss 0.2",
    ]


def test_should_log_follows_log_every(tmp_path):
    with Logger(quiet(log_every=250), tmp_path, {}, total_steps=10) as log:
        assert [s for s in range(1, 1001) if log.should_log(s)] == [250, 500, 750, 1000]


def test_progress_bar_advances_to_step(tmp_path, capsys):
    with Logger(LoggerConfig(console=False, progress_bar=True), tmp_path, {}, total_steps=40) as log:
        for step in range(1, 31):
            log.advance(step)
    err = capsys.readouterr().err
    assert "30/40" in err and "40/40" not in err


def test_partial_last_line_from_a_crash_is_skipped_on_resume(tmp_path):
    with Logger(quiet(), tmp_path, {}, total_steps=5) as log:
        log.log({"a": 1.0}, 1)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "a": 2.')  # killed mid-write
    assert read_metrics(tmp_path) == [{"step": 1, "a": 1.0}]
    with Logger(quiet(), tmp_path, {}, total_steps=5, resume_step=1) as log:
        log.log({"a": 2.0}, 2)
    assert read_metrics(tmp_path) == [{"step": 1, "a": 1.0}, {"step": 2, "a": 2.0}]


def test_corrupt_line_names_the_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2 is not a JSON record"):
        read_metrics(tmp_path)


def test_read_metrics_missing_file_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl in .* run directory"):
        read_metrics(tmp_path)


def test_wandb_offline_writes_the_run_under_run_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    config = quiet(mode="offline", group="g", name="unit-run", tags=["t"])
    with Logger(config, tmp_path, {"seed": 3}, total_steps=10) as log:
        log.log({"eval/return_marker": 4321.5}, 7)
    runs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    data = runs[0].read_bytes()
    assert b"eval/return_marker" in data and b"4321.5" in data and b"unit-run" in data


def test_wandb_failure_explains_offline(tmp_path, monkeypatch):
    import wandb

    def fail(**kwargs):
        raise TimeoutError("timed out contacting api.wandb.ai")

    monkeypatch.setattr(wandb, "init", fail)
    with pytest.raises(RuntimeError, match="logger.mode=offline"):
        Logger(quiet(mode="online"), tmp_path, {}, total_steps=10)
    assert not (tmp_path / "metrics.jsonl").exists()  # failed before opening any file
