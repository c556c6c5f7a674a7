"""Prompt-DT's training as the generic loop drives it: ``algo_params.trainer: prompt-dt`` (docs/method.md §8.6).

Settings: Prompt-DT's own from its settings table, rlkit/configs/trainers/prompt_dt/VARIANT.json (the run's
``env_name`` block over ``common``; ``prompt_dt.variant`` names the table), overridden by the config's
``prompt_dt`` section (``prompt_dt.K=10``); ``meta_batch`` and ``mb_replace`` from ``algo_params``.
It has no task embedding (no z): the context-shift diagnostics are n/a for it (:attr:`task_embedding`).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from rlkit.config import ConfigError, shipped_section
from rlkit.torch import prompt_dt
from rlkit.trainers.base import StepDelegate, Trainer

COLUMNS = ["Action Loss"]


def hyperparams(cfg: Mapping) -> prompt_dt.PromptDTHyperParams:
    """Prompt-DT's settings of a resolved config (see the module docstring)."""
    overrides = dict(cfg.get("prompt_dt") or {})
    variant = str(overrides.pop("variant", "Prompt-DT"))
    return prompt_dt.PromptDTHyperParams.preset(str(cfg["env_name"]), variant, **overrides)


class PromptDTMethod(StepDelegate, Trainer):
    """The Prompt-DT step (rlkit.torch.prompt_dt.PromptDTStep) with its sampler; ``algo_params.trainer: prompt-dt``."""

    name = "prompt-dt"
    config_section = "prompt_dt"
    task_embedding = False

    @classmethod
    def config_defaults(cls):
        return shipped_section("prompt_dt")

    @classmethod
    def hparam_keys(cls):
        return ("prompt_dt.variant",)

    @classmethod
    def size_settings(cls):
        return ("algo_params.meta_batch", "prompt_dt.windows_per_task", "prompt_dt.K", "prompt_dt.prompt_length",
                "prompt_dt.embed_dim", "algo_params.replay_buffer_size")

    def __init__(self, cfg: Mapping, data: Any, env: Any, device: torch.device):
        algo = cfg["algo_params"]
        self.cfg, self.algo, self.data, self.device = cfg, algo, data, torch.device(device)
        self.obs_dim, self.act_dim = env.observation_space.shape[0], env.action_space.shape[0]
        self.hp = hyperparams(cfg)
        if algo.get("sparse_rewards"):
            raise ConfigError("Prompt-DT conditions on returns-to-go of the stored (dense) rewards; a sparse-reward "
                              "run (algo_params.sparse_rewards) is not supported")
        self._train_ids = np.asarray(data.train_tasks)
        if not algo["mb_replace"] and int(algo["meta_batch"]) > len(self._train_ids):
            raise ConfigError(f"meta_batch {algo['meta_batch']} exceeds the {len(self._train_ids)} training tasks; "
                              "lower it or set algo_params.mb_replace=true")
        self.step = prompt_dt.PromptDTStep(self.obs_dim, self.act_dim, self.hp, device=self.device)
        net, agent = self.step.agent.net, self.step.agent
        with torch.no_grad():  # the data's statistics: part of the agent's state, so a snapshot carries them
            if self.hp.normalize_states:
                mean, std = data.train.obs_moments()
                net.obs_mean.copy_(mean.to(net.obs_mean))
                net.obs_std.copy_((std + 1e-6).to(net.obs_std))
            if self.hp.target_return is None:
                agent.target_return.fill_(float(data.train.episode_returns().max()))

    @classmethod
    def from_config(cls, cfg, data, env, device):
        return cls(cfg, data, env, device)

    @classmethod
    def load_agent(cls, cfg, obs_dim, act_dim, trainer_state) -> prompt_dt.PromptDTAgent:
        agent = prompt_dt.PromptDTAgent(int(obs_dim), int(act_dim), hyperparams(cfg))
        agent.load_state_dict(trainer_state["networks"]["agent"])
        return agent

    # ------------------------------------------------------------------ data
    def plan_iteration(self, rng: np.random.Generator, n_steps: int) -> list[torch.Tensor]:
        """Per step: the meta batch's ``meta_batch`` task ids, drawn from the training tasks with ``mb_replace``."""
        replace = bool(self.algo["mb_replace"])
        return [torch.as_tensor(rng.choice(self._train_ids, int(self.algo["meta_batch"]), replace=replace),
                                device=self.device) for _ in range(n_steps)]

    def sample(self, plan, generator: torch.Generator) -> prompt_dt.PromptDTBatch:
        return prompt_dt.sample_batch(self.data.train, plan, self.hp, generator=generator)

    @classmethod
    def offline_context(cls, cfg, buffer, generator: torch.Generator, context_reward=None):
        return prompt_dt.offline_context(buffer, generator)

    # ------------------------------------------------------------------ the step and its state
    def progress_columns(self) -> list[str]:
        return list(COLUMNS)
