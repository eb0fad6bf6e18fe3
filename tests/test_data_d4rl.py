"""D4RL-layout HDF5 loader: row-by-row transitions, cache lookup by name, malformed files."""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest

from cmrl.data import DatasetConfig, DatasetError, load_d4rl, load_dataset
from cmrl.data.d4rl import D4RL_DATASET_URLS, episode_returns

# Pendulum with a 3-step time limit, so that the 3-step episode B below ends by the time limit
ENV_ID = "CmrlTestPendulum-v0"
if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point="gymnasium.envs.classic_control:PendulumEnv", max_episode_steps=3)

# 10 rows: episode A = rows 0-3 ends terminal, B = rows 4-6 ends by timeout, C = rows 7-9 is incomplete
N = 10
TERMINALS = np.zeros(N, dtype=bool)
TERMINALS[3] = True
TIMEOUTS = np.zeros(N, dtype=bool)
TIMEOUTS[6] = True


def columns(obs_dim: int = 3, act_dim: int = 1) -> dict[str, np.ndarray]:
    """Row i holds observation (i, 2i, ...), action i/10, reward i and next observation obs + 0.5."""
    rows = np.arange(N, dtype=np.float32)
    observations = rows[:, None] * np.arange(1, obs_dim + 1, dtype=np.float32)
    return {
        "observations": observations,
        "actions": np.repeat(rows[:, None] / 10, act_dim, axis=1),
        "rewards": rows.copy(),
        "next_observations": observations + 0.5,
        "terminals": TERMINALS.copy(),
        "timeouts": TIMEOUTS.copy(),
    }


def write(path: Path, data: dict[str, np.ndarray], **attrs) -> Path:
    with h5py.File(path, "w") as h5:
        for key, value in data.items():
            h5.create_dataset(key, data=value, compression="gzip")
        h5.attrs.update(attrs)
    return path


def test_rows_with_next_observations_keep_timeouts(tmp_path):
    raw = columns()
    file = write(tmp_path / "a.hdf5", raw, env_id=ENV_ID, ref_min_score=-5.0, ref_max_score=7.5)
    data = load_d4rl("my-file", path=str(file))
    assert len(data) == N
    for i in range(N):
        np.testing.assert_array_equal(data.observations[i], raw["observations"][i])
        np.testing.assert_array_equal(data.next_observations[i], raw["next_observations"][i])
        np.testing.assert_allclose(data.actions[i], [i / 10], rtol=1e-6)
        assert data.rewards[i] == i
        assert data.terminals[i] == (1.0 if i == 3 else 0.0)
        assert data.timeouts[i] == (1.0 if i == 6 else 0.0)
    info = data.info
    assert (info.name, info.source, info.env_id) == (str(file), "d4rl", ENV_ID)
    assert (info.ref_min_score, info.ref_max_score) == (-5.0, 7.5)
    np.testing.assert_array_equal(info.action_low, [-2.0])
    np.testing.assert_array_equal(info.action_high, [2.0])
    np.testing.assert_allclose(info.behaviour_returns, [0 + 1 + 2 + 3, 4 + 5 + 6])


def test_rows_without_next_observations_drop_timeouts_and_last(tmp_path):
    raw = columns()
    del raw["next_observations"]
    data = load_d4rl("my-file", path=str(write(tmp_path / "a.hdf5", raw, env_id=ENV_ID)))
    kept = [0, 1, 2, 3, 4, 5, 7, 8]  # row 6 ends by timeout (its next row starts episode C); row 9 is last
    assert len(data) == len(kept)
    for row, i in enumerate(kept):
        np.testing.assert_array_equal(data.observations[row], raw["observations"][i])
        np.testing.assert_array_equal(data.next_observations[row], raw["observations"][i + 1])
        assert data.rewards[row] == i
        assert data.terminals[row] == (1.0 if i == 3 else 0.0)
    assert not data.timeouts.any()
    np.testing.assert_allclose(data.info.behaviour_returns, [6.0, 15.0])


def test_terminal_last_row_is_kept_without_next_observations(tmp_path):
    raw = columns()
    del raw["next_observations"]
    raw["terminals"][-1] = True
    data = load_d4rl("x", path=str(write(tmp_path / "a.hdf5", raw, env_id=ENV_ID)))
    assert data.rewards[-1] == N - 1 and data.terminals[-1] == 1.0
    np.testing.assert_array_equal(data.next_observations[-1], raw["observations"][-1])
    np.testing.assert_allclose(data.info.behaviour_returns, [6.0, 15.0, 7 + 8 + 9])


def test_timeout_before_the_time_limit_is_not_a_complete_episode(tmp_path):
    raw = columns()
    raw["timeouts"][6], raw["timeouts"][5] = False, True  # episode B cut after 2 steps (a budget ran out)
    data = load_d4rl("x", path=str(write(tmp_path / "a.hdf5", raw, env_id=ENV_ID)))
    np.testing.assert_allclose(data.info.behaviour_returns, [6.0])
    assert data.timeouts[5] == 1.0 and len(data) == N


def test_episode_returns_split_at_ends():
    rewards = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    terminals = np.array([0, 1, 0, 0, 0, 0, 0], bool)
    timeouts = np.array([0, 0, 0, 0, 1, 1, 0], bool)  # rows 2-4: time limit (3 steps); row 5: a 1-step cut
    np.testing.assert_allclose(episode_returns(rewards, terminals, timeouts, 3), [3.0, 12.0])
    np.testing.assert_allclose(episode_returns(rewards, terminals, timeouts, None), [3.0, 12.0, 6.0])
    none = np.zeros(7, bool)
    assert episode_returns(rewards, none, none, None).shape == (0,)


def test_lookup_by_name_in_d4rl_dataset_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    raw = columns(obs_dim=11, act_dim=3)
    write(tmp_path / "hopper_medium_replay-v2.hdf5", raw)
    data = load_dataset(DatasetConfig(source="d4rl", name="hopper-medium-replay-v2"))
    assert data.info.name == "hopper-medium-replay-v2"
    assert data.info.env_id == "Hopper-v4"  # closest to the mujoco-py -v3 task D4RL used
    assert (data.info.ref_min_score, data.info.ref_max_score) == (-20.272305, 3234.3)
    np.testing.assert_array_equal(data.info.action_high, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(data.observations, raw["observations"])


def test_url_map_covers_gym_mujoco_v2():
    assert len(D4RL_DATASET_URLS) == 4 * 6
    assert D4RL_DATASET_URLS["walker2d-medium-expert-v2"] == (
        "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/walker2d_medium_expert-v2.hdf5"
    )


def test_missing_d4rl_file_gives_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "d4rl.offline_env", None)  # d4rl not importable
    url = "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/hopper_medium-v2.hdf5"
    with pytest.raises(DatasetError) as error:
        load_d4rl("hopper-medium-v2")
    assert f"wget {url} -P {tmp_path}" in str(error.value)


def test_installed_d4rl_is_used_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "empty"))
    fetched = []

    def download_dataset_from_url(url: str) -> str:
        fetched.append(url)
        return str(write(tmp_path / url.rsplit("/", 1)[1], columns(obs_dim=17, act_dim=6)))

    monkeypatch.setitem(sys.modules, "d4rl", types.ModuleType("d4rl"))
    module = types.ModuleType("d4rl.offline_env")
    module.download_dataset_from_url = download_dataset_from_url
    monkeypatch.setitem(sys.modules, "d4rl.offline_env", module)
    data = load_d4rl("halfcheetah-expert-v2")
    assert fetched == [D4RL_DATASET_URLS["halfcheetah-expert-v2"]]
    assert data.info.env_id == "HalfCheetah-v4" and data.obs_dim == 17


def test_unknown_name_without_path(tmp_path):
    with pytest.raises(DatasetError, match="unknown D4RL dataset name 'hopper-mixed'.*dataset.path"):
        load_d4rl("hopper-mixed")


def test_missing_path_points_to_make_dataset_or_the_download(tmp_path):
    absent = tmp_path / "absent.hdf5"
    with pytest.raises(DatasetError, match=f"{absent}' is not a file: write .*make_dataset.py ENV LEVEL {absent}"):
        load_d4rl("x", path=str(absent))
    with pytest.raises(DatasetError) as error:
        load_d4rl("ant-random-v2", path=str(absent))
    assert f"wget {D4RL_DATASET_URLS['ant-random-v2']} -O {absent}" in str(error.value)


def test_missing_key(tmp_path):
    raw = columns()
    del raw["timeouts"]
    with pytest.raises(DatasetError, match="missing the key\\(s\\) timeouts"):
        load_d4rl("x", path=str(write(tmp_path / "a.hdf5", raw, env_id=ENV_ID)))


def test_length_mismatch(tmp_path):
    raw = columns()
    raw["rewards"] = raw["rewards"][:-1]
    with pytest.raises(DatasetError, match="rewards has 9 rows but observations has 10"):
        load_d4rl("x", path=str(write(tmp_path / "a.hdf5", raw, env_id=ENV_ID)))


def test_garbage_and_truncated_files(tmp_path):
    garbage = tmp_path / "garbage.hdf5"
    garbage.write_bytes(b"this is not an HDF5 file" * 100)
    with pytest.raises(DatasetError, match="cannot read .*garbage.hdf5 as HDF5.*truncated or not an HDF5"):
        load_d4rl("x", path=str(garbage))
    raw = columns()
    raw["observations"] = np.random.default_rng(0).normal(size=(N, 3000)).astype(np.float32)
    whole = write(tmp_path / "whole.hdf5", raw).read_bytes()
    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DatasetError, match="cannot read .*truncated.hdf5 as HDF5"):
        load_d4rl("x", path=str(truncated))


@pytest.mark.parametrize("field", ["observations", "rewards"])
def test_nan_is_reported_with_row_count(tmp_path, field):
    raw = columns()
    raw[field] = raw[field].copy()
    raw[field][2] = np.nan
    raw[field][5] = np.inf
    with pytest.raises(DatasetError, match=f"2 of 10 rows of {field} hold NaN or inf \\(first at row 2\\)"):
        load_d4rl("x", path=str(write(tmp_path / "a.hdf5", raw, env_id=ENV_ID)))


def test_env_id_needed_when_neither_file_nor_name_gives_one(tmp_path):
    file = write(tmp_path / "a.hdf5", columns())
    with pytest.raises(DatasetError, match="names no environment.*dataset.env_id"):
        load_d4rl("not-d4rl", path=str(file))
    assert load_d4rl("not-d4rl", path=str(file), env_id=ENV_ID).info.env_id == ENV_ID


def test_action_size_must_match_environment(tmp_path):
    file = write(tmp_path / "a.hdf5", columns(act_dim=2), env_id="Pendulum-v1")
    with pytest.raises(DatasetError, match="2-dimensional actions but Pendulum-v1"):
        load_d4rl("x", path=str(file))


MAKE_DATASET = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "make_dataset.py"


@pytest.mark.skipif(not MAKE_DATASET.is_file(), reason="the shared benchmarks folder is not present")
def test_reads_files_written_by_make_dataset(tmp_path):
    file = tmp_path / "hopper-random.hdf5"
    subprocess.run([sys.executable, str(MAKE_DATASET), "hopper", "random", str(file), "--transitions", "300"],
                   check=True, capture_output=True, cwd=tmp_path)
    data = load_d4rl("hopper-random", path=str(file))
    with h5py.File(file, "r") as h5:
        attrs = dict(h5.attrs)
        np.testing.assert_array_equal(data.next_observations, h5["next_observations"][()])
    assert len(data) == 300 and data.info.env_id == "Hopper-v5"
    assert (data.info.ref_min_score, data.info.ref_max_score) == (attrs["ref_min_score"], attrs["ref_max_score"])
    assert len(data.info.behaviour_returns) == attrs["episodes"]
    assert data.info.behaviour_returns.mean() == pytest.approx(attrs["mean_return"], rel=1e-4)
