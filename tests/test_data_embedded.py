"""The embedded Pendulum dataset: a controller that balances, made once, mixed quality as documented."""
import json

import gymnasium as gym
import numpy as np
import pytest

from cmrl.data import DatasetConfig, DatasetError, embedded, load_dataset, scripted_pendulum_action
from cmrl.data.embedded import (
    BEHAVIOUR_SCORE_RANGE,
    EMBEDDED_DATASET_ID,
    EPISODES,
    RANDOM_POLICY_RETURN,
    SCRIPTED_POLICY_RETURN,
    balance_gain,
    build_episodes,
    ensure_embedded_dataset,
    measure_reference_returns,
    rollout_episode,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A Minari store holding the embedded dataset, made once for this module."""
    path = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(path))
        ensure_embedded_dataset()
        yield path


def test_scripted_controller_balances_from_a_seeded_start():
    episode = rollout_episode(gym.make("Pendulum-v1"), scripted_pendulum_action, seed=0)
    assert sum(episode.rewards) > -300
    cos, _, thdot = episode.observations[-1]
    assert cos > 0.999 and abs(thdot) < 0.05  # resting upright at the end


def test_scripted_controller_swings_up_from_rest_hanging_down():
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    env.unwrapped.state = np.array([np.pi, 0.0])  # the hardest start: no energy, no velocity
    obs = np.array([-1.0, 0.0, 0.0], np.float32)
    for _ in range(200):
        action = scripted_pendulum_action(obs)
        assert action.shape == (1,) and action.dtype == np.float32 and abs(action[0]) <= 2.0
        obs, *_ = env.step(action)
    assert obs[0] > 0.999


def test_balance_gain_stabilises_the_linearised_pendulum():
    dt = 0.05
    a = np.array([[1 + 15 * dt * dt, dt], [15 * dt, 1.0]])
    b = np.array([[3 * dt * dt], [3 * dt]])
    closed_loop = a - b @ balance_gain()[None, :]
    assert np.abs(np.linalg.eigvals(closed_loop)).max() < 1.0


def test_reference_returns_match_a_fresh_measurement():
    random_return, scripted_return = measure_reference_returns(episodes=40)
    assert random_return == pytest.approx(RANDOM_POLICY_RETURN, abs=150)  # random returns: std ~ 300
    assert scripted_return == pytest.approx(SCRIPTED_POLICY_RETURN, abs=40)  # scripted returns: std ~ 90


def test_episodes_are_a_deterministic_function_of_the_seed():
    first, again, other = build_episodes(0, episodes=3), build_episodes(0, episodes=3), build_episodes(1, episodes=3)
    for x, y, z in zip(first, again, other):
        np.testing.assert_array_equal(x.observations, y.observations)
        np.testing.assert_array_equal(x.actions, y.actions)
        assert not np.array_equal(x.observations, z.observations)


def test_dataset_content_and_behaviour_score(store):
    data = load_dataset(DatasetConfig())
    info = data.info
    assert (info.name, info.source, info.env_id) == (EMBEDDED_DATASET_ID, "embedded", "Pendulum-v1")
    assert (info.ref_min_score, info.ref_max_score) == (RANDOM_POLICY_RETURN, SCRIPTED_POLICY_RETURN)
    np.testing.assert_array_equal(info.action_low, [-2.0])
    assert len(data) == EPISODES * 200 and len(info.behaviour_returns) == EPISODES
    assert data.timeouts.sum() == EPISODES and data.terminals.sum() == 0  # all end by the time limit
    np.testing.assert_array_equal(np.flatnonzero(data.timeouts), np.arange(199, EPISODES * 200, 200))
    scores = 100 * (info.behaviour_returns - RANDOM_POLICY_RETURN) / (SCRIPTED_POLICY_RETURN - RANDOM_POLICY_RETURN)
    assert BEHAVIOUR_SCORE_RANGE[0] <= scores.mean() <= BEHAVIOUR_SCORE_RANGE[1]
    assert (scores > 90).sum() >= EPISODES // 5  # the clean controller's episodes are there to learn from
    first = build_episodes(0, episodes=1)[0]  # episode 0 of the dataset, rebuilt
    np.testing.assert_allclose(data.observations[:200], first.observations[:-1], rtol=1e-6)
    np.testing.assert_allclose(data.next_observations[:200], first.observations[1:], rtol=1e-6)
    np.testing.assert_allclose(data.actions[:200], first.actions, rtol=1e-6)


def test_dataset_is_created_once(store, monkeypatch):
    metadata = store / EMBEDDED_DATASET_ID / "data" / "metadata.json"
    before = metadata.stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("the embedded dataset was built again")

    monkeypatch.setattr(embedded, "build_episodes", fail)
    assert ensure_embedded_dataset() == EMBEDDED_DATASET_ID
    assert metadata.stat().st_mtime_ns == before
    assert [p.name for p in store.iterdir() if p.name.startswith(".")] == []  # no build folder left behind


def test_a_concurrent_creator_finishing_first_is_accepted(store):
    target = store / EMBEDDED_DATASET_ID
    embedded._create(EMBEDDED_DATASET_ID, 0, target)  # its rename fails: the dataset is already there
    assert json.loads((target / "data" / "metadata.json").read_text())["total_episodes"] == EPISODES
    assert [p.name for p in store.iterdir() if p.name.startswith(".")] == []


def test_existing_dataset_with_another_seed_is_refused(store):
    with pytest.raises(DatasetError, match="was made with seed 0, not 1; delete it"):
        ensure_embedded_dataset(seed=1)


def test_incomplete_dataset_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    (tmp_path / EMBEDDED_DATASET_ID).mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no complete Minari dataset; delete it"):
        ensure_embedded_dataset()


def test_unknown_embedded_id(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(DatasetError, match="unknown embedded dataset 'cmrl/cartpole-v0'"):
        load_dataset(DatasetConfig(name="cmrl/cartpole-v0"))
