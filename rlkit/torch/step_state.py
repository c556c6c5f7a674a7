"""What a resume restores of an update step: its networks, optimizers, entropy weight and step count.

CSRO's step (:class:`rlkit.torch.csro.CSROTrainer`) and BOReL's
(:class:`rlkit.torch.borel.BOReLStep`) keep the same four things, so a
snapshot's ``trainer`` entry has one layout whichever step wrote it; the run
readers rely on ``state["networks"]`` (rlkit.trainers.base.Trainer).
"""

from __future__ import annotations

from typing import Mapping


class StepState:
    """Mixin: ``state_dict``/``load_state_dict`` over ``modules()``, ``optimizers``, ``alpha_var``, ``num_steps``.

    The host defines ``modules()`` (name -> nn.Module), ``optimizers`` (name -> optimizer),
    ``alpha_var`` (a tensor) and ``num_steps`` (int), and ``device``.
    """

    def state_dict(self) -> dict:
        return {
            "networks": {k: m.state_dict() for k, m in self.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "alpha_var": self.alpha_var.detach().cpu(),
            "num_steps": self.num_steps,
        }

    def load_state_dict(self, state: Mapping) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state["networks"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.alpha_var = state["alpha_var"].to(self.device)
        self.num_steps = int(state["num_steps"])
