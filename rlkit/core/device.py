"""Choose the compute device once per process; every tensor is then created on it."""

from __future__ import annotations

import torch

from rlkit.errors import fail


def choose_device(gpu: int | None) -> torch.device:
    """``cuda:G`` when asked for and present, made the current CUDA device; otherwise the CPU (saying why).

    Setting the current device matters on multi-GPU hosts: without it, CUDA
    contexts, cuBLAS workspaces and ``torch.cuda.synchronize()`` default to GPU 0.
    """
    if gpu is None:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        print(f"note: --gpu {gpu} asked for CUDA but torch sees no GPU; running on the CPU")
        return torch.device("cpu")
    if not 0 <= gpu < torch.cuda.device_count():
        fail(f"--gpu {gpu} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    device = torch.device(f"cuda:{gpu}")
    torch.cuda.set_device(device)
    return device
