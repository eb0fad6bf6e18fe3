"""Sweeps through scripts/train.py -m: Hydra's basic launcher, joblib (via the benchmark experiment),
submitit_local (separate processes), the Optuna sweeper; a failed job never stops its siblings; the
benchmark experiment and the SLURM preset compose as documented. Runs are tiny (a few gradient steps
on a small D4RL-layout Pendulum file), but each job still pays Python + torch start-up, so the
multirun tests take 10-40 s each."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest
import torch
import yaml
from helpers import compose, flat_tensors

from cmrl.training.config import to_train_config
from cmrl.training.loop import train as train_run

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "scripts" / "train.py"
CONFIGS = ROOT / "configs"
BENCH_DATASETS = ["bench/hopper-medium", "bench/hopper-mixed", "bench/halfcheetah-medium", "bench/halfcheetah-mixed"]
# a few seconds per job: tiny networks, a few steps, one evaluation episode at the end
TINY = ["steps=10", "batch_size=32", "eval_every=0", "eval_episodes=1", "eval_envs=1", "checkpoint_every=0",
        "threads=1", "device=cpu", "agent.hidden_dims=[32,32]", "agent.critic_hidden_dims=[32,32]",
        "logger.progress_bar=false", "logger.console=false"]


def write_d4rl_file(path: Path, env_id: str, steps: int, refs: tuple[float, float], seed: int = 0) -> Path:
    """A small D4RL-layout HDF5 file of uniformly random actions in env_id."""
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")}
    obs, _ = env.reset(seed=seed)
    for i in range(steps):
        action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
        nxt, reward, term, trunc, _ = env.step(action)
        trunc = trunc or (i == steps - 1 and not term)
        for key, value in zip(rows, (obs, action, reward, nxt, term, trunc)):
            rows[key].append(value)
        obs = env.reset(seed=seed + i + 1)[0] if term or trunc else nxt
    env.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h:
        for key, values in rows.items():
            dtype = bool if key in ("terminals", "timeouts") else np.float32
            h.create_dataset(key, data=np.asarray(values, dtype=dtype))
        h.attrs.update(env_id=env_id, ref_min_score=refs[0], ref_max_score=refs[1])
    return path


@pytest.fixture(scope="module")
def pendulum_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_d4rl_file(tmp_path_factory.mktemp("data") / "pendulum.hdf5", "Pendulum-v1", 1000, (-1230.0, -150.0))


def train(args: list[str], cwd: Path, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "MINARI_DATASETS_PATH": str(cwd / "minari"), "WANDB_MODE": "disabled",
               "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), **(env or {})}
    return subprocess.run([sys.executable, str(TRAIN), *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=timeout)


def job_dirs(sweep: Path) -> list[Path]:
    """Job directories of a sweep (the ones Hydra wrote .hydra/ into), sorted."""
    return sorted(p.parent for p in sweep.rglob(".hydra") if p.parent != sweep)


def run_config(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def assert_complete_run(run_dir: Path) -> dict:
    """A finished run directory: its own config, metrics, checkpoint and summary."""
    for name in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "summary.json"):
        assert (run_dir / name).is_file(), f"{run_dir} has no {name}"
    return json.loads((run_dir / "summary.json").read_text())


# --- launchers ---------------------------------------------------------------------------------------
def test_basic_launcher_runs_each_job_in_its_own_directory_in_one_wandb_group(tmp_path, pendulum_file):
    proc = train(["-m", "dataset=d4rl_file", f"dataset.path={pendulum_file}", *TINY, "seed=0,1"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweeps = list((tmp_path / "runs" / "multirun").iterdir())  # the default sweep directory
    assert len(sweeps) == 1
    sweep = sweeps[0]
    dirs = job_dirs(sweep)
    # one flat directory per job: hydra.sweep.subdir must not embed override values, which may hold "/"
    # (dataset.path=/data/x.hdf5 nests directories) or exceed the 255-byte limit of a file name
    assert len(dirs) == 2 and all(d.parent == sweep for d in dirs), f"nested job directories: {dirs}"
    summaries = [assert_complete_run(d) for d in dirs]
    assert sorted(s["seed"] for s in summaries) == [0, 1]
    groups = {run_config(d)["logger"]["group"] for d in dirs}
    # every job of one sweep shares a wandb group (default: the sweep directory), none is left ungrouped
    assert groups == {f"runs/multirun/{sweep.name}"}, f"jobs of one sweep must share logger.group, got {groups}"
    # the report gathers the sweep: one experiment with 2 seeds
    report = subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"), str(sweep), "--bootstrap", "200",
                             "--no-plots"], capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "2 (0,1)" in report.stdout and "consistency_ac" in report.stdout


@pytest.mark.slow
def test_submitit_local_runs_jobs_as_processes_and_a_failure_spares_its_sibling(tmp_path, pendulum_file):
    sweep = tmp_path / "sweep"
    proc = train(["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "dataset=d4rl_file",
                  f"dataset.path={tmp_path / 'missing.hdf5'},{pendulum_file}", *TINY,
                  f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}"], tmp_path, timeout=300)
    assert proc.returncode != 0  # the sweep reports the failed job ...
    assert "missing.hdf5" in proc.stderr
    assert not (sweep / "0" / "summary.json").exists()
    assert_complete_run(sweep / "1")  # ... after its sibling has finished
    jobs = [p for p in (sweep / ".submitit").iterdir() if p.name != "%j"]
    assert len(jobs) == 2  # two submitit jobs, each its own process with its own logs
    assert all(list(job.glob("*_log.out")) for job in jobs)


@pytest.mark.slow
def test_optuna_sweeper_maximises_the_final_score_past_failed_trials(tmp_path, pendulum_file):
    sweep = tmp_path / "sweep"
    proc = train(["-m", "hydra/sweeper=cmrl_optuna", "hydra.sweeper.n_trials=3",
                  f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}", "agent.eta=tag(log, interval(0.1, 2.0))",
                  "batch_size=choice(0,32)",  # batch_size=0 is rejected: that trial fails, the search goes on
                  "dataset=d4rl_file", f"dataset.path={pendulum_file}", *[o for o in TINY if "batch_size" not in o],
                  f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = job_dirs(sweep)
    assert len(trials) == 3
    done = {d: assert_complete_run(d)["final_normalized"] for d in trials if (d / "summary.json").exists()}
    failed = [d for d in trials if d not in done]
    assert failed and done  # with the sampler's seed 0, one of the 3 trials draws batch_size=0
    assert all(yaml.safe_load(next(d.glob(".hydra/*/overrides.yaml")).read_text()).count("batch_size=0")
               for d in failed)
    etas = [run_config(d)["agent"]["eta"] for d in done]
    assert all(0.1 <= eta <= 2.0 for eta in etas)
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(max(done.values()))
    assert (tmp_path / "optuna.db").is_file()  # SQLite storage works (needs sqlalchemy<2 with optuna 2.10)


# --- the benchmark experiment ------------------------------------------------------------------------------
def test_bench_experiment_declares_the_whole_benchmark():
    cfg = compose(["experiment=bench_d4rl_style"])
    params = cfg.hydra.sweeper.params
    assert params.agent.split(",") == ["consistency_ac", "consistency_bc", "consistency_fql"]
    assert params.dataset.split(",") == BENCH_DATASETS
    assert params.seed.split(",") == ["0", "1", "2", "3", "4"]
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
    assert (cfg.threads, cfg.device, cfg.steps, cfg.eval_every) == (1, "cpu", 10000, 2000)
    assert cfg.agent.compile and cfg.agent.critic_layer_norm and cfg.agent.actor_lr == 1e-3
    assert cfg.agent.critic_target == "td_return_bound" and cfg.agent.act_temperature == 0.25
    assert cfg.hydra.runtime.choices.dataset == "bench/hopper-medium"

    full = compose(["experiment=bench_d4rl_style_full"])
    assert full.steps == 1_000_000 and full.hydra.sweeper.params.seed.split(",") == ["0", "1", "2", "3", "4"]
    assert full.agent.actor_lr == 3e-4 and full.agent.critic_layer_norm
    assert full.agent.critic_target == "td_return_bound" and full.agent.act_temperature == 0.25
    assert full.hydra.sweeper.params.dataset == params.dataset and full.hydra.launcher.n_jobs == 2


@pytest.mark.parametrize("experiment",
                         ["bench_d4rl_style", "bench_d4rl_style_full", "bench_baselines", "optuna_search"])
def test_experiments_compose_with_every_launcher(experiment):
    for launcher in ("basic", "local_parallel", "submitit_local", "slurm"):
        cfg = compose([f"experiment={experiment}", f"hydra/launcher={launcher}"])
        assert cfg.hydra.runtime.choices["hydra/launcher"] == launcher
    cfg = compose([f"experiment={experiment}"])
    from omegaconf import OmegaConf

    assert cfg.threads == 1 and OmegaConf.to_container(cfg.logger)["group"] == "${hydra:sweep.dir}"
    if experiment == "optuna_search":
        assert cfg.hydra.sweeper.direction == "maximize" and cfg.hydra.sweeper.max_failure_rate == 1.0
        assert set(cfg.hydra.sweeper.params) == {"agent.eta", "agent.actor_lr", "agent.ema_decay"}


@pytest.mark.parametrize("name", ["hopper", "halfcheetah"])
def test_bench_dataset_configs_point_at_the_bench_folder(name, monkeypatch):
    from omegaconf import OmegaConf

    for level in ("random", "medium", "expert", "medium-expert", "mixed"):
        node = OmegaConf.load(CONFIGS / "dataset" / "bench" / f"{name}-{level}.yaml")
        monkeypatch.delenv("CMRL_BENCH_DATA", raising=False)
        assert node.path == f"data/bench/{name}-{level}.hdf5" and node.source == "d4rl"
        monkeypatch.setenv("CMRL_BENCH_DATA", "/data/x")
        assert node.path == f"/data/x/{name}-{level}.hdf5"


@pytest.mark.slow
def test_bench_experiment_runs_in_parallel_and_a_missing_dataset_fails_alone(tmp_path):
    """The real experiment with joblib (2 jobs side by side), cut down to one algorithm and seed on two
    datasets; the hopper-mixed file is missing, so that job fails while hopper-medium finishes."""
    data = tmp_path / "bench"
    write_d4rl_file(data / "hopper-medium.hdf5", "Hopper-v5", 400, (-20.272305, 3234.3))
    proc = train(["-m", "experiment=bench_d4rl_style", *TINY,
                  "agent=consistency_bc", "agent.compile=false", "seed=3",
                  "dataset=bench/hopper-mixed,bench/hopper-medium",
                  "hydra.sweep.dir=sweep"],
                 tmp_path, env={"CMRL_BENCH_DATA": str(data)})
    assert proc.returncode != 0 and "hopper-mixed.hdf5" in proc.stderr
    good = tmp_path / "sweep" / "bench" / "hopper-medium" / "consistency_bc" / "1_seed3"
    summary = assert_complete_run(good)
    assert summary["env_id"] == "Hopper-v5" and summary["dataset"] == str(data / "hopper-medium.hdf5")
    assert not (tmp_path / "sweep" / "bench" / "hopper-mixed" / "consistency_bc" / "0_seed3" / "summary.json").exists()
    cfg = run_config(good)
    assert cfg["threads"] == 1 and cfg["logger"]["group"] == "sweep" and cfg["logger"]["tags"] == ["bench_d4rl_style"]
    # the report scores the finished run and lists the failed one
    report = subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"), str(tmp_path / "sweep"),
                             "--bootstrap", "100", "--out", str(tmp_path / "report")],
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "Hopper-v5" in report.stdout and "1 unfinished or failed run(s) not scored" in report.stdout
    assert "hopper-mixed" in report.stdout and list((tmp_path / "report").glob("curves_*.png"))


@pytest.mark.slow
def test_make_bench_data_script_writes_and_keeps_files(tmp_path):
    if not (ROOT.parent / "shared" / "benchmarks" / "make_dataset.py").is_file():
        pytest.skip("../shared/benchmarks/make_dataset.py is not beside this checkout")
    env = {**os.environ, "CMRL_BENCH_DATA": str(tmp_path), "TRANSITIONS": "300", "ENVS": "hopper",
           "LEVELS": "medium", "PYTHON": sys.executable}
    script = ["bash", str(ROOT / "scripts" / "make_bench_data.sh")]
    proc = subprocess.run(script, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(tmp_path / "hopper-medium.hdf5") as h:
        assert len(h["rewards"]) == 300 and h.attrs["env_id"] == "Hopper-v5" and h.attrs["level"] == "medium"
    again = subprocess.run(script, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0 and "kept" in again.stdout
    assert not list(tmp_path.glob(".*.hdf5"))  # no temporary files left behind
    # the check against the reference files: a match says so, another file is warned about and kept
    digest = hashlib.sha256((tmp_path / "hopper-medium.hdf5").read_bytes()).hexdigest()
    reference = tmp_path / "reference.sha256"
    for listed, said in ((digest, "the benchmark's reference file"), ("0" * 64, "is not the benchmark's reference")):
        reference.write_text(f"# transitions=300 seed=0\n{listed}  hopper-medium.hdf5\n")
        proc = subprocess.run(script, env={**env, "REFERENCE": str(reference)}, capture_output=True, text=True,
                              timeout=180)
        assert proc.returncode == 0 and said in proc.stdout + proc.stderr
    assert hashlib.sha256((tmp_path / "hopper-medium.hdf5").read_bytes()).hexdigest() == digest
    reference.write_text(f"# transitions=200000 seed=0\n{'0' * 64}  hopper-medium.hdf5\n")  # other settings
    proc = subprocess.run(script, env={**env, "REFERENCE": str(reference)}, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and "reference" not in proc.stdout + proc.stderr


# --- the SLURM preset ----------------------------------------------------------------------------------
def test_slurm_preset_makes_a_valid_sbatch_script(tmp_path, monkeypatch):
    """Compose hydra/launcher=slurm and hand its parameters to submitit the way the Hydra plugin does;
    submitit validates every name and writes the sbatch file that would be submitted."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # no srun here
    cfg = compose(["hydra/launcher=slurm", "hydra.launcher.partition=cpu", "hydra.job.name=train",
                   f"hydra.sweep.dir={tmp_path}"])
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert params.pop("_target_").endswith("SlurmLauncher")
    executor = submitit.AutoExecutor(folder=params.pop("submitit_folder"), cluster="slurm",
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    text = executor._executor._make_submission_file_text("python -u -m submitit.core._submit", "uid")
    for line in ("#SBATCH --partition=cpu", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=8GB", "#SBATCH --time=720",
                 "export MUJOCO_GL=egl", "export OMP_NUM_THREADS=2"):
        assert line in text, f"{line!r} not in the sbatch script:\n{text}"


# --- preemption ----------------------------------------------------------------------------------------
def _submitit_task(folder: Path) -> int | None:
    """The pid of the submitit task process (python -m submitit.core._submit) working under folder."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "submitit.core._submit" in cmdline and any(str(folder) in part for part in cmdline):
            return int(proc.name)
    return None


@pytest.mark.slow
def test_submitit_local_requeues_a_preempted_job_which_continues_its_run(tmp_path, pendulum_file):
    """SLURM's preemption signal (USR2), sent after the job's first checkpoint: submitit requeues the
    job, which repeats its command in the same run directory, continues from its checkpoint
    (resume=auto, the default) and ends with the parameters of an uninterrupted run."""
    tiny = [a for a in TINY if not a.startswith(("steps=", "checkpoint_every="))]
    args = ["-m", "hydra/launcher=submitit_local", "dataset=d4rl_file", f"dataset.path={pendulum_file}", *tiny,
            "steps=300", "checkpoint_every=20"]
    environ = {**os.environ, "MINARI_DATASETS_PATH": str(tmp_path / "minari"), "WANDB_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, str(TRAIN), *args], cwd=tmp_path, env=environ, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 240
        checkpoints: list[Path] = []
        while not checkpoints and proc.poll() is None and time.time() < deadline:
            checkpoints = list((tmp_path / "runs").glob("multirun/*/*/checkpoint.pt"))
            time.sleep(0.01)
        assert checkpoints, proc.communicate()[1][-3000:]
        run_dir = checkpoints[0].parent
        task = _submitit_task(tmp_path)
        assert task is not None and not (run_dir / "summary.json").exists()
        os.kill(task, signal.SIGUSR2)
        _, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-3000:]
    logs = "".join(p.read_text() for p in run_dir.parent.glob(".submitit/*/*_log.err"))
    assert "Caught signal SIGUSR2" in logs and "this job is preempted" in logs, logs[-3000:]
    assert assert_complete_run(run_dir)["steps"] == 300
    resumes = [json.loads(line) for line in (run_dir / "resumes.jsonl").read_text().splitlines()]
    assert len(resumes) == 1 and 20 <= resumes[0]["step"] < 300  # the requeued job continued this run

    straight = tmp_path / "straight"
    threads = torch.get_num_threads()
    try:
        train_run(replace(to_train_config(yaml.safe_load((run_dir / "config.yaml").read_text())), resume=None),
                  straight)
    finally:
        torch.set_num_threads(threads)
    expected = flat_tensors(torch.load(straight / "checkpoint.pt", weights_only=True)["agent"])
    got = flat_tensors(torch.load(run_dir / "checkpoint.pt", weights_only=True)["agent"])
    assert expected.keys() == got.keys() and len(expected) > 20
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
