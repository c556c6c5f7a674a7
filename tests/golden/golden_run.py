"""The golden regression run: a tiny fixed-seed point-robot pipeline whose progress.csv is committed.

Any change that alters what a user's run computes (the data generator, the
meta-training step, the evaluation protocols, the logging) changes this
table. ``tests/test_golden.py`` compares a fresh run with the committed CSV;
regenerating the CSV is deliberate:

    make golden          # = python -m tests.golden.golden_run --write

Only do that when a change is *meant* to alter the numbers, and say why in the
commit message. The run uses one thread so that the numbers do not depend on
how the host splits a matrix product over cores, and computes in float64 (the
generator's ``dtype`` and ``util_params.dtype``, rlkit.core.precision): in
float32 the CPU's vector width and MKL's kernel choice move the logged numbers
by up to ~10% relative (Adam amplifies last-bit differences; small z means are
the worst), in float64 by ~1e-12, so the tables hold on any x86-64 host.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from tests.helpers import small_point_robot_config

REPO = Path(__file__).resolve().parents[2]
GOLDEN_DIR = Path(__file__).resolve().parent
# Wall-clock columns differ on every run; everything else must be reproduced.
VOLATILE = ("Time (s)", "time/")

# name -> extra launch_experiment.py overrides. "csro" is point-robot as configured
# (CLUB + FOCAL, no BRAC); "csro-brac" also exercises the dual critic, the value
# penalty and alpha's update; "focal" and "offline-pearl" are the other presets
# (configs/algos/), the latter covering the information bottleneck and Q -> encoder; "corro" and
# "unicorn-ss" the CORRO (InfoNCE + CVAE negatives) and UNICORN-SS (jointly trained decoder) objectives,
# "unicorn-sup" UNICORN-SUP's classifier; "borel" the other trainer (rlkit.trainers.borel), its VAE stage
# overlapping its SAC stage so that both show in 15 steps; "prompt-dt" the decision transformer (no z),
# its warm-up inside the run.
VARIANTS: dict[str, list[str]] = {
    "csro": [],
    "csro-brac": ["algo_params.use_brac=1", "algo_params.use_value_penalty=1", "algo_params.alpha_init=5.0"],
    "focal": ["algo_type=FOCAL"],
    "offline-pearl": ["algo_type=offline-PEARL"],
    "corro": ["algo_type=CORRO", "algo_params.corro_batch_size=8", "algo_params.corro_negatives=4"],
    "unicorn-ss": ["algo_type=UNICORN-SS"],
    "unicorn-sup": ["algo_type=UNICORN-SUP"],
    "borel": ["algo_type=BOReL", "borel.latent_size=3", "borel.gru_hidden_size=8", "borel.net_sizes=[16,16]",
              "borel.vae_meta_batch=2", "borel.vae_episodes_per_task=2", "borel.rl_episodes_per_task=2",
              "borel.vae_train_steps=10", "borel.policy_start_step=5"],
    "prompt-dt": ["algo_type=Prompt-DT", "prompt_dt.embed_dim=16", "prompt_dt.n_layer=1", "prompt_dt.K=5",
                  "prompt_dt.prompt_length=3", "prompt_dt.windows_per_task=4", "prompt_dt.warmup_steps=5"],
}

GENERATOR = ["--preset", "train_quick", "--no-progress", "--seed", "3", "num_train_steps=300", "num_seed_steps=100",
             "eval_frequency=100", "num_eval_sample_episodes=2", "agent.hidden_dim=32", "agent.batch_size=32",
             "dtype=float64"]
META = ["algo_params.meta_batch=3",
        "algo_params.train_epoch=[100,300,100]", "algo_params.eval_epoch=[100,300,100]", "algo_params.n_trj=2",
        "algo_params.num_iterations=3", "algo_params.num_train_steps_per_itr=5",
        "algo_params.embedding_batch_size=32", "algo_params.batch_size=16", "algo_params.num_steps_per_eval=40",
        "net_size=32", "latent_size=4", "util_params.use_gpu=0",  # the CPU numbers, also on a GPU host
        "util_params.dtype=float64"]
# float64 values need 17 significant digits to be written exactly
FLOAT_FORMAT = "%.17g"


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    res = subprocess.run([sys.executable, *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")


def golden_tables(workdir: Path, variants=tuple(VARIANTS)) -> dict[str, pd.DataFrame]:
    """Generate the tiny dataset once, meta-train each variant, return their progress tables."""
    config = small_point_robot_config(workdir)
    data, out = workdir / "data", workdir / "out"
    _run([str(REPO / "policy_train.py"), "--config", str(config), "--data_dir", str(data), *GENERATOR], cwd=workdir)

    def train(name: str) -> pd.DataFrame:
        _run([str(REPO / "launch_experiment.py"), str(config), "--seed", "1", "--exp_name", name,
              f"algo_params.data_dir={data}", f"util_params.base_log_dir={out}", *META, *VARIANTS[name]],
             cwd=workdir)
        return stable_columns(pd.read_csv(out / "point-robot" / name / "seed1" / "progress.csv"))

    # each variant is its own one-thread process on the shared dataset, so they run side by side, one per
    # core: the numbers are those of a run alone (one thread each), the wall time about halves on 2 cores
    with ThreadPoolExecutor(max_workers=max(1, min(len(variants), os.cpu_count() or 1))) as pool:
        return dict(zip(variants, pool.map(train, variants)))


def stable_columns(df: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in df.columns if not any(v in c for v in VOLATILE)]
    return df[sorted(keep)]


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"point_robot_{name}.csv"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help="overwrite the committed golden CSVs")
    p.add_argument("--only", default=None, help="comma-separated variants (default: all), e.g. a new one's table")
    args = p.parse_args(argv)
    variants = tuple(args.only.split(",")) if args.only else tuple(VARIANTS)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variant {unknown[0]!r}; variants: {', '.join(VARIANTS)}")
    with tempfile.TemporaryDirectory() as tmp:
        tables = golden_tables(Path(tmp), variants)
    for name, df in tables.items():
        if args.write:
            df.to_csv(golden_path(name), index=False, float_format=FLOAT_FORMAT)
            print(f"wrote {golden_path(name)} ({len(df)} rows, {len(df.columns)} columns)")
        else:
            print(name, df.shape)
    return 0


if __name__ == "__main__":
    sys.exit(main())
