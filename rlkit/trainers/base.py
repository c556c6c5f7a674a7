"""What a trainer is: the one interface the generic meta-training loop knows (rlkit.launchers.meta_train).

The loop samples, steps, evaluates, logs and snapshots; everything that makes
a method a method sits behind :class:`Trainer`: how a batch is laid out and
drawn from the offline buffers, the update, the networks a snapshot holds,
the progress.csv columns and HParams keys the method adds, how much memory its
networks need at the least, and the agent the evaluation protocols roll out.
A trainer need not have a context encoder or a z: a decision transformer or a
recurrent belief model is a trainer whose batches are trajectory segments and
whose agent (:class:`rlkit.evaluation.agent.EvalAgent`) updates its own belief.

A new trainer is one module that subclasses :class:`Trainer` and one
:func:`rlkit.trainers.register_trainer` call (from the package's registry or
from the user's own code); ``algo_params.trainer`` names it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from rlkit.core.logger import RunDirError

# The settings every trainer's run is sized by, named when a run runs out of memory (a trainer adds its own).
SIZE_SETTINGS = ("algo_params.meta_batch", "algo_params.batch_size", "algo_params.replay_buffer_size")


class Trainer(ABC):
    """One method's training, as the generic loop drives it.

    Per iteration the loop calls :meth:`plan_iteration` once (with the
    iteration's numpy generator, the only draw from it), then for every step
    ``updates_per_step`` times :meth:`sample` and :meth:`train_step`, in that
    order, so a batch's lazy draws (CORRO's relabelling) come after the
    batch's own. ``state_dict()["networks"]`` holds :meth:`modules`' states by
    name: what a warm start (``path_to_weights``) and :meth:`load_agent` read.
    """

    name: ClassVar[str]  # the registry key, the value of algo_params.trainer
    updates_per_step: int = 1  # sample + train_step pairs per counted step
    memory_hint: ClassVar[str] = ""  # appended to the refusal of a run its memory bound rules out
    # The trainer's own settings as a config section (``borel.kl_weight=...``): registering the trainer
    # makes ``SECTION.KEY`` valid keys, typed by :meth:`config_defaults` (None: no section).
    config_section: ClassVar[str | None] = None
    # Whether the agent has a task embedding (``infer_z``: CSRO's z, BOReL's belief mean) that the
    # context-shift diagnostics (rlkit.context_shift) measure; without one they are "n/a" for the method
    # and a reproduction plan records its runs without them (rlkit.reproduce.runner).
    task_embedding: ClassVar[bool] = False

    @classmethod
    def config_defaults(cls) -> dict[str, Any]:
        """An example value per key of :attr:`config_section` (its type is what the key accepts; a None
        value accepts anything). Only the keys a preset or override writes appear in a run's config."""
        return {}

    # ------------------------------------------------------------------ before a run
    @classmethod
    @abstractmethod
    def from_config(cls, cfg: Mapping, data: Any, env: Any, device: torch.device) -> "Trainer":
        """The trainer of a resolved config. ``data`` is the run's
        :class:`rlkit.launchers.meta_train.ExperimentData` (``train``/``test`` buffers, ``train_tasks``,
        ``obs_absmax``), ``env`` one :class:`rlkit.envs.base.MultiTaskEnv` of the run's env (spaces, the
        context reward rule). Refuse settings it cannot train with a one-line ConfigError."""

    @classmethod
    def memory_bound(cls, cfg: Mapping, obs_dim: int, act_dim: int, itemsize: int) -> dict[str, int]:
        """A lower bound on the bytes the networks need, by the setting that drives it (``{}``: no bound).
        A run whose bound exceeds the device's memory is refused before anything is written."""
        return {}

    @classmethod
    def size_settings(cls) -> tuple[str, ...]:
        """The dotted settings that size a run, named when it runs out of memory."""
        return SIZE_SETTINGS

    @classmethod
    def preset_open_keys(cls, preset: Mapping) -> list[str]:
        """The method-defining keys a method preset's ``algo_params`` leaves open (a preset must fix them)."""
        return []

    @classmethod
    def hparam_keys(cls) -> tuple[str, ...]:
        """Dotted config keys shown in TensorBoard's HParams tab beside the generic ones (rlkit.core.tracking)."""
        return ()

    @classmethod
    @abstractmethod
    def load_agent(cls, cfg: Mapping, obs_dim: int, act_dim: int, trainer_state: Mapping) -> nn.Module:
        """The evaluation agent of a snapshot (``trainer_state``: the snapshot's ``trainer``), on the CPU in
        the default dtype; the caller moves it. Raise RuntimeError when the state does not fit the config.
        What it returns is what :meth:`eval_agent` returns for a live trainer."""

    # ------------------------------------------------------------------ training
    @abstractmethod
    def plan_iteration(self, rng: np.random.Generator, n_steps: int) -> Sequence:
        """What each of an iteration's ``n_steps`` steps samples (e.g. a meta batch's task ids per step)."""

    @abstractmethod
    def sample(self, plan: Any, generator: torch.Generator) -> Any:
        """One update's batch for one entry of :meth:`plan_iteration`, drawn with ``generator``."""

    @abstractmethod
    def train_step(self, batch: Any, with_stats: bool = False) -> dict[str, torch.Tensor]:
        """One update; its statistics (progress.csv columns) when ``with_stats``, else ``{}``."""

    @property
    @abstractmethod
    def steps_done(self) -> int:
        """Counted steps so far (the progress column "Number of train steps total")."""

    @abstractmethod
    def progress_columns(self) -> list[str]:
        """The training columns of progress.csv, in the order the header lists them (the loop adds the
        evaluation's, the counters' and the times'). A column a step does not fill is written as NaN."""

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every network, by name: what snapshots save and the finiteness check reads."""

    @abstractmethod
    def state_dict(self) -> dict:
        """Everything a resume needs, ``"networks"`` among it (see the class docstring)."""

    @abstractmethod
    def load_state_dict(self, state: Mapping) -> None:
        """Restore :meth:`state_dict`'s output exactly (a resumed run computes what an unbroken one does)."""

    @abstractmethod
    def eval_agent(self) -> Any:
        """What the evaluation protocols roll out: an :class:`rlkit.evaluation.agent.EvalAgent`, or a
        z-context model (``infer_z`` + ``act(obs, z, deterministic)``) they adapt."""

    @classmethod
    @abstractmethod
    def offline_context(cls, cfg: Mapping, buffer: Any, generator: torch.Generator,
                        context_reward: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        """The offline protocol's context source for a run of ``cfg`` on ``buffer``: ``(task ids [M], n) ->
        rows [M, n, D]``, rows laid out as the agent's context, the reward replaced by ``context_reward``
        when given (a sparse-reward run's context holds the sparse reward). A classmethod, so that the
        tools that read a finished run (rlkit.evaluate, rlkit.context_shift, show_path) hand the offline
        protocol the same kind of context as training's evaluations: uniform transitions for the
        context-encoder methods, one episode's window for BOReL's GRU and Prompt-DT's prompt."""

    # ------------------------------------------------------------------ warm start
    def warm_start(self, trainer_state: Mapping, path: Path) -> list[str]:
        """Initialise the networks from another run's snapshot (optimizers and counters start fresh).

        Networks the source lacks keep their initialisation; a shape mismatch is a one-line error.
        Returns the names loaded.
        """
        nets = trainer_state["networks"]
        loaded = []
        for name, module in self.modules().items():
            if name in nets:
                try:
                    module.load_state_dict(nets[name])
                except RuntimeError as exc:
                    lines = str(exc).splitlines()
                    raise RunDirError(f"path_to_weights: {name} in {path} does not fit this config "
                                      f"({lines[1].strip() if len(lines) > 1 else exc}); "
                                      "use the same latent_size, net_size and encoder settings") from None
                loaded.append(name)
        return loaded


class StepDelegate:
    """The :class:`Trainer` methods of a trainer that wraps one step object (``self.step``: its networks
    in ``modules()``, its resume state in ``state_dict``/``load_state_dict``, its agent in ``agent`` and its
    counter in ``num_steps``): CSRO's, BOReL's and Prompt-DT's trainers share them instead of each
    forwarding them again (CSRO's counts its context chunks, so it overrides ``steps_done``). Put it before :class:`Trainer` among the bases."""

    step: Any

    def train_step(self, batch: Any, with_stats: bool = False) -> dict[str, torch.Tensor]:
        return self.step.train_step(batch, with_stats=with_stats)

    @property
    def steps_done(self) -> int:
        return self.step.num_steps

    def modules(self) -> dict[str, nn.Module]:
        return self.step.modules()

    def state_dict(self) -> dict:
        return self.step.state_dict()

    def load_state_dict(self, state: Mapping) -> None:
        self.step.load_state_dict(state)

    def eval_agent(self) -> Any:
        return self.step.agent
