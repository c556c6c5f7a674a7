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


def assert_resumes_identically(make_step, warmup_batches, next_batch):
    """One update step object (CSRO's, BOReL's, Prompt-DT's) resumed from its ``state_dict``: train one on
    ``warmup_batches``, load a copy of its state into a fresh one built under another seed, then take the
    same next update on both under the same global RNG (dropout and reparametrisation noise draw from it,
    which a run's snapshot restores). Every stat, every parameter and the step count must agree: what
    kill-and-resume relies on, one object below the trainer suite's whole-run check, bit for bit."""
    import copy

    import torch

    torch.manual_seed(0)
    first = make_step()
    for batch in warmup_batches:
        first.train_step(batch)
    state = copy.deepcopy(first.state_dict())
    torch.manual_seed(99)
    twin = make_step()
    twin.load_state_dict(state)
    torch.manual_seed(3)
    stats = first.train_step(next_batch, with_stats=True)
    torch.manual_seed(3)
    twin_stats = twin.train_step(next_batch, with_stats=True)
    assert stats.keys() == twin_stats.keys() and all(torch.equal(stats[k], twin_stats[k]) for k in stats)
    for name, module in first.modules().items():
        twin_params = twin.modules()[name].state_dict()
        for key, value in module.state_dict().items():
            assert torch.equal(value, twin_params[key]), (name, key)
    assert first.num_steps == twin.num_steps == len(warmup_batches) + 1
    return first, twin
