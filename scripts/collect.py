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
from pathlib import Path

import gymnasium as gym
import numpy as np

from cmrl.envs import make_env
from cmrl.envs.collection import mean_return, random_behaviour, resolve_reference_scores, rollout, with_exploration
from cmrl.errors import UserError, user_errors
from cmrl.training.acting import checkpoint_behaviour


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


def measure_reference(which: str, args: argparse.Namespace, env_id: str, space: gym.spaces.Box) -> float:
    """The mean return of the uniform random policy (`random`) or of the collecting policy without noise
    (`policy`), over --ref-episodes episodes with seeds disjoint from the collection's."""
    seed = args.seed + 1_000_000
    if which == "random" or args.policy == "random":
        act = random_behaviour(space, np.random.default_rng(seed)).act
    else:
        act = checkpoint_behaviour(args.policy, args.device, seed).act
    return mean_return(env_id, act, args.ref_episodes, seed, args.envs)


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

    try:
        ref_min, ref_max, ref_source = resolve_reference_scores(
            env_id, args.ref_min, args.ref_max, behaviour, lambda which: measure_reference(which, args, env_id, space))
    except UserError as err:
        raise SystemExit(f"collect: error: {err}") from None
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
    with user_errors("collect", also=(ValueError, ImportError, OSError)):
        sys.exit(main())
