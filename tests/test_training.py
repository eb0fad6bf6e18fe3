"""The training loop: a run end to end, exact resume after a crash, and clear errors for bad input."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import flat_tensors, tiny_config

from cmrl.errors import ConfigError
from cmrl.training.checkpoint import load_checkpoint, save_checkpoint
from cmrl.training.config import to_train_config
from cmrl.training.loggers import read_metrics
from cmrl.training.loop import Trainer, train


def test_a_run_writes_config_metrics_checkpoint_and_summary(tmp_path: Path) -> None:
    summary = train(tiny_config(), tmp_path)
    assert summary.steps == 40
    for name in ("config.yaml", "metrics.jsonl", "metrics.csv", "checkpoint.pt", "summary.json"):
        assert (tmp_path / name).is_file(), name
    records = read_metrics(tmp_path)
    steps = [r["step"] for r in records if "loss/critic" in r]
    assert steps == [10, 20, 30, 40]
    # the gradient split of the actor loss is logged with them, at the logging steps only
    assert [r["step"] for r in records if "grad_norm/actor_q" in r] == steps
    assert all(r["grad_norm/actor_consistency"] > 0 for r in records if "loss/critic" in r)
    assert any("eval/normalized_mean" in r for r in records)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["final_normalized"] == pytest.approx(summary.final_normalized)
    assert saved["dataset_normalized"] == pytest.approx(49.4, abs=1.0)  # the embedded dataset's behaviour
    payload = load_checkpoint(tmp_path / "checkpoint.pt")
    assert payload["step"] == 40 and payload["env_id"] == "Pendulum-v1"
    assert saved["dataset_fingerprint"] == payload["dataset_identity"]["fingerprint"]  # report.py tells files apart
    assert saved["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # the arithmetic a rerun must match


def test_resume_after_a_crash_equals_the_straight_run(tmp_path: Path) -> None:
    """N steps, checkpoint, crash, resume, N more == 2N steps straight, to the bit (CPU)."""
    cfg = tiny_config(steps=40, checkpoint_every=20)
    straight = Trainer(cfg, tmp_path / "straight")
    straight_summary = straight.run()

    crashed = Trainer(cfg, tmp_path / "crashed")
    update = crashed.agent.update

    def crash_after_the_checkpoint(batch):  # dies at step 23, three steps after checkpoint 20
        if crashed.agent.step == 23:
            raise KeyboardInterrupt
        return update(batch)

    crashed.agent.update = crash_after_the_checkpoint
    with pytest.raises(KeyboardInterrupt):
        crashed.run()
    assert load_checkpoint(tmp_path / "crashed" / "checkpoint.pt")["step"] == 20

    resumed_summary = train(replace(cfg, resume=str(tmp_path / "crashed")), tmp_path / "crashed")
    expected = flat_tensors(straight.agent.state_dict())
    got = flat_tensors(load_checkpoint(tmp_path / "crashed" / "checkpoint.pt")["agent"])
    assert expected.keys() == got.keys() and len(expected) > 20
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert resumed_summary.final_return_mean == straight_summary.final_return_mean
    # the metrics file holds each step once: the records the crashed run wrote after step 20 were dropped
    steps = [r["step"] for r in read_metrics(tmp_path / "crashed") if "loss/critic" in r]
    assert steps == [10, 20, 30, 40]


def test_consistency_bc_runs_without_a_critic(tmp_path: Path) -> None:
    cfg = tiny_config()
    cfg.agent.algo, cfg.agent.eta = "consistency_bc", 0.0
    summary = train(cfg, tmp_path)
    assert summary.algo == "consistency_bc"
    assert "critic" not in load_checkpoint(tmp_path / "checkpoint.pt")["agent"]


@pytest.mark.parametrize("override, message", [
    ({"agent": {"eta": -1.0}}, "agent.eta must be >= 0"),
    ({"agent": {"ema_decay": 1.0}}, "agent.ema_decay must be in [0, 1)"),
    ({"agent": {"discount": 1.5}}, "agent.discount must be in [0, 1]"),
    ({"agent": {"consistency": {"metric": "l1"}}}, "agent.consistency.metric must be one of l2, pseudo_huber"),
    ({"agent": {"consistency": {"s0": 2000}}}, "need 1 <= s0 <= s1"),
    ({"agent": {"act_sampling_sigmas": [80.0]}}, "agent.act_sampling_sigmas must hold 2 strictly decreasing"),
    ({"agent": {"algo": "consistency_bc", "act_candidates": 10}}, "consistency_bc has no critic"),
    ({"steps": 0}, "steps must be >= 1"),
    ({"device": "tpu"}, "device must be auto, cpu, cuda or cuda:N"),
    ({"batch_size": "big"}, "batch_size"),
    ({"agent": {"no_such_key": 1}}, "no_such_key"),
])
def test_bad_config_values_are_rejected_with_the_key_named(override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match="invalid configuration") as err:
        to_train_config(override)
    assert message in str(err.value)


def test_resuming_with_another_dataset_is_refused(tmp_path: Path) -> None:
    """A checkpoint of a 3-dimensional Pendulum policy cannot continue on data of other dimensions."""
    train(tiny_config(steps=20), tmp_path / "run")
    trainer = Trainer(tiny_config(steps=20), tmp_path / "other")  # the embedded data: obs 3, action 1
    payload_path = tmp_path / "run" / "checkpoint.pt"
    payload = load_checkpoint(payload_path)
    payload["obs_dim"] = 11
    save_checkpoint(payload_path, payload)
    with pytest.raises(ConfigError, match="dimension 11/1, but the dataset has 3/1"):
        trainer.restore(payload_path)
