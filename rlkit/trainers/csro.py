"""CSRO's training as the generic loop drives it: the batch layout, the authors' context chunks,
the memory bound, the progress columns and the HParams of :class:`rlkit.torch.csro.CSROTrainer`.

All five shipped methods (CSRO, FOCAL, offline PEARL, CORRO, UNICORN-SS) are this trainer with other
representation objectives (rlkit.torch.objectives); the step itself is docs/method.md §5. What lived
in the generic loop because CSRO was the only method lives here:

- each step draws the whole meta batch's data -- context, RL batch and BRAC's extra dual-critic
  batches -- with a single buffer call: uniform sampling with replacement, so one draw of
  N + B·c_iter transitions split into parts has the same distribution as separate draws;
- ``embedding_mini_batch_size`` below ``embedding_batch_size`` makes each step batch // mini updates,
  one per context chunk of mini transitions, each with its own RL batch (the authors' loop); a mini
  size at or above the batch size is one chunk of ``embedding_batch_size``;
- CORRO-relabel's negatives are bound to the sampled context rows (rlkit.torch.objectives.corro).
"""

from __future__ import annotations

import functools
from typing import Mapping

import numpy as np
import torch

from rlkit.envs import run_context_reward
from rlkit.torch import objectives
from rlkit.torch.csro import CSROAgent, CSROTrainer, MetaBatch
from rlkit.torch.hyperparams import CSROHyperParams
from rlkit.torch.networks import context_from_sample
from rlkit.torch.objectives.corro import check_relabel_source, relabelled_rows
from rlkit.trainers.base import StepDelegate, Trainer

# the reference's Mean/Std/Max/Min blocks of the step's statistics, in its order
STAT_BLOCKS = ("Q Predictions", "V Predictions", "Log Pis", "Policy mu", "Policy log std", "alpha", "div_estimate")

# CSRO's keys in TensorBoard's HParams tab, beside the objectives' own (rlkit.torch.objectives.method_keys)
HPARAM_KEYS = (
    "latent_size", "net_size", "algo_params.embedding_batch_size",
    "algo_params.policy_lr", "algo_params.qf_lr", "algo_params.vf_lr", "algo_params.context_lr",
    "algo_params.reward_scale", "algo_params.discount", "algo_params.allow_backward_z", "algo_params.use_brac",
    "algo_params.target_divergence", "algo_params.use_next_obs_in_context",
)


def objective_statistics(hp) -> list[str]:
    """The columns of the objectives ``hp`` switches on, from their registry (rlkit.torch.objectives)."""
    return [col for cls in objectives.OBJECTIVES if cls.enabled(hp) for col in cls.columns(hp)]


def training_columns(latent_size: int, algo: Mapping, objective_statistics: list[str] | tuple = ()) -> list[str]:
    """The training part of the header the authors' code writes for these settings, in its order.

    Their trainer statistics (per-dimension z of the meta batch's first task), the representation
    objectives' statistics (``objective_statistics``, as :func:`objective_statistics` gives them), the
    losses of the parts that are on (the dual critic's only under BRAC), then the Mean/Std/Max/Min blocks.
    """
    cols = [f"Z mean train{i}" for i in range(latent_size)] + ["Z variance train", "task idx"]
    cols += list(objective_statistics)
    cols += ["QF Loss", "VF Loss", "Policy Loss"]
    if algo.get("use_brac"):
        cols += ["Dual Critic Loss"]
    cols += [f"{name} {s}" for name in STAT_BLOCKS for s in ("Mean", "Std", "Max", "Min")]
    return cols


def network_memory(cfg: Mapping, obs_dim: int, act_dim: int, itemsize: int) -> dict[str, int]:
    """A lower bound on the bytes the networks need, by the setting that drives it.

    Counted: the first two layers of the six networks that read z (policy, two
    Q, V, target V, dual critic), each with weights, gradients and Adam's two
    moments. Real use is higher (the encoder, the other layers, activations),
    so a config refused by this bound could never have run.
    """
    latent, net = int(cfg["latent_size"]), int(cfg["net_size"])
    copies = 5 * 4 + 1  # five trained networks x (weights, gradients, 2 Adam moments) + the target network
    return {"latent_size": copies * (obs_dim + act_dim + latent) * net * itemsize,
            "net_size": copies * net * net * itemsize}


class CSROMethod(StepDelegate, Trainer):
    """The CSRO step (rlkit.torch.csro) with its sampler; ``algo_params.trainer: csro``."""

    name = "csro"
    memory_hint = " (the paper's configs use latent_size 20, net_size 256)"
    task_embedding = True  # z (rlkit.context_shift)

    def __init__(self, cfg: Mapping, data, env, device: torch.device):
        algo = cfg["algo_params"]
        self.cfg, self.algo, self.data, self.device = cfg, algo, data, torch.device(device)
        self.obs_dim, self.act_dim = env.observation_space.shape[0], env.action_space.shape[0]
        self.hp = CSROHyperParams.from_config(cfg)
        self.step = CSROTrainer(self.obs_dim, self.act_dim, self.hp, device=self.device)
        self.context_reward = run_context_reward(env, algo)
        self.relabel_outcomes = env.relabel_outcomes
        if "relabel" in self.step.batch_fields:  # refuse before training, not at the first step
            check_relabel_source(self.relabel_outcomes, self.obs_dim, self.act_dim, data.obs_absmax, self.device)
        self._train_ids = np.asarray(data.train_tasks)
        self.context_size = min(algo["embedding_mini_batch_size"], algo["embedding_batch_size"])
        self.updates_per_step = algo["embedding_batch_size"] // self.context_size

    @classmethod
    def from_config(cls, cfg, data, env, device):
        return cls(cfg, data, env, device)

    # ------------------------------------------------------------------ before a run
    @classmethod
    def memory_bound(cls, cfg, obs_dim, act_dim, itemsize):
        return network_memory(cfg, obs_dim, act_dim, itemsize)

    @classmethod
    def size_settings(cls):
        return ("latent_size", "net_size", "algo_params.meta_batch", "algo_params.batch_size",
                "algo_params.embedding_batch_size", "algo_params.embedding_mini_batch_size",
                "algo_params.replay_buffer_size")

    @classmethod
    def preset_open_keys(cls, preset):
        return objectives.preset_open_keys(preset)

    @classmethod
    def hparam_keys(cls):
        return (*HPARAM_KEYS, *(f"algo_params.{k}" for k in objectives.method_keys()))

    @classmethod
    def load_agent(cls, cfg, obs_dim, act_dim, trainer_state):
        agent = CSROAgent(int(obs_dim), int(act_dim), CSROHyperParams.from_config(cfg))
        agent.load_state_dict(trainer_state["networks"]["agent"])
        return agent

    # ------------------------------------------------------------------ data
    def context(self, part: dict) -> torch.Tensor:
        """Context rows (s, a, r[, s']) of a buffer sample, the reward as the context holds it (sparse runs)."""
        return context_from_sample(part, self.hp.use_next_obs_in_context, self.context_reward)

    def plan_iteration(self, rng: np.random.Generator, n_steps: int) -> torch.Tensor:
        """[n_steps, meta_batch] task ids of an iteration's steps, uploaded to the device at once.

        One host-to-device copy per iteration instead of one per step (which
        would block the host on a GPU); the draws are the same as drawing
        before each step, since nothing else reads ``rng`` in between.
        """
        algo = self.algo
        choices = [rng.choice(self._train_ids, algo["meta_batch"], replace=algo["mb_replace"]) for _ in range(n_steps)]
        return torch.as_tensor(np.asarray(choices, dtype=np.int64).reshape(n_steps, algo["meta_batch"]),
                               device=self.device)

    def sample(self, task_ids: torch.Tensor, generator: torch.Generator) -> MetaBatch:
        """The step's context, RL batch and extra dual-critic batches for ``task_ids`` [meta_batch]."""
        n, b, c = self.context_size, self.algo["batch_size"], self.hp.c_iter
        extra = (c - 1) if self.step.trains_dual_critic else 0
        sample = self.data.train.sample(task_ids, n + b * (1 + extra), generator=generator)
        split = lambda key, lo, hi: sample[key][:, lo:hi]  # noqa: E731
        ctx = self.context({k: split(k, 0, n) for k in ("obs", "actions", "rewards", "next_obs")})
        rl = {k: split(k, n, n + b) for k in ("obs", "actions", "rewards", "next_obs", "terminals")}
        batch = MetaBatch(task_ids=task_ids, context=ctx, **rl)
        if "relabel" in self.step.batch_fields:
            batch.relabel = functools.partial(
                relabelled_rows, self.relabel_outcomes, self.context, torch.as_tensor(self._train_ids),
                split("obs", 0, n), split("actions", 0, n), generator=generator)
        if extra:
            t = task_ids.shape[0]
            batch.extra_obs = split("obs", n + b, None).reshape(t, extra, b, -1).transpose(0, 1)
            batch.extra_actions = split("actions", n + b, None).reshape(t, extra, b, -1).transpose(0, 1)
        return batch

    @classmethod
    def offline_context(cls, cfg, buffer, generator: torch.Generator, context_reward=None):
        """For the offline protocol: ``n`` uniform transitions of each task's data, as the encoder reads them."""
        use_next_obs = CSROHyperParams.from_config(cfg).use_next_obs_in_context

        def fn(task_ids: torch.Tensor, n: int) -> torch.Tensor:
            return context_from_sample(buffer.sample(task_ids, n, generator=generator), use_next_obs, context_reward)

        return fn

    # ------------------------------------------------------------------ the step and its state
    @property
    def steps_done(self) -> int:
        return self.step.num_steps // self.updates_per_step

    def progress_columns(self) -> list[str]:
        return training_columns(int(self.cfg["latent_size"]), self.algo, objective_statistics(self.hp))
