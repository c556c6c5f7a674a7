"""A trained agent on one env, in the env's own units: :func:`rlkit.load` (issue 31).

``rlkit.load(run_dir)`` gives a :class:`Policy`: ``act(obs)`` takes a raw
observation of the env (the gymnasium id the run was trained on) and returns an
action in that env's action space, doing what the evaluation's env wrapper
(rlkit.envs.wrappers.NormalizedActionEnv) does: observations divided by the
dataset normalizer's ``abs_max`` (when the run's data had one), the policy's
[-1, 1] output mapped to the env's bounds with :func:`~rlkit.envs.wrappers.rescale_action`.
``observe(...)`` hands it each transition; the belief then changes exactly as
in the online protocol (rlkit.evaluation.protocols.Online) rolled out on one
sub-env: every transition joins the context, the agent is told when an episode
ends (a z-context model re-infers z then, once a path's worth of transitions is
in), and ``reset(new_task=True)`` goes back to the prior. The agent is whatever
:func:`~rlkit.evaluation.run_loader.load_run` returns, driven through
:func:`~rlkit.evaluation.agent.as_eval_agent`, so any :class:`~rlkit.core.eval_agent.EvalAgent` works unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from rlkit.envs.wrappers import rescale_action
from rlkit.evaluation.agent import Rollout, Transitions, as_eval_agent
from rlkit.evaluation.protocols import get_protocol
from rlkit.torch.networks import context_dim

__all__ = ["Policy", "load"]


class Policy:
    """One trained agent acting on one env; see the module docstring."""

    def __init__(self, run, deterministic: bool = True):
        from rlkit.envs import make_env

        self.run = run
        self.deterministic = bool(deterministic)
        self.agent = as_eval_agent(run.agent)
        self.protocol = get_protocol("online")
        self.settings = run.settings(num_evals=1)
        env = make_env(run.env_name, **run.env_params)
        self.action_space, self.observation_space = env.action_space, env.observation_space
        self._low = env.action_space.low.astype(np.float64)
        self._high = env.action_space.high.astype(np.float64)
        self.obs_dim, self.act_dim = int(run.obs_dim), int(run.act_dim)
        self.obs_absmax = run.obs_absmax
        self.device = torch.device(run.device)
        self._rollout = Rollout(self.protocol, self.settings, self.obs_dim, self.act_dim,
                                context_dim(self.obs_dim, self.act_dim, self.agent.use_next_obs_in_context),
                                self.device)
        self.test_tasks = list(run.test_tasks)  # the held-out tasks of the run (gymnasium's task=K)
        self._started = False
        self.episode_len = 0
        self.eval_steps = 0

    # ---- units ---------------------------------------------------------------------------------
    def _check(self, name: str, value, dim: int, what: str) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (dim,):
            raise ValueError(f"{name} must be one {what} of shape ({dim},), got shape {arr.shape}")
        return arr

    def normalize_obs(self, obs) -> np.ndarray:
        """The observation as the agent sees it (float32, divided by the normalizer's abs_max if any)."""
        obs = self._check("obs", obs, self.obs_dim, "observation")
        if self.obs_absmax is not None:
            obs = obs / self.obs_absmax
        return obs.astype(np.float32)

    def _unscale_action(self, action) -> np.ndarray:
        """An action in the env's bounds back in [-1, 1] (the inverse of rescale_action, clipped)."""
        action = self._check("action", action, self.act_dim, "action")
        return np.clip(2.0 * (action - self._low) / (self._high - self._low) - 1.0, -1.0, 1.0).astype(np.float32)

    # ---- episodes ------------------------------------------------------------------------------
    def reset(self, new_task: bool = False) -> None:
        """Start an episode. ``new_task=True`` (and the first call): forget the context, back to the prior;
        otherwise keep what was observed. An unfinished episode ends here."""
        if self._started and self.episode_len > 0:
            self._end_episode()
        if new_task or not self._started:
            self.agent.reset(torch.zeros(1, dtype=torch.long, device=self.device), self._rollout)
            self.eval_steps = 0
            self._started = True
        self.episode_len = 0
        self.agent.begin_evaluation(np.ones(1, dtype=bool))

    def _end_episode(self) -> None:
        self.eval_steps += self.episode_len
        self.episode_len = 0
        one = np.ones(1, dtype=bool)
        self.agent.end_episodes(one, one, np.array([self.eval_steps], dtype=np.int64))

    def _ensure_started(self) -> None:
        if not self._started:
            self.reset(new_task=True)

    # ---- acting and observing ------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs, deterministic: bool | None = None) -> np.ndarray:
        """The action for the raw observation ``obs`` [obs_dim], in the env's action space (float64)."""
        self._ensure_started()
        det = self.deterministic if deterministic is None else bool(deterministic)
        o = torch.as_tensor(self.normalize_obs(obs)[None], device=self.device, dtype=self.agent.dtype)
        a = self.agent.act(o, deterministic=det).cpu().numpy()[0].astype(np.float32)  # as the protocol hands it
        return rescale_action(a.astype(np.float64), self._low, self._high)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool | None = None):
        """Stable-Baselines3's signature: ``(action, None)`` (the belief is kept inside, not in ``state``)."""
        return self.act(observation, deterministic=deterministic), None

    @torch.no_grad()
    def observe(self, obs, action, reward, next_obs, done: bool = False) -> None:
        """One transition in the env's units (``action`` in its action space); ``done=True`` ends the episode."""
        self._ensure_started()
        o = self.normalize_obs(obs)
        o2 = self._check("next_obs", next_obs, self.obs_dim, "observation")
        o2 = (o2 / self.obs_absmax if self.obs_absmax is not None else o2).astype(np.float32)
        a = self._unscale_action(action)
        r = float(reward)
        dt = self.agent.dtype

        def rows(pos):
            t = lambda x: torch.as_tensor(np.asarray(x)[None], device=self.device, dtype=dt)  # noqa: E731
            part = {"obs": t(o), "actions": t(a), "rewards": t([r]), "next_obs": t(o2)}
            return self.run.context_rows(part)[:, None]

        one = np.ones(1, dtype=bool)
        self.agent.observe(Transitions(np.zeros(1, dtype=np.int64), one, ~one, False, rows))
        self.episode_len += 1
        if done or self.episode_len >= self.settings.max_path_length:
            self._end_episode()

    def belief(self):
        """(z [z_dim], its variance or None) of a z-context agent; None without a z."""
        b = self.agent.belief() if self._started else None
        if b is None:
            return None
        z, var = b
        return z[0], None if var is None else var[0]


def load(run_dir, itr: int | None = None, device: str | torch.device = "cpu", deterministic: bool = True) -> Policy:
    """The agent of run ``run_dir`` (snapshot ``itr``; None: the newest) as a one-env :class:`Policy`."""
    from rlkit.evaluation.run_loader import load_run

    return Policy(load_run(run_dir, itr=itr, device=device), deterministic=deterministic)
