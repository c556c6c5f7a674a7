"""``python -m rlkit.data``: inspect, verify, convert datasets and compute their normalizer.

    python -m rlkit.data info DIR [--json]
    python -m rlkit.data verify DIR
    python -m rlkit.data convert SRC DST --to legacy|native|minari [--config configs/ENV.json]
                                 [--env-name NAME] [--max-episode-steps T] [--tasks 0 1 ...] [--overwrite]
    python -m rlkit.data normalizer DIR [--force]
    python -m rlkit.data profile DIR [--config C] [--reference FILE] [--json]

DIR / SRC may also be a Minari namespace, ``minari:NAMESPACE`` (under
MINARI_DATASETS_PATH) or its folder; ``--to minari`` writes DST =
``minari:NAMESPACE`` from a native dataset (docs/minari.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from rlkit.data.convert import convert_dataset
from rlkit.data.errors import DatasetError
from rlkit.data.loader import compute_abs_max
from rlkit.data.minari_format import is_minari_ref
from rlkit.data.normalizer import load_normalizer, save_normalizer
from rlkit.data.profile import check_config_env, compare, format_profile, load_reference, profile_dataset
from rlkit.data.split import split_tasks_from_variant
from rlkit.data.tools import dataset_info, verify_dataset
from rlkit.errors import cli, usage_name


def _task_params_from_config(env_name: str, env_params: dict) -> list:
    try:
        from rlkit.envs import make_env

        env = make_env(env_name, **env_params)
        return [env.task_params(i) for i in range(len(env.tasks))]
    except Exception as e:  # the conversion works without them
        print(f"warning: could not build env {env_name!r} to record task parameters ({e})", file=sys.stderr)
        return []


def _profile(args) -> int:
    if args.per_task and not args.json:
        raise DatasetError("--per-task is a field of the --json output: add --json")
    prof = profile_dataset(args.dir)
    reference = load_reference(args.reference) if args.reference else None
    split = _config_split(args.config, prof) if args.config else None
    if args.json:
        if reference is not None:
            compare(prof, reference)  # the same refusals as the table
        gaps = prof.missing()
        if gaps:
            print(f"warning: steps {', '.join(map(str, gaps))} are not held by every task and are left out",
                  file=sys.stderr)
        print(json.dumps(prof.as_json(per_task=args.per_task), indent=1))
        return 0
    print(format_profile(prof, split, reference))
    return 0


def _config_split(path: str, prof) -> tuple:
    """``profile --config``: the config's (train, test) task split, refused unless it is this dataset's env."""
    try:
        variant = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DatasetError(f"config {path} does not exist") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"config {path} is not readable JSON ({exc}): pass the env's config JSON, "
                           "e.g. configs/point-robot.json") from None
    check_config_env(prof, variant.get("env_name") if isinstance(variant, dict) else None, path)
    try:
        return split_tasks_from_variant(variant, 0)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DatasetError(f"config {path} gives no task split ({exc}): pass the env's config JSON, "
                           "e.g. configs/point-robot.json") from None


@cli
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=usage_name("rlkit.data"), description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("info", help="summarise a dataset (native or reference layout)")
    pi.add_argument("dir", help="dataset folder or minari:NAMESPACE")
    pi.add_argument("--json", action="store_true", help="print JSON")
    pv = sub.add_parser("verify", help="read every file, check sizes and checksums")
    pv.add_argument("dir", help="dataset folder or minari:NAMESPACE")
    pc = sub.add_parser("convert", help="convert between the native format, the reference layout and Minari")
    pc.add_argument("src", help="dataset folder or minari:NAMESPACE to read (layout detected)")
    pc.add_argument("dst", help="new dataset folder (empty or absent unless --overwrite), or minari:NAMESPACE "
                                "with --to minari")
    pc.add_argument("--to", required=True, choices=["native", "legacy", "minari"], help="layout to write")
    pc.add_argument("--config", help="reference-style config JSON: env_name and env_params for the metadata")
    pc.add_argument("--env-name", help="env name for the native metadata (default: the config's, else SRC's name)")
    pc.add_argument("--max-episode-steps", type=int,
                    help="legacy->native: episodes shorter than this end in a true terminal")
    pc.add_argument("--tasks", type=int, nargs="*", help="only these task ids")
    pc.add_argument("--overwrite", action="store_true",
                    help="DST already holds a dataset of the --to layout: replace that dataset's own files "
                         "(native: dataset.json, normalizer.npz and the task_NNN/ folders; legacy: the goal_idxN/ "
                         "folders and normalizer.npz) with the conversion, swapped in once it is complete; other "
                         "files in DST are kept. Any other non-empty DST (other files only, the other layout, a "
                         "folder holding SRC, a Minari store) is refused, and so is SRC itself")
    pc.add_argument("--author", help="--to minari: the dataset card's author, who made the data (default: the "
                                     "authors in pyproject.toml's [project] table; left out when it names none)")
    pc.add_argument("--author-email", dest="author_email",
                    help="--to minari: the card's contact e-mail (default: the authors' e-mails in pyproject.toml)")
    pc.add_argument("--code-permalink", dest="code_permalink",
                    help="--to minari: the card's code permalink, a URL, e.g. your fork at the commit that made the "
                         "data (default: pyproject.toml's [project.urls] Source/Repository/Homepage; left out when "
                         "there is none)")
    pn = sub.add_parser("normalizer", help="compute normalizer.npz (abs_max of all observations)")
    pn.add_argument("dir", help="dataset folder; normalizer.npz is written there")
    pn.add_argument("--force", action="store_true", help="replace an existing normalizer.npz")
    pp = sub.add_parser("profile", help="the behaviour policies' mean returns at every checkpoint")
    pp.add_argument("dir", help="dataset folder (native or the authors' layout) or minari:NAMESPACE")
    pp.add_argument("--config", help="reference-style config JSON: adds train and test task columns (its split)")
    pp.add_argument("--reference", help="a reference profile JSON (configs/reference_profiles/ENV.json): "
                                        "the difference at each of its steps")
    pp.add_argument("--json", action="store_true",
                    help='print {"<step>": {"deterministic": x, "sampled": y}} over all tasks')
    pp.add_argument("--per-task", action="store_true",
                    help='with --json: each step also holds "tasks": {"<task>": {...}} (what a reference profile keeps)')
    args = p.parse_args(argv)
    try:
        if args.cmd == "info":
            info = dataset_info(args.dir)
            if args.json:
                print(json.dumps(info, indent=1))
            else:
                for k, v in info.items():
                    print(f"{k:24s} {v}")
        elif args.cmd == "verify":
            problems = verify_dataset(args.dir)
            for line in problems:
                print(line)
            print(f"{len(problems)} problem(s) in {args.dir}")
            return 1 if problems else 0
        elif args.cmd == "convert":
            env_name, env_params, task_params = args.env_name, {}, []
            if args.config:
                cfg = _read_config(args.config)
                env_name = env_name or cfg.get("env_name")
                env_params = cfg.get("env_params", {})
                if args.to == "native" and env_name:
                    task_params = _task_params_from_config(env_name, env_params)
            stats = convert_dataset(
                args.src, args.dst, args.to, env_name=env_name, env_params=env_params, task_params=task_params,
                max_episode_steps=args.max_episode_steps, tasks=args.tasks, overwrite=args.overwrite,
                author=args.author, author_email=args.author_email, code_permalink=args.code_permalink,
            )
            print(f"converted {args.src} -> {args.dst} ({args.to}): {stats}")
        elif args.cmd == "profile":
            return _profile(args)
        elif args.cmd == "normalizer":
            if is_minari_ref(args.dir):
                raise DatasetError(f"{args.dir} is a Minari dataset: compute the normalizer on the native dataset "
                                   "and convert it again (the conversion keeps it)")
            abs_max = compute_abs_max(args.dir)
            path = save_normalizer(args.dir, abs_max, overwrite=args.force)
            load_normalizer(args.dir, len(abs_max))
            print(f"wrote {path}: abs_max = {np.array2string(abs_max, precision=4)}")
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _read_config(path: str) -> dict:
    """``convert --config``: the env_name / env_params of a config JSON, or a one-line error (the config
    reader's own wording, rlkit.config.read_json_object, plus what this option wants)."""
    from rlkit.config import ConfigError, read_json_object

    try:
        cfg = read_json_object(Path(path))
    except ConfigError as exc:
        raise DatasetError(f"--config: {exc}; pass the configs/ENV.json the data was made with") from None
    if not isinstance(cfg.get("env_params", {}), dict):
        raise DatasetError(f"--config {path} must be a JSON object with env_name and an env_params object")
    return cfg


if __name__ == "__main__":
    sys.exit(main())
