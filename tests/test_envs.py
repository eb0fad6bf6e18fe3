"""cmrl.envs: reference scores, environment construction and vectorised evaluation."""
from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from cmrl.envs import (
    REFERENCE_SCORES,
    EvalResult,
    evaluate_policy,
    make_env,
    make_vector_env,
    normalized_score,
    reference_scores,
)

HOPPER_MIN, HOPPER_MAX = -20.272305, 3234.3


def pendulum_controller(obs: np.ndarray) -> np.ndarray:
    """A deterministic, row-wise policy for Pendulum-v1 (obs = cos, sin, angular velocity)."""
    return np.clip(-3.0 * obs[:, 1:2] - 0.7 * obs[:, 2:3], -2.0, 2.0).astype(np.float32)


def hopper_policy(obs: np.ndarray) -> np.ndarray:
    """A deterministic, row-wise Hopper policy whose episodes end at different lengths."""
    return np.tanh(obs[:, 2:5] * 2.0 + obs[:, 5:8]).astype(np.float32)


def manual_rollouts(act, env_id: str, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference protocol, one plain env, one episode at a time: episode i reset with seed + i."""
    env = gym.make(env_id)
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            action = act(obs[None].astype(np.float32))[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[i] += reward
            lengths[i] += 1
            done = terminated or truncated
    env.close()
    return returns, lengths


# --- scores ---------------------------------------------------------------------------------------

def test_reference_scores_are_d4rl_infos():
    assert REFERENCE_SCORES["hopper"] == (HOPPER_MIN, HOPPER_MAX)
    assert REFERENCE_SCORES["halfcheetah"] == (-280.178953, 12135.0)
    assert REFERENCE_SCORES["walker2d"] == (1.629008, 4592.3)
    assert REFERENCE_SCORES["ant"] == (-325.6, 3879.7)
    assert REFERENCE_SCORES["antmaze"] == (0.0, 1.0)


def test_normalized_score_maps_references_to_0_and_100():
    assert normalized_score(HOPPER_MIN, HOPPER_MIN, HOPPER_MAX) == 0.0
    assert normalized_score(HOPPER_MAX, HOPPER_MIN, HOPPER_MAX) == pytest.approx(100.0)
    assert isinstance(normalized_score(1000.0, HOPPER_MIN, HOPPER_MAX), float)
    scores = normalized_score(np.array([0.0, 0.5, 2.0], dtype=np.float32), 0.0, 2.0)
    np.testing.assert_allclose(scores, [0.0, 25.0, 100.0])
    assert scores.dtype == np.float64
    assert normalized_score(1507.0, -20.0, 3034.0) == pytest.approx(50.0)


@pytest.mark.parametrize("ref_min, ref_max", [(1.0, 1.0), (2.0, 1.0), (0.0, float("nan"))])
def test_normalized_score_rejects_degenerate_references(ref_min, ref_max):
    with pytest.raises(ValueError, match="ref_max > ref_min"):
        normalized_score(1.0, ref_min, ref_max)


@pytest.mark.parametrize("name, family", [
    ("hopper-medium-v2", "hopper"), ("d4rl/hopper-medium-v2", "hopper"), ("mujoco/hopper/medium-v0", "hopper"),
    ("Hopper-v5", "hopper"), ("HalfCheetah-v4", "halfcheetah"), ("walker2d-medium-expert-v2", "walker2d"),
    ("antmaze-umaze-v2", "antmaze"), ("ant-medium-v2", "ant"), ("Ant-v5", "ant"),
])
def test_reference_scores_lookup(name, family):
    assert reference_scores(name) == REFERENCE_SCORES[family]


def test_reference_scores_unknown_is_none():
    assert reference_scores("Pendulum-v1") is None


# --- construction ---------------------------------------------------------------------------------

@pytest.mark.parametrize("env_id", ["Hoper-v5", "hopper-medium-v2", "nowhere/Thing-v0"])
def test_make_env_unknown_id_says_which_and_how(env_id):
    with pytest.raises(ValueError) as info:
        make_env(env_id)
    assert repr(env_id) in str(info.value)
    assert "gymnasium[mujoco]" in str(info.value)


def test_make_env_seed_fixes_the_random_streams():
    a, b, c = make_env("Pendulum-v1", seed=5), make_env("Pendulum-v1", seed=5), make_env("Pendulum-v1", seed=6)
    obs_a, obs_b, obs_c = a.reset()[0], b.reset()[0], c.reset()[0]
    np.testing.assert_array_equal(obs_a, obs_b)
    assert not np.array_equal(obs_a, obs_c)
    np.testing.assert_array_equal(a.action_space.sample(), b.action_space.sample())


def test_make_vector_env_disables_autoreset_by_default():
    env = make_vector_env("Pendulum-v1", 3)
    try:
        assert isinstance(env, gym.vector.SyncVectorEnv)
        assert env.num_envs == 3
        assert env.metadata["autoreset_mode"] == AutoresetMode.DISABLED
    finally:
        env.close()
    with pytest.raises(ValueError, match="num_envs"):
        make_vector_env("Pendulum-v1", 0)


# --- evaluation -----------------------------------------------------------------------------------

def test_evaluate_matches_one_env_per_episode_protocol():
    expected_returns, expected_lengths = manual_rollouts(pendulum_controller, "Pendulum-v1", 5, seed=11)
    result = evaluate_policy(pendulum_controller, "Pendulum-v1", episodes=5, seed=11, num_envs=2)
    np.testing.assert_allclose(result.returns, expected_returns, rtol=1e-12)
    np.testing.assert_array_equal(result.lengths, expected_lengths)
    assert len(set(np.round(result.returns, 6))) == 5  # distinct seeds, distinct episodes


def test_evaluate_is_independent_of_num_envs():
    one = evaluate_policy(pendulum_controller, "Pendulum-v1", episodes=5, seed=0, num_envs=1)
    four = evaluate_policy(pendulum_controller, "Pendulum-v1", episodes=5, seed=0, num_envs=4)
    many = evaluate_policy(pendulum_controller, "Pendulum-v1", episodes=5, seed=0, num_envs=16)
    np.testing.assert_array_equal(one.returns, four.returns)
    np.testing.assert_array_equal(one.returns, many.returns)
    np.testing.assert_array_equal(one.lengths, [200] * 5)
    assert one.mean_return == pytest.approx(one.returns.mean())
    assert one.normalized_mean is None and one.normalized_std is None


def test_evaluate_passes_float32_batches_of_running_episodes_only():
    batches = []

    def act(obs):
        batches.append((obs.shape, obs.dtype))
        return pendulum_controller(obs)

    evaluate_policy(act, "Pendulum-v1", episodes=3, seed=0, num_envs=2)
    assert all(dtype == np.float32 for _, dtype in batches)
    # 200 steps with both envs, then the third episode alone: rows of idle envs are not passed
    assert [shape for shape, _ in batches] == [(2, 3)] * 200 + [(1, 3)] * 200


def test_evaluate_rejects_bad_arguments_and_actions():
    with pytest.raises(ValueError, match="episodes"):
        evaluate_policy(pendulum_controller, "Pendulum-v1", episodes=0, seed=0)
    with pytest.raises(ValueError, match="both ref_min and ref_max"):
        evaluate_policy(pendulum_controller, "Pendulum-v1", episodes=1, seed=0, ref_min=0.0)
    with pytest.raises(ValueError, match=r"shape \(2,\), expected \(2, 1\)"):
        evaluate_policy(lambda obs: np.zeros(len(obs)), "Pendulum-v1", episodes=2, seed=0)
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_policy(lambda obs: np.full((len(obs), 1), np.nan), "Pendulum-v1", episodes=1, seed=0)


def test_eval_result_metrics():
    result = EvalResult.from_episodes(np.array([0.0, 2.0]), np.array([10, 20]), ref_min=0.0, ref_max=4.0)
    assert result.as_metrics() == {
        "eval/return_mean": 1.0, "eval/return_std": 1.0, "eval/length_mean": 15.0, "eval/episodes": 2.0,
        "eval/normalized_mean": 25.0, "eval/normalized_std": 25.0,
    }
    plain = EvalResult.from_episodes(np.array([3.0]), np.array([7]))
    assert set(plain.as_metrics("final/")) == {"final/return_mean", "final/return_std", "final/length_mean",
                                               "final/episodes"}


def test_video_without_moviepy_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "moviepy", None)  # makes `import moviepy` raise ImportError
    with pytest.raises(ImportError, match="pip install moviepy"):
        evaluate_policy(pendulum_controller, "Pendulum-v1", episodes=1, seed=0, video_dir=str(tmp_path))


# --- MuJoCo ---------------------------------------------------------------------------------------

def test_hopper_smoke_matches_protocol_and_normalises():
    pytest.importorskip("mujoco")
    expected_returns, expected_lengths = manual_rollouts(hopper_policy, "Hopper-v5", 3, seed=0)
    assert len(set(expected_lengths)) > 1  # episodes end at different steps: exercises idle envs
    result = evaluate_policy(hopper_policy, "Hopper-v5", episodes=3, seed=0, num_envs=2,
                             ref_min=HOPPER_MIN, ref_max=HOPPER_MAX)
    np.testing.assert_allclose(result.returns, expected_returns, rtol=1e-12)
    np.testing.assert_array_equal(result.lengths, expected_lengths)
    expected_scores = 100 * (expected_returns - HOPPER_MIN) / (HOPPER_MAX - HOPPER_MIN)
    assert result.normalized_mean == pytest.approx(expected_scores.mean())
    assert result.normalized_std == pytest.approx(expected_scores.std())


def test_hopper_video_records_the_first_episode(tmp_path):
    pytest.importorskip("mujoco")
    pytest.importorskip("moviepy")
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    falls_fast = lambda obs: np.full((len(obs), 3), -1.0, dtype=np.float32)  # noqa: E731  (ends in a few steps)
    video_dir = tmp_path / "videos"  # created by the recorder
    result = evaluate_policy(falls_fast, "Hopper-v5", episodes=2, seed=0, num_envs=2, video_dir=str(video_dir))
    assert result.video_path == str(video_dir / "eval-episode-0.mp4")
    assert [p.name for p in video_dir.iterdir()] == ["eval-episode-0.mp4"]
    frames, _ = imageio_ffmpeg.count_frames_and_secs(result.video_path)
    assert frames == result.lengths[0] + 1  # the reset frame and one per step
