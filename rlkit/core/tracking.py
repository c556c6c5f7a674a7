"""Experiment tracking beyond the run directory: optional Weights & Biases, TensorBoard hparams.

Weights & Biases is not a dependency: ``util_params.wandb=true`` (or
``launch_experiment.py --wandb``) imports it when a run starts and refuses,
in one line, when it is missing. Each run is one W&B run: project = the env
name, group = the experiment name, name = ``EXP_NAME-seedN``; its config is the
run's variant, and each iteration logs the progress.csv row at step = the
iteration. ``WANDB_PROJECT`` / ``WANDB_ENTITY`` / ``WANDB_MODE`` (e.g.
``offline``) are honoured. Online logging needs an API key: without one the
run is refused in one line before anything is written. A resumed run continues the same W&B run: its id
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

# The hyperparameters shown in TensorBoard's HParams tab that every trainer's run has: what tells two runs
# of a sweep apart. The trainer adds its own (rlkit.trainers.base.Trainer.hparam_keys); this layer knows no method.
KEY_HPARAMS = (
    "env_name", "algo_type", "algo_params.trainer",
    "algo_params.meta_batch", "algo_params.batch_size",
    "algo_params.num_iterations", "algo_params.num_train_steps_per_itr", "algo_params.n_trj",
)


class TrackingError(UserError, RuntimeError):
    """Tracking was asked for but cannot run (e.g. wandb is not installed)."""


def key_hparams(cfg: Mapping[str, Any], seed: int, trainer_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{dotted key: value}`` of :data:`KEY_HPARAMS` and of the ``trainer_keys`` (dotted keys the run's
    trainer names: its networks' sizes, learning rates, its objectives' switches) present in ``cfg``, plus
    exp_name and seed. This layer does not know the methods: the caller names their keys."""
    out: dict[str, Any] = {"exp_name": cfg["util_params"]["exp_name"], "seed": int(seed)}
    for path in dict.fromkeys((*KEY_HPARAMS, *trainer_keys)):
        node: Any = cfg
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            out[path] = node
    return out


def import_wandb():
    """The ``wandb`` module ready to log, or a one-line :class:`TrackingError` saying what to do.

    Ready means installed and, when it logs online, holding an API key
    (:func:`check_wandb_credentials`). Both are checked here, before a run
    writes anything: ``wandb.init`` without a key raises its own UsageError
    (a traceback) after the run folder exists.
    """
    try:
        import wandb
    except ImportError:
        raise TrackingError("util_params.wandb (--wandb) needs Weights & Biases: pip install wandb "
                            "(or pip install 'csro[wandb]'), or drop --wandb") from None
    check_wandb_credentials()
    return wandb


# W&B modes that never talk to a server, so need no key ("dryrun" is the old name of offline)
_KEYLESS_MODES = ("offline", "disabled", "dryrun")


def _wandb_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``[default]`` section of W&B's system settings file, then its workspace one (which wins)."""
    import configparser

    home = environ.get("HOME") or os.path.expanduser("~")
    config_dir = environ.get("WANDB_CONFIG_DIR") or os.path.join(home, ".config", "wandb")
    workspace = os.path.join(environ.get("WANDB_DIR") or ".", "wandb")
    out: dict[str, str] = {}
    for folder in (config_dir, workspace):
        parser = configparser.ConfigParser()
        try:
            parser.read(os.path.join(folder, "settings"), encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue  # unreadable settings: as if absent (wandb itself would say more)
        if parser.has_section("default"):
            out.update(parser.items("default"))
    return out


def _netrc_key(environ: Mapping[str, str]) -> str | None:
    """The password netrc holds for W&B's host (``WANDB_BASE_URL``, default api.wandb.ai)."""
    import netrc
    from urllib.parse import urlparse

    host = urlparse(environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    home = environ.get("HOME") or os.path.expanduser("~")
    for path in (environ.get("NETRC"), os.path.join(home, ".netrc"), os.path.join(home, "_netrc")):
        if not path or not os.path.isfile(path):
            continue
        try:
            entry = netrc.netrc(path).authenticators(host)
        except (netrc.NetrcParseError, OSError, UnicodeDecodeError):
            continue
        if entry and entry[2]:
            return entry[2]
    return None


def wandb_credentials(environ: Mapping[str, str] | None = None) -> str | None:
    """Where W&B would find its credentials, without asking it or the network; None when nowhere.

    Looks where wandb does, in its order: ``WANDB_API_KEY``, an identity
    token file (``WANDB_IDENTITY_TOKEN_FILE``), the ``api_key`` of its settings
    files, then netrc (``NETRC``, ``~/.netrc``, ``~/_netrc``).
    """
    environ = os.environ if environ is None else environ
    if environ.get("WANDB_API_KEY", "").strip():
        return "WANDB_API_KEY"
    token_file = environ.get("WANDB_IDENTITY_TOKEN_FILE")
    if token_file and os.path.isfile(token_file):
        return "WANDB_IDENTITY_TOKEN_FILE"
    if _wandb_settings(environ).get("api_key", "").strip():
        return "wandb settings"
    if _netrc_key(environ):
        return "netrc"
    return None


def check_wandb_credentials(environ: Mapping[str, str] | None = None) -> None:
    """A one-line :class:`TrackingError` when W&B would log online without an API key."""
    environ = os.environ if environ is None else environ
    mode = (environ.get("WANDB_MODE") or _wandb_settings(environ).get("mode") or "online").strip().lower()
    if mode in _KEYLESS_MODES or wandb_credentials(environ) is not None:
        return
    raise TrackingError("Weights & Biases logs online but finds no API key (WANDB_API_KEY, ~/.netrc, wandb "
                        "settings): run `wandb login` or set WANDB_API_KEY, or log offline with WANDB_MODE=offline, "
                        "or drop --wandb (util_params.wandb)")


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
