"""The fast path (`AgentConfig.compile`) computes what the eager path computes.

Both agents start from the same parameters, see the same batches and draw the same noise (noise is
drawn before the compiled / captured code, from the global generator, reseeded here before each
update). Compiled kernels fuse and reorder float32 arithmetic, so results agree up to rounding:
metrics within rtol 1e-4 (+ atol 1e-6) and parameters within atol 1e-6 on CPU (1e-5 on CUDA) after
several Adam steps; measured on CPU: 1.5e-8 on parameters of size ~0.1-1, i.e. about one float32 ulp.

Cold compilation dominates the run time (tens of seconds on a 2-core CPU), so one small Consistency-AC
configuration, which exercises every compiled function (critic loss, actor loss with the Q term,
action selection with candidates), stands for the rest.
"""
from __future__ import annotations

import pytest
import torch

from cmrl.agents import AgentConfig, make_agent
from cmrl.consistency import CT
from cmrl.data.store import Batch

S, A, B = 5, 2, 32
METRIC_TOL = {"rtol": 1e-4, "atol": 1e-6}
PARAM_ATOL = {"cpu": 1e-6, "cuda": 1e-5}
MODULES = ("policy", "teacher", "ema_policy", "critic", "critic_target")


def _config(**overrides: object) -> AgentConfig:
    # CT: EMA teacher; total_steps 8 with ema_start_step 2: the curriculum N(k), the teacher decay mu(k),
    # the acting EMA's switch and the cosine learning rates all change during the run. The critic has
    # LayerNorm and a return-bounded TD target, so every critic option runs compiled.
    fields: dict = dict(algo="consistency_ac", consistency=CT, hidden_dims=[16], critic_hidden_dims=[16],
                        time_embed_dim=8, train_sampling_steps=1, act_candidates=3, eta=1.0, ema_start_step=2,
                        critic_layer_norm=True, critic_target="td_return_bound")
    fields.update(overrides)
    return AgentConfig(**fields)


def _batch(seed: int, device: torch.device) -> Batch:
    g = torch.Generator().manual_seed(seed)
    batch = Batch(torch.randn(B, S, generator=g), torch.rand(B, A, generator=g) * 2 - 1, torch.randn(B, generator=g),
                  torch.randn(B, S, generator=g), (torch.rand(B, generator=g) < 0.2).float(),
                  torch.randn(B, generator=g))
    return Batch(*(t.to(device) if t is not None else None for t in batch))


def _pair(device: str, **overrides: object):
    agents = []
    for compile in (False, True):
        torch.manual_seed(0)
        agents.append(make_agent(_config(compile=compile, **overrides), S, A, 8, device))
    return agents


def _assert_same_updates(eager, fast, steps: int, device: torch.device, first_seed: int = 0) -> None:
    for k in range(first_seed, first_seed + steps):
        batch = _batch(k, device)
        torch.manual_seed(100 + k)
        expected = eager.update(batch)
        torch.manual_seed(100 + k)
        got = fast.update(batch)
        assert set(got) == set(expected)
        for key in expected:
            torch.testing.assert_close(got[key].cpu(), expected[key].cpu(), **METRIC_TOL, msg=f"step {k}: {key}")
    for name in MODULES:
        for (pname, p), q in zip(getattr(eager, name).named_parameters(), getattr(fast, name).parameters()):
            torch.testing.assert_close(q, p, rtol=0.0, atol=PARAM_ATOL[device.type], msg=f"{name}.{pname}")


def _assert_same_actions(eager, fast, device: torch.device) -> None:
    obs = torch.randn(4, S, device=device)
    expected = eager.act(obs, torch.Generator(device=device).manual_seed(1))
    got = fast.act(obs, torch.Generator(device=device).manual_seed(1))
    torch.testing.assert_close(got, expected, rtol=0.0, atol=PARAM_ATOL[device.type])


def test_compiled_updates_and_actions_match_eager():
    eager, fast = _pair("cpu")
    _assert_same_updates(eager, fast, steps=4, device=torch.device("cpu"))
    _assert_same_actions(eager, fast, torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_captured_cuda_updates_match_eager_and_survive_a_reload():
    device = torch.device("cuda")
    eager, fast = _pair("cuda")
    # 3 warm-up steps, the capture, then replays that must see the new learning rates and decays
    _assert_same_updates(eager, fast, steps=7, device=device)
    _assert_same_actions(eager, fast, device)
    # loading a state brings new optimiser tensors: the step is captured anew and stays equal
    state = eager.state_dict()
    fast.load_state_dict(state)
    eager.load_state_dict(state)
    _assert_same_updates(eager, fast, steps=5, device=device, first_seed=7)
