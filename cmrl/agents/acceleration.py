"""The fast path of the agents (`AgentConfig.compile`): their own functions, compiled and captured.

An update is split into Python bookkeeping (random draws, schedules, the step counter; eager) and
`train_step(batch, noise)`, the tensor work: losses, backward passes, clipped optimiser steps and
parameter averages. Random numbers are drawn before it (`UpdateNoise`) and the per-step scalars it
reads (learning rates, EMA decays) live in tensors updated in place, so it is a pure function of its
inputs and the agent's tensors. Hence:

- on every device, `maybe_compile` compiles the agents' loss and action-selection functions with
  torch.compile (one fused kernel per chain of elementwise ops, Mish included);
- on CUDA, `CapturedStep` also records the whole `train_step` once in a CUDA graph and replays it,
  so that an update costs a few copies and one graph launch instead of hundreds of kernel launches.

The fast path consumes exactly the eager path's random numbers and computes the same losses and
updates up to floating-point reassociation (tests/test_fast_path.py).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional, TypeVar

import torch
from torch import Tensor
from torch.utils._pytree import tree_leaves, tree_map

F = TypeVar("F", bound=Callable[..., Any])

RECOMPILE_LIMIT = 64
"""Graphs kept per compiled function. Agents of equal configuration share graphs, but each distinct
configuration and batch shape compiles its own (the benchmark builds a dozen), and torch's default
limit of 8 would stop a fullgraph compile with an error."""


def maybe_compile(fn: F, enabled: bool) -> F:
    """`torch.compile(fn)` without graph breaks when enabled (raising torch's recompile limit to
    RECOMPILE_LIMIT), else `fn` itself."""
    if not enabled:
        return fn
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    return torch.compile(fn, fullgraph=True)  # type: ignore[return-value]


def captures_updates(enabled: bool, device: torch.device) -> bool:
    """Whether the fast path captures the update in a CUDA graph (compile on and a CUDA device)."""
    return enabled and device.type == "cuda"


class CapturedStep:
    """`step(*args) -> metrics` (a dict of 0-dim tensors) recorded in a CUDA graph after `warmup` eager
    calls, then replayed.

    The warm-up calls run on a side stream (as CUDA graph capture requires) and are real steps: they
    also compile the functions `step` calls and create the optimiser states. The capture call copies
    its arguments into static buffers, records `step` on them and replays the graph; every later call
    copies its arguments (one foreach copy per dtype over the pytree's tensors) and replays. The
    returned metrics are copies, so they stay valid after the next replay.

    Requirements on `step`, met by the agents' `train_step`: no host synchronisation and no random
    draws inside; every value that changes between calls is an argument or a tensor updated in place
    (Python numbers are frozen into the graph); arguments keep their shapes.
    """

    def __init__(self, step: Callable[..., dict[str, Tensor]], warmup: int = 3):
        self.step = step
        self.warmup_left = warmup
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.static_args: tuple[Any, ...] = ()
        self.static_leaves: list[Tensor] = []
        self.keys: list[str] = []
        self.static_metrics: Optional[Tensor] = None

    def __call__(self, *args: Any) -> dict[str, Tensor]:
        if self.graph is None and self.warmup_left > 0:
            self.warmup_left -= 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                metrics = self.step(*args)
            torch.cuda.current_stream().wait_stream(side)
            return metrics
        if self.graph is None:
            self._capture(args)
        else:
            _copy_by_dtype(self.static_leaves, tree_leaves(args))
        assert self.graph is not None and self.static_metrics is not None
        self.graph.replay()
        return dict(zip(self.keys, self.static_metrics.clone().unbind()))

    def _capture(self, args: tuple[Any, ...]) -> None:
        self.static_args = tree_map(lambda x: x.clone() if isinstance(x, Tensor) else x, args)
        self.static_leaves = tree_leaves(self.static_args)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            metrics = self.step(*self.static_args)
            self.keys = list(metrics)
            self.static_metrics = torch.stack([metrics[k].float() for k in self.keys])
        self.graph = graph


def _copy_by_dtype(destinations: list[Tensor], sources: list[Tensor]) -> None:
    """destinations[i].copy_(sources[i]) with one foreach copy per dtype (foreach kernels need one dtype)."""
    groups: dict[torch.dtype, tuple[list[Tensor], list[Tensor]]] = {}
    for dst, src in zip(destinations, sources, strict=True):
        group = groups.setdefault(dst.dtype, ([], []))
        group[0].append(dst)
        group[1].append(src)
    for dsts, srcs in groups.values():
        torch._foreach_copy_(dsts, srcs)
