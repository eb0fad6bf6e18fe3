"""From a checkpoint to a policy file: `export_checkpoint` (what scripts/export.py runs)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import cmrl
from cmrl.errors import CheckpointError, ConfigError
from cmrl.training.acting import LoadedPolicy, load_policy
from cmrl.training.checkpoint import resolve_checkpoint

from .formats import FORMATS, write_policy
from .policy import ExportedPolicy, exported_policy

DEFAULT_NAMES = {"torchscript": "policy.pt", "onnx": "policy.onnx"}


@dataclass
class ExportResult:
    """A written policy file, with the checkpoint's policy it was made from (for comparisons)."""

    path: Path
    format: str
    loaded: LoadedPolicy
    metadata: dict[str, Any]


def check_export_target(fmt: str, out: Optional[str | Path], checkpoint: str | Path) -> Path:
    """The file to write: `out`, or policy.pt / policy.onnx beside the checkpoint.

    Raises ConfigError for an unknown format, an `out` that is a directory or whose directory is
    missing, and CheckpointError for a missing checkpoint: before anything is loaded.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    source = resolve_checkpoint(checkpoint)
    if not source.is_file():
        raise CheckpointError(f"no checkpoint at {source}: `checkpoint=` must point at a checkpoint.pt written by "
                              "scripts/train.py, or at its run directory")
    if out is None or str(out) == "":
        path = source.parent / DEFAULT_NAMES[fmt]
    else:
        path = Path(out)
    if path.is_dir():
        raise ConfigError(f"out={path} is a directory; give the file to write, e.g. out={path / DEFAULT_NAMES[fmt]}")
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write out={path}: the directory {path.parent} does not exist")
    return path


def policy_metadata(loaded: LoadedPolicy, policy: ExportedPolicy, fmt: str, checkpoint: str | Path) -> dict[str, Any]:
    """What the file records about itself: its origin, the acting settings and the noise's shape."""
    return {
        "format": fmt, "cmrl_version": cmrl.__version__, "checkpoint": str(checkpoint), "step": loaded.step,
        "algo": loaded.config.agent.algo, "env_id": loaded.env_id, "obs_dim": policy.obs_dim,
        "action_dim": policy.action_dim, "act_sampling_sigmas": policy.sigmas,
        "act_temperature": policy.temperature, "act_candidates": policy.candidates,
        "noise_shape": [policy.noise_steps, f"batch*{policy.candidates}", policy.action_dim],
        "action_low": policy.action_low.tolist(), "action_high": policy.action_high.tolist(),
    }


def export_checkpoint(checkpoint: str | Path, fmt: str, out: Optional[str | Path] = None,
                      act_candidates: Optional[int] = None, act_temperature: Optional[float] = None,
                      act_sampling_steps: Optional[int] = None) -> ExportResult:
    """Write the acting policy of `checkpoint` as a self-contained file (see cmrl.export.formats).

    The acting overrides are those of `load_policy` (None keeps the trained settings).
    """
    path = check_export_target(fmt, out, checkpoint)
    loaded = load_policy(checkpoint, "cpu", act_candidates, act_temperature, act_sampling_steps)
    policy = exported_policy(loaded.agent, loaded.transforms)
    metadata = policy_metadata(loaded, policy, fmt, checkpoint)
    write_policy(policy, path, fmt, metadata)
    return ExportResult(path=path, format=fmt, loaded=loaded, metadata=metadata)
