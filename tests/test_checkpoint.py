"""cmrl.training.checkpoint: atomic saves, validated loads, RNG state capture and restore."""
from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch

from cmrl.errors import CheckpointError, UserError
from cmrl.training import checkpoint as ckpt
from cmrl.training.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    remove_stale_temporaries,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def payload(value: float = 1.0) -> dict:
    return {
        "agent": {"actor": OrderedDict(weight=torch.full((4, 3), value), bias=torch.zeros(4)),
                  "optim": {"state": {0: {"step": torch.tensor(7.0)}}, "param_groups": [{"lr": 3e-4, "params": [0]}]}},
        "config": {"seed": 3, "tags": ["a", "b"], "resume": None, "betas": (0.9, 0.999)},
        "step": 1234,
        "best_normalized": None,
        "dtype": torch.float32,
    }


def files_in(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_roundtrip_adds_versions(tmp_path):
    path = tmp_path / "run" / "checkpoint.pt"  # the parent is created
    save_checkpoint(path, payload(2.5))
    loaded = load_checkpoint(path)
    assert loaded["format_version"] == FORMAT_VERSION
    assert isinstance(loaded["cmrl_version"], str) and loaded["cmrl_version"]
    torch.testing.assert_close(loaded["agent"]["actor"]["weight"], torch.full((4, 3), 2.5))
    assert loaded["agent"]["optim"]["param_groups"] == [{"lr": 3e-4, "params": [0]}]
    assert loaded["config"] == {"seed": 3, "tags": ["a", "b"], "resume": None, "betas": (0.9, 0.999)}
    assert loaded["step"] == 1234 and loaded["dtype"] is torch.float32
    assert files_in(path.parent) == ["checkpoint.pt"]


def test_save_replaces_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, payload(1.0))
    save_checkpoint(path, payload(2.0))
    assert load_checkpoint(path)["agent"]["actor"]["weight"][0, 0].item() == 2.0
    assert files_in(tmp_path) == ["checkpoint.pt"]


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch, error):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, payload(1.0))
    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # half the bytes reach the file...
        raise error  # ...then the process "dies"

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(type(error)):
        save_checkpoint(path, payload(2.0))
    monkeypatch.undo()
    assert load_checkpoint(path)["agent"]["actor"]["weight"][0, 0].item() == 1.0
    assert files_in(tmp_path) == ["checkpoint.pt"]  # no temporary file left behind


def test_truncated_checkpoint_is_reported(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, payload())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a cmrl checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, UserError)


@pytest.mark.parametrize("content", [b"", b"hello, not a checkpoint\n" * 4])
def test_garbage_file_is_reported(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="truncated or not a cmrl checkpoint"):
        load_checkpoint(path)


def test_missing_file_and_directory_say_what_to_pass(tmp_path):
    missing = tmp_path / "nope" / "checkpoint.pt"
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(missing)
    message = str(info.value)
    assert str(missing) in message and "resume=" in message and "checkpoint=" in message
    assert "checkpoint.pt written by scripts/train.py" in message
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_foreign_files_are_rejected(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)  # a torch file, but not ours
    with pytest.raises(CheckpointError, match="no format_version"):
        load_checkpoint(plain)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format_version": FORMAT_VERSION, "x": np.zeros(3)}, pickled)  # needs full unpickling
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_checkpoint(pickled)


def test_wrong_format_version(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"format_version": FORMAT_VERSION + 1, "cmrl_version": "9.9.9", "step": 1}, path)
    with pytest.raises(CheckpointError, match=f"format {FORMAT_VERSION + 1} \\(written by cmrl 9.9.9\\).*"
                                              f"reads format {FORMAT_VERSION}"):
        load_checkpoint(path)


def test_missing_required_keys(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 5})
    assert load_checkpoint(path, required_keys=["step"])["step"] == 5
    with pytest.raises(CheckpointError, match=r"lacks the keys \['agent', 'rng'\]; it holds \['step'\]"):
        load_checkpoint(path, required_keys=["step", "agent", "rng"])


@pytest.mark.parametrize("bad, where", [
    ({"agent": {"x": np.zeros(3)}},
     r"payload\['agent'\]\['x'\] of type numpy.ndarray \(convert it with torch.as_tensor\)"),
    ({"best": np.float64(1.0)}, r"payload\['best'\] of type numpy.float64"),
    ({"items": [1, object()]}, r"payload\['items'\]\[1\] of type builtins.object"),
])
def test_save_rejects_values_weights_only_load_refuses(tmp_path, bad, where):
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(CheckpointError, match=where):
        save_checkpoint(path, bad)
    assert files_in(tmp_path) == []


def draws() -> tuple:
    return random.random(), np.random.rand(3).tolist(), np.random.randn(), torch.rand(3).tolist()


def test_rng_state_roundtrip_through_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    np.random.randn()  # leaves a cached Gaussian in NumPy's legacy state
    save_checkpoint(tmp_path / "checkpoint.pt", {"rng": rng_state()})
    expected = draws()
    assert draws() != expected  # the streams moved on
    set_rng_state(load_checkpoint(tmp_path / "checkpoint.pt")["rng"])
    assert draws() == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rng_state_roundtrip(tmp_path):
    torch.cuda.manual_seed_all(3)
    save_checkpoint(tmp_path / "checkpoint.pt", {"rng": rng_state()})
    expected = torch.rand(4, device="cuda").tolist()
    set_rng_state(load_checkpoint(tmp_path / "checkpoint.pt", map_location="cuda")["rng"])
    assert torch.rand(4, device="cuda").tolist() == expected


def test_cmrl_version_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "cmrl_version", lambda: "1.2.3")
    save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    assert load_checkpoint(tmp_path / "checkpoint.pt")["cmrl_version"] == "1.2.3"


def test_stale_temporaries_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    stale = tmp_path / f".checkpoint.pt.{dead}.0123abcd.tmp"
    live = tmp_path / f".checkpoint.pt.{os.getppid()}.0123abcd.tmp"  # a process that is still running
    other = tmp_path / "notes.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []
