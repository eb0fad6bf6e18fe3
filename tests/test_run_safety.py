"""Runs that cannot be damaged (issue 18): every check happens before the run directory changes, a
resume continues the same run or is refused, init_from starts a new run from a checkpoint's weights,
non-finite training stops before it overwrites a good checkpoint, and a killed run resumes exactly."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import tiny_config

from cmrl.data.config import DatasetConfig
from cmrl.errors import CheckpointError, ConfigError, DatasetError, DivergenceError
from cmrl.training.checkpoint import load_checkpoint, save_checkpoint
from cmrl.training.config import TrainConfig
from cmrl.training.loggers import read_metrics
from cmrl.training.loop import Trainer, train


def write_d4rl_file(path: Path, obs_dim: int, action_dim: int = 1, env_id: str = "Pendulum-v1", rows: int = 300,
                    seed: int = 0) -> Path:
    """A small D4RL-layout HDF5 file of random rows (episodes of 50 steps cut by timeouts)."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as h:
        h.create_dataset("observations", data=rng.normal(size=(rows, obs_dim)).astype(np.float32))
        h.create_dataset("next_observations", data=rng.normal(size=(rows, obs_dim)).astype(np.float32))
        h.create_dataset("actions", data=rng.uniform(-2, 2, size=(rows, action_dim)).astype(np.float32))
        h.create_dataset("rewards", data=rng.normal(size=rows).astype(np.float32))
        h.create_dataset("terminals", data=np.zeros(rows, dtype=bool))
        h.create_dataset("timeouts", data=(np.arange(rows) % 50) == 49)
        h.attrs.update(env_id=env_id, ref_min_score=-1200.0, ref_max_score=-150.0)
    return path


def d4rl(path: Path, **fields: object) -> DatasetConfig:
    return DatasetConfig(source="d4rl", name="custom", path=str(path), **fields)  # type: ignore[arg-type]


def file_hashes(run_dir: Path) -> dict[str, str]:
    """SHA-256 of every file under run_dir, by relative path."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def resumed(run_dir: Path, **fields: object) -> TrainConfig:
    """The finished run's config, resumed, with `fields` set (dotted agent./dataset. keys allowed)."""
    cfg = tiny_config(steps=20, resume=str(run_dir))
    for key, value in fields.items():
        target, name = (cfg, key) if "." not in key else (getattr(cfg, key.split(".")[0]), key.split(".")[1])
        setattr(target, name, value)
    return cfg


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 20-step Consistency-AC run on the embedded Pendulum data."""
    run_dir = tmp_path_factory.mktemp("safety") / "run"
    train(tiny_config(steps=20, checkpoint_every=10), run_dir)
    return run_dir


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    return {"obs5": write_d4rl_file(folder / "obs5.hdf5", obs_dim=5),
            "pendulum_a": write_d4rl_file(folder / "a.hdf5", obs_dim=3, seed=1),
            "pendulum_b": write_d4rl_file(folder / "b.hdf5", obs_dim=3, seed=2)}


# --- check before you write -------------------------------------------------------------------------
def test_observation_size_that_does_not_match_the_environment_is_refused_before_training(tmp_path, data_files):
    with pytest.raises(DatasetError, match="5-dimensional observations but Pendulum-v1 observes Box"):
        train(tiny_config(dataset=d4rl(data_files["obs5"])), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written, not even the directory


REFUSED = {
    "dataset_of_other_obs_size": ({"dataset": "obs5"}, ConfigError, "dimension 3/1, but the dataset has 5/1"),
    "other_architecture": ({"agent.hidden_dims": [16]}, ConfigError,
                           r"another architecture \(agent.hidden_dims \[32, 32\] -> \[16\]\)"),
    "other_file_of_the_same_shapes": ({"dataset": "pendulum_a"}, ConfigError, "was trained on other data: "),
    "other_environment": ({"dataset.env_id": "MountainCarContinuous-v0"}, ConfigError,
                          "trained for environment Pendulum-v1, but this run would evaluate in MountainCarContinuous"),
    "other_algorithm": ({"agent.algo": "consistency_bc"}, ConfigError,
                        "is a consistency_ac run; agent.algo=consistency_bc would turn it into another algorithm"),
    "other_training_setting": ({"agent.eta": 0.5}, ConfigError, r"other training settings \(agent.eta 1.0 -> 0.5\)"),
    "fewer_steps_than_done": ({"steps": 10}, ConfigError, "is at step 20, beyond steps=10"),
    "missing_dataset_file": ({"dataset": "missing"}, DatasetError, "is not a file"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_resume_leaves_every_file_of_the_run_byte_identical(case, finished_run, data_files, tmp_path):
    fields, error, message = REFUSED[case]
    fields = dict(fields)
    if "dataset" in fields:
        name = fields.pop("dataset")
        fields["dataset"] = d4rl(data_files[name] if name in data_files else tmp_path / "missing.hdf5")
    before = file_hashes(finished_run)
    with pytest.raises(error, match=message) as err:
        train(resumed(finished_run, **fields), finished_run)
    assert "init_from=" in str(err.value) or case in ("other_architecture", "fewer_steps_than_done",
                                                     "missing_dataset_file")
    assert file_hashes(finished_run) == before


def test_a_fresh_run_into_a_directory_holding_a_checkpoint_is_refused(finished_run):
    before = file_hashes(finished_run)
    with pytest.raises(ConfigError, match="already holds the checkpoint of a run: continue it with resume="):
        train(tiny_config(steps=20), finished_run)
    assert file_hashes(finished_run) == before


def test_a_checkpoint_without_the_dataset_identity_still_resumes_and_is_checked_by_its_statistics(
        tmp_path, data_files):
    cfg = tiny_config(steps=20, dataset=d4rl(data_files["pendulum_a"]))
    train(cfg, tmp_path / "run")
    path = tmp_path / "run" / "checkpoint.pt"
    payload = load_checkpoint(path)
    del payload["dataset_identity"], payload["resumes"]  # as written before the identity was recorded
    save_checkpoint(path, payload)
    with pytest.raises(ConfigError, match="trained on data with other statistics"):
        Trainer(replace(cfg, resume=str(path), dataset=d4rl(data_files["pendulum_b"])), tmp_path / "run")
    summary = train(replace(cfg, resume=str(path), steps=30), tmp_path / "run")
    assert summary.steps == 30


# --- resume means the same run -----------------------------------------------------------------------
def test_a_resume_records_what_it_changed_and_logs_no_step_twice(tmp_path, data_files):
    cfg = tiny_config(steps=20, dataset=d4rl(data_files["pendulum_a"]))
    train(cfg, tmp_path / "run")
    moved = tmp_path / "moved.hdf5"  # the same content at another path is the same dataset
    moved.write_bytes(data_files["pendulum_a"].read_bytes())
    train(replace(cfg, resume=str(tmp_path / "run"), steps=30, eval_episodes=3, dataset=d4rl(moved)),
          tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "resumes.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["step"] == 20
    assert records[0]["changed"]["steps"] == [20, 30] and records[0]["changed"]["eval_episodes"] == [2, 3]
    assert records[0]["changed"]["dataset.path"] == [str(data_files["pendulum_a"]), str(moved)]
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["resumes"] == records
    metrics = read_metrics(tmp_path / "run")
    assert [r["step"] for r in metrics if "dataset/mean_return" in r] == [0]  # not again at the resumed step
    for key in ("loss/critic", "eval/return_mean"):
        steps = [r["step"] for r in metrics if key in r]
        assert len(steps) == len(set(steps)), (key, steps)


def test_resume_auto_continues_the_run_directory_or_starts_fresh(tmp_path):
    first = train(tiny_config(steps=20, resume="auto"), tmp_path / "run")  # no checkpoint yet: fresh
    assert first.steps == 20
    again = train(tiny_config(steps=30, resume="auto"), tmp_path / "run")
    assert again.steps == 30 and (tmp_path / "run" / "resumes.jsonl").is_file()


def test_stale_temporary_checkpoint_files_are_removed_at_the_next_start(tmp_path):
    train(tiny_config(steps=20), tmp_path / "run")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / "run" / f".checkpoint.pt.{int(dead.stdout)}.0123abcd.tmp"
    stale.write_bytes(b"half a checkpoint")
    train(tiny_config(steps=30, resume="auto"), tmp_path / "run")
    assert not stale.exists()


# --- init_from ---------------------------------------------------------------------------------------
def _networks(state: dict) -> dict[str, torch.Tensor]:
    return {f"{name}/{key}": value for name in ("policy", "ema_policy", "critic", "critic_target")
            for key, value in state[name].items()}


@pytest.mark.parametrize("init_normalizers", [True, False])
def test_init_from_starts_a_new_run_from_the_weights(finished_run, data_files, tmp_path, init_normalizers):
    source = load_checkpoint(finished_run / "checkpoint.pt")
    cfg = tiny_config(steps=10, init_from=str(finished_run), init_normalizers=init_normalizers,
                      dataset=d4rl(data_files["pendulum_b"]))
    trainer = Trainer(cfg, tmp_path / "new")
    state = trainer.agent.state_dict()
    for key, value in _networks(source["agent"]).items():
        assert torch.equal(_networks(state)[key], value), key
    assert trainer.agent.step == 0 and state["actor_optimizer"]["state"] == {}  # fresh optimiser and schedule
    assert state["actor_scheduler"]["last_epoch"] == 0
    assert torch.equal(torch.as_tensor(trainer.transforms.obs_mean), source["transforms"]["obs_mean"]) \
        == init_normalizers
    assert trainer.run().steps == 10
    assert load_checkpoint(tmp_path / "new" / "checkpoint.pt")["dataset_identity"]["path"] == \
        str(data_files["pendulum_b"])


@pytest.mark.parametrize("fields, message", [
    ({"dataset": "obs5"}, "networks for observations/actions of dimension 3/1, but this run's dataset has 5/1"),
    ({"hidden": [16]}, r"another architecture \(agent.hidden_dims \[32, 32\] -> \[16\]\)"),
])
def test_init_from_a_checkpoint_of_other_sizes_is_refused(finished_run, data_files, tmp_path, fields, message):
    cfg = tiny_config(steps=10, init_from=str(finished_run))
    if "dataset" in fields:
        cfg.dataset = d4rl(data_files[fields["dataset"]])
    if "hidden" in fields:
        cfg.agent.hidden_dims = fields["hidden"]
    with pytest.raises(CheckpointError, match=message):
        train(cfg, tmp_path / "new")
    assert not (tmp_path / "new").exists()


# --- non-finite training -----------------------------------------------------------------------------
def _corrupt(trainer: Trainer, at_step: int, what: str) -> None:
    update = trainer.agent.update

    def corrupted(batch):
        metrics = update(batch)
        if trainer.agent.step == at_step:
            if what == "loss":
                metrics["loss/critic"] = torch.tensor(float("nan"))
            else:
                with torch.no_grad():
                    next(trainer.agent.policy.parameters()).fill_(float("inf"))  # type: ignore[attr-defined]
        return metrics

    trainer.agent.update = corrupted  # type: ignore[method-assign]


@pytest.mark.parametrize("what, step, message", [
    ("loss", 30, "training diverged at step 30: loss/critic = nan"),
    ("parameter", 40, "training diverged: at step 40 the parameters policy"),
])
def test_non_finite_training_stops_and_keeps_the_last_good_checkpoint(tmp_path, what, step, message):
    trainer = Trainer(tiny_config(steps=40, checkpoint_every=20), tmp_path)
    _corrupt(trainer, step, what)
    with pytest.raises(DivergenceError, match=message):
        trainer.run()
    payload = load_checkpoint(tmp_path / "checkpoint.pt")
    assert payload["step"] == 20
    assert all(torch.isfinite(t).all() for t in _networks(payload["agent"]).values())
