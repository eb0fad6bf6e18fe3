#!/usr/bin/env python
"""Evaluate a checkpoint in its environment: `python scripts/evaluate.py checkpoint=PATH episodes=50`.

Prints the mean and std of the episode return, the mean episode length and the normalised score, over
`episodes` episodes with fixed seeds (vectorised over `envs` environments); `video_dir=DIR` records the first
episode.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from cmrl.envs import evaluate_policy
from cmrl.errors import ConfigError, user_errors
from cmrl.training.acting import load_policy, make_act_fn


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent.parent / "configs"),
            config_name="evaluate")
def main(cfg: DictConfig) -> None:
    with user_errors(also=(ValueError,)):
        if OmegaConf.is_missing(cfg, "checkpoint"):
            raise ConfigError("evaluate.py needs checkpoint=PATH: a checkpoint.pt written by scripts/train.py, or "
                              "its run directory")
        if cfg.episodes < 1 or cfg.envs < 1:
            raise ConfigError(f"episodes and envs must be >= 1, got episodes={cfg.episodes}, envs={cfg.envs}")
        loaded = load_policy(cfg.checkpoint, cfg.device, cfg.act_candidates, cfg.act_temperature,
                             cfg.act_sampling_steps)
        act = make_act_fn(loaded.agent, loaded.transforms, cfg.seed)
        result = evaluate_policy(act, loaded.env_id, cfg.episodes, cfg.seed, num_envs=min(cfg.envs, cfg.episodes),
                                 ref_min=loaded.ref_min, ref_max=loaded.ref_max, video_dir=cfg.video_dir)
    print(f"checkpoint {cfg.checkpoint} (step {loaded.step}, {loaded.config.agent.algo}) in {loaded.env_id}, "
          f"{cfg.episodes} episodes from seed {cfg.seed}")
    print(f"return {result.mean_return:.2f} +- {result.std_return:.2f}")
    print(f"episode length {result.lengths.mean():.1f} (min {result.lengths.min()}, max {result.lengths.max()})")
    if result.normalized_mean is not None:
        print(f"normalised score {result.normalized_mean:.2f} +- {result.normalized_std:.2f}")
    if cfg.video_dir:
        print(f"video of the first episode in {cfg.video_dir}")


if __name__ == "__main__":
    sys.exit(main())
