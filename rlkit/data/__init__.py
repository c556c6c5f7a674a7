"""Offline dataset layer: format, legacy layout, task split, device buffer.

Typical use (what meta-training does)::

    from rlkit.data import split_tasks_from_variant, load_offline_data, MultiTaskBuffer

    train_tasks, eval_tasks = split_tasks_from_variant(variant, seed)
    algo = variant["algo_params"]
    train = load_offline_data(algo["data_dir"], train_tasks, algo["train_epoch"], algo["n_trj"],
                              algo["sample"], obs_dim=obs_dim, act_dim=act_dim)
    buffer = MultiTaskBuffer(train, device)
    batch = buffer.sample(task_ids, 256)          # dict of [T, 256, dim] tensors
    context = buffer.sample_context(task_ids, 100)  # [T, 100, obs + act + 1]

Writing (the data generator)::

    writer = DatasetWriter(root, env_name, env_params, task_params, obs_dim, act_dim, generator_config)
    if not writer.has_checkpoint(task, step):
        writer.write_checkpoint(task, step, episodes)   # list of Episode / dicts

Command line: ``python -m rlkit.data {info,convert,normalizer,verify} ...``.
The format is described in ``docs/dataset_format.md``; Minari interchange
(``convert --to minari``, ``data_dir=minari:NAMESPACE``) in ``docs/minari.md``.
"""

from rlkit.data.buffer import MultiTaskBuffer
from rlkit.data.convert import convert_dataset
from rlkit.data.episodes import Episode, episodes_from_flat
from rlkit.data.errors import DatasetError
from rlkit.data.legacy import legacy_has_checkpoint, read_legacy_file, write_legacy_checkpoint, write_legacy_episode
from rlkit.data.loader import (OfflineData, check_tasks_match, checkpoint_steps, compute_abs_max, detect_layout,
                               load_offline_data, same_params)
from rlkit.data.native import (
    FORMAT_VERSION,
    DatasetWriter,
    checkpoint_relpath,
    read_checkpoint_episodes,
    read_metadata,
    record_dtype,
)
from rlkit.data.normalizer import load_normalizer, save_normalizer
from rlkit.data.split import generation_tasks, split_tasks, split_tasks_from_variant
from rlkit.data.tools import dataset_info, verify_dataset

__all__ = [
    "DatasetError",
    "DatasetWriter",
    "Episode",
    "FORMAT_VERSION",
    "MultiTaskBuffer",
    "OfflineData",
    "checkpoint_relpath",
    "checkpoint_steps",
    "compute_abs_max",
    "convert_dataset",
    "dataset_info",
    "detect_layout",
    "episodes_from_flat",
    "generation_tasks",
    "legacy_has_checkpoint",
    "load_normalizer",
    "load_offline_data",
    "check_tasks_match",
    "same_params",
    "read_checkpoint_episodes",
    "read_legacy_file",
    "read_metadata",
    "record_dtype",
    "save_normalizer",
    "split_tasks",
    "split_tasks_from_variant",
    "verify_dataset",
    "write_legacy_checkpoint",
    "write_legacy_episode",
]
