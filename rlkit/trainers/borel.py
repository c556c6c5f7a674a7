"""BOReL's training as the generic loop drives it: ``algo_params.trainer: borel`` (docs/method.md §8.5).

Settings: BOReL's own from its settings table, rlkit/configs/trainers/borel/VARIANT.json (the run's
``env_name`` block over ``common``; ``borel.variant`` names the table, BOReL or the BOReL-RR oracle),
overridden by the config's ``borel`` section (``borel.kl_weight=0.1``); SAC/BRAC's regularisers and
BRAC's switches from the run's ``algo_params`` (rlkit/defaults.py), like every method's;
``meta_batch``, ``batch_size``, ``mb_replace`` and ``sparse_rewards`` from ``algo_params`` too.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from rlkit.config import ConfigError, shipped_section
from rlkit.envs import run_context_reward
from rlkit.torch import borel
from rlkit.torch.hyperparams import CSROHyperParams
from rlkit.trainers.base import StepDelegate, Trainer

VAE_COLUMNS = ["VAE Loss", "Reward Reconstruction Loss", "KL Loss"]
RL_COLUMNS = ["QF Loss", "VF Loss", "Policy Loss", "Q Predictions Mean", "Log Pis Mean"]
BRAC_COLUMNS = ["Dual Critic Loss", "div_estimate"]


def hyperparams(cfg: Mapping) -> borel.BOReLHyperParams:
    """BOReL's settings of a resolved config (see the module docstring); ``borel.variant`` names the
    preset file (``BOReL``, or ``BOReL-RR``, the reward-relabelling oracle)."""
    overrides = dict(cfg.get("borel") or {})
    variant = str(overrides.pop("variant", "BOReL"))
    hp = borel.BOReLHyperParams.preset(str(cfg["env_name"]), variant, **overrides)
    hp.rl = CSROHyperParams.from_config(cfg)
    return hp


def _episode_steps(cfg: Mapping):
    """The run's episode length (``algo_params.max_path_length``), which bounds what the agent's infer_z reads."""
    steps = (cfg.get("algo_params") or {}).get("max_path_length")
    return None if steps is None else int(steps)


class BOReLMethod(StepDelegate, Trainer):
    """The BOReL step (rlkit.torch.borel.BOReLStep) with its sampler; ``algo_params.trainer: borel``."""

    name = "borel"
    config_section = "borel"
    task_embedding = True

    @classmethod
    def config_defaults(cls):
        return shipped_section("borel")

    @classmethod
    def hparam_keys(cls):
        return ("borel.variant", "algo_params.use_brac")  # the table's values are the variant's (written ones show too)

    def __init__(self, cfg: Mapping, data: Any, env: Any, device: torch.device):
        algo = cfg["algo_params"]
        self.cfg, self.algo, self.data, self.device = cfg, algo, data, torch.device(device)
        self.obs_dim, self.act_dim = env.observation_space.shape[0], env.action_space.shape[0]
        self.hp = hyperparams(cfg)
        self.step = borel.BOReLStep(self.obs_dim, self.act_dim, self.hp, device=self.device)
        self.step.agent.episode_steps = _episode_steps(cfg)
        self.context_reward = run_context_reward(env, algo)
        self._train_ids = np.asarray(data.train_tasks)
        self.relabel = None
        if self.hp.reward_relabelling:  # BOReL-RR: refuse before training an env without a closed-form step
            from rlkit.envs import RelabelUnsupported

            try:
                env.relabel_outcomes(torch.zeros(1, self.obs_dim), torch.zeros(1, self.act_dim),
                                     torch.zeros(1, dtype=torch.long))
            except RelabelUnsupported as exc:
                raise ConfigError(f"BOReL-RR relabels rewards with the env's true step: {exc}") from None
            if getattr(data, "obs_absmax", None) is not None:
                raise ConfigError("BOReL-RR steps the env from stored states, which this dataset keeps normalized "
                                  "(obs_absmax); use the BOReL preset")
            self.relabel = env.relabel_outcomes
        if not algo["mb_replace"] and self.hp.vae_meta_batch > len(self._train_ids):
            raise ConfigError(f"BOReL's vae_meta_batch {self.hp.vae_meta_batch} exceeds the {len(self._train_ids)} "
                              "training tasks; lower it (borel.vae_meta_batch) or set algo_params.mb_replace=true")

    @classmethod
    def from_config(cls, cfg, data, env, device):
        return cls(cfg, data, env, device)

    @classmethod
    def load_agent(cls, cfg, obs_dim, act_dim, trainer_state) -> borel.BOReLAgent:
        agent = borel.BOReLAgent(int(obs_dim), int(act_dim), hyperparams(cfg), _episode_steps(cfg))
        agent.load_state_dict(trainer_state["networks"]["agent"])
        return agent

    # ------------------------------------------------------------------ data
    def plan_iteration(self, rng: np.random.Generator, n_steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per step: (the VAE batch's ``vae_meta_batch`` task ids, the RL batch's ``meta_batch``), drawn from
        the training tasks with ``mb_replace``."""
        replace = bool(self.algo["mb_replace"])
        plan = []
        for _ in range(n_steps):
            vae = rng.choice(self._train_ids, self.hp.vae_meta_batch, replace=replace)
            rl = rng.choice(self._train_ids, self.algo["meta_batch"], replace=replace)
            plan.append((torch.as_tensor(vae, device=self.device), torch.as_tensor(rl, device=self.device)))
        return plan

    def sample(self, plan, generator: torch.Generator) -> borel.BOReLBatch:
        vae_tasks, rl_tasks = plan
        return borel.sample_batch(self.data.train, vae_tasks, rl_tasks, self.hp, int(self.algo["batch_size"]),
                                  generator=generator, context_reward=self.context_reward, relabel=self.relabel,
                                  source_tasks=torch.as_tensor(self._train_ids))

    @classmethod
    def offline_context(cls, cfg, buffer, generator: torch.Generator, context_reward=None):
        return borel.offline_context(buffer, generator, context_reward)

    # ------------------------------------------------------------------ the step and its state
    def progress_columns(self) -> list[str]:
        return VAE_COLUMNS + RL_COLUMNS + (BRAC_COLUMNS if self.hp.rl.use_brac else [])
