"""The return of a uniform-random policy on an env's tasks: the floor of normalized scores.

It is a fact about the env, not about a run or a dataset, so it lives with the envs: the evaluation's
reference lines (rlkit.evaluation.reference) and the Minari export's ``ref_min_score``
(rlkit.data.minari_format) compute it with the same code and get the same number.
"""

from __future__ import annotations

import functools
import json
from typing import Sequence

import numpy as np
from gymnasium.vector import AutoresetMode

from rlkit.envs.vector import make_vector_env


def random_policy_return(env_name: str, env_params: dict, task_ids: Sequence[int], max_path_length: int,
                         episodes: int = 10, seed: int = 0, sparse_rewards: bool = False) -> float:
    """Mean return of uniform-random actions: per task over ``episodes`` episodes, then over tasks.

    All (task, episode) pairs run as one lockstep vector env; an episode ends
    at ``max_path_length`` steps or when the env terminates, as in evaluation.
    """
    return float(_random_policy_return(env_name, json.dumps(env_params, sort_keys=True),
                                       tuple(int(t) for t in task_ids), int(max_path_length), int(episodes),
                                       int(seed), bool(sparse_rewards)))


@functools.lru_cache(maxsize=32)
def _random_policy_return(env_name, env_params_json, task_ids, max_path_length, episodes, seed, sparse) -> float:
    if not task_ids or episodes < 1 or max_path_length < 1:
        raise ValueError("random_policy_return needs tasks, episodes >= 1 and max_path_length >= 1")
    task_of = np.repeat(np.asarray(task_ids), episodes)
    venv = make_vector_env(env_name, json.loads(env_params_json), task_of, autoreset_mode=AutoresetMode.DISABLED)
    try:
        rng = np.random.default_rng(seed)
        space = venv.single_action_space
        low, high = np.broadcast_to(space.low, space.shape), np.broadcast_to(space.high, space.shape)
        venv.reset(seed=seed)
        total = np.zeros(len(task_of))
        active = np.ones(len(task_of), dtype=bool)
        for _ in range(max_path_length):
            actions = rng.uniform(low, high, size=(len(task_of), *space.shape)).astype(space.dtype)
            _, rewards, term, trunc, infos = venv.step(actions)
            if sparse and "sparse_reward" in infos:
                rewards = infos["sparse_reward"]
            total += np.where(active, np.asarray(rewards, dtype=np.float64), 0.0)
            active &= ~(np.asarray(term) | np.asarray(trunc))
            if not active.any():
                break
            if (~active).any():  # DISABLED autoreset refuses to step an ended env: restart it, ignore its rewards
                venv.reset(options={"reset_mask": ~active})
    finally:
        venv.close()
    return float(np.mean([total[task_of == t].mean() for t in task_ids]))
