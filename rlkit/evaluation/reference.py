"""Reference returns for a run's test tasks: a uniform-random policy and the behaviour policies.

Learning curves mean little without them: on point-robot a return of -15 is
good or bad only next to what random actions (the floor) and the behaviour
policies that wrote the offline data (what the data can teach) score on the
same tasks. Both are for the run's test tasks and its episode length
(``max_path_length``), the quantity the three protocols report (the return of
one evaluation episode, averaged over tasks).

* random: mean return of actions uniform in the action box, a small seeded
  batched rollout on the project's vector env (a fraction of a second for
  point-robot; recomputed each time, not cached).
* behaviour: from the generator's per-checkpoint log
  ``DATA_DIR/_generator/returns.csv`` (one deterministic episode per task and
  checkpoint): ``best`` is the checkpoint whose mean deterministic return over
  the test tasks is highest; ``data`` is the mean over the checkpoints the
  run's test data uses (``eval_epoch``). Sparse-reward runs are evaluated on
  the sparse reward, but the behaviour policies were trained, logged and
  recorded on the dense one, so for them the deterministic episodes are read
  from the dataset and their per-step rewards sparsified, the same function
  evaluation uses: the references are then on the scale the runs report.

:func:`normalized_score` maps returns D4RL-style: 0 = random, 100 = best
behaviour checkpoint.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rlkit.data import DatasetError, checkpoint_steps, detect_layout, read_metadata
from rlkit.data.minari_format import NAMESPACE_FILE, MinariSource, is_minari_ref, resolve
from rlkit.envs.random_policy import random_policy_return  # noqa: F401 (part of this module's API)
from rlkit.data import split_tasks_from_variant
from rlkit.data.native import read_checkpoint_file
from rlkit.envs import make_env
from rlkit.envs.point_robot import sparse_reward
from rlkit.errors import UserError

RETURNS_LOG = Path("_generator") / "returns.csv"


class ReferenceUnavailable(UserError):
    """The run's dataset (or its generator log) is not here; plots go on without reference lines."""


@dataclass(frozen=True)
class ReferenceReturns:
    """Reference returns on ``tasks`` (a run's test tasks); behaviour values are None without a log."""

    random: float
    behaviour_best: float | None
    behaviour_best_step: int | None
    behaviour_data: float | None
    tasks: tuple[int, ...]
    episode_length: int
    random_episodes: int
    data_dir: str

    def as_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ReferenceReturns":
        return cls(**{**d, "tasks": tuple(int(t) for t in d["tasks"])})


def normalized_score(returns, random_return: float, behaviour_return: float):
    """D4RL-style score: ``100 * (R - random) / (behaviour - random)``; 0 = random, 100 = behaviour.

    Works elementwise on arrays; a float in, a float out.
    """
    span = float(behaviour_return) - float(random_return)
    if not np.isfinite(span) or span == 0.0:
        raise ValueError(f"normalized score needs behaviour return != random return, got {behaviour_return} "
                         f"and {random_return}")
    out = 100.0 * (np.asarray(returns, dtype=np.float64) - float(random_return)) / span
    return float(out) if np.ndim(out) == 0 else out


def behaviour_policy_returns(data_dir: str | Path, task_ids: Sequence[int], steps: Sequence[int] | None = None,
                             sparse_goal_radius: float | None = None,
                             ) -> tuple[float | None, int | None, float | None]:
    """(best checkpoint's mean deterministic return over ``task_ids``, its step, mean over ``steps``).

    Only checkpoints with every task count. With ``sparse_goal_radius`` the returns are the
    sparse ones, recomputed from the dataset's deterministic episodes; otherwise they come from
    the generator's log. Missing log or dataset -> :class:`ReferenceUnavailable`.
    """
    tasks = sorted(set(int(t) for t in task_ids))
    logged = not is_minari_ref(data_dir) and (Path(data_dir) / RETURNS_LOG).is_file()
    if sparse_goal_radius is None and logged:
        table = _logged_returns(Path(data_dir), tasks)
    else:
        table = _dataset_returns(data_dir, tasks, None if sparse_goal_radius is None else float(sparse_goal_radius))
    per_step = table.groupby("step")["deterministic_return"].agg(["mean", "count"])
    per_step = per_step[per_step["count"] == len(tasks)]["mean"]
    if per_step.empty:
        return None, None, None
    best_step = int(per_step.idxmax())
    used = per_step[per_step.index.isin(list(steps))] if steps is not None else per_step
    return float(per_step.max()), best_step, (float(used.mean()) if len(used) else None)


def _logged_returns(data_dir: Path, tasks: list[int]) -> pd.DataFrame:
    """(step, task, deterministic_return) rows of the generator's log for ``tasks``."""
    path = data_dir / RETURNS_LOG
    if not path.is_file():
        raise ReferenceUnavailable(f"no behaviour-policy log {path}")
    log = pd.read_csv(path)
    missing = {"step", "task", "deterministic_return"} - set(log.columns)
    if missing:
        raise ReferenceUnavailable(f"{path} lacks the columns {sorted(missing)}")
    log = log[log["task"].isin(tasks)].dropna(subset=["deterministic_return"])
    return log.drop_duplicates(["step", "task"], keep="last")


def _dataset_returns(data_dir: str | Path, tasks: list[int], goal_radius: float | None) -> pd.DataFrame:
    """(step, task, deterministic_return) from the dataset's own deterministic episodes (mean over them
    where a checkpoint holds several), with the sparse reward when ``goal_radius`` is given. For what
    has no generator log: a Minari copy (``minari:NS``), or a sparse env. dataset.json is read once;
    each file's deterministic rows are summed per episode in one pass."""
    try:
        if is_minari_ref(data_dir):
            source = MinariSource(data_dir)
            files, read = source.metadata["files"], source.records
        elif detect_layout(data_dir) == "native":
            files, read = read_metadata(data_dir)["files"], lambda rel, entry: read_checkpoint_file(data_dir, entry, rel)
        else:
            raise ReferenceUnavailable(f"behaviour returns from the episodes need a native or Minari dataset; "
                                       f"{data_dir} is neither")
    except (DatasetError, OSError) as exc:
        raise ReferenceUnavailable(f"no behaviour returns: {exc}") from None
    rows = []
    for rel, entry in files.items():
        if int(entry["task"]) not in tasks or not entry["episodes"]["deterministic"]["index"]:
            continue
        rec = read(rel, entry)
        det = ~rec["sampled"]
        rewards = rec["reward"][det].astype(np.float64)
        if goal_radius is not None:
            rewards = sparse_reward(rewards, goal_radius)
        _, episode = np.unique(rec["episode"][det], return_inverse=True)
        rows.append({"step": int(entry["step"]), "task": int(entry["task"]),
                     "deterministic_return": float(np.bincount(episode, weights=rewards).mean())})
    return pd.DataFrame(rows, columns=["step", "task", "deterministic_return"])


def run_seed(run_dir: str | Path) -> int | None:
    """The seed of ``.../seedN`` run directories (what the task split of randomised splits depends on)."""
    m = re.fullmatch(r"seed(\d+)", Path(run_dir).name)
    return int(m.group(1)) if m else None


def reference_returns(variant: dict, seed: int | None = 0, data_dir: str | Path | None = None,
                      episodes: int = 10) -> ReferenceReturns:
    """Reference returns for the run a resolved config (``variant.json``) describes.

    ``data_dir`` overrides ``algo_params.data_dir`` (a moved dataset). Raises
    :class:`ReferenceUnavailable` when the dataset folder is not here.
    """
    algo = variant["algo_params"]
    data_dir = data_dir if data_dir is not None else algo["data_dir"]
    if is_minari_ref(data_dir):
        try:
            here = (resolve(data_dir)[0] / NAMESPACE_FILE).is_file()
        except DatasetError:  # minari is not installed
            here = False
        if not here:
            raise ReferenceUnavailable(f"Minari dataset {data_dir} is not here")
    else:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise ReferenceUnavailable(f"dataset {data_dir} is not here")
    if seed is None and variant.get("interpolation") and variant.get("randomize_tasks"):
        raise ReferenceUnavailable("the run's seed (from its seedN folder) is needed for its randomised task split")
    _, test = split_tasks_from_variant(variant, 0 if seed is None else seed)
    tasks = tuple(int(t) for t in test)
    mpl = int(algo["max_path_length"])
    random = random_policy_return(variant["env_name"], variant["env_params"], tasks, mpl, episodes=episodes,
                                  sparse_rewards=bool(algo.get("sparse_rewards", False)))
    try:
        eval_steps = checkpoint_steps(algo["eval_epoch"])
    except (KeyError, ValueError, DatasetError):
        eval_steps = None
    sparse = bool(algo.get("sparse_rewards", False))
    radius = getattr(make_env(variant["env_name"], **variant["env_params"]), "goal_radius", None) if sparse else None
    if sparse and radius is None:
        raise ReferenceUnavailable(f"{variant['env_name']} has no goal_radius to make its sparse reward from")
    best, best_step, data = behaviour_policy_returns(data_dir, tasks, eval_steps, sparse_goal_radius=radius)
    return ReferenceReturns(random=random, behaviour_best=best, behaviour_best_step=best_step, behaviour_data=data,
                            tasks=tasks, episode_length=mpl, random_episodes=episodes, data_dir=str(data_dir))


def run_reference_returns(run_dir: str | Path, episodes: int = 10) -> ReferenceReturns:
    """:func:`reference_returns` of a run directory (its variant.json and seedN name)."""
    path = Path(run_dir) / "variant.json"
    if not path.is_file():
        raise ReferenceUnavailable(f"{path} is missing")
    return reference_returns(json.loads(path.read_text(encoding="utf-8")), run_seed(run_dir), episodes=episodes)
