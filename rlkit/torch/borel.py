"""BOReL: a recurrent belief VAE and an offline SAC (with this project's BRAC option) on (s, belief).

docs/method.md §8 (BOReL) says what is taken from the authors' code and what differs. In short:

- :class:`BeliefEncoder`: (a, s', r) are each embedded (linear + ReLU), concatenated and fed to a
  one-layer GRU; the belief after t transitions is N(mu_t, exp(logvar_t)) from two linear heads on
  the GRU's hidden state. The prior (t = 0) is those heads on a zero hidden state.
- :class:`RewardDecoder`: r_t from (z, s_{t+1}[, s_t][, a_t]), an MLP.
- :func:`concat_episodes`: the belief's sequences are BAMDP trajectories, ``rollouts_per_trajectory``
  whole episodes of one task back to back (the authors' ``max_rollouts_per_task``), the belief running
  across the episode boundaries.
- :func:`elbo_loss`: for every belief of a trajectory (the prior included) and every step of that
  trajectory, the squared error of the decoded reward, summed over steps and beliefs; plus ``kl_weight``
  times the KL of each belief to the one before it (the first to N(0, I)), summed over beliefs;
  averaged over trajectories. Padded steps are masked out.
- :class:`BOReLStep`: per step one VAE update (while ``num_steps < vae_train_steps``) and one SAC
  update (once ``num_steps >= policy_start_step``) on transitions whose beliefs the current encoder
  computes without gradient: the RL losses never move the VAE.
- :class:`BOReLAgent`: the evaluation agent (an :class:`rlkit.core.eval_agent.EvalAgent`): each
  episode starts from the GRU over the last ``rollouts_per_trajectory - 1`` episodes of what joined the
  protocol's context, and the GRU steps after every transition of the episode, so its belief never
  reads more episodes than a training belief did.

Everything is batched over tasks and trajectories ([T, K, R * W, ...]); the GRU runs over whole padded
trajectories in one call, and no training code loops over transitions in Python.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rlkit.config import TRAINER_SETTINGS_DIR, ConfigError, trainer_settings
from rlkit.torch import losses as L
from rlkit.torch.hyperparams import CSROHyperParams
from rlkit.torch.networks import FlattenMlp, TanhGaussianPolicy, split_context
from rlkit.torch.step_state import StepState
from rlkit.core.eval_agent import EvalAgent

PRESET_DIR = TRAINER_SETTINGS_DIR / "borel"
PRESET_PATH = PRESET_DIR / "BOReL.json"


# --------------------------------------------------------------------------- settings


@dataclass
class BOReLHyperParams:
    """BOReL's settings. The VAE's and the SAC's own are fields; BRAC's (``use_brac``,
    ``divergence_name``, ``alpha_*``, ``c_lr``, ...) and SAC's regularisers are the project's
    (:class:`CSROHyperParams`, rlkit/defaults.py), held in ``rl``."""

    latent_size: int = 5
    gru_hidden_size: int = 128
    state_embed_size: int = 32
    action_embed_size: int = 16
    reward_embed_size: int = 16
    reward_decoder_layers: Sequence[int] = (32, 32)
    decoder_input_prev_state: bool = False
    decoder_input_action: bool = False
    kl_weight: float = 0.05
    reward_loss_coeff: float = 1.0
    vae_lr: float = 3e-4
    rollouts_per_trajectory: int = 2  # whole episodes of one task per belief sequence (their max_rollouts_per_task)
    vae_episodes_per_task: int = 8  # sequences (each rollouts_per_trajectory episodes) per task in a VAE batch
    vae_meta_batch: int = 8  # tasks in a VAE batch
    vae_train_steps: Optional[int] = None  # VAE updates on steps 0 .. N-1 (None: every step)
    policy_start_step: int = 0  # SAC updates from this step on
    rl_episodes_per_task: int = 8  # sequences per task the RL batch's transitions are drawn from
    net_sizes: Sequence[int] = (128, 128)  # hidden layers of the policy, the Qs, V and the dual critic
    policy_lr: float = 3e-4
    qf_lr: float = 3e-4
    vf_lr: float = 3e-4
    soft_target_tau: float = 0.005
    discount: float = 0.9
    reward_scale: float = 100.0
    reward_relabelling: bool = False  # BOReL-RR, an oracle (the env's true step of other tasks)
    rl: CSROHyperParams = field(default_factory=CSROHyperParams)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "BOReLHyperParams":
        """Own keys to the fields, every other key to the project's step settings (``rl``), where an
        unknown name is a one-line ConfigError."""
        own = {f.name for f in fields(cls)} - {"rl"}
        mine = {k: v for k, v in values.items() if k in own}
        rest = {k: v for k, v in values.items() if k not in own and not str(k).startswith("_")}
        for k in ("reward_decoder_layers", "net_sizes"):
            if k in mine:
                mine[k] = tuple(int(x) for x in mine[k])
        if "rollouts_per_trajectory" in mine and int(mine["rollouts_per_trajectory"]) < 1:
            raise ConfigError(f"borel.rollouts_per_trajectory must be >= 1, got {mine['rollouts_per_trajectory']}")
        return cls(**mine, rl=CSROHyperParams(**rest))

    @classmethod
    def preset(cls, env_name: str, variant: str = "BOReL", **overrides: Any) -> "BOReLHyperParams":
        """The shipped preset of ``env_name``: rlkit/configs/trainers/borel/VARIANT.json's ``common`` block, then its
        env block, over the blocks of the preset it ``extends`` (BOReL-RR extends BOReL)."""
        return cls.from_mapping({**trainer_settings("borel", variant, env_name), **overrides})

    @property
    def belief_dim(self) -> int:
        """What the policy reads beside s: the belief's mean and log-variance."""
        return 2 * self.latent_size


# --------------------------------------------------------------------------- the VAE


class BeliefEncoder(nn.Module):
    """GRU belief over (a, s', r): embeddings (linear + ReLU) -> GRU -> (mu, logvar) heads.

    The GRU's weights are orthogonal and its biases zero (as the authors initialise theirs).
    """

    def __init__(self, obs_dim: int, act_dim: int, hp: BOReLHyperParams):
        super().__init__()
        self.obs_dim, self.act_dim, self.latent_dim = int(obs_dim), int(act_dim), int(hp.latent_size)
        self.hidden_size = int(hp.gru_hidden_size)
        self.state_embed = nn.Linear(obs_dim, hp.state_embed_size)
        self.action_embed = nn.Linear(act_dim, hp.action_embed_size)
        self.reward_embed = nn.Linear(1, hp.reward_embed_size)
        self.gru = nn.GRU(hp.state_embed_size + hp.action_embed_size + hp.reward_embed_size, self.hidden_size,
                          num_layers=1, batch_first=True)
        for name, p in self.gru.named_parameters():
            if "bias" in name:
                nn.init.zeros_(p)
            else:
                nn.init.orthogonal_(p)
        self.fc_mu = nn.Linear(self.hidden_size, self.latent_dim)
        self.fc_logvar = nn.Linear(self.hidden_size, self.latent_dim)

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc_mu(h), self.fc_logvar(h)

    def prior(self, n: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mu, logvar, hidden) of ``n`` beliefs before any transition: the heads on a zero hidden state."""
        p = self.fc_mu.weight
        h = torch.zeros(n, self.hidden_size, device=device or p.device, dtype=dtype or p.dtype)
        mu, logvar = self.heads(h)
        return mu, logvar, h

    def embed(self, actions: torch.Tensor, next_obs: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.action_embed(actions)), F.relu(self.state_embed(next_obs)),
                          F.relu(self.reward_embed(rewards))], dim=-1)

    def run(self, actions: torch.Tensor, next_obs: torch.Tensor, rewards: torch.Tensor,
            h0: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Step the GRU over sequences [N, W, ...] from ``h0`` [N, H] (None: the prior's zeros).

        Returns (mu, logvar) [N, W, L] after each transition and the hidden states [N, W, H].
        """
        x = self.embed(actions, next_obs, rewards)
        n = x.shape[0]
        if h0 is None:
            h0 = torch.zeros(n, self.hidden_size, device=x.device, dtype=x.dtype)
        out, _ = self.gru(x, h0[None].contiguous())
        mu, logvar = self.heads(out)
        return mu, logvar, out

    def read(self, actions: torch.Tensor, next_obs: torch.Tensor, rewards: torch.Tensor,
             lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mu, logvar, hidden) [N, .] after the GRU has read the first ``lengths[n]`` steps of right-padded
        sequences [N, W, .] from the prior (length 0: the prior); a causal GRU never reads the padding back."""
        n = actions.shape[0]
        mu0, logvar0, h0 = self.prior(n, actions.device, actions.dtype)
        if actions.shape[1] == 0:
            return mu0, logvar0, h0
        mu, logvar, out = self.run(actions, next_obs, rewards)
        rows, last = torch.arange(n, device=actions.device), (lengths.to(actions.device) - 1).clamp(min=0)
        real = (lengths.to(actions.device) > 0)[:, None]
        return (torch.where(real, mu[rows, last], mu0), torch.where(real, logvar[rows, last], logvar0),
                torch.where(real, out[rows, last], h0))

    def beliefs(self, actions: torch.Tensor, next_obs: torch.Tensor,
                rewards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Beliefs of whole episodes [..., W, ...] from the prior: (mu, logvar) [..., W + 1, L], index t
        the belief after t transitions (index 0 the prior). Any leading dims ([T, K] of a meta batch)."""
        lead = actions.shape[:-2]
        flat = lambda x: x.reshape(-1, *x.shape[-2:])  # noqa: E731
        mu, logvar, _ = self.run(flat(actions), flat(next_obs), flat(rewards))
        mu0, logvar0, _ = self.prior(mu.shape[0], mu.device, mu.dtype)
        mu = torch.cat([mu0[:, None], mu], dim=1)
        logvar = torch.cat([logvar0[:, None], logvar], dim=1)
        return mu.reshape(*lead, *mu.shape[1:]), logvar.reshape(*lead, *logvar.shape[1:])


class RewardDecoder(nn.Module):
    """r from (z, s'[, s][, a]): an MLP with ReLU hidden layers (the authors' deterministic reward head)."""

    def __init__(self, obs_dim: int, act_dim: int, hp: BOReLHyperParams):
        super().__init__()
        self.use_prev_state, self.use_action = bool(hp.decoder_input_prev_state), bool(hp.decoder_input_action)
        width = hp.latent_size + obs_dim + (obs_dim if self.use_prev_state else 0) + (act_dim if self.use_action else 0)
        layers: list[nn.Module] = []
        for size in hp.reward_decoder_layers:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, next_obs: torch.Tensor, obs: torch.Tensor,
                actions: torch.Tensor) -> torch.Tensor:
        parts = [z, next_obs]
        if self.use_prev_state:
            parts.append(obs)
        if self.use_action:
            parts.append(actions)
        lead = torch.broadcast_shapes(*(p.shape[:-1] for p in parts))
        return self.net(torch.cat([p.expand(*lead, p.shape[-1]) for p in parts], dim=-1))


def kl_to_previous(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q_k || q_{k-1}) per belief [..., K1] of beliefs [..., K1, L], q_{-1} = N(0, I), summed over L."""
    prev_mu = torch.cat([torch.zeros_like(mu[..., :1, :]), mu[..., :-1, :]], dim=-2)
    prev_lv = torch.cat([torch.zeros_like(logvar[..., :1, :]), logvar[..., :-1, :]], dim=-2)
    return 0.5 * (prev_lv - logvar - 1.0 + torch.exp(logvar - prev_lv)
                  + (mu - prev_mu) ** 2 / torch.exp(prev_lv)).sum(dim=-1)


def elbo_terms(decoder: RewardDecoder, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor,
               ep: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per episode [E]: (reward reconstruction, KL), each summed over the episode's beliefs.

    ``mu``, ``logvar``, ``eps`` [E, W + 1, L]: the beliefs (prior first) and the noise of their one
    sample each; ``ep``: the episodes' ``obs``, ``actions``, ``rewards``, ``next_obs`` [E, W, .] and
    ``mask`` [E, W] (right-padded). Belief k (k = 0 .. len) decodes every real step of its episode.
    """
    mask = ep["mask"].to(mu.dtype)  # [E, W]
    z = mu + torch.exp(0.5 * logvar) * eps  # [E, W+1, L]
    pred = decoder(z[:, :, None, :], ep["next_obs"][:, None], ep["obs"][:, None], ep["actions"][:, None])
    sq = ((pred - ep["rewards"][:, None]) ** 2).mean(dim=-1)  # [E, W+1, W]
    lengths = mask.sum(dim=-1)  # [E]
    beliefs_real = (torch.arange(mu.shape[1], device=mu.device)[None] <= lengths[:, None]).to(mu.dtype)  # [E, W+1]
    rec = (sq * mask[:, None, :] * beliefs_real[:, :, None]).sum(dim=(1, 2))
    kl = (kl_to_previous(mu, logvar) * beliefs_real).sum(dim=-1)
    return rec, kl


def elbo_loss(decoder: RewardDecoder, mu, logvar, eps, ep, kl_weight: float,
              reward_loss_coeff: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, mean reconstruction, mean KL): ``reward_loss_coeff * rec + kl_weight * kl``, averaged over episodes."""
    rec, kl = elbo_terms(decoder, mu, logvar, eps, ep)
    rec, kl = rec.mean(), kl.mean()
    return reward_loss_coeff * rec + kl_weight * kl, rec, kl


# --------------------------------------------------------------------------- the agent


class BOReLAgent(nn.Module, EvalAgent):
    """Belief encoder + policy on (s, mu, logvar); an :class:`EvalAgent` with a recurrent belief over at
    most ``rollouts_per_trajectory`` episodes, as in training.

    At the start of every episode the belief is the GRU, from the prior, over the last
    ``rollouts_per_trajectory - 1`` *context episodes* of the rollout, oldest first: an offline block the
    protocol gives before an evaluation episode is one, and so is the joined part of every episode whose
    transitions join the context (the online protocol's episodes, the non-prior protocol's exploration
    episodes); an episode none of whose transitions join adds none. Then the GRU steps after every
    transition of the current episode, joined or not. ``episode_steps`` (the run's ``max_path_length``,
    else the rollout's at :meth:`reset`) bounds what :meth:`infer_z` reads.
    """

    use_next_obs_in_context = True  # the GRU reads s'

    def __init__(self, obs_dim: int, act_dim: int, hp: BOReLHyperParams, episode_steps: Optional[int] = None):
        nn.Module.__init__(self)
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.z_dim = int(hp.latent_size)
        self.rollouts = int(hp.rollouts_per_trajectory)
        self.episode_steps = None if episode_steps is None else int(episode_steps)
        self.encoder = BeliefEncoder(obs_dim, act_dim, hp)
        self.policy = TanhGaussianPolicy(obs_dim, hp.belief_dim, act_dim, hidden_sizes=list(hp.net_sizes))
        self.h = self.mu = self.logvar = None

    @property
    def dtype(self) -> torch.dtype:  # what the protocols hand in
        return self.encoder.fc_mu.weight.dtype

    def belief_input(self) -> torch.Tensor:
        return torch.cat([self.mu, self.logvar], dim=-1)

    # ---- the context episodes the next episode's belief starts from
    def _grow(self, n: int) -> None:
        """Room for ``n`` rows in the current context episode (and so in every kept one)."""
        cap = self._cur.shape[1]
        if n <= cap:
            return
        extra = max(n, 2 * cap) - cap
        self._cur = torch.cat([self._cur, self._cur.new_zeros(self._cur.shape[0], extra, self._cur.shape[2])], 1)
        self._done = torch.cat([self._done, self._done.new_zeros(*self._done.shape[:2], extra, self._done.shape[3])], 2)

    def _close(self, idx: torch.Tensor) -> None:
        """The current context episodes of sub-envs ``idx`` that hold rows join the kept ones (oldest dropped)."""
        idx = idx[self._cur_len[idx] > 0]
        if len(idx) == 0 or self._done.shape[1] == 0:
            self._cur_len[idx] = 0
            return
        self._done[idx] = torch.cat([self._done[idx, 1:], self._cur[idx, None]], dim=1)
        self._done_len[idx] = torch.cat([self._done_len[idx, 1:], self._cur_len[idx, None]], dim=1)
        self._cur_len[idx] = 0

    def _restart(self, idx: torch.Tensor) -> None:
        """The belief of sub-envs ``idx`` at the start of an episode: the GRU over their kept context episodes."""
        n, k, cap, d = len(idx), *self._done.shape[1:]
        seq = self._done[idx].reshape(n, k * cap, d)
        mask = (torch.arange(cap, device=seq.device) < self._done_len[idx][..., None]).reshape(n, k * cap)
        seq = _take(seq, _real_first(mask))
        parts = split_context(seq, self.obs_dim, self.act_dim)
        self.mu[idx], self.logvar[idx], self.h[idx] = self.encoder.read(
            parts["actions"], parts["next_obs"], parts["rewards"], mask.sum(-1))

    @torch.no_grad()
    def reset(self, tasks, rollout):
        m = len(tasks)
        p = self.encoder.fc_mu.weight
        self.mu, self.logvar, self.h = self.encoder.prior(m, p.device, p.dtype)
        settings = getattr(rollout, "settings", None)
        steps = int(getattr(settings, "max_path_length", 0) or self.episode_steps or 1)
        d = 2 * self.obs_dim + self.act_dim + 1
        self._cur = torch.zeros(m, steps, d, device=p.device, dtype=p.dtype)
        self._cur_len = torch.zeros(m, dtype=torch.long, device=p.device)
        self._done = torch.zeros(m, self.rollouts - 1, steps, d, device=p.device, dtype=p.dtype)
        self._done_len = torch.zeros(m, self.rollouts - 1, dtype=torch.long, device=p.device)

    @torch.no_grad()
    def observe(self, transitions):
        """Offline rows (given before an evaluation episode) are one context episode, the belief restarted
        from the kept ones; the sub-envs' own transitions step the GRU, and those that join the context
        join the current context episode."""
        everyone = np.ones(len(transitions.envs), dtype=bool)
        if not everyone.any():
            return
        rows = transitions.rows(everyone).to(self.h.dtype)
        envs = torch.as_tensor(transitions.envs, device=self.h.device)
        if transitions.offline:
            self._close(envs)
            self._grow(rows.shape[1])
            self._cur[envs, :rows.shape[1]] = rows
            self._cur_len[envs] = rows.shape[1]
            self._close(envs)
            self._restart(envs)
            return
        parts = split_context(rows, self.obs_dim, self.act_dim)
        mu, logvar, out = self.encoder.run(parts["actions"], parts["next_obs"], parts["rewards"], self.h[envs])
        self.mu[envs], self.logvar[envs], self.h[envs] = mu[:, -1], logvar[:, -1], out[:, -1]
        joins = np.asarray(transitions.joins, dtype=bool)
        if joins.any() and self.rollouts > 1:
            j = torch.as_tensor(np.flatnonzero(joins), device=self.h.device)
            ej, n = envs[j], rows.shape[1]
            self._grow(int(self._cur_len[ej].max()) + n)
            pos = self._cur_len[ej, None] + torch.arange(n, device=ej.device)
            self._cur[ej[:, None], pos] = rows[j]
            self._cur_len[ej] += n

    @torch.no_grad()
    def end_episodes(self, ended, evaluation, eval_steps):
        if ended.any():
            idx = torch.as_tensor(np.flatnonzero(ended), device=self.h.device)
            self._close(idx)
            self._restart(idx)

    @torch.no_grad()
    def act(self, obs, deterministic):
        return self.policy.act(obs.to(self.mu.dtype), self.belief_input(), deterministic=deterministic)

    @torch.no_grad()
    def act_pair(self, obs):
        out = self.policy(obs.to(self.mu.dtype), self.belief_input(), reparameterize=False, return_log_prob=False)
        return torch.tanh(out.mean), out.action

    def belief(self):
        return self.mu.cpu().numpy(), torch.exp(self.logvar).cpu().numpy()

    @torch.no_grad()
    def infer_z(self, context: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The belief mean after the GRU has read each context's rows in order, from the prior: BOReL's
        task embedding for the context-shift diagnostics (rlkit.context_shift). It reads at most the last
        ``rollouts_per_trajectory * episode_steps`` real rows of a context (the longest sequence a training
        belief read; all of them when ``episode_steps`` is unknown). ``context`` [M, n, D] (rows laid out as
        :attr:`use_next_obs_in_context` says), ``lengths`` [M] the real rows of each (padding after them);
        length 0 is the prior."""
        m, n = context.shape[0], context.shape[1]
        lengths = torch.full((m,), n, device=context.device) if lengths is None else lengths.to(context.device)
        horizon = None if self.episode_steps is None else self.rollouts * self.episode_steps
        if horizon is not None and n > horizon:  # keep each context's last `horizon` real rows, at the front
            first = (lengths - horizon).clamp(min=0)
            pos = (first[:, None] + torch.arange(horizon, device=context.device)).clamp(max=n - 1)
            context = _take(context, pos)
            lengths = lengths.clamp(max=horizon)
        parts = split_context(context.to(self.dtype), self.obs_dim, self.act_dim)
        mu, _, _ = self.encoder.read(parts["actions"], parts["next_obs"], parts["rewards"], lengths)
        return mu


# --------------------------------------------------------------------------- data


@dataclass
class BOReLBatch:
    """One step's data: ``vae`` BAMDP trajectories [Tv, Kv, R * W, .] (+ ``mask``, right-padded); ``rl``
    trajectories [T, K, R * W, .] and ``rl_index`` [T, B], the flat (trajectory, step) positions of the RL
    transitions (R = ``rollouts_per_trajectory``, W the longest episode)."""

    vae_tasks: torch.Tensor
    vae: dict
    rl_tasks: torch.Tensor
    rl: dict
    rl_index: torch.Tensor


EPISODE_KEYS = ("obs", "actions", "rewards", "next_obs", "terminals", "mask")


def _real_first(mask: torch.Tensor) -> torch.Tensor:
    """Indices [..., W] that put the real steps (``mask`` True) first, in their order, the padded ones after."""
    return torch.sort((~mask).to(torch.uint8), dim=-1, stable=True).indices


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x`` [..., W, d] at the steps ``index`` [..., W'] of its last-but-one dim."""
    return torch.gather(x, index.dim() - 1, index[..., None].expand(*index.shape, x.shape[-1]))


def concat_episodes(ep: Mapping[str, torch.Tensor], rollouts: int) -> dict:
    """BAMDP trajectories: episodes [T, K * rollouts, W, .] (right-padded, ``mask`` [T, K * rollouts, W])
    to [T, K, rollouts * W, .], each ``rollouts`` consecutive episodes of the batch joined back to back
    (the real steps of each in order, the next episode's first step right after the last real step of
    the one before), the padding at the end. One gather per key; no loop over episodes or steps."""
    mask = ep["mask"]
    t, kr, w = mask.shape
    if kr % rollouts:
        raise ValueError(f"{kr} episodes per task do not make trajectories of {rollouts}")
    if rollouts == 1:
        return {k: ep[k] for k in EPISODE_KEYS if k in ep}
    m = mask.reshape(t, kr // rollouts, rollouts * w)
    order = _real_first(m)
    out = {k: _take(ep[k].reshape(t, kr // rollouts, rollouts * w, ep[k].shape[-1]), order)
           for k in EPISODE_KEYS if k in ep and k != "mask"}
    out["mask"] = torch.gather(m, 2, order)
    return out


def relabelled_episodes(buffer, tasks, k: int, relabel, source_tasks, generator=None) -> dict:
    """BOReL-RR (an oracle: it needs the env's true step): ``k`` whole episodes per task of ``tasks``, each
    from a source task drawn uniformly from ``source_tasks`` (the task itself included), its (s, a) kept
    and its (s', r) replaced by their outcome in the target task (``relabel(obs, actions, task_ids)`` ->
    (next_obs, rewards), the env's ``relabel_outcomes``). Padded steps stay zero."""
    tasks = torch.as_tensor(tasks)
    source_tasks = torch.as_tensor(source_tasks)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    pick = torch.randint(len(source_tasks), (len(tasks) * k,), generator=generator, device=gen_device)
    src = source_tasks.to(gen_device)[pick]
    ep = {key: v[:, 0].reshape(len(tasks), k, *v.shape[2:])
          for key, v in buffer.sample_episodes(src, 1, generator=generator).items() if key in EPISODE_KEYS}
    target = tasks.to(ep["obs"].device)[:, None, None].expand(ep["mask"].shape)
    next_obs, rewards = relabel(ep["obs"], ep["actions"], target)
    real = ep["mask"][..., None].to(ep["obs"].dtype)
    ep["next_obs"] = next_obs.to(ep["obs"].dtype) * real
    ep["rewards"] = rewards[..., None].to(ep["obs"].dtype) * real
    return ep


def sample_batch(buffer, vae_tasks, rl_tasks, hp: BOReLHyperParams, batch_size: int,
                 generator: Optional[torch.Generator] = None,
                 context_reward: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                 relabel: Optional[Callable] = None, source_tasks=None) -> BOReLBatch:
    """BAMDP trajectories for the VAE and the RL batch: ``vae_episodes_per_task`` (``rl_episodes_per_task``)
    per task, each ``hp.rollouts_per_trajectory`` whole episodes of the task drawn uniformly (with
    replacement) from its offline data and joined back to back (:func:`concat_episodes`); and
    ``batch_size`` transitions per RL task drawn uniformly (with replacement) among the real steps of
    its trajectories. ``context_reward`` (sparse-reward runs) replaces the reward the VAE sees, as the
    context of the other methods holds it. With ``hp.reward_relabelling`` (BOReL-RR) the episodes of
    both batches are :func:`relabelled_episodes` from ``source_tasks`` with the env's step ``relabel``."""
    keys, r = EPISODE_KEYS, int(hp.rollouts_per_trajectory)
    kv, kr = hp.vae_episodes_per_task * r, hp.rl_episodes_per_task * r
    if hp.reward_relabelling:
        if relabel is None or source_tasks is None:
            raise ValueError("BOReL-RR (reward_relabelling) needs the env's relabel_outcomes and the source tasks")
        vae = relabelled_episodes(buffer, vae_tasks, kv, relabel, source_tasks, generator)
        rl = relabelled_episodes(buffer, rl_tasks, kr, relabel, source_tasks, generator)
    else:
        vae = {k: v for k, v in buffer.sample_episodes(vae_tasks, kv, generator=generator).items() if k in keys}
        rl = {k: v for k, v in buffer.sample_episodes(rl_tasks, kr, generator=generator).items() if k in keys}
    vae, rl = concat_episodes(vae, r), concat_episodes(rl, r)
    if context_reward is not None:
        vae["rewards"] = context_reward(vae["rewards"])
        rl["context_rewards"] = context_reward(rl["rewards"])
    weights = rl["mask"].reshape(rl["mask"].shape[0], -1).to(torch.float32)
    index = torch.multinomial(weights, batch_size, replacement=True, generator=generator)  # on the buffer's device
    return BOReLBatch(torch.as_tensor(vae_tasks), vae, torch.as_tensor(rl_tasks), rl, index)


def _flat_steps(x: torch.Tensor) -> torch.Tensor:
    """[T, K, W, d] -> [T, K*W, d]."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


# --------------------------------------------------------------------------- the step


class BOReLStep(StepState):
    """Networks, optimizers and one BOReL update on a :class:`BOReLBatch`."""

    def __init__(self, obs_dim: int, act_dim: int, hp: BOReLHyperParams, device: torch.device | str = "cpu"):
        self.hp, self.device = hp, torch.device(device)
        rl, nets, b = hp.rl, list(hp.net_sizes), hp.belief_dim
        self.agent = BOReLAgent(obs_dim, act_dim, hp).to(self.device)
        self.decoder = RewardDecoder(obs_dim, act_dim, hp).to(self.device)
        self.qf1 = FlattenMlp(obs_dim + act_dim + b, nets, 1).to(self.device)
        self.qf2 = FlattenMlp(obs_dim + act_dim + b, nets, 1).to(self.device)
        self.vf = FlattenMlp(obs_dim + b, nets, 1).to(self.device)
        self.target_vf = copy.deepcopy(self.vf).requires_grad_(False)
        self.dual_critic = FlattenMlp(obs_dim + act_dim + b, nets, 1).to(self.device)
        adam = torch.optim.Adam
        self.optimizers = {
            "vae": adam([*self.agent.encoder.parameters(), *self.decoder.parameters()], lr=hp.vae_lr),
            "policy": adam(self.agent.policy.parameters(), lr=hp.policy_lr),
            "qf1": adam(self.qf1.parameters(), lr=hp.qf_lr),
            "qf2": adam(self.qf2.parameters(), lr=hp.qf_lr),
            "vf": adam(self.vf.parameters(), lr=hp.vf_lr),
            "dual_critic": adam(self.dual_critic.parameters(), lr=rl.c_lr),
        }
        self.alpha_var = torch.tensor(float(rl.alpha_init), device=self.device)
        self.num_steps = 0

    # ------------------------------------------------------------------ helpers
    @property
    def alpha(self) -> torch.Tensor:
        return self.alpha_var.clamp(0.0, self.hp.rl.alpha_max)

    def modules(self) -> dict[str, nn.Module]:
        return {"agent": self.agent, "decoder": self.decoder, "qf1": self.qf1, "qf2": self.qf2, "vf": self.vf,
                "target_vf": self.target_vf, "dual_critic": self.dual_critic}

    def _step(self, name: str, loss: torch.Tensor) -> None:
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @property
    def trains_vae(self) -> bool:
        return self.hp.vae_train_steps is None or self.num_steps < self.hp.vae_train_steps

    @property
    def trains_policy(self) -> bool:
        return self.num_steps >= self.hp.policy_start_step

    # ------------------------------------------------------------------ the VAE
    def vae_loss(self, ep: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """The ELBO loss of trajectories [T, K, R * W, .] (one reparameterised sample per belief)."""
        flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in ep.items()}
        mu, logvar = self.agent.encoder.beliefs(flat["actions"], flat["next_obs"], flat["rewards"])
        eps = torch.randn_like(mu)
        loss, rec, kl = elbo_loss(self.decoder, mu, logvar, eps, flat, self.hp.kl_weight, self.hp.reward_loss_coeff)
        return loss, {"VAE Loss": loss.detach(), "Reward Reconstruction Loss": rec.detach(), "KL Loss": kl.detach()}

    # ------------------------------------------------------------------ the RL batch
    @torch.no_grad()
    def rl_transitions(self, rl: Mapping[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The RL batch [T, B, .] with the beliefs of s (``belief``) and of s' (``next_belief``): mean and
        log-variance after t and t + 1 transitions of the trajectory (across its episodes' boundaries), from
        the current encoder, detached."""
        rewards_in = rl.get("context_rewards", rl["rewards"])
        mu, logvar = self.agent.encoder.beliefs(rl["actions"], rl["next_obs"], rewards_in)  # [T, K, W+1, L]
        b = torch.cat([mu, logvar], dim=-1)
        gather = lambda x: torch.gather(_flat_steps(x), 1, index[..., None].expand(-1, -1, x.shape[-1]))  # noqa: E731
        out = {k: gather(rl[k]) for k in ("obs", "actions", "rewards", "next_obs", "terminals")}
        out["belief"] = gather(b[:, :, :-1])
        out["next_belief"] = gather(b[:, :, 1:])
        return out

    # ------------------------------------------------------------------ SAC (+ BRAC)
    def rl_update(self, t: Mapping[str, torch.Tensor]) -> dict:
        """SAC with a V network and BRAC's dual critic (the project's losses, rlkit.torch.losses), in
        CSRO's order: dual critic, Q target, Q, V (+ Polyak), policy, alpha."""
        rl = self.hp.rl
        obs, act, b, b2 = t["obs"], t["actions"], t["belief"], t["next_belief"]
        pol = self.agent.policy(obs, b)
        stats: dict = {}
        div = None
        if rl.use_brac:
            c_loss = L.dual_critic_loss(self.dual_critic, obs, act, pol.action, b, divergence=rl.divergence_name,
                                        true_gradient_penalty=rl.true_gradient_penalty)
            self._step("dual_critic", c_loss)
            div = L.divergence_for_actor(self.dual_critic, obs, pol.action, act, b, divergence=rl.divergence_name)
            stats["Dual Critic Loss"] = c_loss.detach()
        with torch.no_grad():
            v_next = self.target_vf(t["next_obs"], b2)
            if rl.use_brac and rl.use_value_penalty:
                v_next = L.value_penalized_target(v_next, self.alpha, div)
            q_tgt = L.q_target(t["rewards"], t["terminals"], v_next, self.hp.reward_scale, self.hp.discount)
        q1, q2 = self.qf1(obs, act, b), self.qf2(obs, act, b)
        qf_loss = L.q_loss(q1, q2, q_tgt)
        for name in ("qf1", "qf2"):
            self.optimizers[name].zero_grad(set_to_none=True)
        qf_loss.backward()
        self.optimizers["qf1"].step()
        self.optimizers["qf2"].step()
        min_q = torch.min(L.frozen_call(self.qf1, obs, pol.action, b), L.frozen_call(self.qf2, obs, pol.action, b))
        v_pred = self.vf(obs, b)
        v_tgt = L.v_target_max_entropy(min_q, pol.log_prob) if rl.max_entropy else min_q
        vf_loss = L.v_loss(v_pred, v_tgt)
        self._step("vf", vf_loss)
        with torch.no_grad():
            torch._foreach_lerp_(list(self.target_vf.parameters()), list(self.vf.parameters()), self.hp.soft_target_tau)
        pol_loss = L.policy_loss(pol.log_prob if rl.max_entropy else None, min_q, div if rl.use_brac else None,
                                 self.alpha, pol.mean, pol.log_std, rl.policy_mean_reg_weight, rl.policy_std_reg_weight)
        self._step("policy", pol_loss)
        if rl.use_brac and rl.train_alpha:
            self.alpha_var = self.alpha_var + rl.alpha_lr * (div.detach().mean() - rl.target_divergence)
        stats.update({"QF Loss": qf_loss.detach(), "VF Loss": vf_loss.detach(), "Policy Loss": pol_loss.detach(),
                      "Q Predictions Mean": q1.detach().mean(), "Log Pis Mean": pol.log_prob.detach().mean()})
        if div is not None:
            stats["div_estimate"] = div.detach().mean()
        return stats

    # ------------------------------------------------------------------ one step
    def train_step(self, batch: BOReLBatch, with_stats: bool = False) -> dict[str, torch.Tensor]:
        """The VAE update (while it trains), then SAC on beliefs of the updated encoder (once it starts)."""
        stats: dict = {}
        if self.trains_vae:
            loss, vae_stats = self.vae_loss(batch.vae)
            self._step("vae", loss)
            stats.update(vae_stats)
        if self.trains_policy:
            stats.update(self.rl_update(self.rl_transitions(batch.rl, batch.rl_index)))
        self.num_steps += 1
        return stats if with_stats else {}


def offline_context(buffer, generator: Optional[torch.Generator] = None,
                    context_reward: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
    """The offline protocol's rows for BOReL: ``n`` consecutive steps of one of each task's episodes
    (a window that fits whole, so no padded row reaches the GRU), laid out (s, a, r, s')."""
    from rlkit.torch.networks import build_context

    def fn(task_ids: torch.Tensor, n: int) -> torch.Tensor:
        seg = buffer.sample_segments(task_ids, 1, n, padding=None, generator=generator)
        r = seg["rewards"][:, 0]
        if context_reward is not None:
            r = context_reward(r)
        return build_context(seg["obs"][:, 0], seg["actions"][:, 0], r, seg["next_obs"][:, 0], True)

    return fn


__all__ = ["BOReLAgent", "BOReLBatch", "BOReLHyperParams", "BOReLStep", "BeliefEncoder", "PRESET_PATH",
           "RewardDecoder", "concat_episodes", "elbo_loss", "relabelled_episodes", "elbo_terms", "kl_to_previous", "offline_context", "sample_batch"]
