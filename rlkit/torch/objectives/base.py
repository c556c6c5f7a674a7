"""What a representation objective is (docs/method.md §5.5-5.6, §8).

The actor-critic part of a training step is the same for every method in this
project; the methods differ in how the context encoder is shaped. Each such
shaping is a :class:`RepresentationObjective`: it may own networks and an
optimizer step of its own (CLUB fits its variational q before the encoder
reads it) and it adds one weighted term to the loss the encoder minimises. The
trainer calls, in registry order, every enabled objective's :meth:`fit`, then
sums their :meth:`loss` terms into the encoder's loss of the joint Q + encoder
step. Computing a term is separate from applying it, so a test can check a
loss without stepping anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Optional

import torch
from torch import nn

from rlkit.torch.hyperparams import CSROHyperParams
from rlkit.torch.networks import ContextEncoder, Posterior, split_context
from rlkit.torch.optim import make_adam

Stats = dict[str, torch.Tensor]


@dataclass(frozen=True)
class EncodedBatch:
    """The encoder's view of one meta batch, computed once per step and shared by all objectives.

    ``context`` [T, N, D] with columns (s, a, r[, s']); ``per_transition``
    [T, N, out] the encoder's outputs per context transition (with gradient);
    ``posterior`` the pooled task posterior (z [T, L]); ``task_ids`` [T];
    ``encoder`` the context encoder itself, for objectives that encode
    transitions the batch does not hold (CORRO's generated negatives): its
    outputs carry gradient to the encoder like ``per_transition`` does.
    ``obs_dim`` / ``action_dim`` say where the context's columns split.
    ``relabel(task, row, k)`` [B, k, D]: context transition (task[i], row[i])'s
    (s, a) with its outcome in k random training tasks (the env's ground truth),
    present when an enabled objective names it in
    :meth:`RepresentationObjective.batch_fields`; computed on demand, so only
    the rows an objective uses cost a relabelling.
    """

    context: torch.Tensor
    per_transition: torch.Tensor
    posterior: Posterior
    task_ids: torch.Tensor
    latent_size: int
    encoder: ContextEncoder
    obs_dim: int
    action_dim: int
    relabel: Optional[Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]] = None

    @property
    def z_t(self) -> torch.Tensor:
        """Per-transition embeddings [T, N, L] (the first L outputs; the means under the IB)."""
        return self.per_transition[..., : self.latent_size]

    def split_context(self) -> dict[str, torch.Tensor]:
        """The context's columns by name (:func:`rlkit.torch.networks.split_context`, beside the
        :func:`~rlkit.torch.networks.build_context` that lays them out)."""
        return split_context(self.context, self.obs_dim, self.action_dim)


class RepresentationObjective:
    """One way of training the context encoder: networks, an optional own step, one loss term.

    Subclasses set ``name`` (the key of their networks and optimizers in
    snapshots), ``switch`` and ``settings`` (the config keys they read) and ``statistics`` (the progress.csv columns their :meth:`fit`
    and :meth:`loss` return, in the order the table lists them: the header of
    every run is built from the registry, so a new objective's columns appear
    without a list elsewhere), and implement :meth:`loss`.

    An objective with one network of its own hands it to :meth:`own_model`,
    which gives it an Adam and makes it what :meth:`modules` and
    :meth:`optimizers` save under the objective's name. It is either fitted
    apart by the objective's :meth:`fit` (CLUB's q, CORRO's CVAE) or trained
    *jointly* with the encoder, by the same loss term in the same backward
    pass (UNICORN's decoder and classifier: ``joint=True``), when the trainer
    zeroes and steps its optimizer with the encoder's
    (:meth:`joint_optimizers`). Objectives with several networks override
    those three methods instead.
    """

    name: ClassVar[str]
    statistics: ClassVar[tuple[str, ...]] = ()
    switch: ClassVar[str]  # the algo_params key that turns the objective on
    settings: ClassVar[tuple[str, ...]] = ()  # the other algo_params keys it reads (weights, sizes)
    # the settings that choose which method it is, not how strongly it acts (a method preset fixes them)
    variant_settings: ClassVar[tuple[str, ...]] = ()

    _model: Optional[nn.Module] = None  # set by own_model
    _joint: bool = False

    def __init__(self, obs_dim: int, action_dim: int, hp: CSROHyperParams, device: torch.device):
        self.hp = hp
        self.device = device

    def own_model(self, model: nn.Module, lr: float, *, joint: bool = False) -> nn.Module:
        """Adopt ``model`` as this objective's network: moved to the device, with its own Adam
        (``self.optimizer``, the project's Adam settings) at ``lr``; ``joint``: stepped with the encoder
        on :meth:`loss` rather than by :meth:`fit`. Returns the model, on the device."""
        self._model, self._joint = model.to(self.device), bool(joint)
        self.optimizer = make_adam(self.hp)(self._model.parameters(), lr=lr)
        return self._model

    @classmethod
    def enabled(cls, hp: CSROHyperParams) -> bool:
        """Whether the config switches this objective on (its :attr:`switch`)."""
        return bool(getattr(hp, cls.switch))

    @classmethod
    def columns(cls, hp: CSROHyperParams) -> tuple[str, ...]:
        """The :attr:`statistics` a run with ``hp`` logs (an objective whose settings drop a model drops
        that model's columns)."""
        return cls.statistics

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The algo_params keys this objective reads: its switch, then its settings. Trackers list
        them among a run's key hyper-parameters (nothing types the methods' keys again)."""
        return (cls.switch, *cls.settings)

    def modules(self) -> dict[str, nn.Module]:
        """Networks this objective owns (saved in snapshots under these names)."""
        return {} if self._model is None else {self.name: self._model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimizers of :meth:`modules` (saved in snapshots under these names)."""
        return {} if self._model is None else {self.name: self.optimizer}

    def batch_fields(self) -> tuple[str, ...]:
        """Optional meta-batch fields the sampler must fill for this objective (``relabel``)."""
        return ()

    def joint_optimizers(self) -> tuple[str, ...]:
        """Names (keys of :meth:`optimizers`) stepped together with the encoder on :meth:`loss`."""
        return (self.name,) if self._model is not None and self._joint else ()

    def fit(self, batch: EncodedBatch) -> Stats:
        """The objective's own update, before the encoder step (default: none). Returns statistics."""
        return {}

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, Stats]:
        """The weighted term the encoder minimises, with gradient to the encoder, and statistics."""
        raise NotImplementedError
