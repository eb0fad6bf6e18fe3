"""The command line as a user types it: train with overrides, sweep, resume, evaluate, and bad input."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import TINY_OVERRIDES, flat_tensors
from omegaconf import OmegaConf

from cmrl.training.checkpoint import load_checkpoint
from cmrl.training.config import to_train_config
from cmrl.training.loop import Trainer

ROOT = Path(__file__).resolve().parent.parent


def run_script(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, cwd=ROOT)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    proc = run_script("train.py", *TINY_OVERRIDES, "seed=3", "agent.eta=0.5", "agent/consistency=ict",
                      f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    assert "final policy:" in proc.stdout and "dataset behaviour:" in proc.stdout
    return run_dir


def test_train_with_overrides_records_the_resolved_config(trained_run: Path) -> None:
    cfg = OmegaConf.load(trained_run / "config.yaml")
    assert cfg.seed == 3 and cfg.agent.eta == 0.5 and cfg.steps == 40
    assert cfg.agent.consistency.curriculum == "ict" and cfg.agent.consistency.teacher == "stopgrad"
    assert json.loads((trained_run / "summary.json").read_text())["steps"] == 40


def test_resume_from_the_command_line_continues_the_run(trained_run: Path, tmp_path: Path) -> None:
    proc = run_script("train.py", f"resume={trained_run}", "steps=60", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["steps"] == 60 and summary["seed"] == 3  # the checkpoint's config, with steps overridden
    assert OmegaConf.load(trained_run / "config.yaml").agent.consistency.curriculum == "ict"


def test_a_sweep_gives_each_job_its_own_run_directory(tmp_path: Path) -> None:
    proc = run_script("train.py", "-m", *TINY_OVERRIDES, "steps=20", "seed=0,1", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    summaries = sorted(tmp_path.glob("*/summary.json"))
    assert [json.loads(p.read_text())["seed"] for p in summaries] == [0, 1]


def test_evaluate_a_checkpoint(trained_run: Path) -> None:
    proc = run_script("evaluate.py", f"checkpoint={trained_run / 'checkpoint.pt'}", "episodes=3", "envs=3")
    assert proc.returncode == 0, proc.stderr
    assert "in Pendulum-v1, 3 episodes" in proc.stdout and "normalised score" in proc.stdout
    assert "episode length 200.0 (min 200, max 200)" in proc.stdout  # Pendulum-v1 always runs its 200 steps


def test_evaluate_overrides_the_acting_settings(trained_run: Path) -> None:
    checkpoint = f"checkpoint={trained_run / 'checkpoint.pt'}"
    proc = run_script("evaluate.py", checkpoint, "episodes=2", "envs=2", "act_candidates=3", "act_temperature=0.5")
    assert proc.returncode == 0, proc.stderr
    assert "normalised score" in proc.stdout
    proc = run_script("evaluate.py", checkpoint, "act_temperature=-1")
    assert proc.returncode == 2
    assert "agent.act_temperature must be >= 0" in proc.stderr and "Traceback" not in proc.stderr


def test_load_policy_acts_with_another_number_of_sampling_steps(trained_run: Path) -> None:
    from cmrl.agents import make_agent
    from cmrl.training.acting import load_policy

    trained = load_policy(trained_run, "cpu")
    one_step = load_policy(trained_run, "cpu", act_sampling_steps=1)
    assert len(trained.agent.act_sigmas) == trained.config.agent.act_sampling_steps == 2
    assert one_step.config.agent.act_sampling_steps == 1
    fresh = make_agent(one_step.config.agent, 3, 1, 10)  # the Karras sigmas for one step
    assert one_step.agent.act_sigmas == fresh.act_sigmas and len(one_step.agent.act_sigmas) == 1
    proc = run_script("evaluate.py", f"checkpoint={trained_run}", "episodes=2", "envs=2", "act_sampling_steps=1")
    assert proc.returncode == 0, proc.stderr
    assert "normalised score" in proc.stdout


def test_bad_config_value_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_script("train.py", *TINY_OVERRIDES, "agent.eta=-1", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert "cmrl: error: invalid configuration: agent.eta must be >= 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_d4rl_dataset_says_how_to_download_it(tmp_path: Path) -> None:
    proc = run_script("train.py", *TINY_OVERRIDES, "dataset=d4rl/hopper-medium-v2", f"hydra.run.dir={tmp_path}",
                      env={"D4RL_DATASET_DIR": str(tmp_path / "d4rl")})
    assert proc.returncode == 2
    assert "hopper_medium-v2.hdf5" in proc.stderr and "wget" in proc.stderr


def test_truncated_checkpoint_is_reported(trained_run: Path, tmp_path: Path) -> None:
    data = (trained_run / "checkpoint.pt").read_bytes()
    broken = tmp_path / "checkpoint.pt"
    broken.write_bytes(data[: len(data) // 2])
    proc = run_script("evaluate.py", f"checkpoint={broken}")
    assert proc.returncode == 2
    assert "cmrl: error:" in proc.stderr and "truncated" in proc.stderr


def file_hashes(run_dir: Path) -> dict[str, str]:
    """SHA-256 of every file under run_dir, by relative path."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_evaluate_without_checkpoint_says_what_to_pass() -> None:
    proc = run_script("evaluate.py")
    assert proc.returncode == 2
    assert "cmrl: error: evaluate.py needs checkpoint=PATH" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2
    debug = run_script("evaluate.py", env={"CMRL_TRACEBACK": "1"})  # the traceback, for debugging
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_evaluate_video_without_moviepy_is_one_clear_line(trained_run: Path, tmp_path: Path) -> None:
    fake = tmp_path / "site"
    (fake / "moviepy").mkdir(parents=True)
    (fake / "moviepy" / "__init__.py").write_text("raise ImportError('moviepy is not installed (simulated)')\n")
    pythonpath = os.pathsep.join(p for p in (str(fake), os.environ.get("PYTHONPATH")) if p)
    proc = run_script("evaluate.py", f"checkpoint={trained_run}", "episodes=1", "envs=1",
                      f"video_dir={tmp_path / 'videos'}", env={"PYTHONPATH": pythonpath})
    assert proc.returncode == 2
    assert "cmrl: error: recording a video needs moviepy" in proc.stderr and "pip install moviepy" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_resume_with_another_architecture_is_refused_before_any_file_changes(trained_run: Path,
                                                                             tmp_path: Path) -> None:
    before = file_hashes(trained_run)
    proc = run_script("train.py", f"resume={trained_run}", "agent.hidden_dims=[16]", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "another architecture (agent.hidden_dims [32, 32] -> [16])" in proc.stderr
    proc = run_script("train.py", f"resume={trained_run}", "agent.algo=consistency_bc", "agent.act_candidates=1",
                      f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and "is a consistency_ac run" in proc.stderr and "init_from=" in proc.stderr
    assert file_hashes(trained_run) == before
    # another command into the run's own directory (resume=auto, the default) is refused too; Hydra's
    # record of this launch goes to a new .hydra/<time> folder, every earlier file stays as it was
    proc = run_script("train.py", "steps=50", f"hydra.run.dir={trained_run}")
    assert proc.returncode == 2 and "another architecture" in proc.stderr and "Traceback" not in proc.stderr
    after = file_hashes(trained_run)
    assert {name: after.get(name) for name in before} == before
    assert all(name.startswith(".hydra/") for name in after.keys() - before.keys())


def test_kill_9_mid_run_then_resume_auto_ends_bit_identical(tmp_path: Path) -> None:
    """SIGKILL after a checkpoint (possibly mid-write), then the same command again (resume=auto is the
    default): the run ends with the parameters of an uninterrupted run, to the bit (CPU, one thread)."""
    run_dir = tmp_path / "run"
    args = [a for a in TINY_OVERRIDES if not a.startswith(("steps=", "checkpoint_every="))]
    args += ["steps=300", "checkpoint_every=20", "threads=1", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"), *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (run_dir / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert not (run_dir / "summary.json").exists(), "the run ended before it could be killed"
    assert (run_dir / "checkpoint.pt").exists(), proc.stderr.read() if proc.stderr else ""
    again = run_script("train.py", *args)
    assert again.returncode == 0, again.stderr
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 300
    assert not list(run_dir.glob(".checkpoint.pt.*.tmp"))
    resumes = [json.loads(line) for line in (run_dir / "resumes.jsonl").read_text().splitlines()]
    assert len(resumes) == 1 and 20 <= resumes[0]["step"] < 300  # it continued from the killed run's checkpoint

    threads = torch.get_num_threads()
    try:
        cfg = to_train_config(OmegaConf.load(run_dir / "config.yaml"))
        straight = Trainer(replace(cfg, resume=None), tmp_path / "straight")
        straight.run()
    finally:
        torch.set_num_threads(threads)
    expected = flat_tensors(load_checkpoint(tmp_path / "straight" / "checkpoint.pt")["agent"])
    got = flat_tensors(load_checkpoint(run_dir / "checkpoint.pt")["agent"])
    assert expected.keys() == got.keys() and len(expected) > 20
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


@pytest.mark.parametrize("script, args, message", [
    ("benchmark.py", ["--device", "cuda:7", "--quick"], "benchmark: error: device=cuda:7 but this machine has no CUDA"),
    ("report.py", ["no/such/runs"], "report: error: no/such/runs does not exist"),
    ("collect.py", ["me/data-v0", "--policy", "no/such/checkpoint.pt", "--episodes", "1"],
     "collect: error: cannot load the policy"),
])
def test_every_script_reports_a_user_error_in_one_line(script: str, args: list[str], message: str) -> None:
    if script == "benchmark.py" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a device cuda:7")
    proc = run_script(script, *args)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2
