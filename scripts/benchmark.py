#!/usr/bin/env python
"""Training and acting speed of Consistency-AC (or a baseline): prints tables of steps/s and ms per action.

    python scripts/benchmark.py                      # CPU: 1 and 2 threads, eager and compiled
    python scripts/benchmark.py --quick              # fewer timed steps and acting settings
    python scripts/benchmark.py --device cuda        # GPU: eager, and compiled + CUDA-graph update
    python scripts/benchmark.py --modes eager --threads 1,2 --no-eval
    python scripts/benchmark.py --export             # also: exported files (TorchScript, ONNX) vs library
    python scripts/benchmark.py --algo td3_bc --threads 1 --no-eval   # a baseline at its published settings
    python scripts/benchmark.py --compare --threads 1                 # every agent at its benchmark settings

Reference setting (the issue's): hopper-sized data (state 11, action 3) in a TransitionStore of
1M synthetic transitions on the training device, batch 256, actor and critics 3x256 with Mish (no
LayerNorm, as in the public code), 2 sampling steps, twin Q (ensemble of 2), CT with an EMA
teacher. Modes: `eager` is the plain path; `compile` is AgentConfig.compile (torch.compile of the
losses and of action selection, plus, on CUDA, the whole update captured in a CUDA graph). On CPU
each thread count runs in a fresh process (compiled kernels specialise on it). Timed rounds of the
modes alternate, and the median round is reported, so that a busy machine biases all modes alike;
the first update (which compiles) is timed separately. --export adds the acting latency at batch 1 of
the policy exported by cmrl.export (TorchScript, ONNX with onnxruntime at the same thread count)
next to the library's eager acting chain (make_act_fn), numpy observation in, numpy action out.
steps/CPU-s divides by the process's CPU time instead of wall time: with one thread it estimates the
speed on an idle machine when others share it. The sgemm line calibrates the machine (the best of
5 rounds of 256x256x256 float32 matrix products) and turns the matrix-product FLOPs of one update,
counted by torch's FlopCounterMode, into the steps/s this machine would reach if the update did
nothing but matrix products at that rate. `--algo td3_bc|iql|rebrac|diffusion_ql` times a baseline instead,
with its configs/agent/<algo>.yaml settings (networks, ReLU, ReBRAC's LayerNorm, Diffusion-QL's sampler) on
the same data and batch 256 (ReBRAC's published batch is 1024); for diffusion_ql the acting table's steps are
Heun steps (agent.diffusion.sampling_steps).

--compare times every agent side by side, each with the AgentConfig its 10k-step benchmark run uses: Hydra
composes configs/config.yaml with `experiment=bench_d4rl_style agent=<algo>` for the consistency agents
(compile: true, actor_lr 1e-3, LayerNorm critics, critic_target, act_temperature) and `experiment=bench_baselines
agent=<algo>` for the baselines, on the same synthetic data at batch 256. All agents are built and updated once
(the first update, timed apart: it compiles) and warmed up, then their timed rounds alternate (round robin), and
the median round is reported. Acting is timed at each agent's own acting settings (candidates, sampling steps,
temperature): ms per action at batch 1, and ms per call at batch 10 (the benchmark evaluates 10 environments at
once). --compare ignores --algo, --modes, --act-steps, --act-candidates, --no-eval and --export.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from cmrl.agents import Agent, AgentConfig, make_agent
from cmrl.consistency import CT
from cmrl.data.dataset import DatasetInfo, TransitionData
from cmrl.data.store import TransitionStore
from cmrl.errors import user_errors
from cmrl.training.runtime import resolve_device

OBS_DIM, ACTION_DIM, BATCH = 11, 3, 256
DATASET_SIZE = 1_000_000
TOTAL_STEPS = 1_000_000
EVAL_ENV = "Hopper-v5"
BASELINES = ("td3_bc", "iql", "rebrac")
PRESETS = (*BASELINES, "diffusion_ql")  # timed at their configs/agent/<algo>.yaml settings
CONFIGS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "configs"))
COMPARED = {"consistency_ac": "bench_d4rl_style", "consistency_bc": "bench_d4rl_style",
            "consistency_fql": "bench_d4rl_style", "td3_bc": "bench_baselines", "iql": "bench_baselines",
            "rebrac": "bench_baselines", "diffusion_ql": "bench_baselines"}
"""--compare's agents and the experiment whose settings each is timed at (`experiment=<it> agent=<algo>`)."""
WARMUP_UPDATES = 5  # untimed updates after the first one, before the timed rounds
EVAL_ENVS = 10  # the benchmark's environments evaluated at once (--compare's acting batch)


@dataclass
class Settings:
    device: str
    algo: str  # consistency_ac (the reference setting) or a baseline at its published settings
    modes: list[str]
    train_steps: int  # timed updates per round
    rounds: int  # timed rounds per mode (the median is reported)
    act_steps: list[int]  # sampling steps when acting
    act_candidates: list[int]  # 1 = no Q-ranked candidates
    act_calls: int  # timed act() calls per setting
    eval_episodes: int  # 0 = skip the evaluation throughput
    export: bool = False  # also time exported policies against the library (CPU)
    compare: bool = False  # time every agent of COMPARED at its benchmark settings instead


def reference_config(mode: str, algo: str = "consistency_ac", **overrides: Any) -> AgentConfig:
    """The issue's reference setting of Consistency-AC, or a baseline's configs/agent/<algo>.yaml
    (see the module docstring)."""
    if algo in PRESETS:
        preset = OmegaConf.load(os.path.join(CONFIGS, "agent", f"{algo}.yaml"))
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(AgentConfig), preset,
                                                  {"compile": mode == "compile", **overrides}))
        assert isinstance(cfg, AgentConfig)
        return cfg
    fields: dict[str, Any] = dict(algo="consistency_ac", consistency=CT, hidden_dims=[256, 256, 256],
                                  critic_hidden_dims=[256, 256, 256], critic_layer_norm=False,
                                  train_sampling_steps=2, ensemble_size=2, compile=mode == "compile")
    fields.update(overrides)
    return AgentConfig(**fields)


@dataclass
class BenchmarkAgent:
    """An agent as a benchmark experiment runs it."""
    algo: str
    experiment: str  # the experiment its settings come from (COMPARED)
    config: AgentConfig  # the composed agent node
    total_steps: int  # the experiment's training steps (the learning-rate schedule's length)


def benchmark_agents(algos: Sequence[str], overrides: Sequence[str] = ()) -> list[BenchmarkAgent]:
    """Each agent's settings in its benchmark run: configs/config.yaml composed by Hydra with
    `experiment=<COMPARED[algo]> agent=<algo>`, then `overrides` (e.g. agent.compile=false)."""
    from hydra import compose, initialize_config_dir

    from cmrl.training.config import register_schema

    register_schema()
    agents = []
    with initialize_config_dir(config_dir=CONFIGS, version_base=None):
        for algo in algos:
            cfg = compose("config", overrides=[f"experiment={COMPARED[algo]}", f"agent={algo}", *overrides])
            agent = OmegaConf.to_object(cfg.agent)
            assert isinstance(agent, AgentConfig)
            agents.append(BenchmarkAgent(algo, COMPARED[algo], agent, int(cfg.steps)))
    return agents


def synthetic_store(device: torch.device, size: int = DATASET_SIZE) -> TransitionStore:
    """A hopper-sized transition store of standard-normal data (speed does not depend on values)."""
    rng = np.random.default_rng(0)

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32)

    info = DatasetInfo(name="synthetic-hopper", source="embedded", env_id=EVAL_ENV, ref_min_score=None,
                       ref_max_score=None, action_low=-np.ones(ACTION_DIM, np.float32),
                       action_high=np.ones(ACTION_DIM, np.float32), behaviour_returns=np.zeros(0, np.float32))
    data = TransitionData(normal(size, OBS_DIM), np.tanh(normal(size, ACTION_DIM)), normal(size),
                          normal(size, OBS_DIM), (rng.random(size) < 0.01).astype(np.float32),
                          np.zeros(size, np.float32), info)
    return TransitionStore(data, device, AgentConfig().discount)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall-clock seconds of fn(), device work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def sgemm_gflops(device: torch.device, repeats: int = 200, rounds: int = 5) -> float:
    """The best rate of `rounds` timed rounds of `repeats` 256x256x256 float32 products (GFLOP/s).

    The best round, not the mean: the rate varies by a third between rounds on a shared or
    frequency-scaling CPU, and the bound derived from it must not be lower than what is achievable.
    """
    a, b = torch.randn(256, 256, device=device), torch.randn(256, 256, device=device)
    for _ in range(50):
        a @ b
    seconds = min(timed(lambda: [a @ b for _ in range(repeats)], device) for _ in range(rounds))
    return 2 * 256 ** 3 * repeats / seconds / 1e9


def update_gflop(device: torch.device, algo: str) -> float:
    """GFLOP of one eager update at the reference setting, counted by torch's FlopCounterMode.

    Only matrix products are counted (elementwise work is small beside them), so the sgemm rate
    divided by this estimates the most steps/s this network size can reach on this machine.
    """
    from torch.utils.flop_counter import FlopCounterMode

    store = synthetic_store(device, size=4 * BATCH)
    agent = make_agent(reference_config("eager", algo), OBS_DIM, ACTION_DIM, TOTAL_STEPS, device)
    agent.update(store.sample(BATCH))
    with FlopCounterMode(display=False) as counter:
        agent.update(store.sample(BATCH))
    return counter.get_total_flops() / 1e9


# --- measurements ----------------------------------------------------------------------------------
def time_updates(agents: dict[str, Agent], store: TransitionStore, train_steps: int, rounds: int,
                 device: torch.device) -> dict[str, dict[str, float]]:
    """Training speed of each agent: its first update (which compiles) timed apart, WARMUP_UPDATES
    untimed ones, then `rounds` timed rounds of `train_steps` updates that alternate between the agents
    (so that a busy machine slows them alike); steps/s of the median, best and worst round."""
    def update(agent: Agent, steps: int) -> None:
        for _ in range(steps):
            agent.update(store.sample(BATCH))

    first = {}
    for name, agent in agents.items():
        first[name] = timed(lambda: update(agent, 1), device)
        update(agent, WARMUP_UPDATES)
        synchronize(device)
    wall: dict[str, list[float]] = {name: [] for name in agents}
    cpu: dict[str, list[float]] = {name: [] for name in agents}
    for _ in range(rounds):
        for name, agent in agents.items():
            start = time.process_time()
            seconds = timed(lambda: update(agent, train_steps), device)
            wall[name].append(train_steps / seconds)
            cpu[name].append(train_steps / (time.process_time() - start))
    return {name: {"steps_per_s": statistics.median(wall[name]), "best": max(wall[name]),
                   "worst": min(wall[name]), "steps_per_cpu_s": statistics.median(cpu[name]),
                   "first_update_s": first[name]} for name in agents}


def time_acting(agent: Agent, batch: int, calls: int, device: torch.device) -> tuple[float, float]:
    """(seconds of the first call, ms per call after 5 more) of agent.act on `batch` random observations."""
    generator = torch.Generator(device=device).manual_seed(0)
    obs = torch.randn(batch, OBS_DIM, device=device)
    first = timed(lambda: agent.act(obs, generator), device)
    for _ in range(5):
        agent.act(obs, generator)
    seconds = timed(lambda: [agent.act(obs, generator) for _ in range(calls)], device)
    return first, 1e3 * seconds / calls


def bench_training(s: Settings, device: torch.device) -> list[dict[str, Any]]:
    store = synthetic_store(device)
    agents = {}
    for mode in s.modes:
        torch.manual_seed(0)
        agents[mode] = make_agent(reference_config(mode, s.algo), OBS_DIM, ACTION_DIM, TOTAL_STEPS, device)
    return [{"mode": mode, **row} for mode, row in time_updates(agents, store, s.train_steps, s.rounds, device).items()]


def bench_acting(s: Settings, device: torch.device) -> list[dict[str, Any]]:
    results = []
    for steps in s.act_steps:
        for candidates in s.act_candidates:
            for mode in s.modes:
                torch.manual_seed(0)
                sampler: dict[str, Any] = ({"diffusion": {"sampling_steps": steps}} if s.algo == "diffusion_ql"
                                           else {"act_sampling_steps": steps})
                agent = make_agent(reference_config(mode, s.algo, act_candidates=candidates, **sampler),
                                   OBS_DIM, ACTION_DIM, TOTAL_STEPS, device)
                row: dict[str, Any] = {"mode": mode, "steps": steps, "candidates": candidates}
                for batch in (1, BATCH):
                    calls = s.act_calls if batch == 1 else max(s.act_calls // 10, 5)
                    row[f"first_s_b{batch}"], row[f"ms_b{batch}"] = time_acting(agent, batch, calls, device)
                results.append(row)
    return results


def bench_evaluation(s: Settings, device: torch.device) -> list[dict[str, Any]]:
    """Environment steps/s of evaluate_policy on Hopper with the policy acting (and with random actions)."""
    try:
        from cmrl.data.transforms import DataTransforms
        from cmrl.envs import evaluate_policy
        from cmrl.training.acting import make_act_fn
    except ImportError as err:  # e.g. no gymnasium / MuJoCo on a GPU box
        print(f"evaluation throughput skipped: {err}", file=sys.stderr)
        return []
    transforms = DataTransforms(np.zeros(OBS_DIM), np.ones(OBS_DIM), -np.ones(ACTION_DIM), np.ones(ACTION_DIM),
                                1.0, 0.0)
    rng = np.random.default_rng(0)
    policies: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "env only (random actions)": lambda obs: rng.uniform(-1, 1, (obs.shape[0], ACTION_DIM)).astype(np.float32)}
    for mode in s.modes:
        torch.manual_seed(0)  # the same untrained policy in every mode, so the same episodes
        agent = make_agent(reference_config(mode, s.algo), OBS_DIM, ACTION_DIM, TOTAL_STEPS, device)
        policies[mode] = make_act_fn(agent, transforms, seed=0)
    results = []
    for name, act in policies.items():
        evaluate_policy(act, EVAL_ENV, episodes=12, seed=0, num_envs=10)  # warm-up: compiles the batch sizes
        start = time.perf_counter()
        result = evaluate_policy(act, EVAL_ENV, episodes=s.eval_episodes, seed=1, num_envs=10)
        seconds = time.perf_counter() - start
        results.append({"policy": name, "env_steps_per_s": float(result.lengths.sum()) / seconds,
                        "env_steps": int(result.lengths.sum())})
    return results


def bench_export(s: Settings, device: torch.device) -> list[dict[str, Any]]:
    """ms per action at batch 1 of the library's acting chain and of its exported files (CPU only)."""
    if device.type != "cpu":
        print("export latency skipped: it is measured on CPU", file=sys.stderr)
        return []
    from cmrl.data.transforms import DataTransforms
    from cmrl.export import exported_policy, write_policy
    from cmrl.export.formats import load_runner
    from cmrl.export.latency import per_call_ms
    from cmrl.training.acting import make_act_fn

    formats = {"torchscript": ".pt", "onnx": ".onnx"}
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        print(f"ONNX export latency skipped ({err}): pip install 'cmrl[export]'", file=sys.stderr)
        del formats["onnx"]
    transforms = DataTransforms(np.zeros(OBS_DIM), np.ones(OBS_DIM), -np.ones(ACTION_DIM), np.ones(ACTION_DIM),
                                1.0, 0.0)
    obs = np.random.default_rng(0).standard_normal((1, OBS_DIM)).astype(np.float32)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for steps in s.act_steps:
            for candidates in s.act_candidates:
                torch.manual_seed(0)
                agent = make_agent(reference_config("eager", act_sampling_steps=steps, act_candidates=candidates),
                                   OBS_DIM, ACTION_DIM, TOTAL_STEPS, device)
                fns = {"library": make_act_fn(agent, transforms, seed=0)}
                for fmt, suffix in formats.items():
                    path = os.path.join(tmp, f"policy_{steps}_{candidates}{suffix}")
                    write_policy(exported_policy(agent, transforms), path, fmt, {})
                    fns[fmt] = load_runner(path)
                ms = per_call_ms(fns, obs, calls=s.act_calls, rounds=s.rounds)
                results.append({"steps": steps, "candidates": candidates, **ms})
    return results


def compare_agents(device: torch.device, algos: Sequence[str] = tuple(COMPARED), train_steps: int = 50,
                   rounds: int = 5, act_calls: int = 300, overrides: Sequence[str] = (),
                   store_size: int = DATASET_SIZE) -> list[dict[str, Any]]:
    """Every agent of `algos` at its benchmark settings (benchmark_agents, with `overrides`): training
    speed in alternating rounds (time_updates), then acting latency at batch 1 and at batch EVAL_ENVS
    (`act_calls` timed calls each) with the agent's own acting settings. One row per agent."""
    store = synthetic_store(device, size=store_size)
    compared = benchmark_agents(algos, overrides)
    agents = {}
    for b in compared:
        torch.manual_seed(0)
        agents[b.algo] = make_agent(b.config, OBS_DIM, ACTION_DIM, b.total_steps, device)
    training = time_updates(agents, store, train_steps, rounds, device)
    rows = []
    for b in compared:
        steps = b.config.diffusion.sampling_steps if b.algo == "diffusion_ql" else b.config.act_sampling_steps
        row: dict[str, Any] = {"agent": b.algo, "experiment": b.experiment, **training[b.algo],
                               "compile": b.config.compile, "act_candidates": b.config.act_candidates,
                               "act_sampling_steps": steps, "act_temperature": b.config.act_temperature}
        for batch in (1, EVAL_ENVS):
            row[f"first_act_s_b{batch}"], row[f"ms_b{batch}"] = time_acting(agents[b.algo], batch, act_calls, device)
        rows.append(row)
    return rows


def run_worker(s: Settings, threads: int) -> dict[str, Any]:
    device = torch.device(s.device)
    if device.type == "cpu":
        torch.set_num_threads(threads)
    if s.compare:
        return {"threads": threads, "sgemm_gflops": sgemm_gflops(device),
                "agents": compare_agents(device, train_steps=s.train_steps, rounds=s.rounds, act_calls=s.act_calls)}
    out: dict[str, Any] = {"threads": threads, "sgemm_gflops": sgemm_gflops(device),
                           "update_gflop": update_gflop(device, s.algo)}
    out["training"] = bench_training(s, device)
    out["acting"] = bench_acting(s, device)
    out["evaluation"] = bench_evaluation(s, device) if s.eval_episodes > 0 else []
    out["export"] = bench_export(s, device) if s.export else []
    return out


# --- report ----------------------------------------------------------------------------------------
def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}"


def print_header(title: str, device: torch.device) -> None:
    """The report's title, the machine and the load average."""
    load = f", load average {os.getloadavg()[0]:.1f} at the end" if hasattr(os, "getloadavg") else ""
    print(f"\n# cmrl benchmark: {title}\nmachine: {machine(device)}{load}")


def print_report(results: list[dict[str, Any]], s: Settings) -> None:
    device = torch.device(s.device)
    name = "Consistency-AC, reference setting" if s.algo == "consistency_ac" else f"{s.algo}, published setting"
    print_header(name, device)
    for r in results:
        print(f"sgemm 256^3 ({r['threads']} thread(s)): {r['sgemm_gflops']:.0f} GFLOP/s; one update is "
              f"{r['update_gflop']:.2f} GFLOP of matrix products: {r['sgemm_gflops'] / r['update_gflop']:.0f} "
              "steps/s if it did nothing else at that rate")
    setting = ("3x256 Mish, 2 sampling steps, twin Q, EMA teacher" if s.algo == "consistency_ac"
               else f"configs/agent/{s.algo}.yaml")
    print(f"\n## Training throughput (batch {BATCH}, {setting}; median of {s.rounds} rounds of "
          f"{s.train_steps} updates)")
    print_table(["mode", "steps/s", "best round", "worst round", "steps/CPU-s", "first update (s)"],
                [(r, [t["mode"], f"{t['steps_per_s']:.1f}", f"{t['best']:.1f}", f"{t['worst']:.1f}",
                      f"{t['steps_per_cpu_s']:.1f}", f"{t['first_update_s']:.1f}"])
                 for r in results for t in r["training"]], device)
    print("\n## Acting latency (act(): noise, sampling, clamp; candidates ranked by min-Q)")
    print_table(["mode", "sampling steps", "candidates", "ms/action (batch 1)", "ms/batch of 256"],
                [(r, [a["mode"], str(a["steps"]), str(a["candidates"]), f"{a['ms_b1']:.3f}", f"{a['ms_b256']:.2f}"])
                 for r in results for a in r["acting"]], device)
    if any(r["evaluation"] for r in results):
        print(f"\n## Evaluation throughput ({EVAL_ENV}, {s.eval_episodes} episodes, 10 environments, "
              "untrained policy, 2 sampling steps)")
        print_table(["policy", "env steps/s", "env steps"],
                    [(r, [e["policy"], f"{e['env_steps_per_s']:.0f}", str(e["env_steps"])])
                     for r in results for e in r["evaluation"]], device)


    if any(r.get("export") for r in results):
        print("\n## Exported policy latency (batch 1, numpy observation to numpy action; untrained policy; "
              f"median of {s.rounds} rounds of {s.act_calls} calls)")
        print_table(["sampling steps", "candidates", "library ms", "TorchScript ms", "ONNX ms"],
                    [(r, [str(e["steps"]), str(e["candidates"]), f"{e['library']:.3f}",
                          f"{e['torchscript']:.3f}", f"{e['onnx']:.3f}" if "onnx" in e else "n/a"])
                     for r in results for e in r.get("export", [])], device)


def print_compare_report(results: list[dict[str, Any]], s: Settings) -> None:
    """--compare's table: one row per agent (and thread count)."""
    device = torch.device(s.device)
    print_header("every agent at its benchmark settings", device)
    for r in results:
        print(f"sgemm 256^3 ({r['threads']} thread(s)): {r['sgemm_gflops']:.0f} GFLOP/s")
    print(f"\n## Training throughput (batch {BATCH}; median of {s.rounds} round-robin rounds of {s.train_steps} "
          f"updates) and acting latency (each agent's acting settings; batch {EVAL_ENVS} = the benchmark's "
          "evaluation environments)")
    print("Settings: configs/config.yaml composed with `experiment=<settings source> agent=<agent>`.")
    print_table(["agent", "settings source (experiment)", "steps/s", "best", "worst", "steps/CPU-s",
                 "first update (s)", "ms/action batch 1", f"ms/call batch {EVAL_ENVS}"],
                [(r, [a["agent"], a["experiment"], f"{a['steps_per_s']:.1f}", f"{a['best']:.1f}", f"{a['worst']:.1f}",
                      f"{a['steps_per_cpu_s']:.1f}", f"{a['first_update_s']:.1f}", f"{a['ms_b1']:.3f}",
                      f"{a[f'ms_b{EVAL_ENVS}']:.2f}"])
                 for r in results for a in r["agents"]], device)


def print_table(columns: list[str], rows: list[tuple[dict[str, Any], list[str]]], device: torch.device) -> None:
    """A Markdown table whose rows start with the device and the thread count of their result."""
    print("| " + " | ".join(["device", "threads", *columns]) + " |")
    print("|" + "---|" * (len(columns) + 2))
    for result, cells in rows:
        print("| " + " | ".join([device.type, str(result["threads"]), *cells]) + " |")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Settings]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cpu | cuda | auto (cuda when available)")
    p.add_argument("--threads", default="1,2", help="CPU thread counts, comma-separated (one process each)")
    p.add_argument("--modes", default="eager,compile", help="eager and/or compile, comma-separated")
    p.add_argument("--algo", default="consistency_ac", choices=("consistency_ac", *PRESETS),
                   help="the agent to time (baselines at their configs/agent/<algo>.yaml settings)")
    p.add_argument("--quick", action="store_true", help="fewer timed steps and acting settings")
    p.add_argument("--act-steps", help="sampling steps of the acting table, comma-separated (default 1,2,5)")
    p.add_argument("--act-candidates", default="1,50", help="candidates of the acting table, comma-separated")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation throughput")
    p.add_argument("--export", action="store_true", help="also time exported policies (TorchScript, ONNX) at batch 1")
    p.add_argument("--compare", action="store_true",
                   help="time every agent side by side at its benchmark experiment's settings (one table); "
                        "ignores --algo, --modes, --act-steps, --act-candidates, --no-eval and --export")
    p.add_argument("--json", help="also write the raw results to this file")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # internal: run one thread count, print JSON
    args = p.parse_args(argv)
    device = str(resolve_device(args.device))  # a ConfigError (one line) when CUDA is asked for but absent
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - {"eager", "compile"}:
        p.error(f"--modes takes eager and/or compile, got {args.modes!r}")
    gpu = device.startswith("cuda")
    baseline = args.algo in BASELINES  # deterministic actors: one acting setting
    s = Settings(device=device, algo=args.algo, modes=modes,
                 train_steps=(200 if gpu else 20) if args.quick else (1000 if gpu else 50),
                 rounds=3 if args.quick else 5,
                 act_steps=[1] if baseline else _ints(args.act_steps or ("1,2" if args.quick else "1,2,5")),
                 act_candidates=[1] if baseline else _ints(args.act_candidates),
                 act_calls=100 if args.quick else 300,
                 eval_episodes=0 if args.no_eval else (10 if args.quick else 30), export=args.export,
                 compare=args.compare)
    return args, s


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t]


def main(argv: list[str] | None = None) -> None:
    args, s = parse_args(argv)
    if args.worker is not None:
        print(json.dumps(run_worker(s, args.worker)))
        return
    if s.device.startswith("cuda"):
        results = [run_worker(s, torch.get_num_threads())]
    else:
        results = []
        for threads in _ints(args.threads):
            cmd = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--worker", str(threads)]
            print(f"running {threads} thread(s) ...", file=sys.stderr, flush=True)
            done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            if done.returncode != 0:  # report the thread counts that did finish
                print(f"the {threads}-thread run failed (exit status {done.returncode})", file=sys.stderr)
                continue
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if s.compare:
        print_compare_report(results, s)
    else:
        print_report(results, s)
    if args.json:
        with open(args.json, "w") as f:
            ignored = {"algo", "modes", "act_steps", "act_candidates", "eval_episodes", "export"}  # by --compare
            settings = {key: value for key, value in s.__dict__.items() if not (s.compare and key in ignored)}
            json.dump({"settings": settings, "results": results}, f, indent=1)


if __name__ == "__main__":
    with user_errors("benchmark", also=(ValueError, OSError)):
        main(argv=None)
