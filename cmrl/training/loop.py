"""The training run: config -> dataset -> agent.update(batch) -> metrics -> loggers, with periodic
evaluation in the environment and atomic checkpoints that resume exactly."""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, cast

import numpy as np
import torch
from omegaconf import OmegaConf

from cmrl.agents import Agent, make_agent
from cmrl.data import TransitionData, load_dataset
from cmrl.data.store import TransitionStore
from cmrl.data.transforms import DataTransforms
from cmrl.envs import EvalResult, evaluate_policy, normalized_score
from cmrl.errors import CheckpointError, ConfigError, DivergenceError
from cmrl.training.acting import make_act_fn
from cmrl.training.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    remove_stale_temporaries,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from cmrl.training.config import TrainConfig
from cmrl.training.distillation import attach_distillation_teacher
from cmrl.training.loggers import Logger
from cmrl.training.run_identity import (
    check_env_spaces,
    check_init,
    check_resume,
    dataset_identity,
    resolve_resume,
)
from cmrl.training.runtime import resolve_device, seed_everything

SUMMARY_NAME = "summary.json"
CONFIG_NAME = "config.yaml"
RESUMES_NAME = "resumes.jsonl"  # one record per resume: its step, checkpoint and the settings it changed


def behaviour_score(data: TransitionData) -> dict[str, float]:
    """The dataset's own mean episode return, and its normalised score where refs exist."""
    info = data.info
    returns = np.asarray(info.behaviour_returns, dtype=np.float64)
    out = {"dataset/mean_return": float(returns.mean()) if returns.size else float("nan")}
    if info.ref_min_score is not None and info.ref_max_score is not None and returns.size:
        score = normalized_score(returns.mean(), info.ref_min_score, info.ref_max_score)
        out["dataset/normalized_score"] = float(score)
    return out


@dataclass
class RunSummary:
    """What a finished run reports (also written to summary.json for scripts/report.py)."""

    run_dir: str
    dataset: str
    env_id: str
    algo: str
    seed: int
    steps: int
    wall_time_s: float
    final_return_mean: float
    final_return_std: float
    final_normalized: Optional[float]
    final_normalized_std: Optional[float]
    best_normalized: Optional[float]  # best of the periodic evaluations: optimistic, report separately
    dataset_normalized: Optional[float]
    dataset_mean_return: float
    eval_episodes: int
    dataset_fingerprint: str  # run_identity.fingerprint of the arrays trained on: runs share data iff equal
    # The SIMD level of torch's CPU kernels, eager and compiled (AVX2, AVX512, ...; ATEN_CPU_CAPABILITY
    # sets it before torch runs a kernel): two CPUs reproduce a run bit for bit only at the same level.
    cpu_capability: str


class Trainer:
    """Owns one run: data, transforms, sampler, agent, logger, checkpoints.

    Construction checks everything that can be checked (the config, the dataset, its sizes against
    the environment's spaces and, when resuming or initialising from a checkpoint, that checkpoint)
    and writes nothing; :meth:`run` is the first call that touches the run directory.
    """

    def __init__(self, cfg: TrainConfig, run_dir: str | Path):
        cfg.validate()
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.device = resolve_device(cfg.device)

        self.data = load_dataset(cfg.dataset)
        self.data.check()
        self.env_id = cfg.dataset.env_id or self.data.info.env_id
        self.identity = dataset_identity(self.data, cfg.dataset.path, self.env_id)
        self.transforms = DataTransforms.fit(self.data, cfg.dataset)
        self.config_container = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.structured(cfg)))

        self.resume_path = resolve_resume(cfg.resume, self.run_dir)
        self.resume_changes: dict[str, tuple[Any, Any]] = {}
        self.resumes: list[dict[str, Any]] = []
        resume_payload = None
        if self.resume_path is not None:
            resume_payload = self._checked_resume(self.resume_path)
        elif (self.run_dir / CHECKPOINT_NAME).exists():
            raise ConfigError(f"{self.run_dir} already holds the checkpoint of a run: continue it with "
                              f"resume={self.run_dir} (or resume=auto), or start the new run in another directory "
                              "(hydra.run.dir=...)")
        init_payload = None
        if cfg.init_from is not None and resume_payload is None:
            init_path = resolve_checkpoint(cfg.init_from)
            init_payload = load_checkpoint(init_path, required_keys=("agent", "transforms", "obs_dim", "action_dim",
                                                                     "config"))
            check_init(init_payload, init_path, self.config_container, self.identity)
            if cfg.init_normalizers:
                self.transforms = DataTransforms.from_state_dict(init_payload["transforms"])
        check_env_spaces(self.env_id, self.data)

        self.store = TransitionStore(self.transforms.apply(self.data), self.device, cfg.agent.discount)
        self.store.seed(cfg.seed)
        self.agent: Agent = make_agent(cfg.agent, self.data.obs_dim, self.data.action_dim, cfg.steps, self.device)
        attach_distillation_teacher(self.agent, cfg, self.data.obs_dim, self.data.action_dim, self.transforms,
                                    self.data.info.name)  # objective=cd: the diffusion teacher D_phi
        self.best_normalized: Optional[float] = None
        self.last_eval: Optional[EvalResult] = None
        if init_payload is not None:
            self._init_weights(init_payload["agent"], str(cfg.init_from))
        if resume_payload is not None:
            self._load(resume_payload)

    @property
    def resumed(self) -> bool:
        return self.resume_path is not None

    # --- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def save(self) -> None:
        """Write everything needed to resume or to act, atomically; refuse (DivergenceError) to replace
        the last checkpoint with non-finite parameters."""
        state = self.agent.state_dict()
        bad = non_finite_tensors(state)
        if bad:
            raise DivergenceError(f"training diverged: at step {self.agent.step} the parameters {', '.join(bad[:3])} "
                                  f"hold NaN or inf; not saved, the last good checkpoint {self.checkpoint_path} (if "
                                  "one was written) is kept. Lower the learning rates or check the data")
        save_checkpoint(self.checkpoint_path, {
            "config": self.config_container,
            "agent": state,
            "transforms": self.transforms.state_dict(),
            "store": self.store.state_dict(),
            "rng": rng_state(),
            "step": self.agent.step,
            "best_normalized": self.best_normalized,
            "dataset_info": self.data.info.as_dict(),
            "dataset_identity": self.identity,
            "env_id": self.env_id,
            "obs_dim": self.data.obs_dim,
            "action_dim": self.data.action_dim,
            "resumes": self.resumes,
        })

    def restore(self, path: str | Path) -> None:
        """Continue from a checkpoint: networks, optimisers, averages, sampler and RNG streams.
        Raises ConfigError, before changing anything, when the checkpoint is not of this run."""
        self._load(self._checked_resume(Path(path)))
        self.resume_path = Path(path)

    def _checked_resume(self, path: Path) -> dict[str, Any]:
        payload = load_checkpoint(path, required_keys=("config", "agent", "transforms", "store", "rng", "step",
                                                       "env_id", "obs_dim", "action_dim"))
        self.resume_changes = check_resume(payload, path, self.config_container, self.identity, self.transforms)
        return payload

    def _load(self, payload: dict[str, Any]) -> None:
        self.agent.load_state_dict(payload["agent"])
        self.transforms.load_state_dict(payload["transforms"])  # equal to the fitted ones (checked)
        self.store.load_state_dict(payload["store"])
        self.best_normalized = payload.get("best_normalized")
        self.resumes = list(payload.get("resumes", []))
        set_rng_state(payload["rng"])

    def _init_weights(self, saved: dict[str, Any], path: str) -> None:
        """The networks of a checkpoint's agent state with this agent's fresh optimisers, schedules and
        step 0; networks the checkpoint lacks (critics of a consistency_bc run) stay freshly initialised."""
        state = self.agent.state_dict()
        for name, value in saved.items():
            if name in state and name != "step" and not name.endswith(("_optimizer", "_scheduler")):
                state[name] = value
        try:
            self.agent.load_state_dict(state)
        except CheckpointError as err:
            raise CheckpointError(f"cannot initialise from {path}: {err}") from err

    # --- evaluation ---------------------------------------------------------------------------
    def evaluate(self) -> EvalResult:
        info = self.data.info
        act = make_act_fn(self.agent, self.transforms, self.cfg.eval_seed)
        result = evaluate_policy(act, self.env_id, self.cfg.eval_episodes, self.cfg.eval_seed,
                                 num_envs=min(self.cfg.eval_envs, self.cfg.eval_episodes),
                                 ref_min=info.ref_min_score, ref_max=info.ref_max_score)
        if result.normalized_mean is not None:
            self.best_normalized = max(self.best_normalized or -np.inf, result.normalized_mean)
        self.last_eval = result
        return result

    # --- the loop -----------------------------------------------------------------------------
    def _open_run_dir(self) -> None:
        """The first writes of the run: the directory, its config and, on resume, the record of the resume."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.run_dir)
        OmegaConf.save(OmegaConf.structured(self.cfg), self.run_dir / CONFIG_NAME)
        if self.resumed:
            record = {"step": self.agent.step, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "checkpoint": str(self.resume_path),
                      "changed": {key: list(values) for key, values in self.resume_changes.items()}}
            self.resumes.append(record)
            with open(self.run_dir / RESUMES_NAME, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def run(self) -> RunSummary:
        cfg = self.cfg
        start = time.time()
        self._open_run_dir()
        dataset_metrics = behaviour_score(self.data)
        with Logger(cfg.logger, self.run_dir, self.config_container, cfg.steps,
                    resume_step=self.agent.step if self.resumed else 0, fresh=not self.resumed) as log:
            if not self.resumed:
                log.log(dataset_metrics, self.agent.step)
            log.advance(self.agent.step)
            while self.agent.step < cfg.steps:
                batch = self.store.sample(cfg.batch_size)
                metrics = self.agent.update(batch)
                step = self.agent.step
                last = step == cfg.steps
                if step % cfg.logger.log_every == 0 or last:
                    metrics.update(self.agent.diagnostics(batch))
                    values = {k: float(v) for k, v in metrics.items()}
                    log.log(values, step)
                    check_losses(values, step, self.checkpoint_path)
                if (cfg.eval_every and step % cfg.eval_every == 0) or last:
                    log.log(self.evaluate().as_metrics(), step)
                if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or last:
                    self.save()
                log.advance(step)
        if self.last_eval is None:  # resumed from a finished run: evaluate the final policy once more
            self.evaluate()
        summary = self._summary(time.time() - start, dataset_metrics)
        (self.run_dir / SUMMARY_NAME).write_text(json.dumps(asdict(summary), indent=2))
        return summary

    def _summary(self, wall_time: float, dataset_metrics: dict[str, float]) -> RunSummary:
        result = self.last_eval
        assert result is not None
        return RunSummary(
            run_dir=str(self.run_dir), dataset=self.data.info.name, env_id=self.env_id, algo=self.cfg.agent.algo,
            seed=self.cfg.seed, steps=self.agent.step, wall_time_s=round(wall_time, 1),
            final_return_mean=result.mean_return, final_return_std=result.std_return,
            final_normalized=result.normalized_mean, final_normalized_std=result.normalized_std,
            best_normalized=self.best_normalized, dataset_normalized=dataset_metrics.get("dataset/normalized_score"),
            dataset_mean_return=dataset_metrics["dataset/mean_return"], eval_episodes=self.cfg.eval_episodes,
            dataset_fingerprint=self.identity["fingerprint"], cpu_capability=torch.backends.cpu.get_cpu_capability())


def check_losses(metrics: dict[str, float], step: int, checkpoint: Path) -> None:
    """Raise DivergenceError naming the step and the losses (``loss/*``) that are NaN or inf."""
    bad = {key: value for key, value in metrics.items() if key.startswith("loss/") and not math.isfinite(value)}
    if bad:
        losses = ", ".join(f"{key} = {value}" for key, value in bad.items())
        raise DivergenceError(f"training diverged at step {step}: {losses}; the last good checkpoint {checkpoint} "
                              "is kept (if one was written). Lower the learning rates or check the data")


def non_finite_tensors(state: Any, prefix: str = "") -> list[str]:
    """The paths of the floating-point tensors in a nested state dict that hold NaN or inf (one
    device sync per tensor: for checkpoint steps, not the hot loop)."""
    if isinstance(state, dict):
        return [p for key, value in state.items() for p in non_finite_tensors(value, f"{prefix}{key}.")]
    if isinstance(state, (list, tuple)):
        return [p for i, value in enumerate(state) for p in non_finite_tensors(value, f"{prefix}{i}.")]
    if isinstance(state, torch.Tensor) and state.is_floating_point() and not bool(torch.isfinite(state).all()):
        return [prefix.rstrip(".")]
    return []


def train(cfg: TrainConfig, run_dir: str | Path) -> RunSummary:
    """Run, or continue when cfg.resume is set, a training run in run_dir and return its summary.
    Every check happens before the first file of run_dir changes."""
    return Trainer(cfg, run_dir).run()


def format_summary(summary: RunSummary) -> str:
    """The closing lines printed by scripts/train.py."""
    def score(x: Optional[float], spread: Optional[float] = None) -> str:
        if x is None:
            return "n/a (no reference scores)"
        return f"{x:.1f}" + (f" +- {spread:.1f}" if spread is not None else "")

    return "\n".join([
        f"run: {summary.run_dir}",
        f"dataset {summary.dataset} (env {summary.env_id}), {summary.algo}, seed {summary.seed}, "
        f"{summary.steps} steps in {summary.wall_time_s:.0f} s",
        f"final policy:      return {summary.final_return_mean:.1f} +- {summary.final_return_std:.1f}, "
        f"normalised score {score(summary.final_normalized, summary.final_normalized_std)} "
        f"({summary.eval_episodes} episodes)",
        f"dataset behaviour: return {summary.dataset_mean_return:.1f}, normalised score "
        f"{score(summary.dataset_normalized)}",
    ])

