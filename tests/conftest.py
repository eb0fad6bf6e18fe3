"""Shared test set-up: keep every Minari dataset a test (or a subprocess it starts) creates out of ~/.minari."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_minari_store(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["MINARI_DATASETS_PATH"] = str(tmp_path_factory.mktemp("minari"))
    os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture
def single_thread():
    """Tiny networks run fastest on one torch thread (and leave the other cores to other processes)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
