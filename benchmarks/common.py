"""Shared helpers for the benchmark scripts: timing with medians, tables, JSON results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def sync() -> None:
    """Wait for queued GPU work, so that a wall time covers it (no-op without CUDA)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` over ``repeats`` runs (after ``warmup`` untimed runs)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


# The steps the step benchmarks time (bench_csro_step, bench_compile, bench_fused_adam), each a shipped env
# config under a method preset (rlkit/configs/algos/*.json, the registry of presets) plus overrides: name:
# (env config, algo_type, overrides). Built with rlkit.config.load_config as a run is, so a benchmark times
# exactly the step a run of that preset trains (the methods' keys are never typed here). Point-robot as
# shipped (no BRAC, so no dual critic), point-robot with the dual critic trained as the reference does, and
# cheetah-vel (BRAC on); then the other methods on the point-robot step, against "point-robot".
STEP_CONFIGS = {
    "point-robot": ("point-robot", "CSRO", ()),
    "point-robot+c": ("point-robot", "CSRO", ("algo_params.train_dual_critic_without_brac=true",)),
    "cheetah-vel": ("cheetah-vel", "CSRO", ()),
    "point-robot FOCAL": ("point-robot", "FOCAL", ()),
    "point-robot CORRO": ("point-robot", "CORRO", ()),
    "point-robot UNICORN-SS": ("point-robot", "UNICORN-SS", ()),
}


def step_config(name: str, **overrides):
    """The resolved config of one of :data:`STEP_CONFIGS`; ``overrides`` are algo_params keys (fused_adam=True)."""
    from rlkit.config import load_config

    env_config, preset, extra = STEP_CONFIGS[name]
    more = [f"algo_params.{k}={json.dumps(v)}" for k, v in overrides.items()]
    return load_config(env_config, [f"algo_type={preset}", *extra, *more])


def step_trainer_and_batches(name: str, device, **overrides):
    """The step of one of :data:`STEP_CONFIGS` (its preset's trainer, from the registry) and 4 random
    meta-batches of the config's sizes for it.

    Seeded, so two calls build identical trainers: variants of the step (compiled,
    fused optimizers) are then compared from the same start on the same batches.
    """
    import torch

    from rlkit.envs import make_env
    from rlkit.torch.csro import CSROHyperParams, CSROTrainer, MetaBatch
    from rlkit.trainers import CSROMethod, trainer_of

    cfg = step_config(name, **overrides)
    if trainer_of(cfg) is not CSROMethod:
        raise ValueError(f"step benchmark {name!r}: its preset trains with {cfg['algo_params']['trainer']!r}; "
                         "these benchmarks time the CSRO step (rlkit.torch.csro)")
    env = make_env(cfg["env_name"], **cfg["env_params"])
    obs, act = env.observation_space.shape[0], env.action_space.shape[0]
    algo = cfg["algo_params"]
    t, b, n = algo["meta_batch"], algo["batch_size"], min(algo["embedding_batch_size"], algo["embedding_mini_batch_size"])
    device = torch.device(device)
    torch.manual_seed(0)
    hp = CSROHyperParams.from_config(cfg)
    trainer = CSROTrainer(obs, act, hp, device=device)
    g = torch.Generator().manual_seed(1)

    def r(*s):
        return torch.randn(*s, generator=g).to(device)

    ctx = obs + act + 1 + (obs if hp.use_next_obs_in_context else 0)
    batches = [MetaBatch(task_ids=torch.arange(t, device=device), context=r(t, n, ctx), obs=r(t, b, obs),
                         actions=torch.tanh(r(t, b, act)), rewards=r(t, b, 1), next_obs=r(t, b, obs),
                         terminals=torch.zeros(t, b, 1, device=device), extra_obs=r(hp.c_iter - 1, t, b, obs),
                         extra_actions=torch.tanh(r(hp.c_iter - 1, t, b, act))) for _ in range(4)]
    return trainer, batches


def time_train_steps(trainer, batches, steps: int, device) -> list[float]:
    """Wall time of each of ``steps`` training steps (cycling through ``batches``), GPU work included."""
    import torch

    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        trainer.train_step(batches[i % len(batches)])
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def max_weight_drift(a, b) -> float:
    """Largest absolute difference between two trainers' floating-point weights."""
    return max((x - y).abs().max().item() for ma, mb in zip(a.modules().values(), b.modules().values())
               for x, y in zip(ma.state_dict().values(), mb.state_dict().values()) if x.is_floating_point())


def result_name(name: str, device: str) -> str:
    """``bench_eval`` on the CPU, ``bench_eval_cuda`` on a GPU: the two never overwrite each other."""
    return name if str(device) == "cpu" else f"{name}_{str(device).split(':')[0]}"


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def write_results(name: str, payload: dict) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the machine description."""
    import torch

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        **payload,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")
    return path
