"""The baselines (TD3+BC, IQL, ReBRAC) through one harness, as d3rlpy tests its algorithms: the published
configs, the Agent protocol (update, act, state_dict, load), resume exactness, the losses by hand on
tiny inputs, learning a contextual bandit, the fast path, bad config values, and the training loop
end to end. Small networks and one thread keep the file fast.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose, tiny_config
from omegaconf import OmegaConf
from torch import Tensor, nn

from cmrl.agents import IQL, TD3BC, Agent, AgentConfig, ReBRAC, make_agent
from cmrl.agents.iql import awr_weights, expectile_loss
from cmrl.data import Batch
from cmrl.data.dataset import DatasetInfo, TransitionData
from cmrl.data.returns import next_actions
from cmrl.envs import evaluate_policy
from cmrl.errors import CheckpointError, ConfigError
from cmrl.training.acting import load_policy, make_act_fn
from cmrl.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ["td3_bc", "iql", "rebrac"]
SWEPT = [*BASELINES, "diffusion_ql"]  # the agents of experiment=bench_baselines
S, A = 3, 2  # observation and action sizes of the toy batches


pytestmark = pytest.mark.usefixtures("one_thread")


def published(algo: str) -> AgentConfig:
    """The agent's configs/agent/<algo>.yaml, as Hydra would compose it."""
    node = OmegaConf.merge(OmegaConf.structured(AgentConfig),
                           OmegaConf.load(ROOT / "configs" / "agent" / f"{algo}.yaml"))
    cfg = OmegaConf.to_object(node)
    assert isinstance(cfg, AgentConfig)
    return cfg


def small(algo: str, **fields: object) -> AgentConfig:
    """The published config with 32x32 networks and `fields` merged on top (sections as dicts)."""
    node = OmegaConf.merge(OmegaConf.structured(published(algo)),
                           {"hidden_dims": [32, 32], "critic_hidden_dims": [32, 32], **fields})
    cfg = OmegaConf.to_object(node)
    assert isinstance(cfg, AgentConfig)
    return cfg


def toy_batch(n: int = 16, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(observations=torch.randn(n, S, generator=g), actions=torch.rand(n, A, generator=g) * 2 - 1,
                 rewards=torch.randn(n, generator=g), next_observations=torch.randn(n, S, generator=g),
                 terminals=(torch.rand(n, generator=g) < 0.2).float(), returns=torch.randn(n, generator=g),
                 next_actions=torch.rand(n, A, generator=g) * 2 - 1)


def flat_state(agent: Agent) -> dict[str, Tensor]:
    """Every tensor of the agent's state dict (optimiser moments included), by path."""
    out: dict[str, Tensor] = {}

    def walk(value: object, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}/{k}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{path}/{i}")
        elif isinstance(value, Tensor):
            out[path] = value

    walk(agent.state_dict(), "")
    return out


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------
def test_published_defaults():
    td3, iql, rebrac = (published(a) for a in BASELINES)
    assert (td3.td3_bc.alpha, td3.td3_bc.policy_noise, td3.td3_bc.noise_clip, td3.td3_bc.policy_freq) == (
        2.5, 0.2, 0.5, 2)
    assert (td3.actor_lr, td3.critic_lr, td3.hidden_dims, td3.activation, td3.min_lr_ratio) == (3e-4, 3e-4, [256, 256],
                                                                                               "relu", 1.0)
    assert (iql.iql.expectile, iql.iql.temperature, iql.iql.max_weight, iql.iql.deterministic) == (
        0.7, 3.0, 100.0, False)
    assert (iql.actor_lr, iql.critic_lr, iql.min_lr_ratio, iql.hidden_dims) == (3e-4, 3e-4, 0.0, [256, 256])
    assert (rebrac.rebrac.actor_bc_coef, rebrac.rebrac.critic_bc_coef, rebrac.critic_layer_norm) == (1.0, 1.0, True)
    assert (rebrac.actor_lr, rebrac.critic_lr, rebrac.hidden_dims, rebrac.critic_hidden_dims) == (
        1e-3, 1e-3, [256] * 3, [256] * 3)
    for cfg in (td3, iql, rebrac):
        assert (cfg.discount, cfg.tau, cfg.ensemble_size, cfg.actor_grad_clip, cfg.critic_grad_clip) == (
            0.99, 0.005, 2, 0.0, 0.0)


@pytest.mark.parametrize("algo, key, value, message", [
    ("td3_bc", "td3_bc.alpha", -1.0, r"agent\.td3_bc\.alpha must be >= 0"),
    ("td3_bc", "td3_bc.policy_freq", 0, r"agent\.td3_bc\.policy_freq must be >= 1"),
    ("td3_bc", "td3_bc.noise_clip", -0.1, r"agent\.td3_bc\.noise_clip must be >= 0"),
    ("iql", "iql.expectile", 1.0, r"agent\.iql\.expectile must be in \(0, 1\)"),
    ("iql", "iql.temperature", 0.0, r"agent\.iql\.temperature must be > 0"),
    ("iql", "iql.max_weight", -1.0, r"agent\.iql\.max_weight must be > 0"),
    ("rebrac", "rebrac.critic_bc_coef", -1.0, r"agent\.rebrac\.critic_bc_coef must be >= 0"),
    ("rebrac", "rebrac.policy_noise", -0.2, r"agent\.rebrac\.policy_noise must be >= 0"),
    ("rebrac", "activation", "tanh", r"agent\.activation must be one of mish, relu"),
    ("td3_bc", "act_candidates", 4, r"agent\.act_candidates > 1 .* td3_bc acts deterministically"),
])
def test_bad_config_values_name_the_key(algo, key, value, message):
    node = OmegaConf.structured(small(algo))
    OmegaConf.update(node, key, value)
    cfg = OmegaConf.to_object(node)
    with pytest.raises(ConfigError, match=message):
        make_agent(cfg, S, A, 100)


# --------------------------------------------------------------------------------------------------
# the Agent protocol, checkpoints and resume
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", BASELINES)
def test_agent_protocol_update_act_save_load(algo):
    torch.manual_seed(0)
    agent = make_agent(small(algo), S, A, 100)
    assert isinstance(agent, Agent) and agent.device == torch.device("cpu")
    batch = toy_batch()
    for _ in range(2):  # two updates: the delayed actor step of TD3+BC and ReBRAC happens on the second
        metrics = agent.update(batch)
    assert agent.step == 2
    assert {"loss/critic", "loss/actor", "lr/actor"} <= set(metrics)
    assert all(v.dim() == 0 and not v.requires_grad and torch.isfinite(v) for v in metrics.values())
    assert agent.diagnostics(batch) == {}
    obs = torch.randn(5, S) * 10
    actions = agent.act(obs, torch.Generator().manual_seed(1))
    assert actions.shape == (5, A) and actions.abs().max() <= 1.0
    assert torch.equal(actions, agent.act(obs))  # deterministic: the generator is unused

    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(123)  # other initial weights, overwritten by the load
    other = make_agent(small(algo), S, A, 100)
    other.load_state_dict(torch.load(buffer, weights_only=False))
    assert other.step == 2 and torch.equal(other.act(obs), actions)
    with pytest.raises(CheckpointError, match="'critic_target'"):
        other.load_state_dict({k: v for k, v in agent.state_dict().items() if k != "critic_target"})


@pytest.mark.parametrize("algo", BASELINES)
def test_resume_is_exact(algo):
    """N steps, a state_dict round trip into a fresh agent, N more == 2N steps straight, bit for bit."""
    n = 5
    batches = [toy_batch(seed=i) for i in range(2 * n)]
    torch.manual_seed(0)
    straight = make_agent(small(algo, min_lr_ratio=0.1), S, A, 2 * n)  # a decaying schedule: its state matters
    for b in batches:
        straight.update(b)

    torch.manual_seed(0)
    first = make_agent(small(algo, min_lr_ratio=0.1), S, A, 2 * n)
    for b in batches[:n]:
        first.update(b)
    state, rng = first.state_dict(), torch.random.get_rng_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    resumed = make_agent(small(algo, min_lr_ratio=0.1), S, A, 2 * n)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    torch.random.set_rng_state(rng)
    for b in batches[n:]:
        resumed.update(b)

    expected, got = flat_state(straight), flat_state(resumed)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


def test_critic_targets_follow_the_actor_every_policy_freq_updates():
    torch.manual_seed(0)
    agent = make_agent(small("td3_bc"), S, A, 100)
    before = [p.clone() for p in agent.actor.parameters()], [p.clone() for p in agent.critic_target.parameters()]
    agent.update(toy_batch())  # update 1 of policy_freq 2: critic only
    assert all(torch.equal(a, b) for a, b in zip(before[0], agent.actor.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before[1], agent.critic_target.parameters()))
    agent.update(toy_batch())  # update 2: actor, then both targets
    assert not all(torch.equal(a, b) for a, b in zip(before[0], agent.actor.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(before[1], agent.critic_target.parameters()))


# --------------------------------------------------------------------------------------------------
# the losses by hand
# --------------------------------------------------------------------------------------------------
class Fixed(nn.Module):
    """A stand-in actor that returns fixed actions whatever the state."""

    def __init__(self, actions: list[list[float]]):
        super().__init__()
        self.actions = torch.tensor(actions)

    def forward(self, obs: Tensor) -> Tensor:
        return self.actions


class LinearQ(nn.Module):
    """A stand-in ensemble: Q_k(s, a) = w_k . a + b_k (shape (K, B)), and the same values from `frozen`."""

    def __init__(self, w: list[list[float]], b: list[float]):
        super().__init__()
        self.w, self.b = torch.tensor(w), torch.tensor(b)

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.w @ action.T + self.b[:, None]

    frozen = forward


def stand_ins(agent: TD3BC, actions: list[list[float]], w: list[list[float]], b: list[float]) -> None:
    agent.actor = agent.actor_target = Fixed(actions)
    agent.critic = agent.critic_target = LinearQ(w, b)


def batch_of(actions: list[list[float]], next_actions: list[list[float]] | None = None,
             rewards: tuple[float, float] = (1.0, 2.0), terminals: tuple[float, float] = (0.0, 1.0)) -> Batch:
    return Batch(torch.zeros(2, S), torch.tensor(actions), torch.tensor(rewards), torch.zeros(2, S),
                 torch.tensor(terminals), None, torch.tensor(next_actions) if next_actions else None)


def test_td3_bc_actor_loss_by_hand():
    agent = make_agent(small("td3_bc", ensemble_size=2), S, A, 100)
    assert isinstance(agent, TD3BC)
    # pi(s) = (0.5, 0), (-0.5, 0); Q_1 = 2 a_1 + 1 -> 2, 0 (Q_2 is ignored); the data's actions are 0
    stand_ins(agent, [[0.5, 0.0], [-0.5, 0.0]], w=[[2.0, 0.0], [-9.0, 0.0]], b=[1.0, 5.0])
    loss, metrics = agent.actor_loss(batch_of([[0.0, 0.0], [0.0, 0.0]]))
    lam = 2.5 / 1.0  # alpha / mean|Q_1|
    bc = (0.25 + 0 + 0.25 + 0) / 4  # (pi - a)^2 averaged over the batch and the action dimensions
    assert metrics["q/lambda"].item() == pytest.approx(lam)
    assert loss.item() == pytest.approx(-lam * 1.0 + bc)


def test_td3_target_smoothing_clips_noise_and_actions():
    agent = make_agent(small("td3_bc"), S, A, 100)
    agent.actor_target = Fixed([[0.9, 0.0], [0.0, -0.1]])
    eps = torch.tensor([[10.0, -1.0], [1.0, 0.5]])  # sigma eps = (2, -0.2), (0.2, 0.1): the first clipped to 0.5
    expected = torch.tensor([[1.0, -0.2], [0.2, 0.0]])  # 0.9 + 0.5 clamped to 1
    assert torch.allclose(agent.target_actions(torch.zeros(2, S), eps), expected)


def test_td3_bc_target_is_clipped_double_q():
    agent = make_agent(small("td3_bc", discount=0.5), S, A, 100)
    stand_ins(agent, [[0.5, 0.0], [-0.5, 0.0]], w=[[2.0, 0.0], [1.0, 0.0]], b=[0.0, 0.0])
    agent.cfg.td3_bc.policy_noise = 0.0
    # min_k Q'_k(s', a') = min(1, 0.5) = 0.5 and min(-1, -0.5) = -1; the second row is terminal
    y = agent.td_target(batch_of([[0.0, 0.0]] * 2), torch.zeros(2, A))
    assert torch.allclose(y, torch.tensor([1.0 + 0.5 * 0.5, 2.0]))


def test_rebrac_critic_target_penalises_distance_to_the_next_data_action():
    agent = make_agent(small("rebrac", discount=0.5), S, A, 100)
    assert isinstance(agent, ReBRAC)
    stand_ins(agent, [[0.5, 0.0], [-0.5, 0.0]], w=[[2.0, 0.0], [1.0, 0.0]], b=[0.0, 0.0])
    agent.cfg.rebrac.policy_noise, agent.cfg.rebrac.critic_bc_coef = 0.0, 2.0
    batch = batch_of([[0.0, 0.0]] * 2, next_actions=[[0.5, 1.0], [0.0, 0.0]], terminals=(0.0, 0.0))
    # row 1: min Q' = 0.5, ||a' - a'_D||^2 = 0 + 1 = 1; row 2: min Q' = -1, ||.||^2 = 0.25
    y = agent.td_target(batch, torch.zeros(2, A))
    assert torch.allclose(y, torch.tensor([1.0 + 0.5 * (0.5 - 2.0 * 1.0), 2.0 + 0.5 * (-1.0 - 2.0 * 0.25)]))
    with pytest.raises(ValueError, match="next actions"):
        agent.td_target(batch_of([[0.0, 0.0]] * 2), torch.zeros(2, A))


def test_rebrac_actor_loss_by_hand():
    agent = make_agent(small("rebrac"), S, A, 100)
    agent.cfg.rebrac.actor_bc_coef = 0.5
    # pi = (0.5, 0), (-0.5, 1); Q_1 = a_1 + a_2, Q_2 = 2 a_1 -> (0.5, 0.5), (1, -1): min = 0.5, -1
    stand_ins(agent, [[0.5, 0.0], [-0.5, 1.0]], w=[[1.0, 1.0], [2.0, 0.0]], b=[0.0, 0.0])
    loss, metrics = agent.actor_loss(batch_of([[0.0, 0.0], [0.0, 0.0]]))
    lam = 1 / 0.75  # 1 / mean|min_k Q_k|
    bc = (0.25 + (0.25 + 1.0)) / 2  # ||pi - a||^2 summed over the action dimensions, averaged over the batch
    assert metrics["q/lambda"].item() == pytest.approx(lam)
    assert loss.item() == pytest.approx(0.5 * bc - lam * (0.5 - 1.0) / 2)


def test_expectile_loss_and_awr_weights_by_hand():
    u = torch.tensor([2.0, -1.0])
    assert expectile_loss(u, 0.7).item() == pytest.approx((0.7 * 4 + 0.3 * 1) / 2)
    assert expectile_loss(u, 0.5).item() == pytest.approx(0.5 * (4 + 1) / 2)  # half the squared error
    w = awr_weights(torch.tensor([0.0, 1.0, 10.0, -1.0], requires_grad=True), beta=3.0, max_weight=100.0)
    assert torch.allclose(w, torch.tensor([1.0, math.exp(3.0), 100.0, math.exp(-3.0)]))
    assert not w.requires_grad


def test_iql_losses_by_hand():
    torch.manual_seed(0)
    agent = make_agent(small("iql", discount=0.5), S, A, 100)
    assert isinstance(agent, IQL)
    batch = toy_batch(4)
    next_v = torch.tensor([1.0, 2.0, 3.0, 4.0])
    _, metrics = agent.critic_loss(batch, next_v)
    y = batch.rewards + 0.5 * (1 - batch.terminals) * next_v
    assert metrics["q/target_mean"].item() == pytest.approx(y.mean().item())
    q = agent.critic(batch.observations, batch.actions)
    assert metrics["loss/critic"].item() == pytest.approx(((q - y) ** 2).mean(1).sum().item(), rel=1e-6)

    loss, advantage, _ = agent.value_loss(batch)
    a = agent.critic_target(batch.observations, batch.actions).min(0).values - agent.value(batch.observations)
    assert torch.allclose(advantage, a.detach())
    assert loss.item() == pytest.approx(expectile_loss(a, 0.7).item())

    adv = torch.tensor([0.0, 0.1, -0.2, 5.0])
    loss, _ = agent.actor_loss(batch, adv)
    normal = torch.distributions.Normal(agent.actor(batch.observations), torch.exp(agent.actor.log_std))
    log_prob = normal.log_prob(batch.actions).sum(-1)
    assert loss.item() == pytest.approx((-(awr_weights(adv, 3.0, 100.0) * log_prob)).mean().item(), rel=1e-5)

    det = make_agent(small("iql", iql={"deterministic": True}), S, A, 100)
    loss, _ = det.actor_loss(batch, adv)
    err = (det.actor(batch.observations) - batch.actions).square().sum(-1)
    assert loss.item() == pytest.approx((awr_weights(adv, 3.0, 100.0) * err).mean().item(), rel=1e-6)


def test_iql_schedules_only_the_actor():
    agent = make_agent(small("iql"), S, A, 4)
    for _ in range(2):
        agent.update(toy_batch())
    assert agent.actor_optimizer.param_groups[0]["lr"] == pytest.approx(3e-4 * 0.5)  # cosine half way
    assert agent.critic_optimizer.param_groups[0]["lr"] == agent.value_optimizer.param_groups[0]["lr"] == 3e-4


# --------------------------------------------------------------------------------------------------
# learning
# --------------------------------------------------------------------------------------------------
def f(s: Tensor) -> Tensor:
    return 0.5 * s


def bandit_batch(n: int, g: torch.Generator) -> Batch:
    """A 1-D contextual bandit (gamma = 0): r = -(a - f(s))^2; the data acts f(s) + 0.4 + N(0, 0.3^2)."""
    s = torch.rand(n, 1, generator=g) * 2 - 1
    a = (f(s) + 0.4 + 0.3 * torch.randn(n, 1, generator=g)).clamp(-1, 1)
    r = -(a - f(s)).square().squeeze(1)
    return Batch(s, a, r, s, torch.zeros(n), None, a)


@pytest.mark.parametrize("algo, fields", [
    ("td3_bc", {}),
    ("iql", {"iql": {"temperature": 10.0}}),  # a sharper extraction than beta = 3 for rewards this small
    ("rebrac", {}),
])
def test_each_baseline_beats_the_data_on_a_contextual_bandit(algo, fields):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    agent = make_agent(small(algo, discount=0.0, actor_lr=1e-3, critic_lr=1e-3, min_lr_ratio=1.0, **fields), 1, 1, 600)
    data = bandit_batch(4096, g)
    for _ in range(600):
        index = torch.randint(4096, (128,), generator=g)
        agent.update(Batch(*(t[index] if t is not None else None for t in data)))
    s = torch.linspace(-1, 1, 101)[:, None]
    reward = -(agent.act(s) - f(s)).square().mean().item()
    data_mean_reward = -(0.4 ** 2)  # the data's mean action f(s) + 0.4
    assert reward > 0.5 * data_mean_reward, (algo, reward)


# --------------------------------------------------------------------------------------------------
# the data's next actions (ReBRAC)
# --------------------------------------------------------------------------------------------------
def test_next_actions_follow_each_episode():
    obs = np.arange(5, dtype=np.float32)[:, None]
    nxt = obs + 1
    nxt[2] = 42.0  # the episode after row 2 does not continue at row 3
    actions = np.asarray([[10.0], [11.0], [12.0], [13.0], [14.0]], np.float32)
    terminals = np.asarray([0, 0, 0, 1, 0], np.float32)
    info = DatasetInfo(name="toy", source="embedded", env_id="Pendulum-v1", ref_min_score=None, ref_max_score=None,
                       action_low=-np.ones(1, np.float32), action_high=np.ones(1, np.float32),
                       behaviour_returns=np.zeros(0))
    data = TransitionData(obs, actions, np.zeros(5, np.float32), nxt, terminals, np.zeros(5, np.float32), info)
    assert next_actions(data)[:, 0].tolist() == [11.0, 12.0, 12.0, 13.0, 14.0]  # a_t where the episode ends


# --------------------------------------------------------------------------------------------------
# the fast path and the training loop
# --------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("algo", BASELINES)
def test_compiled_losses_match_eager(algo):
    """agent.compile=true (torch.compile of the losses) trains as the eager agent, up to rounding."""
    batches = [toy_batch(seed=i) for i in range(4)]
    agents = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        agent = make_agent(small(algo, compile=compile_), S, A, 100)
        for b in batches:
            agent.update(b)
        agents.append(agent)
    eager, compiled = (flat_state(a) for a in agents)
    for key in eager:
        assert torch.allclose(eager[key], compiled[key], atol=1e-5, rtol=1e-4), key


@pytest.mark.parametrize("algo", BASELINES)
def test_training_loop_trains_checkpoints_and_evaluates(algo, tmp_path):
    cfg = tiny_config(steps=20, checkpoint_every=10)
    cfg.agent = small(algo)
    summary = train(cfg, tmp_path)
    assert summary.algo == algo and summary.steps == 20 and np.isfinite(summary.final_return_mean)
    loaded = load_policy(tmp_path / "checkpoint.pt", device="cpu")
    assert loaded.step == 20 and loaded.config.agent.algo == algo
    result = evaluate_policy(make_act_fn(loaded.agent, loaded.transforms, 0), loaded.env_id, episodes=2, seed=0,
                             num_envs=2)
    assert len(result.returns) == 2


# --------------------------------------------------------------------------------------------------
# the benchmark protocol
# --------------------------------------------------------------------------------------------------
PROTOCOL = ("steps", "batch_size", "eval_every", "eval_episodes", "eval_envs", "eval_seed", "checkpoint_every",
            "device", "threads")


def test_bench_baselines_runs_the_protocol_of_bench_d4rl_style_with_published_settings():
    consistency, baselines = compose(["experiment=bench_d4rl_style"]), compose(["experiment=bench_baselines"])
    assert all(consistency[k] == baselines[k] for k in PROTOCOL)
    ours, theirs = consistency.hydra.sweeper.params, baselines.hydra.sweeper.params
    assert (ours.dataset, ours.seed) == (theirs.dataset, theirs.seed)
    assert theirs.agent.split(",") == SWEPT and baselines.agent.algo == "td3_bc"
    assert baselines.hydra.launcher.n_jobs == consistency.hydra.launcher.n_jobs
    for algo in SWEPT:  # the consistency agents' tuned settings do not reach the baselines
        cfg = compose(["experiment=bench_baselines", f"agent={algo}"])
        expected = published(algo)
        for key in ("actor_lr", "critic_lr", "critic_layer_norm", "hidden_dims", "compile", "activation"):
            assert cfg.agent[key] == getattr(expected, key), (algo, key)


@pytest.mark.slow
def test_bench_baselines_sweep_runs_every_baseline(tmp_path):
    """The real experiment through scripts/train.py -m (joblib), cut down to one dataset and seed."""
    from test_sweeps import TINY, assert_complete_run, run_config, write_d4rl_file
    from test_sweeps import train as train_cli

    data = tmp_path / "bench"
    write_d4rl_file(data / "hopper-medium.hdf5", "Hopper-v5", 400, (-20.272305, 3234.3))
    proc = train_cli(["-m", "experiment=bench_baselines", *TINY, "seed=0", "dataset=bench/hopper-medium",
                      "hydra.sweep.dir=sweep"], tmp_path, env={"CMRL_BENCH_DATA": str(data)})
    assert proc.returncode == 0, proc.stderr
    for job, algo in enumerate(SWEPT):
        run = tmp_path / "sweep" / "bench" / "hopper-medium" / algo / f"{job}_seed0"
        assert assert_complete_run(run)["algo"] == algo
        assert run_config(run)["logger"]["tags"] == ["bench_baselines"]
