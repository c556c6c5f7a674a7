"""A slow, one-task-at-a-time reference of the three evaluation protocols (test helper).

Written from the text of docs/method.md §6, not from rlkit/evaluation/protocols.py:
one plain env, one Python loop per episode, the context a list of rows, z
re-inferred by the agent's unmasked ``infer_z`` from the whole list. The tests
compare the batched runner with it, sub-env by sub-env.

Random numbers cannot be drawn the same way one task at a time (the batched
runner draws for all sub-envs at once), so the reference is handed the
batched runner's own draws: see :class:`LockstepDraws`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from rlkit.envs import make_wrapped_env


class LockstepDraws:
    """The random numbers the batched runner draws, handed out per sub-env.

    On every lockstep step on which any sub-env explores, the batched runner
    draws one [M, A] block of uniforms in [-1, 1] from
    ``np.random.default_rng(seed)`` and one [M, A] block of standard-normal
    policy noise from torch's (CPU) RNG, seeded by the caller. In fixed-horizon
    envs every sub-env explores on the same lockstep steps, so the j-th
    exploration step of sub-env m uses row m of block j. This class regenerates
    the same blocks from the same seeds, in the same order.
    """

    def __init__(self, num_envs: int, act_dim: int, numpy_seed: int, torch_seed: int):
        self.shape = (num_envs, act_dim)
        self.rng = np.random.default_rng(numpy_seed)
        self.gen = torch.Generator().manual_seed(torch_seed)
        self.blocks: list[tuple[np.ndarray, np.ndarray]] = []

    def draw(self, m: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(uniform action, policy noise) of sub-env ``m``'s ``j``-th exploration step."""
        while len(self.blocks) <= j:
            noise = torch.randn(self.shape, generator=self.gen).numpy()
            self.blocks.append((self.rng.uniform(-1.0, 1.0, size=self.shape), noise))
        uniform, noise = self.blocks[j]
        return uniform[m], noise[m]


@dataclass
class SequentialRun:
    returns: list[float] = field(default_factory=list)  # evaluation episodes, in order
    actions: list[np.ndarray] = field(default_factory=list)  # every action taken, in order
    context: list[np.ndarray] = field(default_factory=list)  # rows (s, a, r[, s'])
    z: np.ndarray | None = None


@torch.no_grad()
def run_sequential(
    protocol: str,
    agent,
    env_name: str,
    env_params: dict,
    task: int,
    settings,
    reset_seed: int,
    draws: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None,
    offline_rows: Callable[[int], np.ndarray] | None = None,
) -> SequentialRun:
    """One (task, repeat) of ``protocol``, one step at a time.

    ``draws(j)`` gives the (uniform action, policy noise) of the j-th
    exploration step; ``offline_rows(k)`` the ``max_path_length`` offline
    transitions drawn before the k-th evaluation episode. The first reset uses
    ``reset_seed``. ``agent`` is a CSROAgent (its ``policy`` gives mean and log-std).
    """
    env = make_wrapped_env(env_name, **env_params)
    env.reset_task(task)
    mpl, budget = settings.max_path_length, settings.num_steps_per_eval
    out = SequentialRun(z=np.zeros(agent.latent_dim, dtype=np.float32))  # the prior
    seeds = iter([reset_seed])
    explore_step = 0

    def infer():
        out.z = agent.infer_z(torch.as_tensor(np.stack(out.context))[None])[0].numpy()

    def policy(obs):
        o = torch.as_tensor(obs, dtype=torch.float32)[None]
        return agent.policy(o, torch.as_tensor(out.z)[None], deterministic=True)

    def deterministic(obs, t):
        return torch.tanh(policy(obs).mean)[0].numpy()

    def explore(obs, t):
        nonlocal explore_step
        uniform, noise = draws(explore_step)
        explore_step += 1
        if eval_steps + t < budget / 2:
            return uniform
        p = policy(obs)
        return torch.tanh(p.mean[0] + torch.exp(p.log_std[0]) * torch.as_tensor(noise)).numpy()

    def episode(choose, joins_context: bool) -> tuple[float, int]:
        obs, _ = env.reset(seed=next(seeds, None))
        total, t = 0.0, 0
        while True:
            action = np.asarray(choose(obs, t), dtype=np.float32)
            next_obs, reward, term, trunc, info = env.step(action)
            if settings.sparse_rewards:
                reward = info["sparse_reward"]
            out.actions.append(action)
            if joins_context:
                parts = [obs, action, [reward]] + ([next_obs] if agent.use_next_obs_in_context else [])
                out.context.append(np.concatenate(parts).astype(np.float32))
            total, t, obs = total + reward, t + 1, next_obs
            if term or trunc or t >= mpl:
                return total, t

    eval_steps = 0
    while eval_steps < budget:
        if protocol == "np_online":  # exploration episodes until a full path's worth this round
            explored = 0
            while explored < mpl:
                explored += episode(explore, joins_context=True)[1]
        if protocol == "offline":
            out.context.extend(offline_rows(len(out.returns)))
            infer()
        ret, n = episode(deterministic, joins_context=protocol == "online")
        out.returns.append(ret)
        eval_steps += n
        if protocol in ("online", "np_online") and eval_steps >= settings.num_exp_traj_eval * mpl:
            infer()
    return out


class OfflineSource:
    """Each task's offline data: real transitions of uniform-random episodes in the env.

    Draw k of repeat r of a task takes rows uniformly with ``default_rng([task, r, k])``,
    so the batched runner (:meth:`batched`) and the reference (:meth:`rows`) draw alike.
    """

    def __init__(self, env_name: str, env_params: dict, tasks, use_next_obs: bool, episodes: int = 3):
        self.data = {}
        for task in tasks:
            env = make_wrapped_env(env_name, **env_params)
            env.reset_task(int(task))
            rng, rows = np.random.default_rng(int(task)), []
            for _ in range(episodes):
                obs, _ = env.reset(seed=int(task))
                done = False
                while not done:
                    action = rng.uniform(-1.0, 1.0, size=env.action_space.shape).astype(np.float32)
                    next_obs, reward, term, trunc, _ = env.step(action)
                    rows.append(np.concatenate([obs, action, [reward]] + ([next_obs] if use_next_obs else [])))
                    obs, done = next_obs, term or trunc
            self.data[int(task)] = np.asarray(rows, dtype=np.float32)

    def rows(self, task: int, repeat: int, k: int, n: int) -> np.ndarray:
        data = self.data[task]
        return data[np.random.default_rng([task, repeat, k]).integers(0, len(data), n)]

    def batched(self):
        """An OfflineContextFn; call k serves draw k of every sub-env in it (repeat = order among its task's rows)."""
        calls = []

        def fn(task_ids: torch.Tensor, n: int) -> torch.Tensor:
            tasks = task_ids.tolist()
            out = [self.rows(t, tasks[:i].count(t), len(calls), n) for i, t in enumerate(tasks)]
            calls.append(tasks)
            return torch.as_tensor(np.stack(out))

        return fn
