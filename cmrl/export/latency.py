"""Acting latency at batch 1: the library's acting chain against an exported file."""
from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from cmrl.training.acting import make_act_fn

from .exporter import ExportResult
from .formats import load_runner

ActFn = Callable[[np.ndarray], np.ndarray]


def cpu_model() -> str:
    """The CPU's model name (Linux), or the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def per_call_ms(fns: dict[str, ActFn], obs: np.ndarray, calls: int = 200, rounds: int = 5,
                warmup: int = 20) -> dict[str, float]:
    """Median over `rounds` of the mean milliseconds per call of each function on `obs`.

    The rounds of the functions alternate, so that a busy machine slows them alike; `warmup` calls
    first (TorchScript optimises its graph during the first calls).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn(obs)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn(obs)
            times[name].append(1e3 * (time.perf_counter() - start) / calls)
    return {name: statistics.median(t) for name, t in times.items()}


def export_latency(result: ExportResult, calls: int = 200, rounds: int = 5, seed: int = 0) -> dict[str, float]:
    """ms per action at batch 1, raw numpy observation to environment action, of the library
    (`load_policy` + `make_act_fn`) and of the file `result` wrote, on the dataset's mean observation."""
    loaded = result.loaded
    obs = loaded.transforms.obs_mean[None].astype(np.float32)
    fns = {"library": make_act_fn(loaded.agent, loaded.transforms, seed),
           f"exported {result.format}": load_runner(result.path)}
    return per_call_ms(fns, obs, calls, rounds)
