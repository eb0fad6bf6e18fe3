"""Checkpoints: atomic writes, validated reads, and the global random-number-generator states.

A checkpoint is ``torch.save`` of a dict: the caller's payload plus ``format_version`` (the layout
this module reads) and ``cmrl_version`` (the library that wrote it). Payloads hold only tensors and
plain Python values (dict, list, tuple, set, str, bytes, int, float, bool, None, torch dtypes,
devices and sizes): that is what ``torch.load(weights_only=True)`` accepts, so loading a checkpoint
never runs code from the file. ``save_checkpoint`` rejects anything else up front (convert NumPy
arrays with ``torch.as_tensor``, dataclasses with ``dataclasses.asdict``).

Writes go to a temporary file in the same directory, are flushed and fsynced, then renamed over
the target with ``os.replace``: a crash leaves either the old checkpoint or the new one, never a
partial file. Reads detect truncated or foreign files; the format does not checksum tensor bytes,
so a file corrupted in place without changing its length may still load.
"""
from __future__ import annotations

import os
import random
import re
import uuid
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import cmrl
from cmrl.errors import CheckpointError

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1
_META_KEYS = ("format_version", "cmrl_version")
# Exact types: subclasses (np.float64 is a float, an IntEnum an int) pickle as their own class.
_PLAIN_TYPES = (str, bytes, bytearray, int, float, complex, bool, type(None), torch.dtype, torch.device, torch.Size,
                torch.Tensor, torch.nn.Parameter)
_CONTAINERS = (dict, OrderedDict, Counter, list, tuple, set)
# the temporary file save_checkpoint writes before its rename: .<name>.<pid>.<8 hex digits>.tmp
_TEMPORARY = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")
_HOW_TO_POINT = "`resume=` / `checkpoint=` must point at a checkpoint.pt written by scripts/train.py"

def cmrl_version() -> str:
    """The version of the cmrl code that wrote a checkpoint."""
    return cmrl.__version__

def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` (plus ``format_version`` and ``cmrl_version``) to ``path`` atomically.

    The parent directory is created if missing. Raises CheckpointError, before touching any file,
    when the payload holds a value that ``torch.load(weights_only=True)`` would refuse.
    """
    path = Path(path)
    _check_plain(payload, "payload")
    record = {**payload, "format_version": FORMAT_VERSION, "cmrl_version": cmrl_version()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # matches _TEMPORARY
    try:
        with open(tmp, "xb") as f:
            torch.save(record, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # also on KeyboardInterrupt: never leave the temporary file behind
        tmp.unlink(missing_ok=True)
        raise
    if os.name == "posix":  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    required_keys: Sequence[str] = ()) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, with tensors mapped to ``map_location``.

    Raises CheckpointError when the file is missing, a directory, truncated or not a cmrl checkpoint,
    of another format version, or lacks any of ``required_keys``.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {path} is a directory: pass the checkpoint.pt inside it; "
                              f"{_HOW_TO_POINT}")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: {_HOW_TO_POINT}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError, UnpicklingError, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "Weights only load failed" in reason:
            raise CheckpointError(
                f"{path} is not a cmrl checkpoint: it holds pickled Python objects other than tensors and "
                f"plain values, which cmrl never writes and which could run code when loaded; {_HOW_TO_POINT}"
            ) from err
        raise CheckpointError(
            f"{path} is truncated or not a cmrl checkpoint ({reason}). An interrupted copy leaves such a "
            f"file; {_HOW_TO_POINT}"
        ) from err
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"{path} is not a cmrl checkpoint (it has no format_version); {_HOW_TO_POINT}")
    written_by = payload.get("cmrl_version", "unknown")
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {payload['format_version']} (written by cmrl {written_by}), but this "
            f"cmrl ({cmrl_version()}) reads format {FORMAT_VERSION}: load it with the cmrl version that wrote it"
        )
    missing = [key for key in required_keys if key not in payload]
    if missing:
        raise CheckpointError(
            f"{path} (written by cmrl {written_by}) lacks the keys {missing}; it holds "
            f"{sorted(k for k in payload if k not in _META_KEYS)}. {_HOW_TO_POINT}"
        )
    return payload

def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writers killed mid-write (their process is gone) left in
    ``directory``; return their paths. Files of a writer still running are left alone."""
    removed: list[Path] = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        match = _TEMPORARY.match(path.name)
        if match and path.is_file() and not _process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (and is not this one's finished writer)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory holding checkpoint.pt."""
    p = Path(path)
    return p / CHECKPOINT_NAME if p.is_dir() else p

def rng_state() -> dict[str, Any]:
    """The global generator states of python ``random``, NumPy, torch CPU and (when available) CUDA,
    as tensors and plain values that a checkpoint can hold."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state

def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore states captured by :func:`rng_state` (tensors may sit on any device).

    CUDA states are restored for the devices present; on a machine without CUDA they are ignored.
    """
    random.setstate(state["python"])
    saved = state["numpy"]
    np.random.set_state({
        "bit_generator": saved["bit_generator"],
        "state": {"key": saved["key"].cpu().numpy().astype(np.uint32), "pos": saved["pos"]},
        "has_gauss": saved["has_gauss"],
        "gauss": saved["gauss"],
    })
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        for device, device_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state.cpu(), device)

def _check_plain(value: Any, where: str) -> None:
    """Raise CheckpointError naming the first value under ``where`` that weights_only loading refuses."""
    if type(value) in _PLAIN_TYPES:
        return
    if type(value) in _CONTAINERS:
        if isinstance(value, dict):
            for key, item in value.items():
                _check_plain(key, f"{where} key {key!r}")
                _check_plain(item, f"{where}[{key!r}]")
        else:
            for i, item in enumerate(value):
                _check_plain(item, f"{where}[{i}]")
        return
    hint = " (convert it with torch.as_tensor)" if isinstance(value, (np.ndarray, np.generic)) else ""
    raise CheckpointError(
        f"cannot checkpoint {where} of type {type(value).__module__}.{type(value).__qualname__}{hint}: "
        "checkpoints hold only tensors and plain Python values so that loading them runs no code"
    )
