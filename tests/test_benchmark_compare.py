"""scripts/benchmark.py --compare: every agent timed side by side at the settings its benchmark run uses."""
from __future__ import annotations

import math

import torch
from helpers import load_script

benchmark = load_script("benchmark")


def test_compare_composes_the_benchmark_settings_and_times_every_agent(one_thread):
    agents = {b.algo: b for b in benchmark.benchmark_agents(list(benchmark.COMPARED))}
    assert set(agents) == {"consistency_ac", "consistency_bc", "consistency_fql", "td3_bc", "iql", "rebrac",
                           "diffusion_ql"}
    ac = agents["consistency_ac"]
    assert ac.experiment == "bench_d4rl_style" and ac.total_steps == 10_000
    assert ac.config.compile and ac.config.critic_target == "td_return_bound" and ac.config.act_candidates == 10
    assert ac.config.act_temperature == 0.25 and ac.config.actor_lr == 1e-3
    assert all(agents[a].config.compile for a in ("consistency_bc", "consistency_fql"))
    td3 = agents["td3_bc"]
    assert td3.experiment == "bench_baselines" and not td3.config.compile and td3.config.td3_bc.alpha == 2.5
    assert agents["diffusion_ql"].config.act_candidates == 50 and not agents["rebrac"].config.compile

    # the timing itself, eager (compiling takes about a minute per agent) and on a small store
    rows = benchmark.compare_agents(torch.device("cpu"), train_steps=2, rounds=1, act_calls=2,
                                    overrides=["agent.compile=false"], store_size=4 * benchmark.BATCH)
    assert [r["agent"] for r in rows] == list(benchmark.COMPARED)
    for r in rows:
        assert not r["compile"], r["agent"]
        for key in ("steps_per_s", "best", "worst", "steps_per_cpu_s", "first_update_s", "ms_b1", "ms_b10"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["agent"], key)
    assert {r["agent"]: r["act_candidates"] for r in rows}["consistency_ac"] == 10

    _, s = benchmark.parse_args(["--compare", "--quick", "--device", "cpu", "--algo", "iql", "--modes", "eager"])
    assert s.compare
