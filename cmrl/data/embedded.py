"""The embedded default dataset `cmrl/pendulum-mixed-v0`: made locally in seconds, no download.

Mixed-quality data in gymnasium's Pendulum-v1 (episodes of 200 steps, ended by the time limit) from
a scripted controller: energy-pumping swing-up far from upright, LQR balance near upright. Episode
i takes a uniformly random action with probability RANDOM_ACTION_PROBS[i % 5] at each step and
otherwise the controller's action plus Gaussian noise, so the data holds expert, medium and random
episodes. The dataset is written once, with Minari's own API, into the Minari store
(MINARI_DATASETS_PATH, default ~/.minari/datasets), and then read back like any Minari dataset.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
from minari.data_collector import EpisodeBuffer
from minari.dataset.minari_storage import MinariStorage
from minari.namespace import NAMESPACE_METADATA_FILENAME
from minari.storage import get_dataset_path

from cmrl.errors import DatasetError

EMBEDDED_DATASET_ID = "cmrl/pendulum-mixed-v0"  # bump the version whenever the recipe below changes
ENV_ID = "Pendulum-v1"
EPISODES = 100  # 200 steps each: 20,000 transitions
RANDOM_ACTION_PROBS = (0.0, 0.5, 0.7, 0.85, 1.0)  # episode i: per-step probability of a random action
ACTION_NOISE = 0.1  # std of the Gaussian noise added to the controller's torque (max torque 2)
MAX_TORQUE = 2.0
BALANCE_ANGLE = 0.6  # rad from upright within which the LQR balances (saturated at MAX_TORQUE)
PUMP_GAIN = 20.0  # swing-up: u = -PUMP_GAIN * (E - E_upright) * thdot, E in units of 3g/2l
# Reference returns for normalised scores, measured over 1000 episodes (reset seeds 10000..10999) with
#   python -c "from cmrl.data.embedded import measure_reference_returns as m; print(m())"
RANDOM_POLICY_RETURN = -1229.56  # uniform random torque: normalised score 0
SCRIPTED_POLICY_RETURN = -151.25  # scripted_pendulum_action, no noise: normalised score 100
# expected mean normalised score of the behaviour data, checked by the tests
BEHAVIOUR_SCORE_RANGE = (30.0, 60.0)

Policy = Callable[[np.ndarray], np.ndarray]


@lru_cache(maxsize=1)
def balance_gain() -> np.ndarray:
    """Discrete LQR gain K (u = -K [theta, thdot]) for Pendulum-v1 linearised about upright.

    Pendulum-v1 steps thdot' = thdot + (3g/2l sin(theta) + 3/(m l^2) u) dt, theta' = theta + thdot' dt
    with g = 10, m = l = 1, dt = 0.05; the LQR weights are the environment's own cost
    theta^2 + 0.1 thdot^2 + 0.001 u^2.
    """
    dt, a, b = 0.05, 15.0, 3.0
    transition = np.array([[1.0 + a * dt * dt, dt], [a * dt, 1.0]])
    control = np.array([[b * dt * dt], [b * dt]])
    state_cost, action_cost = np.diag([1.0, 0.1]), np.array([[0.001]])
    riccati = state_cost
    for _ in range(500):
        gain = np.linalg.solve(action_cost + control.T @ riccati @ control, control.T @ riccati @ transition)
        riccati = state_cost + transition.T @ riccati @ (transition - control @ gain)
    return gain[0]


def scripted_pendulum_action(obs: np.ndarray) -> np.ndarray:
    """Near-optimal torque for a Pendulum-v1 observation [cos(theta), sin(theta), thdot] (theta=0 up).

    Within BALANCE_ANGLE of upright: LQR balance. Elsewhere: pump or drain the energy
    E = thdot^2 / 30 + cos(theta) - 1 (0 when resting upright) with dE/dt proportional to u * thdot.
    Returns a float32 array of shape (1,) in [-2, 2].
    """
    cos, sin, thdot = (float(v) for v in obs)
    if cos > np.cos(BALANCE_ANGLE):
        torque = -float(balance_gain() @ np.array([np.arctan2(sin, cos), thdot]))
    else:
        energy = thdot * thdot / 30.0 + cos - 1.0
        torque = -PUMP_GAIN * energy * (thdot if thdot != 0.0 else 1.0)
    return np.array([np.clip(torque, -MAX_TORQUE, MAX_TORQUE)], dtype=np.float32)


def random_pendulum_policy(rng: np.random.Generator) -> Policy:
    """Uniformly random torque in [-2, 2]."""
    return lambda obs: rng.uniform(-MAX_TORQUE, MAX_TORQUE, size=1).astype(np.float32)


def behaviour_policy(random_prob: float, rng: np.random.Generator) -> Policy:
    """Random torque with probability `random_prob`, else the scripted torque plus ACTION_NOISE noise."""

    def act(obs: np.ndarray) -> np.ndarray:
        if rng.random() < random_prob:
            return rng.uniform(-MAX_TORQUE, MAX_TORQUE, size=1).astype(np.float32)
        noisy = scripted_pendulum_action(obs) + ACTION_NOISE * rng.standard_normal(1)
        return np.clip(noisy, -MAX_TORQUE, MAX_TORQUE).astype(np.float32)

    return act


def rollout_episode(env: gym.Env, policy: Policy, seed: int) -> EpisodeBuffer:
    """One episode of `policy` in `env` reset with `seed`, as a Minari EpisodeBuffer."""
    obs, _ = env.reset(seed=seed)
    observations: list[Any] = [obs]
    actions: list[Any] = []
    rewards: list[Any] = []
    terminations: list[Any] = []
    truncations: list[Any] = []
    while True:
        action = policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        for store, value in zip(
            (observations, actions, rewards, terminations, truncations),
            (obs, action, float(reward), bool(terminated), bool(truncated)),
        ):
            store.append(value)
        if terminated or truncated:
            break
    return EpisodeBuffer(
        seed=seed,
        observations=np.asarray(observations, dtype=np.float32),
        actions=np.asarray(actions, dtype=np.float32),
        rewards=rewards,
        terminations=terminations,
        truncations=truncations,
    )


def build_episodes(seed: int, episodes: int = EPISODES) -> list[EpisodeBuffer]:
    """The embedded dataset's episodes, a deterministic function of `seed`.

    Episode i is reset with seed `seed * episodes + i` and uses RANDOM_ACTION_PROBS[i % 5].
    """
    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    buffers = [
        rollout_episode(
            env,
            behaviour_policy(RANDOM_ACTION_PROBS[i % len(RANDOM_ACTION_PROBS)], rng),
            seed * episodes + i,
        )
        for i in range(episodes)
    ]
    env.close()
    return buffers


def measure_reference_returns(episodes: int = 1000, seed: int = 10_000) -> tuple[float, float]:
    """Mean returns (random policy, scripted controller) over `episodes` episodes, reset seeds seed + i."""
    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    means = []
    for policy in (random_pendulum_policy(rng), scripted_pendulum_action):
        means.append(float(np.mean([sum(rollout_episode(env, policy, seed + i).rewards) for i in range(episodes)])))
    env.close()
    return means[0], means[1]


def ensure_embedded_dataset(dataset_id: str = EMBEDDED_DATASET_ID, seed: int = 0) -> str:
    """Create embedded dataset `dataset_id` in the Minari store unless it is there; return its id.

    The dataset is built in a hidden folder of the store and moved into place in one rename, so a
    run never sees half a dataset and concurrent runs (a sweep's first jobs) create it only once.
    An existing dataset made with another seed raises DatasetError.
    """
    if dataset_id != EMBEDDED_DATASET_ID:
        raise DatasetError(
            f"unknown embedded dataset {dataset_id!r}; the embedded dataset is {EMBEDDED_DATASET_ID!r}. "
            f"For other datasets set dataset.source to minari or d4rl"
        )
    target = get_dataset_path(dataset_id)
    if not (target / "data" / "metadata.json").is_file():
        if target.exists():
            raise DatasetError(
                f"{target} exists but holds no complete Minari dataset; delete it (rm -r {target}) "
                f"and it will be made again"
            )
        _create(dataset_id, seed, target)
    made_with = MinariStorage.read_raw_metadata(target / "data").get("cmrl_seed")
    if made_with != seed:
        raise DatasetError(
            f"embedded dataset {dataset_id!r} in {target} was made with seed {made_with}, not {seed}; "
            f"delete it (rm -r {target}) to make it again with seed {seed}"
        )
    return dataset_id


def _create(dataset_id: str, seed: int, target: Path) -> None:
    """Write the dataset into a hidden build store, then rename it to `target`."""
    store = get_dataset_path()
    build = Path(tempfile.mkdtemp(prefix=".cmrl-build-", dir=store))
    try:
        with _minari_store(build), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*author_email.*", category=UserWarning)
            dataset = minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=build_episodes(seed),
                env=ENV_ID,
                eval_env=ENV_ID,
                algorithm_name="scripted energy swing-up + LQR balance with random-action mixture",
                author="cmrl",
                code_permalink="cmrl/data/embedded.py",
                ref_min_score=RANDOM_POLICY_RETURN,
                ref_max_score=SCRIPTED_POLICY_RETURN,
                description=__doc__,
            )
            dataset.storage.update_metadata({"cmrl_seed": seed})
        target.parent.mkdir(parents=True, exist_ok=True)
        for namespace in Path(dataset_id).parents:
            made = build / namespace / NAMESPACE_METADATA_FILENAME
            if namespace != Path(".") and made.is_file() and not (store / namespace / made.name).exists():
                shutil.copyfile(made, store / namespace / made.name)
        try:
            os.rename(build / dataset_id, target)
        except OSError:
            if not (target / "data" / "metadata.json").is_file():
                raise  # not a concurrent run that finished first: a real failure
    finally:
        shutil.rmtree(build, ignore_errors=True)


@contextlib.contextmanager
def _minari_store(path: Path) -> Iterator[None]:
    """Point Minari at the store `path` (MINARI_DATASETS_PATH) for the duration of the block."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
