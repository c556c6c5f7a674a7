"""Batched ("ensemble") linear layers and MLPs: one independent network per task.

Every parameter carries a leading member dimension E, so E tasks' networks run as
one ``torch.baddbmm`` per layer instead of E small matmuls in a python loop
(GitHub issue #4: behaviour-policy data generation was one process per task).
Members never mix: member e's output depends only on member e's weights and
input, which is what makes the batched SAC exactly equal to E separate SACs.

Layouts: ``EnsembleLinear.weight`` is [E, in, out] (``x @ W``, so no transpose in
the hot path) and ``bias`` is [E, 1, out]; a plain ``nn.Linear`` stores
[out, in] and [out]. The helpers below convert one member to / from that plain
layout so per-task checkpoints stay loadable by single-task code.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

INITS = ("orthogonal", "torch")


class EnsembleLinear(nn.Module):
    """E independent affine maps applied to x [E, B, in] -> [E, B, out].

    ``init="orthogonal"`` reproduces the behaviour-SAC reference init per member
    (orthogonal weight, zero bias); ``init="torch"`` is ``nn.Linear``'s default
    (U(+-1/sqrt(in)) for weight and bias).
    """

    def __init__(
        self,
        n_members: int,
        in_features: int,
        out_features: int,
        init: str = "orthogonal",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
        self.n_members = int(n_members)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.init = init
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features, **kw))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_features, **kw))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise each member as its own plain layer would be (independent draws).

        Drawn in the layer's own dtype: a float64 ensemble's orthogonal init (a QR
        decomposition) must not carry float32 rounding, which differs between
        machines, into a run meant to be reproducible across them.
        """
        dtype = self.weight.dtype
        for e in range(self.n_members):
            # Draw in the plain [out, in] layout, then transpose: an orthogonal
            # [out, in] matrix is what nn.init.orthogonal_ gives a nn.Linear.
            w = torch.empty(self.out_features, self.in_features, dtype=dtype)
            if self.init == "orthogonal":
                nn.init.orthogonal_(w)
                b = torch.zeros(self.out_features, dtype=dtype)
            else:
                bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
                nn.init.kaiming_uniform_(w, a=math.sqrt(5))
                b = torch.empty(self.out_features, dtype=dtype).uniform_(-bound, bound)
            self.weight[e].copy_(w.t())
            self.bias[e, 0].copy_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)

    def member_state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Member i as a ``nn.Linear`` state dict (weight [out, in], bias [out]); copies."""
        return {"weight": self.weight[i].detach().t().clone(), "bias": self.bias[i, 0].detach().clone()}

    @torch.no_grad()
    def load_member_state_dict(self, i: int, state: dict[str, torch.Tensor]) -> None:
        """Overwrite member i from a ``nn.Linear`` state dict."""
        w, b = state["weight"], state["bias"]
        if tuple(w.shape) != (self.out_features, self.in_features) or tuple(b.shape) != (self.out_features,):
            raise ValueError(
                f"member shapes {tuple(w.shape)}/{tuple(b.shape)} do not fit "
                f"[{self.out_features}, {self.in_features}]/[{self.out_features}]"
            )
        self.weight[i].copy_(w.t())
        self.bias[i, 0].copy_(b)

    def extra_repr(self) -> str:
        return f"n_members={self.n_members}, in={self.in_features}, out={self.out_features}, init={self.init}"


def mlp(input_dim: int, hidden_dim: int, output_dim: int, hidden_depth: int) -> nn.Sequential:
    """The plain single-task MLP: Linear, ReLU, ..., Linear (``hidden_depth`` hidden layers).

    Same module indices as the behaviour-SAC reference (Linear layers at 0, 2, 4, ...),
    so its state-dict keys match the reference's checkpoints.
    """
    if hidden_depth == 0:
        return nn.Sequential(nn.Linear(input_dim, output_dim))
    mods: list[nn.Module] = [nn.Linear(input_dim, hidden_dim), nn.ReLU()]
    for _ in range(hidden_depth - 1):
        mods += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU()]
    mods.append(nn.Linear(hidden_dim, output_dim))
    return nn.Sequential(*mods)


class EnsembleMLP(nn.Module):
    """E independent copies of :func:`mlp`; x [E, B, input_dim] -> [E, B, output_dim]."""

    def __init__(
        self,
        n_members: int,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        hidden_depth: int,
        init: str = "orthogonal",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.n_members = int(n_members)
        self.input_dim, self.hidden_dim = int(input_dim), int(hidden_dim)
        self.output_dim, self.hidden_depth = int(output_dim), int(hidden_depth)
        dims = [input_dim] + [hidden_dim] * hidden_depth + [output_dim]
        self.layers = nn.ModuleList(
            EnsembleLinear(n_members, d_in, d_out, init=init, device=device, dtype=dtype)
            for d_in, d_out in zip(dims[:-1], dims[1:])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if k < last:
                x = torch.relu_(x)  # in place: baddbmm does not keep its output for backward
        return x

    def _plain_keys(self) -> Iterable[tuple[int, EnsembleLinear]]:
        # Linear k of the plain Sequential sits at index 2k (a ReLU between).
        return ((2 * k, layer) for k, layer in enumerate(self.layers))

    def member_state_dict(self, i: int, prefix: str = "") -> dict[str, torch.Tensor]:
        """Member i as the state dict of ``mlp(...)`` (keys ``{prefix}0.weight``, ...)."""
        out: dict[str, torch.Tensor] = {}
        for idx, layer in self._plain_keys():
            for name, t in layer.member_state_dict(i).items():
                out[f"{prefix}{idx}.{name}"] = t
        return out

    def load_member_state_dict(self, i: int, state: dict[str, torch.Tensor], prefix: str = "") -> None:
        """Overwrite member i from a state dict laid out as ``mlp(...)`` (strict on keys)."""
        expected = {f"{prefix}{idx}.{n}" for idx, _ in self._plain_keys() for n in ("weight", "bias")}
        given = {k for k in state if k.startswith(prefix)}
        if given != expected:
            raise KeyError(f"member state keys differ: missing {sorted(expected - given)}, unexpected {sorted(given - expected)}")
        for idx, layer in self._plain_keys():
            layer.load_member_state_dict(i, {n: state[f"{prefix}{idx}.{n}"] for n in ("weight", "bias")})

    def export_member(self, i: int) -> nn.Sequential:
        """A fresh plain ``mlp(...)`` holding a copy of member i's weights."""
        net = mlp(self.input_dim, self.hidden_dim, self.output_dim, self.hidden_depth)
        ref = self.layers[0].weight
        net = net.to(device=ref.device, dtype=ref.dtype)
        net.load_state_dict(self.member_state_dict(i))
        return net

    def import_member(self, i: int, net: nn.Sequential) -> None:
        """Copy a plain ``mlp(...)``'s weights into member i."""
        self.load_member_state_dict(i, net.state_dict())
