"""Experiment tracking beyond the run directory: optional Weights & Biases, TensorBoard hparams.

Weights & Biases is not a dependency: ``util_params.wandb=true`` (or
``launch_experiment.py --wandb``) imports it when a run starts and refuses,
in one line, when it is missing. Each run is one W&B run: project = the env
name, group = the experiment name, name = ``EXP_NAME-seedN``; its config is the
run's variant, and each iteration logs the progress.csv row at step = the
iteration. ``WANDB_PROJECT`` / ``WANDB_ENTITY`` / ``WANDB_MODE`` (e.g.
``offline``) are honoured. A resumed run continues the same W&B run: its id
is kept in ``RUN_DIR/wandb_id.txt``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlkit.errors import UserError
from rlkit.fileio import atomic_write_text

WANDB_ID_FILE = "wandb_id.txt"

# The hyperparameters shown in TensorBoard's HParams tab: what tells two runs of a sweep apart.
KEY_HPARAMS = (
    "env_name", "algo_type", "latent_size", "net_size",
    "algo_params.meta_batch", "algo_params.batch_size", "algo_params.embedding_batch_size",
    "algo_params.num_iterations", "algo_params.num_train_steps_per_itr",
    "algo_params.policy_lr", "algo_params.qf_lr", "algo_params.vf_lr", "algo_params.context_lr",
    "algo_params.reward_scale", "algo_params.discount", "algo_params.use_club", "algo_params.club_loss_weight",
    "algo_params.use_FOCAL_cl", "algo_params.z_loss_weight", "algo_params.use_brac",
    "algo_params.target_divergence", "algo_params.use_next_obs_in_context", "algo_params.n_trj",
)


class TrackingError(UserError, RuntimeError):
    """Tracking was asked for but cannot run (e.g. wandb is not installed)."""


def key_hparams(cfg: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """``{dotted key: value}`` of :data:`KEY_HPARAMS` present in ``cfg``, plus exp_name and seed."""
    out: dict[str, Any] = {"exp_name": cfg["util_params"]["exp_name"], "seed": int(seed)}
    for path in KEY_HPARAMS:
        node: Any = cfg
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            out[path] = node
    return out


def import_wandb():
    """The ``wandb`` module, or a one-line :class:`TrackingError` saying how to install it."""
    try:
        import wandb
    except ImportError:
        raise TrackingError("util_params.wandb (--wandb) needs Weights & Biases: pip install wandb "
                            "(or pip install 'csro[wandb]'), or drop --wandb") from None
    return wandb


class WandbSink:
    """One W&B run fed by :meth:`rlkit.core.logger.RunLogger.add_sink`."""

    def __init__(self, run):
        self.run = run

    @classmethod
    def start(cls, run_dir: str | os.PathLike, cfg: Mapping[str, Any], seed: int, resume: bool) -> WandbSink:
        wandb = import_wandb()
        run_dir = Path(run_dir)
        id_path = run_dir / WANDB_ID_FILE
        run_id = id_path.read_text(encoding="utf-8").strip() if resume and id_path.is_file() else ""
        if not run_id:
            run_id = uuid.uuid4().hex[:16]
            atomic_write_text(id_path, run_id + "\n")
        exp_name = cfg.get("exp_name") or cfg["util_params"]["exp_name"]  # variant.json: the folder name used
        run = wandb.init(project=os.environ.get("WANDB_PROJECT") or cfg["env_name"], group=exp_name,
                         name=f"{exp_name}-seed{seed}", config=dict(cfg), dir=str(run_dir), id=run_id,
                         resume="allow", job_type="meta-train")
        return cls(run)

    def log(self, row: Mapping[str, Any], step: int) -> None:
        self.run.log({k: v for k, v in row.items() if v is not None}, step=step)

    def close(self) -> None:
        self.run.finish()


def attach_trackers(logger, cfg: Mapping[str, Any], seed: int, resume: bool) -> None:
    """Add the trackers ``cfg`` asks for (``util_params.wandb``) to ``logger``."""
    if cfg["util_params"].get("wandb"):
        logger.add_sink(WandbSink.start(logger.run_dir, cfg, seed, resume))
