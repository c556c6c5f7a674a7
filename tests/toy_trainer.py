"""A toy trainer defined outside the package, the way a user adds a method: a Trainer subclass and one
``register_trainer`` call, no edit inside rlkit/ (issue 29, part 8's seed).

It is behaviour cloning with a linear policy and no context at all: its agent (an EvalAgent with no z)
ignores what the protocols let it observe. Small on purpose; it exercises the seam, not a method.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rlkit.trainers import Trainer
from rlkit.core.eval_agent import EvalAgent

NAME = "toy-bc"


class ToyAgent(EvalAgent, nn.Module):
    """tanh(W s + b): acts on the observation alone; no belief, so ``z_dim`` stays None."""

    def __init__(self, obs_dim: int, act_dim: int):
        nn.Module.__init__(self)
        self.linear = nn.Linear(obs_dim, act_dim)

    @property
    def dtype(self) -> torch.dtype:
        return self.linear.weight.dtype

    def reset(self, tasks, rollout):
        pass

    def observe(self, transitions):
        pass

    @torch.no_grad()
    def act(self, obs, deterministic):
        return torch.tanh(self.linear(obs))


class ToyBCTrainer(Trainer):
    name = NAME

    def __init__(self, cfg, data, env, device):
        self.data, self.device = data, torch.device(device)
        self.batch_size = int(cfg["algo_params"]["batch_size"])
        self.policy = ToyAgent(env.observation_space.shape[0], env.action_space.shape[0]).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=1e-2)
        self._train_ids = np.asarray(data.train_tasks)
        self.num_steps = 0

    @classmethod
    def from_config(cls, cfg, data, env, device):
        return cls(cfg, data, env, device)

    @classmethod
    def load_agent(cls, cfg, obs_dim, act_dim, trainer_state):
        agent = ToyAgent(obs_dim, act_dim)
        agent.load_state_dict(trainer_state["networks"]["policy"])
        return agent

    def plan_iteration(self, rng, n_steps):
        return torch.as_tensor(rng.choice(self._train_ids, (n_steps, 2)), device=self.device)

    def sample(self, task_ids, generator):
        return self.data.train.sample(task_ids, self.batch_size, generator=generator)

    def train_step(self, batch, with_stats=False):
        loss = ((torch.tanh(self.policy.linear(batch["obs"])) - batch["actions"]) ** 2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.num_steps += 1
        return {"BC Loss": loss.detach()} if with_stats else {}

    @property
    def steps_done(self):
        return self.num_steps

    def progress_columns(self):
        return ["BC Loss"]

    def modules(self):
        return {"policy": self.policy}

    def state_dict(self):
        return {"networks": {"policy": self.policy.state_dict()}, "optimizers": {"policy": self.optimizer.state_dict()},
                "num_steps": self.num_steps}

    def load_state_dict(self, state):
        self.policy.load_state_dict(state["networks"]["policy"])
        self.optimizer.load_state_dict(state["optimizers"]["policy"])
        self.num_steps = int(state["num_steps"])

    def eval_agent(self):
        return self.policy

    @classmethod
    def offline_context(cls, cfg, buffer, generator, context_reward=None):
        def fn(task_ids, n):
            part = buffer.sample(task_ids, n, generator=generator)
            return torch.cat([part["obs"], part["actions"], part["rewards"]], -1)

        return fn
