"""Diffusion-BC and consistency distillation: the diffusion policy learns a bimodal action law, CD with
an exact teacher is consistent along the exact PF-ODE trajectory, a CD student reproduces its diffusion
teacher's samples in 1-2 steps, and the Trainer distils from a diffusion_bc checkpoint (checked)."""
from __future__ import annotations

import copy
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import TINY_OVERRIDES, tiny_config
from hydra import compose, initialize_config_dir
from torch import Tensor

from cmrl.agents import AgentConfig, ConsistencyBC, DiffusionBC, make_agent
from cmrl.consistency import CD, DiffusionConfig, default_sampling_sigmas
from cmrl.consistency.edm import edm_sampling_sigmas
from cmrl.data import Batch
from cmrl.errors import CheckpointError, ConfigError
from cmrl.policies import DiffusionPolicy
from cmrl.training.acting import load_policy, make_act_fn
from cmrl.training.checkpoint import load_checkpoint, save_checkpoint
from cmrl.training.config import TrainConfig, register_schema, to_train_config
from cmrl.training.loggers import read_metrics
from cmrl.training.loop import Trainer, train

OBS_DIM = 2
pytestmark = pytest.mark.usefixtures("one_thread")


def bimodal_batch(n: int) -> Batch:
    """Any state; the action is -0.5 or +0.5 (equally likely) plus N(0, 0.05^2)."""
    obs = torch.randn(n, OBS_DIM)
    actions = torch.where(torch.rand(n, 1) < 0.5, 0.5, -0.5) + 0.05 * torch.randn(n, 1)
    return Batch(obs, actions, torch.zeros(n), obs, torch.zeros(n))


def mode_statistics(actions: Tensor) -> dict[str, float]:
    """The fraction in the upper mode, between the modes (|a| < 0.25), within 0.15 of a mode, and mean |a|."""
    return {"upper": (actions > 0).float().mean().item(), "between": (actions.abs() < 0.25).float().mean().item(),
            "near": ((actions.abs() - 0.5).abs() < 0.15).float().mean().item(), "mean_abs": actions.abs().mean().item()}


def sample_statistics(agent: ConsistencyBC | DiffusionBC, n: int = 2000) -> dict[str, float]:
    obs = torch.randn(n, OBS_DIM, generator=torch.Generator().manual_seed(1))
    return mode_statistics(agent.act(obs, torch.Generator().manual_seed(2)))


def small(**kw) -> AgentConfig:
    base = dict(hidden_dims=[64, 64], time_embed_dim=8, min_lr_ratio=0.1, ema_start_step=0, eta=0.0)
    base.update(kw)
    return AgentConfig(**base)


@pytest.fixture(scope="module")
def bimodal_teacher() -> DiffusionBC:
    """Diffusion-BC after 800 updates (batch 256, lr 5e-3, acting EMA 0.99) on the bimodal law; ~4 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures set up before the function-scoped one_thread
    torch.manual_seed(0)
    agent = make_agent(small(algo="diffusion_bc", actor_lr=5e-3, ema_decay=0.99), OBS_DIM, 1, 800)
    assert isinstance(agent, DiffusionBC)
    for _ in range(800):
        agent.update(bimodal_batch(256))
    torch.set_num_threads(threads)
    return agent


def test_diffusion_policy_learns_the_bimodal_action_law(bimodal_teacher: DiffusionBC):
    """Heun samples (default N = 18: 35 evaluations) split ~50/50 between the modes, few between them."""
    assert bimodal_teacher.act_sigmas == edm_sampling_sigmas(18, 0.002, 80.0, 7.0)
    stats = sample_statistics(bimodal_teacher)
    assert 0.4 < stats["upper"] < 0.6, stats
    assert stats["between"] < 0.05, stats  # 0.006 measured
    assert stats["near"] > 0.85, stats  # 0.98 measured
    assert abs(stats["mean_abs"] - 0.5) < 0.06, stats


def test_cd_student_reproduces_the_teacher_in_one_and_two_steps(bimodal_teacher: DiffusionBC):
    """CD (the `cd` preset, lr 1e-2, 1000 updates) from the Heun teacher: the 1- and 2-step student's mode
    fractions and mean |a| match the teacher's 35-evaluation samples (measured: upper mode 0.47 vs 0.48,
    mean |a| 0.49 / 0.47 vs 0.51), where the teacher's own sampler with 2 steps (3 evaluations) puts
    every sample at +1. After 1000 updates the student's modes are still wider than the teacher's
    (45-56 % of samples within 0.15 of a mode, 18 % between the modes, vs 98 % and 0.6 %)."""
    teacher = sample_statistics(bimodal_teacher)
    torch.manual_seed(1)
    cfg = small(algo="consistency_bc", consistency=replace(CD, teacher_checkpoint="(in memory)"), actor_lr=1e-2,
                ema_decay=0.0)
    student = make_agent(cfg, OBS_DIM, 1, 1000)
    assert isinstance(student, ConsistencyBC)
    student.set_distillation_teacher(bimodal_teacher.acting_policy)
    for _ in range(1000):
        student.update(bimodal_batch(256))
    for steps in (1, 2):
        student.act_sigmas = default_sampling_sigmas(steps, 0.002, 80.0, 7.0)
        stats = sample_statistics(student)
        assert abs(stats["upper"] - teacher["upper"]) < 0.08, (steps, stats, teacher)
        assert abs(stats["mean_abs"] - teacher["mean_abs"]) < 0.1, (steps, stats, teacher)
        assert stats["between"] < 0.3, (steps, stats, teacher)  # a collapse onto the mean: ~1
    bimodal_teacher.act_sigmas = edm_sampling_sigmas(2, 0.002, 80.0, 7.0)
    try:
        few = sample_statistics(bimodal_teacher)
    finally:
        bimodal_teacher.act_sigmas = edm_sampling_sigmas(18, 0.002, 80.0, 7.0)
    assert abs(few["mean_abs"] - teacher["mean_abs"]) > 0.2 or few["between"] > 0.3, few


def toy_batch(n: int = 32, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 3, generator=g)
    return Batch(obs, torch.rand(n, 2, generator=g) * 2 - 1, torch.zeros(n), obs, torch.zeros(n))


def test_diffusion_bc_optimises_the_hand_written_denoising_loss():
    """The actor's gradient is that of mean lambda(sigma) ||D(a + sigma z, sigma | s) - a||^2 on the
    update's own (sigma, z), with lambda = (sigma^2 + 0.25) / (0.5 sigma)^2 written out here."""
    torch.manual_seed(0)
    agent = make_agent(small(algo="diffusion_bc", hidden_dims=[16, 16], actor_grad_clip=0.0), 3, 2, 100)
    assert isinstance(agent, DiffusionBC)
    batch = toy_batch()
    agent.update(batch)
    policy0 = copy.deepcopy(agent.policy)
    drawn = []
    draw = agent.draw_noise
    agent.draw_noise = lambda n: drawn.append(draw(n)) or drawn[-1]  # type: ignore[method-assign]
    metrics = agent.update(batch)
    sigma, z = drawn[0]
    weight = (sigma ** 2 + 0.25) / (0.5 * sigma) ** 2
    denoised = policy0(batch.actions + sigma * z, sigma, batch.observations)
    loss = (weight * (denoised - batch.actions) ** 2).sum(-1).mean()
    assert metrics["loss/actor"].item() == pytest.approx(loss.item(), rel=1e-5)
    hand = torch.autograd.grad(loss, list(policy0.parameters()))
    for got, expected in zip([p.grad for p in agent.policy.parameters()], hand):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)


def test_cd_optimises_the_hand_written_distillation_loss():
    """L_CD: || f_theta(x_{n+1}, sigma_{n+1}) - f_theta^-(x_hat_n, sigma_n) ||^2 with x_hat_n the Heun step of
    the teacher's PF-ODE written out here (CD preset: squared L2, uniform weights, EMA target)."""
    torch.manual_seed(0)
    cfg = small(algo="consistency_bc", consistency=replace(CD, teacher_checkpoint="(in memory)"), hidden_dims=[16, 16],
                actor_grad_clip=0.0, ema_decay=0.0)
    agent = make_agent(cfg, 3, 2, 100)
    assert isinstance(agent, ConsistencyBC)
    teacher = DiffusionPolicy(3, 2, [16], 4, DiffusionConfig())
    agent.set_distillation_teacher(teacher)
    batch = toy_batch()
    for _ in range(2):
        agent.update(batch)
    assert agent.teacher is not None
    student0, target0 = copy.deepcopy(agent.policy), copy.deepcopy(agent.teacher)
    drawn = []
    draw = agent.draw_noise
    agent.draw_noise = lambda n: drawn.append(draw(n)) or drawn[-1]  # type: ignore[method-assign]
    agent.update(batch)
    pairs, obs, a = drawn[0].pairs, batch.observations, batch.actions
    s1, s0 = pairs.sigma_next, pairs.sigma
    x = a + s1 * pairs.z
    with torch.no_grad():
        d = (x - teacher(x, s1, obs)) / s1
        x_euler = x + (s0 - s1) * d
        x_hat = x + (s0 - s1) * 0.5 * (d + (x_euler - teacher(x_euler, s0, obs)) / s0)
        target = target0(x_hat, s0, obs)
    loss = (student0(x, s1, obs) - target).square().sum(-1).mean()
    got = [p.grad for p in agent.policy.parameters()]
    for g, hand in zip(got, torch.autograd.grad(loss, list(student0.parameters()))):
        torch.testing.assert_close(g, hand, rtol=1e-4, atol=1e-7)
    # control: CT's teacher input a + sigma_n z would have given another gradient
    with torch.no_grad():
        ct_target = target0(a + s0 * pairs.z, s0, obs)
    ct = torch.autograd.grad((student0(x, s1, obs) - ct_target).square().sum(-1).mean(), list(student0.parameters()))
    assert any(not torch.allclose(g, w, rtol=1e-3, atol=1e-6) for g, w in zip(got, ct))


def test_diffusion_bc_acts_in_the_box_and_round_trips_its_state():
    torch.manual_seed(0)
    cfg = small(algo="diffusion_bc", hidden_dims=[16, 16], diffusion=DiffusionConfig(sampling_steps=4))
    agent, other = make_agent(cfg, 3, 2, 100), make_agent(cfg, 3, 2, 100)
    batch = toy_batch()
    for _ in range(3):
        agent.update(batch)
    other.load_state_dict(agent.state_dict())
    assert other.step == 3 and set(agent.state_dict()) == {"policy", "ema_policy", "actor_optimizer",
                                                           "actor_scheduler", "step"}
    obs = 10 * torch.randn(64, 3)
    actions = agent.act(obs, torch.Generator().manual_seed(5))
    assert actions.shape == (64, 2) and actions.abs().max() <= 1.0
    torch.testing.assert_close(other.act(obs, torch.Generator().manual_seed(5)), actions, rtol=0, atol=0)
    torch.manual_seed(9)
    a = agent.update(batch)
    torch.manual_seed(9)
    b = other.update(batch)
    assert a["loss/actor"].item() == b["loss/actor"].item()
    cold = replace(cfg, act_temperature=0.0)
    deterministic = make_agent(cold, 3, 2, 100)
    deterministic.load_state_dict(agent.state_dict())
    first = deterministic.act(obs[:4], torch.Generator().manual_seed(1))
    torch.testing.assert_close(deterministic.act(obs[:4], torch.Generator().manual_seed(2)), first, rtol=0, atol=0)


MU, S = 0.1, 0.2  # Gaussian action data N(mu, s^2)


class ExactGaussianTeacher(DiffusionPolicy):
    """The exact denoiser of N(mu, s^2) data: D(x, sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu)."""

    def forward(self, x: Tensor, sigma: Tensor, obs: Tensor) -> Tensor:
        return MU + S ** 2 / (S ** 2 + sigma ** 2) * (x - MU)


def exact_trajectory(x: Tensor, sigma_from: float, sigma_to: float) -> Tensor:
    """x(sigma) = mu + (x(sigma') - mu) sqrt((s^2 + sigma^2) / (s^2 + sigma'^2))."""
    return MU + (x - MU) * math.sqrt((S ** 2 + sigma_to ** 2) / (S ** 2 + sigma_from ** 2))


def test_cd_with_an_exact_teacher_is_consistent_along_the_exact_trajectory():
    """After CD (the `cd` preset: 18-point grid, Heun, EMA target 0.95; 1500 updates, lr 1e-2) from the
    exact Gaussian denoiser, f(x(sigma), sigma) ~ x(sigma_min) at every sigma of an exact trajectory:
    within 0.04 on average over z in [-2, 2] (0.005-0.022 measured; the data's std is 0.2, and f = mu, a
    collapse, would be off by 0.16). The consistency function is the unbounded one (Song et al. 2023,
    Eq. 5): the bounded form leaves F only (1 - c_skip) tanh F to contract x at small sigma, which
    learns the same function far more slowly. Heun's 18-point trajectory itself ends within 7 % of the
    exact one (Euler's: 17 %), which the tolerance covers."""
    torch.manual_seed(0)
    cfg = small(algo="consistency_bc", consistency=replace(CD, teacher_checkpoint="(in memory)"), actor_lr=1e-2,
                ema_decay=0.0, bounded_actions=False)
    agent = make_agent(cfg, 1, 1, 1500)
    assert isinstance(agent, ConsistencyBC)
    agent.set_distillation_teacher(ExactGaussianTeacher(1, 1, [4], 4, DiffusionConfig()))
    for _ in range(1500):
        actions = MU + S * torch.randn(256, 1)
        agent.update(Batch(torch.zeros(256, 1), actions, torch.zeros(256), torch.zeros(256, 1), torch.zeros(256)))
    z = torch.linspace(-2.0, 2.0, 41).unsqueeze(-1)
    end = exact_trajectory(80.0 * z, 80.0, 0.002)  # x(sigma_min) of the trajectories through sigma_max z
    assert (end - MU).abs().mean().item() == pytest.approx(0.2 * z.abs().mean().item(), rel=1e-3)
    with torch.no_grad():
        for sigma in (80.0, 10.0, 2.0, 0.5, 0.1, 0.02):
            x = exact_trajectory(80.0 * z, 80.0, sigma)
            f = agent.policy(x, torch.full_like(x, sigma), torch.zeros_like(x))
            assert (f - end).abs().mean().item() < 0.04, (sigma, (f - end).abs().mean().item())


# --------------------------------------------------------------------------------------------------
# the training layer: a diffusion_bc checkpoint as the teacher of a run
# --------------------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python scripts/train.py agent=diffusion_bc` on the embedded Pendulum data, 20 steps."""
    run_dir = tmp_path_factory.mktemp("teacher") / "run"
    proc = run_script(*TINY_OVERRIDES, "steps=20", "agent=diffusion_bc", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    return run_dir


def student_config(teacher: Path | str, **fields: object) -> TrainConfig:
    cfg = tiny_config(steps=20, checkpoint_every=10, **fields)
    cfg.agent.algo, cfg.agent.eta = "consistency_bc", 0.0
    cfg.agent.consistency = replace(CD, teacher_checkpoint=str(teacher))
    return cfg


def test_the_command_line_trains_a_teacher_then_distils_it(teacher_run: Path, tmp_path: Path) -> None:
    payload = load_checkpoint(teacher_run / "checkpoint.pt")
    assert payload["config"]["agent"]["algo"] == "diffusion_bc" and payload["step"] == 20
    assert payload["config"]["agent"]["diffusion"]["sampling_steps"] == 18
    proc = run_script(*TINY_OVERRIDES, "steps=20", "agent=consistency_bc", "agent/consistency=cd",
                      f"agent.consistency.teacher_checkpoint={teacher_run / 'checkpoint.pt'}",
                      f"hydra.run.dir={tmp_path / 'student'}")
    assert proc.returncode == 0, proc.stderr
    student = load_checkpoint(tmp_path / "student" / "checkpoint.pt")
    c = student["config"]["agent"]["consistency"]
    assert (c["objective"], c["solver"], c["curriculum"], c["s1"], c["teacher_mu"]) == ("cd", "heun", "fixed", 17, 0.95)
    assert "distillation_teacher" not in student["agent"]  # reloaded from its file, not saved again
    records = read_metrics(tmp_path / "student")
    assert [r["step"] for r in records if "loss/consistency" in r] == [10, 20]
    assert all(math.isfinite(r["loss/consistency"]) for r in records if "loss/consistency" in r)


def test_the_cd_preset_asks_for_the_teachers_checkpoint() -> None:
    register_schema()
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        composed = compose("config", overrides=["agent=consistency_bc", "agent/consistency=cd"])
    with pytest.raises(ConfigError, match=r"diffusion_bc policy: set agent\.consistency\.teacher_checkpoint"):
        to_train_config(composed)


def test_a_diffusion_checkpoint_acts_with_another_number_of_heun_steps(teacher_run: Path) -> None:
    """evaluate.py's act_sampling_steps=N sets diffusion_bc's Heun steps (N + 1 grid levels, then 0)."""
    loaded = load_policy(teacher_run, device="cpu", act_sampling_steps=4)
    assert isinstance(loaded.agent, DiffusionBC) and loaded.config.agent.diffusion.sampling_steps == 4
    assert loaded.agent.act_sigmas == edm_sampling_sigmas(4, 0.002, 80.0, 7.0)
    act = make_act_fn(loaded.agent, loaded.transforms, seed=0)
    actions = act(loaded.transforms.obs_mean[None].repeat(3, 0))
    assert actions.shape == (3, 1) and (abs(actions) <= 2.0).all()  # Pendulum's torque bounds


def test_the_trainer_hands_the_teachers_ema_to_the_agent(teacher_run: Path, tmp_path: Path) -> None:
    trainer = Trainer(student_config(teacher_run), tmp_path)
    assert isinstance(trainer.agent, ConsistencyBC)
    teacher = trainer.agent.distillation_teacher
    assert teacher is not None and not any(p.requires_grad for p in teacher.parameters())
    saved = load_checkpoint(teacher_run / "checkpoint.pt")["agent"]["ema_policy"]
    for name, tensor in teacher.state_dict().items():
        assert torch.equal(tensor, saved[name]), name


def test_resumed_distillation_equals_the_straight_run(teacher_run: Path, tmp_path: Path) -> None:
    """20 steps straight == 10 steps, checkpoint, crash at 13, resume (the teacher reloaded from its file)."""
    cfg = student_config(teacher_run)
    straight = Trainer(cfg, tmp_path / "straight")
    straight.run()
    crashed = Trainer(cfg, tmp_path / "crashed")
    update = crashed.agent.update

    def crash(batch: Batch) -> dict[str, Tensor]:
        if crashed.agent.step == 13:
            raise KeyboardInterrupt
        return update(batch)

    crashed.agent.update = crash  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        crashed.run()
    train(replace(cfg, resume=str(tmp_path / "crashed")), tmp_path / "crashed")
    expected = straight.agent.state_dict()
    got = load_checkpoint(tmp_path / "crashed" / "checkpoint.pt")["agent"]
    for part in ("policy", "teacher", "ema_policy"):
        for name, tensor in expected[part].items():
            assert torch.equal(tensor, got[part][name]), (part, name)


def test_a_teacher_that_is_not_diffusion_bc_is_refused(tmp_path: Path) -> None:
    cfg = tiny_config(steps=10, checkpoint_every=10)
    cfg.agent.algo, cfg.agent.eta = "consistency_bc", 0.0
    train(cfg, tmp_path / "bc")
    with pytest.raises(ConfigError, match=r"teacher_checkpoint=.*holds a consistency_bc agent, but the teacher of "
                                          r"consistency distillation must be a diffusion_bc checkpoint"):
        Trainer(student_config(tmp_path / "bc"), tmp_path / "student")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        Trainer(student_config(tmp_path / "nowhere.pt"), tmp_path / "student2")


def test_a_teacher_from_another_dataset_is_refused(teacher_run: Path, tmp_path: Path) -> None:
    payload = load_checkpoint(teacher_run / "checkpoint.pt")
    other = dict(payload, dataset_info={**payload["dataset_info"], "name": "other/pendulum-v0"},
                 transforms={**payload["transforms"], "obs_mean": payload["transforms"]["obs_mean"] + 0.5})
    save_checkpoint(tmp_path / "other.pt", other)
    with pytest.raises(ConfigError, match=r"the teacher was trained on 'other/pendulum-v0', this run on "
                                          r"'cmrl/pendulum-mixed-v0', and their data transforms differ \(obs_mean"):
        Trainer(student_config(tmp_path / "other.pt"), tmp_path / "student")
    save_checkpoint(tmp_path / "wide.pt", dict(payload, obs_dim=11))
    with pytest.raises(ConfigError, match=r"dimension 11/1, but this run's dataset 'cmrl/pendulum-mixed-v0' has 3/1"):
        Trainer(student_config(tmp_path / "wide.pt"), tmp_path / "student2")


def test_diffusion_bc_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"agent\.diffusion\.sampling_steps must be >= 1"):
        to_train_config({"agent": {"algo": "diffusion_bc", "diffusion": {"sampling_steps": 0}}})
    with pytest.raises(ConfigError, match=r"agent\.act_candidates > 1 picks actions by Q, but diffusion_bc"):
        to_train_config({"agent": {"algo": "diffusion_bc", "act_candidates": 4}})
    with pytest.raises(ConfigError, match=r"agent\.consistency\.objective=cd distils a diffusion_bc policy"):
        to_train_config({"agent": {"algo": "consistency_bc", "consistency": {"objective": "cd"}}})
