#!/usr/bin/env python
"""Make your own offline dataset: roll out a cmrl checkpoint (or a random policy) in a gymnasium
environment and save the episodes as a Minari dataset, with reference scores for normalised scores.

    # 100 episodes of a trained policy, with Gaussian action noise (std 0.1 of the half action range)
    python scripts/collect.py cmrl/pendulum-ac-v0 --policy runs/.../checkpoint.pt --episodes 100 --noise 0.1
    # 200k transitions of uniformly random actions in Hopper-v5 (D4RL's hopper reference returns apply)
    python scripts/collect.py cmrl/hopper-random-v0 --policy random --env Hopper-v5 --steps 200000
    # then train on it
    python scripts/train.py dataset=minari_dataset dataset.name=cmrl/pendulum-ac-v0

The dataset goes into the Minari store ($MINARI_DATASETS_PATH, default ~/.minari/datasets) or the
store given with --store. Episode i is reset with seed SEED + i. An episode ends when the task
terminates or truncates (time limit); with --steps the episodes still running when the budget is
reached are cut and marked truncated (never terminal), so no false absorbing state is recorded.

Reference scores (normalised score = 100 (R - ref_min) / (ref_max - ref_min)), first that applies:
--ref-min/--ref-max (a number, or `random` / `policy` to measure the mean return of the uniform random
policy / of the collecting policy without noise over --ref-episodes episodes); the checkpoint's own
dataset references when it was trained in the same environment; D4RL's references for hopper,
halfcheetah, walker2d and ant tasks. Without any of these the script stops and asks for them.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import gymnasium as gym
import numpy as np

from cmrl.errors import UserError

ActFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class Behaviour:
    """The collecting policy: a batched act function plus a description for the metadata."""

    act: ActFn  # (batch, obs_dim) raw observations -> (batch, act_dim) env actions
    name: str  # e.g. "random" or "consistency_ac checkpoint runs/x/checkpoint.pt (step 10000)"
    env_id: Optional[str]  # the environment the checkpoint was trained for (None for random)
    ref_scores: Optional[tuple[float, float]]  # the checkpoint's dataset references, if any
    checkpoint: Optional[str] = None
    step: Optional[int] = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset_id", help="Minari id to create, (namespace/)name-vN, e.g. cmrl/hopper-ac-v0")
    ap.add_argument("--policy", required=True,
                    help="a checkpoint.pt written by scripts/train.py (or its run directory), or `random`")
    ap.add_argument("--env", default=None, help="gymnasium id; default: the checkpoint's environment")
    size = ap.add_mutually_exclusive_group(required=True)
    size.add_argument("--episodes", type=int, help="number of complete episodes to collect")
    size.add_argument("--steps", type=int, help="number of transitions to collect")
    ap.add_argument("--seed", type=int, default=0, help="episode i is reset with SEED + i; seeds the noise (0)")
    ap.add_argument("--noise", type=float, default=0.0,
                    help="Gaussian action noise, std as a fraction of half the action range (default 0)")
    ap.add_argument("--epsilon", type=float, default=0.0,
                    help="per-step probability of a uniformly random action instead (default 0)")
    ap.add_argument("--envs", type=int, default=8, help="environments stepped side by side (default 8)")
    ap.add_argument("--ref-min", default=None, help="return of normalised score 0: a number or `random`")
    ap.add_argument("--ref-max", default=None, help="return of normalised score 100: a number, `random` or `policy`")
    ap.add_argument("--ref-episodes", type=int, default=100, help="episodes to measure `random`/`policy` refs")
    ap.add_argument("--store", default=None, help="Minari store to write into (default: $MINARI_DATASETS_PATH)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing dataset of the same id")
    ap.add_argument("--device", default="cpu", help="torch device of the checkpoint policy (default cpu)")
    ap.add_argument("--author", default="cmrl scripts/collect.py", help="author recorded in the metadata")
    args = ap.parse_args(argv)
    for key in ("episodes", "steps", "envs", "ref_episodes"):
        value = getattr(args, key)
        if value is not None and value < 1:
            ap.error(f"--{key.replace('_', '-')} must be >= 1, got {value}")
    if args.noise < 0 or not 0.0 <= args.epsilon <= 1.0:
        ap.error(f"--noise must be >= 0 and --epsilon in [0, 1]; got {args.noise}, {args.epsilon}")
    return args


# --- policies ---------------------------------------------------------------------------------------
def random_behaviour(space: gym.spaces.Box, rng: np.random.Generator) -> Behaviour:
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)

    def act(obs: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high, size=(len(obs), *space.shape)).astype(space.dtype)

    return Behaviour(act, "uniform random actions", None, None)


def checkpoint_behaviour(path: str, device: str, seed: int) -> Behaviour:
    from cmrl.training.acting import load_policy, make_act_fn

    loaded = load_policy(path, device)
    refs = None
    if loaded.ref_min is not None and loaded.ref_max is not None:
        refs = (float(loaded.ref_min), float(loaded.ref_max))
    name = f"{loaded.config.agent.algo} checkpoint {path} (step {loaded.step})"
    return Behaviour(make_act_fn(loaded.agent, loaded.transforms, seed), name, loaded.env_id, refs, str(path),
                     int(loaded.step))


def with_exploration(act: ActFn, space: gym.spaces.Box, noise: float, epsilon: float,
                     rng: np.random.Generator) -> ActFn:
    """act, plus Gaussian noise (std noise * half range) and epsilon-random actions; always clipped to the
    action bounds, so the dataset never holds an action the environment would not accept as is."""
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    half_range = (high - low) / 2.0

    def noisy(obs: np.ndarray) -> np.ndarray:
        actions = np.asarray(act(obs), dtype=np.float64)
        if noise:
            actions = actions + noise * half_range * rng.standard_normal(actions.shape)
        if epsilon:
            pick = rng.random(len(actions)) < epsilon
            actions[pick] = rng.uniform(low, high, size=(int(pick.sum()), *space.shape))
        return np.clip(actions, low, high).astype(space.dtype)

    return noisy


# --- rollouts ---------------------------------------------------------------------------------------
@dataclass
class Episode:
    seed: int
    observations: list
    actions: list
    rewards: list
    terminations: list
    truncations: list
    cut: bool = False  # ended by the --steps budget rather than by the task

    def to_buffer(self, obs_dtype: np.dtype, act_dtype: np.dtype):
        from minari.data_collector import EpisodeBuffer

        return EpisodeBuffer(
            seed=self.seed,
            observations=np.asarray(self.observations, dtype=obs_dtype),
            actions=np.asarray(self.actions, dtype=act_dtype),
            rewards=[float(r) for r in self.rewards],
            terminations=[bool(t) for t in self.terminations],
            truncations=[bool(t) for t in self.truncations],
        )


def rollout(env_id: str, act: ActFn, seed: int, episodes: Optional[int], steps: Optional[int],
            num_envs: int) -> list[Episode]:
    """Collect ``episodes`` complete episodes, or exactly ``steps`` transitions, of ``act`` in ``env_id``.

    Episode i is reset with seed + i (in order of starting). With ``steps``, the episodes still running
    when the budget is reached end there, their last transition marked truncated.
    """
    from cmrl.envs import make_vector_env

    n = min(num_envs, episodes) if episodes is not None else num_envs
    env = make_vector_env(env_id, n)  # autoreset disabled: every reset below is explicit and seeded
    space = env.single_action_space
    finished_episodes: list[Episode] = []
    try:
        obs, _ = env.reset(seed=[seed + i for i in range(n)])
        running: list[Optional[Episode]] = [Episode(seed + i, [obs[i]], [], [], [], []) for i in range(n)]
        started, transitions = n, 0
        actions = np.zeros((n, *space.shape), dtype=space.dtype)
        while any(e is not None for e in running):
            live = np.array([e is not None for e in running])
            actions[live] = np.asarray(act(obs[live]), dtype=space.dtype).reshape(int(live.sum()), *space.shape)
            obs, rewards, terminated, truncated, _ = env.step(actions)
            ended = np.zeros(n, dtype=bool)
            for i in np.flatnonzero(live):
                if steps is not None and transitions >= steps:
                    break  # budget spent: this sub-environment's step is not recorded
                episode = running[i]
                episode.observations.append(obs[i])
                episode.actions.append(actions[i].copy())
                episode.rewards.append(float(rewards[i]))
                episode.terminations.append(bool(terminated[i]))
                episode.truncations.append(bool(truncated[i]))
                transitions += 1
                ended[i] = terminated[i] or truncated[i]
            if steps is not None and transitions >= steps:  # cut every running episode here
                for episode in running:
                    if episode is not None and episode.rewards:
                        if not (episode.terminations[-1] or episode.truncations[-1]):
                            episode.truncations[-1] = episode.cut = True
                        finished_episodes.append(episode)
                break
            reset_seeds: list[Optional[int]] = [None] * n
            for i in np.flatnonzero(ended):
                finished_episodes.append(running[i])
                if episodes is None or started < episodes:
                    reset_seeds[i] = seed + started
                    started += 1
            if ended.any():
                obs, _ = env.reset(seed=reset_seeds, options={"reset_mask": ended})
                for i in np.flatnonzero(ended):
                    running[i] = None if reset_seeds[i] is None else Episode(reset_seeds[i], [obs[i]], [], [], [], [])
    finally:
        env.close()
    return sorted(finished_episodes, key=lambda e: e.seed)


def mean_return(env_id: str, act: ActFn, episodes: int, seed: int, num_envs: int) -> float:
    """Mean undiscounted return of ``act`` over ``episodes`` episodes (cmrl.envs.evaluate_policy)."""
    from cmrl.envs import evaluate_policy

    return evaluate_policy(act, env_id, episodes, seed, num_envs=min(num_envs, episodes)).mean_return


def resolve_refs(args: argparse.Namespace, env_id: str, behaviour: Behaviour, space: gym.spaces.Box,
                 fresh_act: Callable[[], ActFn]) -> tuple[float, float, str]:
    """(ref_min, ref_max, where they came from); SystemExit with advice when none apply."""
    from cmrl.envs import check_reference_scores, reference_scores

    measured_seed = args.seed + 1_000_000  # disjoint from the collection's episode seeds

    def resolve(value: str, which: str) -> Optional[float]:
        if value is None:
            return None
        if value == "random":
            rng = np.random.default_rng(measured_seed)
            return mean_return(env_id, random_behaviour(space, rng).act, args.ref_episodes, measured_seed, args.envs)
        if value == "policy" and which == "max":
            return mean_return(env_id, fresh_act(), args.ref_episodes, measured_seed, args.envs)
        try:
            return float(value)
        except ValueError:
            raise SystemExit(f"collect: error: --ref-{which} must be a number, `random`"
                             + (" or `policy`" if which == "max" else "") + f"; got {value!r}") from None

    explicit = (resolve(args.ref_min, "min"), resolve(args.ref_max, "max"))
    fallback, source = None, None
    if behaviour.ref_scores is not None and behaviour.env_id == env_id:
        fallback, source = behaviour.ref_scores, f"the checkpoint's dataset references ({env_id})"
    elif reference_scores(env_id) is not None:
        fallback, source = tuple(reference_scores(env_id)), f"D4RL's reference returns for {env_id}"
    if None in explicit and fallback is None:
        raise SystemExit(
            f"collect: error: no reference scores known for {env_id}: pass --ref-min and --ref-max (returns "
            "of normalised score 0 and 100; `--ref-min random` measures the random policy, `--ref-max policy` "
            "the collecting policy without noise)")
    ref_min = explicit[0] if explicit[0] is not None else fallback[0]
    ref_max = explicit[1] if explicit[1] is not None else fallback[1]
    if explicit == (None, None):
        where = source
    elif None not in explicit:
        where = f"command line (--ref-min {args.ref_min}, --ref-max {args.ref_max})"
    else:
        where = f"command line and {source}"
    try:
        check_reference_scores(ref_min, ref_max)
    except ValueError as err:
        raise SystemExit(f"collect: error: {err}") from None
    return float(ref_min), float(ref_max), str(where)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.store:
        os.environ["MINARI_DATASETS_PATH"] = str(Path(args.store).expanduser().resolve())
    import minari
    from minari.storage import get_dataset_path

    rng = np.random.default_rng(args.seed)
    if args.policy == "random":
        if not args.env:
            raise SystemExit("collect: error: --policy random needs --env (a gymnasium id such as Hopper-v5)")
        behaviour = None
    else:
        try:
            behaviour = checkpoint_behaviour(args.policy, args.device, args.seed)
        except (UserError, FileNotFoundError, ValueError) as err:
            raise SystemExit(f"collect: error: cannot load the policy {args.policy!r}: {err}") from None
    env_id = args.env or behaviour.env_id
    from cmrl.envs import make_env

    try:
        probe = make_env(env_id)
    except (ValueError, ImportError) as err:
        raise SystemExit(f"collect: error: {err}") from None
    space, obs_space = probe.action_space, probe.observation_space
    probe.close()
    if not isinstance(space, gym.spaces.Box) or not isinstance(obs_space, gym.spaces.Box):
        raise SystemExit(f"collect: error: {env_id} needs Box observation and action spaces for cmrl datasets")
    if behaviour is None:
        behaviour = random_behaviour(space, rng)
    elif behaviour.env_id != env_id:
        print(f"collect: warning: the checkpoint was trained for {behaviour.env_id}, collecting in {env_id}",
              file=sys.stderr)

    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(args.dataset_id)
        target = get_dataset_path(args.dataset_id)
    except ValueError as err:
        raise SystemExit(f"collect: error: bad dataset id {args.dataset_id!r}: {err}") from None
    if target.exists():
        if not args.overwrite:
            raise SystemExit(f"collect: error: dataset {args.dataset_id!r} already exists in {target}; "
                             "pass --overwrite to replace it or choose another id (bump -vN)")
        minari.delete_dataset(args.dataset_id)

    def fresh_act() -> ActFn:  # the policy without noise, with random streams of its own
        if args.policy == "random":
            return random_behaviour(space, np.random.default_rng(args.seed + 1_000_000)).act
        return checkpoint_behaviour(args.policy, args.device, args.seed + 1_000_000).act

    ref_min, ref_max, ref_source = resolve_refs(args, env_id, behaviour, space, fresh_act)
    act = with_exploration(behaviour.act, space, args.noise, args.epsilon, rng)
    start = time.time()
    episodes = rollout(env_id, act, args.seed, args.episodes, args.steps, args.envs)
    returns = np.array([sum(e.rewards) for e in episodes if not e.cut])  # complete episodes only
    which = f"the {returns.size} complete episodes"
    if returns.size == 0:  # budget shorter than an episode: say so rather than report nothing
        returns, which = np.array([sum(e.rewards) for e in episodes]), "the (cut, partial) episodes"
    transitions = sum(len(e.rewards) for e in episodes)
    normalized = 100.0 * (returns.mean() - ref_min) / (ref_max - ref_min)
    exploration = f"Gaussian action noise {args.noise} x half range, epsilon-random {args.epsilon}"
    description = (f"{len(episodes)} episodes ({transitions} transitions) of {behaviour.name} in {env_id}, "
                   f"{exploration}; episode i reset with seed {args.seed} + i. Reference scores from {ref_source}. "
                   f"Made with: python scripts/collect.py {shlex.join(argv if argv is not None else sys.argv[1:])}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*author_email.*", category=UserWarning)
        dataset = minari.create_dataset_from_buffers(
            dataset_id=args.dataset_id,
            buffer=[e.to_buffer(obs_space.dtype, space.dtype) for e in episodes],
            env=env_id,
            eval_env=env_id,
            algorithm_name=f"{behaviour.name}; {exploration}",
            author=args.author,
            code_permalink="scripts/collect.py",
            ref_min_score=ref_min,
            ref_max_score=ref_max,
            description=description,
        )
    dataset.storage.update_metadata({"cmrl_collect": json.dumps({
        "policy": behaviour.checkpoint or "random", "policy_step": behaviour.step, "env_id": env_id,
        "seed": args.seed, "noise": args.noise, "epsilon": args.epsilon, "episodes": len(episodes),
        "transitions": transitions, "complete_episodes": int(returns.size), "mean_return": float(returns.mean()),
        "normalized_mean_return": float(normalized), "ref_source": ref_source})})
    print(f"{args.dataset_id}: {len(episodes)} episodes, {transitions} transitions of {behaviour.name} in {env_id} "
          f"({time.time() - start:.0f} s)")
    print(f"mean return of {which} {returns.mean():.1f} (normalised {normalized:.1f}; refs {ref_min:g} / "
          f"{ref_max:g} from {ref_source})")
    print(f"written to {target}")
    store_hint = f"MINARI_DATASETS_PATH={os.environ['MINARI_DATASETS_PATH']} " if args.store else ""
    print(f"train on it: {store_hint}python scripts/train.py dataset=minari_dataset dataset.name={args.dataset_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
