"""scripts/collect.py: Minari datasets from a random policy or a cmrl checkpoint, read back by cmrl."""
from __future__ import annotations

import json
from pathlib import Path

import minari
import numpy as np
import pytest
from helpers import load_script

from cmrl.data import load_minari

collect = load_script("collect")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    return path


def _episodes(dataset_id: str):
    return list(minari.load_dataset(dataset_id).iterate_episodes())


def test_random_policy_dataset_round_trips_through_cmrl(store: Path, capsys: pytest.CaptureFixture):
    assert collect.main(["test/pendulum-random-v0", "--policy", "random", "--env", "Pendulum-v1", "--episodes", "3",
                         "--envs", "2", "--ref-min", "-1200", "--ref-max", "-150"]) == 0
    assert "train on it" in capsys.readouterr().out
    data = load_minari("test/pendulum-random-v0")
    assert data.observations.shape == (600, 3) and data.actions.shape == (600, 1)
    assert data.info.env_id == "Pendulum-v1"
    assert (data.info.ref_min_score, data.info.ref_max_score) == (-1200.0, -150.0)
    assert data.timeouts.sum() == 3 and data.terminals.sum() == 0
    episodes = _episodes("test/pendulum-random-v0")
    assert sorted(int(e.id) for e in episodes) == [0, 1, 2]
    for e in episodes:  # N + 1 observations for N actions; actions inside the bounds
        assert len(e.observations) == len(e.actions) + 1 == 201
        assert np.all(np.abs(e.actions) <= 2.0)
    meta = json.loads(minari.load_dataset("test/pendulum-random-v0").storage.metadata["cmrl_collect"])
    assert meta["policy"] == "random" and meta["episodes"] == 3 and meta["ref_source"].startswith("command line")


def test_step_budget_is_exact_and_cut_episodes_are_truncated_not_terminal(store: Path):
    assert collect.main(["test/hopper-random-v0", "--policy", "random", "--env", "Hopper-v5", "--steps", "250",
                         "--envs", "3", "--seed", "5"]) == 0
    data = load_minari("test/hopper-random-v0")
    assert len(data.rewards) == 250
    assert (data.info.ref_min_score, data.info.ref_max_score) == (-20.272305, 3234.3)  # D4RL's hopper refs
    for e in _episodes("test/hopper-random-v0"):
        assert e.terminations[-1] or e.truncations[-1]  # every episode is closed
        assert not (e.terminations[-1] and e.truncations[-1])
        assert not np.any(e.terminations[:-1]) and not np.any(e.truncations[:-1])


def test_rollout_of_a_deterministic_policy_does_not_depend_on_the_number_of_envs():
    def act(obs):  # deterministic, bounded torque
        return np.clip(-2.0 * obs[:, 2:3], -2.0, 2.0).astype(np.float32)

    one = collect.rollout("Pendulum-v1", act, seed=11, episodes=3, steps=None, num_envs=1)
    three = collect.rollout("Pendulum-v1", act, seed=11, episodes=3, steps=None, num_envs=3)
    assert [e.seed for e in one] == [e.seed for e in three] == [11, 12, 13]
    for a, b in zip(one, three):
        np.testing.assert_array_equal(np.asarray(a.observations), np.asarray(b.observations))
        assert a.rewards == b.rewards
        # the observation chain is aligned: obs[0] is the reset observation of seed e.seed
        import gymnasium as gym
        env = gym.make("Pendulum-v1")
        np.testing.assert_array_equal(env.reset(seed=a.seed)[0], a.observations[0])


def test_exploration_noise_stays_in_bounds():
    import gymnasium as gym

    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    act = collect.with_exploration(lambda obs: np.full((len(obs), 1), 1.9, np.float32), space, 1.0, 0.5,
                                   np.random.default_rng(0))
    out = act(np.zeros((1000, 3)))
    assert out.dtype == np.float32 and out.shape == (1000, 1)
    assert np.all(np.abs(out) <= 2.0) and out.std() > 0.5


def test_missing_reference_scores_and_existing_ids_are_clear_errors(store: Path):
    with pytest.raises(SystemExit, match="no reference scores known for Pendulum-v1"):
        collect.main(["test/p-v0", "--policy", "random", "--env", "Pendulum-v1", "--episodes", "1"])
    with pytest.raises(SystemExit, match="needs --env"):
        collect.main(["test/p-v0", "--policy", "random", "--episodes", "1"])
    with pytest.raises(SystemExit, match="bad dataset id"):
        collect.main(["not an id", "--policy", "random", "--env", "Pendulum-v1", "--episodes", "1",
                      "--ref-min", "0", "--ref-max", "1"])
    args = ["test/p-v0", "--policy", "random", "--env", "Pendulum-v1", "--episodes", "1",
            "--ref-min", "random", "--ref-max", "-100", "--ref-episodes", "2"]
    assert collect.main(args) == 0
    with pytest.raises(SystemExit, match="already exists"):
        collect.main(args)
    assert collect.main(args + ["--overwrite"]) == 0
    ref_min = load_minari("test/p-v0").info.ref_min_score
    assert -1800 < ref_min < -600  # measured: the random policy's mean return on Pendulum-v1


def test_checkpoint_policy_dataset_takes_its_env_and_references(store: Path, tmp_path: Path):
    from cmrl.training.config import TrainConfig
    from cmrl.training.loop import train

    cfg = TrainConfig(steps=5, batch_size=16, eval_every=0, eval_episodes=1, eval_envs=1, checkpoint_every=0,
                      device="cpu")
    cfg.agent.hidden_dims = [16, 16]
    cfg.agent.critic_hidden_dims = [16, 16]
    cfg.logger.progress_bar = False
    cfg.logger.console = False
    train(cfg, tmp_path / "run")
    assert collect.main(["test/pendulum-ac-v0", "--policy", str(tmp_path / "run"), "--episodes", "2",
                         "--noise", "0.1", "--seed", "3"]) == 0
    data = load_minari("test/pendulum-ac-v0")
    assert data.info.env_id == "Pendulum-v1" and len(data.rewards) == 400
    from cmrl.data.embedded import RANDOM_POLICY_RETURN, SCRIPTED_POLICY_RETURN

    assert (data.info.ref_min_score, data.info.ref_max_score) == (RANDOM_POLICY_RETURN, SCRIPTED_POLICY_RETURN)
    meta = minari.load_dataset("test/pendulum-ac-v0").storage.metadata
    assert "consistency_ac checkpoint" in meta["algorithm_name"]
    assert json.loads(meta["cmrl_collect"])["policy_step"] == 5
