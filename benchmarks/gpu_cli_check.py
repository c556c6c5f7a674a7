"""The CLIs end to end on a GPU (part of benchmarks/gpu_check.sh): data, meta-training, CPU evaluation.

policy_train.py and launch_experiment.py run with ``--gpu 0`` on a tiny
point-robot setting; the snapshot they leave is then evaluated with
``python -m rlkit.evaluate`` *without* a GPU flag, which must work because
snapshots hold CPU tensors. Exits non-zero on any failure.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.helpers import small_point_robot_config

REPO = Path(__file__).resolve().parents[1]


def sh(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=REPO, check=True)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = small_point_robot_config(tmp)
        data, out = tmp / "data", tmp / "out"
        sh("policy_train.py", "--config", str(config), "--gpu", "0", "--preset", "train_quick", "--data_dir",
           str(data), "--no-progress", "num_train_steps=300", "num_seed_steps=100", "eval_frequency=100",
           "num_eval_sample_episodes=2")
        sh("launch_experiment.py", str(config), "--gpu", "0", "--seed", "0", "--exp_name", "gpu",
           f"algo_params.data_dir={data}", f"util_params.base_log_dir={out}", "algo_params.train_epoch=[100,300,100]",
           "algo_params.eval_epoch=[100,300,100]", "algo_params.n_trj=2", "algo_params.num_iterations=2",
           "algo_params.num_train_steps_per_itr=50")
        run_dir = out / "point-robot" / "gpu" / "seed0"
        sh("-m", "rlkit.evaluate", str(run_dir), "--out", str(tmp / "eval"))
        print(open(run_dir / "progress.csv").read())
    print("gpu cli check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
