"""Exported policies (scripts/export.py, cmrl.export): the library's actions, without cmrl, in an episode."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import tiny_config

from cmrl.consistency import sampling_noise
from cmrl.errors import CheckpointError, ConfigError
from cmrl.export import FORMATS, export_checkpoint, read_metadata
from cmrl.export.formats import load_runner
from cmrl.training.acting import load_policy, make_act_fn
from cmrl.training.loop import Trainer

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
TEMPERATURE = 0.7  # != 1: the exported module must apply the checkpoint's acting temperature
BATCH, SEED = 5, 11
# (algo, sampling steps, candidates), each exported in both formats (an ONNX export takes ~5 s)
CASES = [("consistency_bc", 1, 1), ("consistency_bc", 2, 1), ("consistency_ac", 1, 1), ("consistency_ac", 2, 1),
         ("consistency_ac", 1, 3), ("consistency_ac", 2, 3)]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Consistency-BC and a Consistency-AC checkpoint on the embedded Pendulum data, 6 updates each
    (the acting EMA already differs from the student)."""
    paths = {}
    for algo in ("consistency_bc", "consistency_ac"):
        cfg = tiny_config(seed=1)
        cfg.agent.algo = algo
        cfg.agent.ema_start_step = 2
        trainer = Trainer(cfg, tmp_path_factory.mktemp(algo))
        for _ in range(6):
            trainer.agent.update(trainer.store.sample(cfg.batch_size))
        trainer.save()
        paths[algo] = trainer.checkpoint_path
    return paths


@pytest.fixture(scope="module")
def exports(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """export(fmt, algo, steps, candidates) -> the written file, each exported once per module."""
    cache: dict[tuple[str, str, int, int], Path] = {}
    out_dir = tmp_path_factory.mktemp("exports")

    def export(fmt: str, algo: str, steps: int, candidates: int) -> Path:
        key = (fmt, algo, steps, candidates)
        if key not in cache:
            out = out_dir / f"{algo}_{steps}_{candidates}{SUFFIX[fmt]}"
            cache[key] = export_checkpoint(checkpoints[algo], fmt, out, act_candidates=candidates,
                                           act_temperature=TEMPERATURE, act_sampling_steps=steps).path
        return cache[key]

    return export


def raw_observations(checkpoint: Path, batch: int = BATCH) -> np.ndarray:
    """Observations on the scale of the data (the exported module normalises them itself)."""
    transforms = load_policy(checkpoint, "cpu").transforms
    rng = np.random.default_rng(0)
    return (transforms.obs_mean + transforms.obs_std * rng.standard_normal((batch, transforms.obs_mean.size))
            ).astype(np.float32)


def run_exported(path: Path, obs: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
    """The file's actions for obs, with the noise given or drawn inside."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feeds = {"obs": obs} if noise is None else {"obs": obs, "noise": noise}
        return session.run(None, feeds)[0]
    module = torch.jit.load(str(path))
    args = [torch.from_numpy(obs)] + ([] if noise is None else [torch.from_numpy(noise)])
    return module(*args).numpy()


def assert_matches_library(path: Path, checkpoint: Path, steps: int, candidates: int) -> None:
    """The file, given the noise that make_act_fn's generator draws, returns make_act_fn's actions."""
    obs = raw_observations(checkpoint)
    loaded = load_policy(checkpoint, "cpu", act_candidates=candidates, act_temperature=TEMPERATURE,
                         act_sampling_steps=steps)
    expected = make_act_fn(loaded.agent, loaded.transforms, SEED)(obs)
    action_dim = expected.shape[1]
    z = sampling_noise((BATCH * candidates, action_dim), steps, generator=torch.Generator().manual_seed(SEED))
    noise = torch.stack(z).numpy()  # (T, B * N, A): the same standard-normal draws, before the temperature
    actual = run_exported(path, obs, noise)
    assert actual.shape == expected.shape == (BATCH, action_dim)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
    # the temperature is applied inside: the untempered noise through the library gives other actions
    plain = load_policy(checkpoint, "cpu", act_candidates=candidates, act_temperature=1.0, act_sampling_steps=steps)
    assert not np.allclose(make_act_fn(plain.agent, plain.transforms, SEED)(obs), actual, atol=1e-4)


@pytest.mark.parametrize(("algo", "steps", "candidates"), CASES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_actions_equal_the_library_s_with_the_same_noise(checkpoints, exports, fmt: str, algo: str,
                                                                  steps: int, candidates: int) -> None:
    path = exports(fmt, algo, steps, candidates)
    assert_matches_library(path, checkpoints[algo], steps, candidates)


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_policy_draws_its_noise_and_records_its_settings(exports, fmt: str, checkpoints) -> None:
    path = exports(fmt, "consistency_ac", 1, 3)
    obs = raw_observations(checkpoints["consistency_ac"], batch=64)
    act = load_runner(path)
    first, second = act(obs), act(obs)
    assert first.shape == (64, 1) and np.isfinite(first).all()
    assert np.abs(first).max() <= 2.0  # Pendulum's torque bounds
    assert not np.allclose(first, second)  # fresh noise on every call
    meta = read_metadata(path)
    assert meta["algo"] == "consistency_ac" and meta["env_id"] == "Pendulum-v1"
    assert (meta["act_candidates"], meta["act_temperature"], len(meta["act_sampling_sigmas"])) == (3, TEMPERATURE, 1)
    assert meta["noise_shape"] == [1, "batch*3", 1]


def test_torchscript_noise_is_seeded_by_torch_manual_seed(exports, checkpoints) -> None:
    module = torch.jit.load(str(exports("torchscript", "consistency_ac", 1, 3)))
    obs = torch.from_numpy(raw_observations(checkpoints["consistency_ac"]))
    torch.manual_seed(5)
    first = module(obs)
    torch.manual_seed(5)
    assert torch.equal(module(obs), first)


def test_onnx_noise_is_seeded_by_onnxruntime_set_seed(exports, checkpoints) -> None:
    import onnxruntime as ort

    path = str(exports("onnx", "consistency_ac", 1, 3))
    obs = raw_observations(checkpoints["consistency_ac"])
    runs = []
    for _ in range(2):
        ort.set_seed(5)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        runs.append([session.run(None, {"obs": obs})[0] for _ in range(2)])
    np.testing.assert_array_equal(runs[0][0], runs[1][0])  # a session replays the seeded sequence
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[0][1])


STANDALONE = r"""
import json, sys
sys.path.extend(json.loads(sys.argv[2]))  # site-packages, without its .pth files (so no editable cmrl)
try:
    import cmrl
except ImportError:
    pass
else:
    raise SystemExit(f"cmrl is importable here ({cmrl.__file__}): not a clean environment")
import numpy as np
obs = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
if sys.argv[1].endswith(".onnx"):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
    drawn = session.run(None, {"obs": obs})[0]
    noise = np.zeros((2, 4, 1), dtype=np.float32)
    given = session.run(None, {"obs": obs, "noise": noise})[0]
    assert "torch" not in sys.modules, "onnxruntime alone should run the file"
else:
    import torch
    policy = torch.jit.load(sys.argv[1])
    drawn = policy(torch.from_numpy(obs)).numpy()
    given = policy(torch.from_numpy(obs), torch.zeros(2, 4, 1)).numpy()
assert drawn.shape == given.shape == (4, 1) and np.isfinite(drawn).all()
assert not [m for m in sys.modules if m == "cmrl" or m.startswith("cmrl.")]
print("ok", drawn.ravel().tolist())
"""


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_file_runs_without_cmrl(exports, tmp_path: Path, fmt: str) -> None:
    """`python -I -S` in an empty directory, PYTHONPATH unset, the file copied alone, only the
    directories of numpy, torch / onnxruntime on sys.path."""
    source = exports(fmt, "consistency_ac", 2, 1)
    alone = tmp_path / f"policy{SUFFIX[fmt]}"
    alone.write_bytes(source.read_bytes())
    runtime = "onnxruntime" if fmt == "onnx" else "torch"
    dirs = sorted({str(Path(__import__(name).__file__).parent.parent) for name in ("numpy", runtime)})
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", STANDALONE, str(alone), json.dumps(dirs)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proc.stdout.startswith("ok")


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_policy_drives_a_pendulum_episode_to_the_end(exports, fmt: str) -> None:
    act = load_runner(exports(fmt, "consistency_ac", 1, 3))
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    steps, done = 0, False
    while not done:
        action = act(obs[None].astype(np.float32))[0]
        assert env.action_space.contains(action)
        obs, _, terminated, truncated, _ = env.step(action)
        steps, done = steps + 1, terminated or truncated
    env.close()
    assert steps == 200  # Pendulum-v1's time limit


def test_export_rejects_bad_targets_with_clear_errors(checkpoints, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="format must be one of torchscript, onnx; got 'tflite'"):
        export_checkpoint(checkpoints["consistency_bc"], "tflite", tmp_path / "policy.tflite")
    with pytest.raises(ConfigError, match="does not exist"):
        export_checkpoint(checkpoints["consistency_bc"], "torchscript", tmp_path / "missing" / "policy.pt")
    with pytest.raises(ConfigError, match="is a directory"):
        export_checkpoint(checkpoints["consistency_bc"], "torchscript", tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        export_checkpoint(tmp_path / "nothing.pt", "torchscript", tmp_path / "policy.pt")


def test_export_writes_beside_the_checkpoint_by_default(checkpoints) -> None:
    run_dir = checkpoints["consistency_bc"].parent
    result = export_checkpoint(run_dir, "torchscript")  # a run directory stands for its checkpoint.pt
    assert result.path == run_dir / "policy.pt" and result.path.is_file()
    assert read_metadata(result.path)["checkpoint"] == str(run_dir)


def run_export_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "export.py"), *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)


def test_export_script_writes_the_file_and_reports_latency(checkpoints, tmp_path: Path) -> None:
    out = tmp_path / "policy.pt"
    proc = run_export_script(f"checkpoint={checkpoints['consistency_bc'].parent}", "format=torchscript", f"out={out}",
                             "latency=true")
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and f"wrote {out}" in proc.stdout
    assert "library" in proc.stdout and "exported torchscript" in proc.stdout and "ms/action" in proc.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["format=keras"], "format must be one of torchscript, onnx; got 'keras'"),
    (["out=/nonexistent-dir/policy.pt"], "the directory /nonexistent-dir does not exist"),
    (["checkpoint=/nonexistent-dir/checkpoint.pt"], "/nonexistent-dir/checkpoint.pt"),
])
def test_export_script_reports_bad_input_in_one_line(checkpoints, args: list[str], message: str) -> None:
    if not any(a.startswith("checkpoint=") for a in args):
        args = [f"checkpoint={checkpoints['consistency_bc']}", *args]
    proc = run_export_script(*args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("cmrl: error:") and message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
