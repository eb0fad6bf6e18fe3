#!/usr/bin/env python
"""Export a checkpoint's policy for deployment: `python scripts/export.py checkpoint=PATH format=onnx out=policy.onnx`.

Writes one file that maps raw observations (B, obs_dim) to environment actions and runs without
cmrl: format=torchscript with torch alone (torch.jit.load), format=onnx with onnxruntime alone.
Call conventions, noise and seeding: cmrl/export/formats.py. latency=true also prints ms per action
at batch 1 of the library's acting chain and of the exported file.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from cmrl.errors import user_errors
from cmrl.export import export_checkpoint
from cmrl.export.latency import cpu_model, export_latency


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent.parent / "configs"),
            config_name="export")
def main(cfg: DictConfig) -> None:
    with user_errors(also=(ValueError,)):
        result = export_checkpoint(cfg.checkpoint, cfg.format, cfg.out, cfg.act_candidates, cfg.act_temperature,
                                   cfg.act_sampling_steps)
    meta = result.metadata
    print(f"wrote {result.path} ({result.format}, {result.path.stat().st_size / 1024:.0f} KiB): "
          f"{meta['algo']} step {meta['step']} for {meta['env_id']}, {len(meta['act_sampling_sigmas'])} sampling "
          f"step(s), temperature {meta['act_temperature']}, {meta['act_candidates']} candidate(s); "
          f"noise shape (T, B*N, A) = {tuple(meta['noise_shape'])}")
    if cfg.latency:
        torch.set_num_threads(cfg.threads)
        print(f"latency at batch 1 (raw observation to environment action; {cfg.threads} thread(s), "
              f"{cpu_model()}):")
        for name, ms in export_latency(result).items():
            print(f"  {name:<24} {ms:.3f} ms/action")


if __name__ == "__main__":
    sys.exit(main())
