"""Minari loader: transitions line up with each episode's N+1 observations, episode by episode."""
from __future__ import annotations

import warnings

import gymnasium as gym
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from cmrl.data import DatasetConfig, DatasetError, load_dataset, load_minari

DATASET_ID = "cmrltest/known-v0"
# (steps, terminated, truncated) per episode; the last episode is incomplete (neither)
EPISODES = [(3, True, False), (5, False, True), (1, True, False), (4, False, False)]
ACTION_LOW, ACTION_HIGH = np.array([-10.0, -20.0]), np.array([10.0, 5.0])


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """An empty Minari store in a temporary folder."""
    path = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    return path


def obs_of(episode: int, step: int) -> list[float]:
    return [episode, step, 100 * episode + step]


def action_of(episode: int, step: int) -> list[float]:
    return [episode + 0.1 * step, -step]


def reward_of(episode: int, step: int) -> float:
    return 10.0 * episode + step


def create(dataset_id: str, buffers: list[EpisodeBuffer], **kwargs) -> minari.MinariDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return minari.create_dataset_from_buffers(
            dataset_id=dataset_id, buffer=buffers, algorithm_name="test", author="test",
            author_email="test@example.com", code_permalink="test", description="test", **kwargs
        )


def known_buffers() -> list[EpisodeBuffer]:
    return [
        EpisodeBuffer(
            observations=np.array([obs_of(e, t) for t in range(steps + 1)], dtype=np.float32),
            actions=np.array([action_of(e, t) for t in range(steps)], dtype=np.float32),
            rewards=[reward_of(e, t) for t in range(steps)],
            terminations=[terminated and t == steps - 1 for t in range(steps)],
            truncations=[truncated and t == steps - 1 for t in range(steps)],
        )
        for e, (steps, terminated, truncated) in enumerate(EPISODES)
    ]


def create_known(dataset_id: str = DATASET_ID) -> minari.MinariDataset:
    return create(
        dataset_id, known_buffers(),
        env="Pendulum-v1", eval_env="MountainCarContinuous-v0",
        observation_space=gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
        action_space=gym.spaces.Box(ACTION_LOW.astype(np.float32), ACTION_HIGH.astype(np.float32)),
        ref_min_score=-12.5, ref_max_score=87.0,
    )


def check_known(data) -> None:
    """Every transition of every episode, against the values the episodes were built from."""
    assert len(data) == sum(steps for steps, _, _ in EPISODES)
    row = 0
    for e, (steps, terminated, truncated) in enumerate(EPISODES):
        for t in range(steps):
            last = t == steps - 1
            np.testing.assert_array_equal(data.observations[row], obs_of(e, t))
            np.testing.assert_array_equal(data.next_observations[row], obs_of(e, t + 1))
            np.testing.assert_allclose(data.actions[row], action_of(e, t), rtol=1e-6)
            assert data.rewards[row] == reward_of(e, t)
            assert data.terminals[row] == float(terminated and last)
            assert data.timeouts[row] == float(truncated and last)
            row += 1
    for name, array in data.arrays().items():
        assert array.dtype == np.float32, name


def test_transitions_align_episode_by_episode(store):
    create_known()
    data = load_minari(DATASET_ID)
    check_known(data)
    info = data.info
    assert (info.name, info.source) == (DATASET_ID, "minari")
    assert info.env_id == "MountainCarContinuous-v0"  # the evaluation env wins over the collecting env
    assert (info.ref_min_score, info.ref_max_score) == (-12.5, 87.0)
    np.testing.assert_array_equal(info.action_low, ACTION_LOW)
    np.testing.assert_array_equal(info.action_high, ACTION_HIGH)
    # complete episodes only: the fourth ends neither by termination nor by truncation
    expected = [sum(reward_of(e, t) for t in range(steps)) for e, (steps, _, _) in enumerate(EPISODES[:3])]
    np.testing.assert_allclose(info.behaviour_returns, expected)


def test_loads_from_a_local_directory(store, tmp_path):
    create_known()
    moved = tmp_path / "elsewhere" / "known"
    moved.parent.mkdir()
    (store / DATASET_ID).rename(moved)
    for path in (moved, moved / "data"):
        data = load_minari("ignored-when-a-path-is-given", path=str(path))
        check_known(data)
        assert data.info.name == DATASET_ID


def test_load_dataset_dispatches_to_minari_with_env_override(store):
    create_known()
    data = load_dataset(DatasetConfig(source="minari", name=DATASET_ID, env_id="Pendulum-v1"))
    check_known(data)
    assert data.info.env_id == "Pendulum-v1"


def test_collecting_env_is_used_without_an_eval_env(store):
    create(DATASET_ID, known_buffers()[:1], env="Pendulum-v1",
           observation_space=gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
           action_space=gym.spaces.Box(ACTION_LOW.astype(np.float32), ACTION_HIGH.astype(np.float32)))
    data = load_minari(DATASET_ID)
    assert data.info.env_id == "Pendulum-v1"
    assert data.info.ref_min_score is None and data.info.ref_max_score is None


def test_dataset_without_environment_needs_env_id(store):
    spaces = dict(observation_space=gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
                  action_space=gym.spaces.Box(ACTION_LOW.astype(np.float32), ACTION_HIGH.astype(np.float32)))
    create(DATASET_ID, known_buffers(), **spaces)
    with pytest.raises(DatasetError, match="names no environment.*dataset.env_id"):
        load_minari(DATASET_ID)
    assert load_minari(DATASET_ID, env_id="Pendulum-v1").info.env_id == "Pendulum-v1"


def test_missing_dataset_says_how_to_download(store):
    with pytest.raises(DatasetError, match=r"`minari download cmrltest/absent-v0`.*internet.*MINARI_DATASETS_PATH"):
        load_minari("cmrltest/absent-v0")


def test_path_that_is_not_a_minari_directory(store, tmp_path):
    with pytest.raises(DatasetError, match="not a Minari dataset directory"):
        load_minari(DATASET_ID, path=str(tmp_path))


def test_dict_observation_space_is_refused(store):
    space = gym.spaces.Dict({"position": gym.spaces.Box(-1.0, 1.0, (2,), np.float32)})
    buffer = EpisodeBuffer(
        observations={"position": np.zeros((3, 2), dtype=np.float32)},
        actions=np.zeros((2, 1), dtype=np.float32),
        rewards=[0.0, 0.0], terminations=[False, True], truncations=[False, False],
    )
    create(DATASET_ID, [buffer], observation_space=space,
           action_space=gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
    with pytest.raises(DatasetError, match="observation space Dict.*flat Box.*does not flatten"):
        load_minari(DATASET_ID)
