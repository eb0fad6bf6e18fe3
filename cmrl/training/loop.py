"""The training run: config -> dataset -> agent.update(batch) -> metrics -> loggers, with periodic
evaluation in the environment and atomic checkpoints that resume exactly."""
from __future__ import annotations

import json
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
from cmrl.errors import ConfigError
from cmrl.training.acting import make_act_fn
from cmrl.training.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from cmrl.training.config import TrainConfig
from cmrl.training.distillation import attach_distillation_teacher
from cmrl.training.loggers import Logger
from cmrl.training.runtime import resolve_device, seed_everything

SUMMARY_NAME = "summary.json"


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


class Trainer:
    """Owns one run: data, transforms, sampler, agent, logger, checkpoints."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path):
        cfg.validate()
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.device = resolve_device(cfg.device)

        self.data = load_dataset(cfg.dataset)
        self.data.check()
        self.env_id = cfg.dataset.env_id or self.data.info.env_id
        self.transforms = DataTransforms.fit(self.data, cfg.dataset)
        self.store = TransitionStore(self.transforms.apply(self.data), self.device, cfg.agent.discount)
        self.store.seed(cfg.seed)
        self.agent: Agent = make_agent(cfg.agent, self.data.obs_dim, self.data.action_dim, cfg.steps, self.device)
        attach_distillation_teacher(self.agent, cfg, self.data.obs_dim, self.data.action_dim, self.transforms,
                                    self.data.info.name)  # objective=cd: the diffusion teacher D_phi
        self.best_normalized: Optional[float] = None
        self.last_eval: Optional[EvalResult] = None
        OmegaConf.save(OmegaConf.structured(cfg), self.run_dir / "config.yaml")

    # --- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def save(self) -> None:
        """Write everything needed to resume or to act, atomically."""
        save_checkpoint(self.checkpoint_path, {
            "config": OmegaConf.to_container(OmegaConf.structured(self.cfg)),
            "agent": self.agent.state_dict(),
            "transforms": self.transforms.state_dict(),
            "store": self.store.state_dict(),
            "rng": rng_state(),
            "step": self.agent.step,
            "best_normalized": self.best_normalized,
            "dataset_info": self.data.info.as_dict(),
            "env_id": self.env_id,
            "obs_dim": self.data.obs_dim,
            "action_dim": self.data.action_dim,
        })

    def restore(self, path: str | Path) -> None:
        """Continue from a checkpoint: networks, optimisers, averages, sampler and RNG streams."""
        payload = load_checkpoint(path)
        if (payload["obs_dim"], payload["action_dim"]) != (self.data.obs_dim, self.data.action_dim):
            raise ConfigError(f"checkpoint {path} was trained on observations/actions of dimension "
                             f"{payload['obs_dim']}/{payload['action_dim']}, but the dataset has "
                             f"{self.data.obs_dim}/{self.data.action_dim}: resume with the same dataset")
        self.agent.load_state_dict(payload["agent"])
        self.transforms.load_state_dict(payload["transforms"])
        self.store.load_state_dict(payload["store"])
        self.best_normalized = payload.get("best_normalized")
        set_rng_state(payload["rng"])

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
    def run(self) -> RunSummary:
        cfg = self.cfg
        start = time.time()
        dataset_metrics = behaviour_score(self.data)
        run_config = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.structured(cfg)))
        with Logger(cfg.logger, self.run_dir, run_config, cfg.steps,
                    resume_step=self.agent.step if cfg.resume else None) as log:
            log.log(dataset_metrics, self.agent.step)
            log.advance(self.agent.step)
            while self.agent.step < cfg.steps:
                batch = self.store.sample(cfg.batch_size)
                metrics = self.agent.update(batch)
                step = self.agent.step
                last = step == cfg.steps
                if step % cfg.logger.log_every == 0 or last:
                    metrics.update(self.agent.diagnostics(batch))
                    log.log({k: float(v) for k, v in metrics.items()}, step)
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
            dataset_mean_return=dataset_metrics["dataset/mean_return"], eval_episodes=self.cfg.eval_episodes)


def train(cfg: TrainConfig, run_dir: str | Path) -> RunSummary:
    """Run (or resume, when cfg.resume is set) a training run in run_dir and return its summary."""
    trainer = Trainer(cfg, run_dir)
    if cfg.resume:
        trainer.restore(resolve_checkpoint(cfg.resume))
    return trainer.run()


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

