"""Test and check helpers shared by tests/ and benchmarks/ (not part of the product package)."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def small_point_robot_config(folder: Path, n_tasks: int = 6, n_train: int = 4, meta_batch: int = 3) -> Path:
    """configs/point-robot.json with few tasks (the rest as published), written into ``folder``."""
    cfg = json.loads((REPO / "configs" / "point-robot.json").read_text())
    cfg["env_params"]["n_tasks"], cfg["n_train_tasks"], cfg["n_eval_tasks"] = n_tasks, n_train, n_tasks - n_train
    cfg["algo_params"]["meta_batch"] = meta_batch
    path = Path(folder) / f"point-robot-{n_tasks}.json"
    path.write_text(json.dumps(cfg))
    return path


def processes_mentioning(text: str) -> list[str]:
    """Command lines of this machine's live processes that contain ``text`` (children of a runner
    that must die with it, a runner's leftovers)."""
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            out.append(args)
    return out


def regenerate_checkpoint(data_dir: Path, task: int, step: int) -> None:
    """Write one checkpoint of a native dataset again with other episodes (every reward + 1): what
    regenerating the folder with another generator seed does to a run's data, in milliseconds."""
    import dataclasses

    from rlkit.data import DatasetWriter, read_metadata
    from rlkit.data.native import read_checkpoint_episodes

    meta = read_metadata(data_dir)
    writer = DatasetWriter(data_dir, meta["env_name"], meta["env_params"], meta["tasks"], meta["obs_dim"],
                           meta["act_dim"], meta["generator_config"], fsync=False)
    episodes = read_checkpoint_episodes(data_dir, task, step)
    writer.write_checkpoint(task, step, [dataclasses.replace(e, rewards=e.rewards + 1) for e in episodes])


def forget_data_fingerprint(run_dir: Path) -> None:
    """Make ``run_dir`` look like a run from before runs recorded their data's fingerprint."""
    import torch

    variant = json.loads((run_dir / "variant.json").read_text())
    del variant["data_fingerprint"]
    (run_dir / "variant.json").write_text(json.dumps(variant))
    for snap in run_dir.glob("agent*.pth"):
        state = torch.load(snap, map_location="cpu", weights_only=True)
        del state["data_fingerprint"]
        torch.save(state, snap)


# The four tasks the buffer tests read from the small synthetic dataset below.
SMALL_DATA_TASKS = [0, 3, 5, 6]


def small_episodic_data(folder: Path):
    """A small synthetic native dataset, loaded: 7 tasks, episodes of 1..10 steps (half end early in a fall,
    so many are shorter than a sequence test's windows), 3 checkpoints; tasks SMALL_DATA_TASKS selected."""
    from rlkit.data import load_offline_data
    from rlkit.data.synthetic import write_synthetic_dataset

    root = write_synthetic_dataset(folder / "ds", n_tasks=7, steps=[100, 200, 300], n_deterministic=1,
                                   n_sampled=4, length=10, obs_dim=3, act_dim=2, early_end_prob=0.5, seed=11)
    return load_offline_data(root, SMALL_DATA_TASKS, [100, 400, 100], n_trj=4)
