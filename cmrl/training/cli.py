"""What scripts/train.py does between Hydra's composed config and the training loop."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from cmrl.errors import ConfigError
from cmrl.training.checkpoint import load_checkpoint, resolve_checkpoint
from cmrl.training.config import TrainConfig, to_train_config
from cmrl.training.run_identity import AUTO


def config_for_run(cfg: DictConfig, hydra_cfg: Any) -> tuple[TrainConfig, Path]:
    """The run's TrainConfig and directory.

    A fresh run uses the composed config and Hydra's output directory. With resume=PATH the
    checkpoint's own config is the base, the command line's key=value overrides apply on top (a
    different config group cannot be chosen), and the run continues in the checkpoint's directory.
    With resume=auto the run is Hydra's output directory and its config the composed one: a job that
    a cluster requeues repeats its command, lands in the same directory and continues its
    checkpoint.pt there (the Trainer checks that it is the same run), or starts fresh when there is none.
    """
    if not cfg.get("resume") or cfg.resume == AUTO:
        train_cfg = to_train_config(cfg)
        if is_multirun(hydra_cfg):
            name_sweep_job(train_cfg, hydra_cfg)
        return train_cfg, Path(hydra_cfg.runtime.output_dir)
    checkpoint = resolve_checkpoint(cfg.resume)
    payload = load_checkpoint(checkpoint)
    groups = set(hydra_cfg.runtime.choices.keys())
    overrides = []
    for item in hydra_cfg.overrides.task:
        key = item.split("=", 1)[0].lstrip("+~")
        if key == "resume":
            continue
        if key in groups:
            raise ConfigError(f"cannot choose config group {key!r} when resuming {checkpoint}: a resumed run "
                              "keeps its agent, dataset and logger groups; override single keys instead")
        overrides.append(item.lstrip("+"))
    merged = OmegaConf.merge(OmegaConf.create(payload["config"]), OmegaConf.from_dotlist(overrides))
    merged.resume = str(checkpoint)
    merged.init_from = None  # how the run started is history: it continues from its own checkpoint
    return to_train_config(merged), checkpoint.parent


def name_sweep_job(cfg: TrainConfig, hydra_cfg: Any) -> None:
    """In a sweep (-m), unless set explicitly: logger.group = the sweep directory, shared by every job
    of the sweep, so wandb groups its runs (seeds) together; logger.name = the job's directory within
    the sweep (hydra.sweep.subdir)."""
    if cfg.logger.group is None:
        cfg.logger.group = str(hydra_cfg.sweep.dir)[-128:]  # wandb limits group names to 128 characters
    if cfg.logger.name is None:
        cfg.logger.name = os.path.relpath(hydra_cfg.runtime.output_dir, hydra_cfg.sweep.dir)[-128:]


def is_multirun(hydra_cfg: Any) -> bool:
    return hydra_cfg.mode == RunMode.MULTIRUN
