#!/usr/bin/env python
"""Train a consistency policy offline: `python scripts/train.py [overrides]` (Hydra).

    python scripts/train.py                                    # embedded default, offline, minutes on a CPU
    python scripts/train.py agent=consistency_bc seed=3 steps=50000
    python scripts/train.py dataset=d4rl/hopper-medium-v2 agent.eta=0.5
    python scripts/train.py -m seed=0,1,2 agent.eta=0.1,1.0    # sweep (one run directory per job)
    python scripts/train.py resume=runs/.../checkpoint.pt      # continue a run where it stopped (the same run)
    python scripts/train.py hydra.run.dir=runs/x resume=auto   # continue runs/x if it has a checkpoint, else start
    python scripts/train.py init_from=runs/.../checkpoint.pt dataset=...   # a new run from those weights
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from cmrl.errors import UserError, report_error, show_traceback
from cmrl.training.cli import config_for_run, is_multirun
from cmrl.training.config import register_schema
from cmrl.training.loop import format_summary, train

register_schema()


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent.parent / "configs"),
            config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    hydra_cfg = HydraConfig.get()
    try:
        train_cfg, run_dir = config_for_run(cfg, hydra_cfg)
        summary = train(train_cfg, run_dir)
    except UserError as err:
        if show_traceback():
            raise
        report_error(err)
        if is_multirun(hydra_cfg):
            raise  # the launcher records this job as failed and its siblings go on
        raise SystemExit(2) from None
    print(format_summary(summary), flush=True)
    return summary.final_normalized if summary.final_normalized is not None else summary.final_return_mean


if __name__ == "__main__":
    sys.exit(main())
