"""Shared pytest fixtures."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import rlkit  # noqa: F401  (first: its MUJOCO_GL default must precede any test module's `import mujoco`)

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu",
                     help="torch device for the device tests (tests/test_device.py), e.g. cuda:0; "
                          "benchmarks/gpu_check.sh passes cuda")


@pytest.fixture(scope="session")
def device(request):
    """The device the device tests put trainers, generators and evaluators on (``--device``)."""
    import torch

    name = request.config.getoption("--device")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"--device {name} but torch sees no GPU")
    return torch.device(name)


@pytest.fixture(scope="session")
def tiny_csro_run(tmp_path_factory):
    """A real but tiny point-robot run: 8 tasks (6 train / 2 test: 2 and 6), SAC data, 2 meta-training iterations.

    Built once per session with the project's own CLIs (policy_train.py, launch_experiment.py),
    in process; about 10-20 s on 2 CPU cores.
    """
    from rlkit.cli import meta_train as launch_experiment
    from rlkit.cli import policy_train

    root = tmp_path_factory.mktemp("tiny_csro_run")
    cfg = json.loads((REPO / "configs" / "point-robot.json").read_text())
    cfg["env_params"]["n_tasks"] = 8
    cfg["n_train_tasks"], cfg["n_eval_tasks"] = 6, 2
    cfg["algo_params"]["meta_batch"] = 4
    config = root / "point-robot.json"
    config.write_text(json.dumps(cfg))
    data_dir, base = root / "data", root / "output"
    assert policy_train.main([
        "--config", str(config), "--preset", "train_quick", "--data_dir", str(data_dir), "--no-progress",
        "num_train_steps=200", "num_seed_steps=100", "eval_frequency=100", "num_eval_sample_episodes=2",
    ]) == 0
    assert launch_experiment.main([
        str(config), "--seed", "0", "--exp_name", "tiny",
        f"algo_params.data_dir={data_dir}", f"util_params.base_log_dir={base}",
        "algo_params.train_epoch=[100,200,100]", "algo_params.eval_epoch=[100,200,100]", "algo_params.n_trj=2",
        "algo_params.num_iterations=2", "algo_params.num_train_steps_per_itr=5",
        "algo_params.embedding_batch_size=32", "algo_params.batch_size=32", "algo_params.num_steps_per_eval=40",
    ]) == 0
    run_dir = base / "point-robot" / "tiny" / "seed0"
    assert (run_dir / "agent.pth").is_file()
    return SimpleNamespace(run_dir=run_dir, config=config, base_log_dir=base, exp_name="tiny", seed=0,
                           data_dir=data_dir, test_tasks=[2, 6])
