"""Prompt-DT: a decision transformer conditioned on a short trajectory prompt of the task.

docs/method.md §8.6 says what is taken from the authors' code and what differs. In short:

- :class:`PromptDecisionTransformer`: GPT-style causal self-attention blocks (pre-LayerNorm, written with
  :func:`torch.nn.functional.scaled_dot_product_attention`; no ``transformers`` dependency) over the token
  sequence ``prompt (R, s, a) x L`` then ``history (R, s, a) x K``. The prompt has its own
  return-to-go, state, action and timestep embeddings; the history has its own, LayerNorm-ed. Timestep
  embeddings are added to each step's three tokens (no positional embedding). The action of step t is
  predicted (linear + tanh) from the output at the state token of step t.
- :func:`action_loss`: the mean squared action error over the real (unmasked) history steps.
- :class:`PromptDTStep`: AdamW, a linear warmup of the learning rate, gradient-norm clipping.
- :class:`PromptDTAgent`: the evaluation agent (an :class:`rlkit.core.eval_agent.EvalAgent`): its prompt
  is the tail of the last episode whose transitions joined the protocol's context (the task's offline
  data, its own previous episode, or the non-prior exploration episode); its history is the current
  episode's last K steps; its return-to-go starts at the target and is decremented by each reward.

Every batch is one gather per step (rlkit.data.buffer); no training code loops over transitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rlkit.config import TRAINER_SETTINGS_DIR, ConfigError, trainer_settings
from rlkit.core.eval_agent import EvalAgent
from rlkit.torch.networks import build_context, split_context

PRESET_DIR = TRAINER_SETTINGS_DIR / "prompt_dt"
ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh}


# --------------------------------------------------------------------------- settings


@dataclass
class PromptDTHyperParams:
    """Prompt-DT's settings (rlkit/configs/trainers/prompt_dt/Prompt-DT.json: ``common`` and one block per env)."""

    embed_dim: int = 128
    n_layer: int = 3
    n_head: int = 1
    activation: str = "relu"
    dropout: float = 0.1
    K: int = 20  # history steps
    prompt_length: int = 5  # prompt steps (one episode's tail)
    windows_per_task: int = 16  # history windows (each with its own prompt) per task of a meta batch
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 10000
    grad_clip: float = 0.25
    max_timestep: int = 1000  # rows of the timestep embeddings (later steps share the last)
    scale: float = 500.0  # returns-to-go are divided by it
    target_return: Optional[float] = None  # None: the best episode return of the training data
    normalize_states: bool = True  # states minus the training data's mean, over its std

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "PromptDTHyperParams":
        own = {f.name for f in fields(cls)}
        unknown = sorted(k for k in values if k not in own and not str(k).startswith("_"))
        if unknown:
            raise ConfigError(f"unknown Prompt-DT settings {', '.join(unknown)}; known: {', '.join(sorted(own))}")
        hp = cls(**{k: v for k, v in values.items() if k in own})
        if hp.activation not in ACTIVATIONS:
            raise ConfigError(f"prompt_dt.activation must be one of {', '.join(ACTIVATIONS)}, got {hp.activation!r}")
        if hp.embed_dim % hp.n_head:
            raise ConfigError(f"prompt_dt.embed_dim {hp.embed_dim} is not a multiple of n_head {hp.n_head}")
        for key in ("K", "prompt_length", "windows_per_task", "warmup_steps", "max_timestep", "n_layer", "n_head"):
            if int(getattr(hp, key)) < 1:
                raise ConfigError(f"prompt_dt.{key} must be >= 1, got {getattr(hp, key)}")
        if not hp.scale > 0:
            raise ConfigError(f"prompt_dt.scale must be > 0, got {hp.scale}")
        return hp

    @classmethod
    def preset(cls, env_name: str, variant: str = "Prompt-DT", **overrides: Any) -> "PromptDTHyperParams":
        return cls.from_mapping({**trainer_settings("prompt_dt", variant, env_name), **overrides})


# --------------------------------------------------------------------------- the transformer


class CausalSelfAttention(nn.Module):
    def __init__(self, h: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head, self.p = int(n_head), float(dropout)
        self.qkv = nn.Linear(h, 3 * h)
        self.proj = nn.Linear(h, h)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, n, h = x.shape
        q, k, v = (t.view(b, n, self.n_head, h // self.n_head).transpose(1, 2) for t in self.qkv(x).split(h, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=self.p if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, n, h)))


class Block(nn.Module):
    """GPT-2's block: x + attn(ln(x)), then x + mlp(ln(x)); the MLP 4h wide."""

    def __init__(self, h: int, n_head: int, dropout: float, activation: str):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(h), nn.LayerNorm(h)
        self.attn = CausalSelfAttention(h, n_head, dropout)
        self.fc, self.out = nn.Linear(h, 4 * h), nn.Linear(4 * h, h)
        self.act = ACTIVATIONS[activation]
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), allowed)
        return x + self.drop(self.out(self.act(self.fc(self.ln2(x)))))


class StepEmbedding(nn.Module):
    """(R, s, a) tokens of steps: one linear embedding per modality, plus the step's timestep embedding."""

    def __init__(self, obs_dim: int, act_dim: int, h: int, max_timestep: int):
        super().__init__()
        self.max_timestep = int(max_timestep)
        self.timestep = nn.Embedding(max_timestep, h)
        self.ret, self.state, self.action = nn.Linear(1, h), nn.Linear(obs_dim, h), nn.Linear(act_dim, h)

    def forward(self, obs, actions, rtg, timesteps) -> torch.Tensor:
        """[B, n, .] -> [B, 3n, h], in the order R_1, s_1, a_1, R_2, ..."""
        t = self.timestep(timesteps.clamp(0, self.max_timestep - 1))
        tokens = torch.stack((self.ret(rtg) + t, self.state(obs) + t, self.action(actions) + t), dim=2)
        return tokens.reshape(obs.shape[0], 3 * obs.shape[1], -1)


PROMPT_KEYS = ("obs", "actions", "rtg", "timesteps", "mask")


class PromptDecisionTransformer(nn.Module):
    """Actions of a K-step history given a prompt (see the module docstring).

    Inputs: ``obs`` [B, K, S], ``actions`` [B, K, A], ``rtg`` [B, K, 1] (scaled), ``timesteps`` [B, K]
    (int), ``mask`` [B, K] (True on real steps) and ``prompt``, a dict of the same keys [B, L, .]
    (or None: no prompt). States are normalised inside (the ``obs_mean``/``obs_std`` buffers).
    """

    def __init__(self, obs_dim: int, act_dim: int, hp: PromptDTHyperParams):
        super().__init__()
        h = int(hp.embed_dim)
        self.obs_dim, self.act_dim, self.K = int(obs_dim), int(act_dim), int(hp.K)
        self.embed = StepEmbedding(obs_dim, act_dim, h, hp.max_timestep)
        self.prompt_embed = StepEmbedding(obs_dim, act_dim, h, hp.max_timestep)
        self.embed_ln = nn.LayerNorm(h)
        self.drop = nn.Dropout(hp.dropout)
        self.blocks = nn.ModuleList(Block(h, hp.n_head, hp.dropout, hp.activation) for _ in range(hp.n_layer))
        self.ln_f = nn.LayerNorm(h)
        self.predict_action = nn.Sequential(nn.Linear(h, act_dim), nn.Tanh())
        for block in self.blocks:  # GPT-2's initialisation of the transformer (the embeddings keep torch's)
            for name, p in block.named_parameters():
                if name.endswith("bias"):
                    nn.init.zeros_(p)
                elif p.dim() == 2:
                    std = 0.02 / math.sqrt(2 * hp.n_layer) if name in ("attn.proj.weight", "out.weight") else 0.02
                    nn.init.normal_(p, 0.0, std)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    def norm(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def forward(self, obs, actions, rtg, timesteps, mask, prompt: Optional[Mapping[str, torch.Tensor]] = None):
        b, k = obs.shape[:2]
        x = self.embed_ln(self.embed(self.norm(obs), actions, rtg, timesteps))
        real = mask.repeat_interleave(3, dim=1)
        if prompt is not None:  # the prompt's tokens come first (not LayerNorm-ed, as the authors')
            p = self.prompt_embed(self.norm(prompt["obs"]), prompt["actions"], prompt["rtg"], prompt["timesteps"])
            x = torch.cat([p, x], dim=1)
            real = torch.cat([prompt["mask"].repeat_interleave(3, dim=1), real], dim=1)
        n = x.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        # a token sees the earlier real tokens, and itself (so a padded one is never all-masked: no NaN)
        allowed = (causal & real[:, None, :]) | torch.eye(n, dtype=torch.bool, device=x.device)
        allowed = allowed[:, None]
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, allowed)
        x = self.ln_f(x)
        state_tokens = x[:, n - 3 * k + 1::3]  # the history's state tokens
        return self.predict_action(state_tokens)


def action_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the actions on real steps: over (real step, action dim) pairs."""
    m = mask.to(pred.dtype)[..., None]
    return (((pred - target) ** 2) * m).sum() / (m.sum() * pred.shape[-1]).clamp(min=1.0)


# --------------------------------------------------------------------------- prompts


def episode_prompt(rows: torch.Tensor, lengths: torch.Tensor, obs_dim: int, act_dim: int, length: int,
                   scale: float) -> dict[str, torch.Tensor]:
    """The prompt of episodes given as context rows [j, W, D] (s, a, r[, s']) whose first ``lengths`` [j]
    are real: the ``length`` steps that end one step before the episode's last (the authors' choice of
    window), left-padded when the episode is shorter; return-to-go (to the episode's end, over ``scale``)
    and timesteps (the step in the episode) as the training prompts'. Length 0: an all-padded prompt."""
    j, w = rows.shape[:2]
    dev = rows.device
    parts = split_context(rows, obs_dim, act_dim)
    ell = lengths.to(dev, torch.long)[:, None]  # [j, 1]
    pos = torch.arange(w, device=dev)[None]
    r = parts["rewards"][..., 0] * (pos < ell).to(rows.dtype)
    rtg = r.flip(1).cumsum(1).flip(1)  # [j, W]: the sum from each step to the episode's end
    si = (ell - length - 1).clamp(min=0)
    count = torch.minimum(ell - si, torch.full_like(ell, length))
    k = torch.arange(length, device=dev)[None]
    shift = length - count
    real = k >= shift
    src = torch.where(real, si + k - shift, torch.zeros_like(k)).clamp(max=w - 1)  # [j, L]
    g = lambda x: torch.gather(x, 1, src[..., None].expand(-1, -1, x.shape[-1])) * real[..., None].to(x.dtype)  # noqa: E731
    return {"obs": g(parts["obs"]), "actions": g(parts["actions"]),
            "rtg": (torch.gather(rtg, 1, src) * real.to(rows.dtype))[..., None] / scale,
            "timesteps": src * real, "mask": real}


@dataclass
class PromptDTBatch:
    """One step's data, flat over (task, window): ``history`` and ``prompt`` dicts of PROMPT_KEYS [N, ., .]."""

    tasks: torch.Tensor
    history: dict
    prompt: dict


def _dt_fields(seg: Mapping[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731  [T, W, L, .] -> [T*W, L, .]
    return {"obs": flat(seg["obs"]), "actions": flat(seg["actions"]), "rtg": flat(seg["returns_to_go"]) / scale,
            "timesteps": flat(seg["timesteps"]), "mask": flat(seg["mask"])}


def sample_batch(buffer, tasks, hp: PromptDTHyperParams, generator: Optional[torch.Generator] = None) -> PromptDTBatch:
    """Per task of ``tasks``: ``windows_per_task`` K-step windows starting at uniform rows of its data, cut at
    their episode's end and left-padded, each with a prompt: the tail of one of the same task's episodes
    (uniform over its episodes; :func:`episode_prompt`'s window). Two gathers; returns-to-go over ``scale``."""
    seg = buffer.sample_segments(tasks, hp.windows_per_task, hp.K, padding="left", generator=generator)
    starts = buffer.episode_tail_starts(tasks, hp.windows_per_task, hp.prompt_length, skip=1, generator=generator)
    prompt = buffer.segments_at(starts, hp.prompt_length, padding="left")
    return PromptDTBatch(torch.as_tensor(tasks), _dt_fields(seg, hp.scale), _dt_fields(prompt, hp.scale))


def offline_context(buffer, generator: Optional[torch.Generator] = None):
    """The offline protocol's rows for Prompt-DT: the last ``n`` steps of one episode per task, uniform over
    the task's episodes (left-padded with zero rows when it is shorter), laid out (s, a, r): the agent reads
    the block as one episode."""

    def fn(task_ids: torch.Tensor, n: int) -> torch.Tensor:
        starts = buffer.episode_tail_starts(task_ids, 1, n, skip=0, generator=generator)
        seg = buffer.segments_at(starts, n, padding="left")
        return build_context(seg["obs"][:, 0], seg["actions"][:, 0], seg["rewards"][:, 0])

    return fn


# --------------------------------------------------------------------------- the agent


class PromptDTAgent(nn.Module, EvalAgent):
    """The transformer, its target return, and the evaluation state of M sub-envs (see the module docstring)."""

    use_next_obs_in_context = False  # context rows (s, a, r)

    def __init__(self, obs_dim: int, act_dim: int, hp: PromptDTHyperParams):
        nn.Module.__init__(self)
        self.obs_dim, self.act_dim, self.hp = int(obs_dim), int(act_dim), hp
        self.net = PromptDecisionTransformer(obs_dim, act_dim, hp)
        # the unscaled target return the evaluation starts from (set by the trainer from the settings or the data)
        self.register_buffer("target_return", torch.tensor(0.0 if hp.target_return is None else float(hp.target_return)))
        self.state: dict | None = None

    @property
    def dtype(self) -> torch.dtype:
        return self.net.embed_ln.weight.dtype

    def forward(self, history: Mapping[str, torch.Tensor], prompt: Optional[Mapping[str, torch.Tensor]]):
        return self.net(history["obs"], history["actions"], history["rtg"], history["timesteps"], history["mask"],
                        prompt)

    # ------------------------------------------------------------------ the protocols' events
    @torch.no_grad()
    def reset(self, tasks, rollout):
        m, k, p = len(tasks), self.hp.K - 1, self.hp.prompt_length
        w = int(rollout.settings.max_path_length)
        dev, dt = self.target_return.device, self.dtype
        z = lambda *shape, dtype=dt: torch.zeros(*shape, device=dev, dtype=dtype)  # noqa: E731
        self.state = {
            # the current episode's last K - 1 steps (the history before the current step)
            "past": {"obs": z(m, k, self.obs_dim), "actions": z(m, k, self.act_dim), "rtg": z(m, k, 1),
                     "timesteps": z(m, k, dtype=torch.long), "mask": z(m, k, dtype=torch.bool)},
            "rtg": self.target_return.to(dt).expand(m).clone() / self.hp.scale,  # the current step's (scaled)
            "t": z(m, dtype=torch.long),
            "prompt": {"obs": z(m, p, self.obs_dim), "actions": z(m, p, self.act_dim), "rtg": z(m, p, 1),
                       "timesteps": z(m, p, dtype=torch.long), "mask": z(m, p, dtype=torch.bool)},
            # the rows of the current episode that joined the context, and how many
            "rows": z(m, w, self.obs_dim + self.act_dim + 1), "n": z(m, dtype=torch.long),
        }

    def _set_prompt(self, envs: torch.Tensor, rows: torch.Tensor, lengths: torch.Tensor) -> None:
        new = episode_prompt(rows, lengths, self.obs_dim, self.act_dim, self.hp.prompt_length, self.hp.scale)
        for key, value in new.items():
            self.state["prompt"][key][envs] = value.to(self.state["prompt"][key].dtype)

    @torch.no_grad()
    def observe(self, transitions):
        st = self.state
        dev = st["t"].device
        envs_np = np.asarray(transitions.envs)
        if transitions.offline:  # a block of the task's offline data: it is the prompt (all of it joins)
            rows = transitions.rows(np.ones(len(envs_np), dtype=bool)).to(self.dtype)
            envs = torch.as_tensor(envs_np, device=dev)
            self._set_prompt(envs, rows, torch.full((len(envs_np),), rows.shape[1], device=dev))
            return
        rows = transitions.rows(np.ones(len(envs_np), dtype=bool)).to(self.dtype)[:, 0]  # [k, D]
        envs = torch.as_tensor(envs_np, device=dev)
        parts = split_context(rows, self.obs_dim, self.act_dim)
        past = st["past"]
        step = {"obs": parts["obs"], "actions": parts["actions"], "rtg": st["rtg"][envs, None],
                "timesteps": st["t"][envs], "mask": torch.ones(len(envs_np), dtype=torch.bool, device=dev)}
        if past["mask"].shape[1]:  # K = 1 keeps no past
            for key, value in step.items():
                past[key][envs] = torch.cat([past[key][envs, 1:], value[:, None].to(past[key].dtype)], dim=1)
        st["rtg"][envs] -= parts["rewards"][:, 0] / self.hp.scale  # DT: the target less the reward received
        st["t"][envs] += 1
        joins = np.asarray(transitions.joins, dtype=bool)
        if joins.any():
            je = envs[torch.as_tensor(joins, device=dev)]
            at = st["n"][je].clamp(max=st["rows"].shape[1] - 1)
            st["rows"][je, at] = rows[torch.as_tensor(joins, device=dev)]
            st["n"][je] = (st["n"][je] + 1).clamp(max=st["rows"].shape[1])

    @torch.no_grad()
    def end_episodes(self, ended, evaluation, eval_steps):
        if not ended.any():
            return
        st = self.state
        dev = st["t"].device
        idx = torch.as_tensor(np.flatnonzero(ended), device=dev)
        has = idx[st["n"][idx] > 0]  # an episode whose transitions joined the context is the next prompt
        if len(has):
            self._set_prompt(has, st["rows"][has], st["n"][has])
        for value in st["past"].values():
            value[idx] = 0
        st["rtg"][idx] = self.target_return.to(st["rtg"].dtype) / self.hp.scale
        st["t"][idx] = 0
        st["n"][idx] = 0

    def _history(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        st, m = self.state, obs.shape[0]
        past, dev = st["past"], obs.device
        return {"obs": torch.cat([past["obs"], obs.to(self.dtype)[:, None]], dim=1),
                "actions": torch.cat([past["actions"], torch.zeros(m, 1, self.act_dim, device=dev, dtype=self.dtype)], 1),
                "rtg": torch.cat([past["rtg"], st["rtg"][:, None, None]], dim=1),
                "timesteps": torch.cat([past["timesteps"], st["t"][:, None]], dim=1),
                "mask": torch.cat([past["mask"], torch.ones(m, 1, dtype=torch.bool, device=dev)], dim=1)}

    @torch.no_grad()
    def act(self, obs, deterministic):
        """The predicted action of the current step (DT's policy is deterministic: ``deterministic`` has no effect)."""
        was = self.net.training
        self.net.eval()
        try:
            return self(self._history(obs), self.state["prompt"])[:, -1]
        finally:
            self.net.train(was)

    def act_pair(self, obs):
        a = self.act(obs, True)
        return a, a


# --------------------------------------------------------------------------- the step


class PromptDTStep:
    """The agent's network, AdamW, and one update on a :class:`PromptDTBatch`."""

    def __init__(self, obs_dim: int, act_dim: int, hp: PromptDTHyperParams, device: torch.device | str = "cpu"):
        self.hp, self.device = hp, torch.device(device)
        self.agent = PromptDTAgent(obs_dim, act_dim, hp).to(self.device)
        self.optimizer = torch.optim.AdamW(self.agent.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
        self.num_steps = 0

    def modules(self) -> dict[str, nn.Module]:
        return {"agent": self.agent}

    def learning_rate(self) -> float:
        """The authors' warmup: ``lr * min((step + 1) / warmup_steps, 1)`` on step ``step`` (0-based)."""
        return self.hp.learning_rate * min((self.num_steps + 1) / self.hp.warmup_steps, 1.0)

    def loss(self, batch: PromptDTBatch) -> torch.Tensor:
        pred = self.agent(batch.history, batch.prompt)
        return action_loss(pred, batch.history["actions"], batch.history["mask"])

    def train_step(self, batch: PromptDTBatch, with_stats: bool = False) -> dict[str, torch.Tensor]:
        self.agent.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        loss = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.agent.parameters(), self.hp.grad_clip)
        self.optimizer.step()
        self.num_steps += 1
        return {"Action Loss": loss.detach()} if with_stats else {}

    def state_dict(self) -> dict:
        return {"networks": {k: m.state_dict() for k, m in self.modules().items()},
                "optimizers": {"agent": self.optimizer.state_dict()}, "num_steps": self.num_steps}

    def load_state_dict(self, state: Mapping) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state["networks"][k])
        self.optimizer.load_state_dict(state["optimizers"]["agent"])
        self.num_steps = int(state["num_steps"])


__all__ = ["PromptDTAgent", "PromptDTBatch", "PromptDTHyperParams", "PromptDTStep", "PromptDecisionTransformer",
           "action_loss", "episode_prompt", "offline_context", "sample_batch"]
