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


def run_device(use_gpu: bool, gpu_id: int, gpu: int | None = None) -> torch.device:
    """The device of a run: ``--gpu G`` if given, else the config's ``use_gpu`` / ``gpu_id``.

    The authors' configs all say ``use_gpu: 1``; as in their code that means
    "train on CUDA device ``gpu_id``", and on a machine without CUDA it quietly
    means the CPU (the run's variant.json records the device actually used).
    """
    if gpu is not None:
        return choose_device(gpu)
    if use_gpu and torch.cuda.is_available():
        return choose_device(int(gpu_id))
    return torch.device("cpu")
