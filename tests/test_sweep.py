"""launch_experiment.py sweeps: several (config, seed) runs in one command, sequential and on a local Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rlkit.cli import meta_train as launch_experiment
from rlkit.launchers.sweep import SweepError, parse_seeds, run_state
from tests.helpers import small_point_robot_config


TINY = ["algo_params.train_epoch=[100,200,100]", "algo_params.eval_epoch=[100,200,100]", "algo_params.n_trj=2",
        "algo_params.num_train_steps_per_itr=2", "algo_params.embedding_batch_size=16", "algo_params.batch_size=16",
        "algo_params.num_steps_per_eval=20", "net_size=32", "latent_size=4"]


def make_config(folder: Path, data_dir: Path, exp_name: str) -> Path:
    """The tiny run's 8-task point-robot config with its own data_dir and exp_name."""
    folder.mkdir(parents=True, exist_ok=True)
    path = small_point_robot_config(folder, n_tasks=8, n_train=6, meta_batch=4)
    cfg = json.loads(path.read_text())
    cfg["algo_params"]["data_dir"] = str(data_dir)
    cfg["util_params"]["exp_name"] = exp_name
    named = folder / f"{exp_name}.json"
    named.write_text(json.dumps(cfg))
    return named


def sweep(config, out, *extra, iterations=2):
    return launch_experiment.main([*map(str, config if isinstance(config, list) else [config]),
                                   f"util_params.base_log_dir={out}", f"algo_params.num_iterations={iterations}",
                                   *TINY, *extra])


def progress(run_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(run_dir / "progress.csv")
    return df[[c for c in df.columns if not c.endswith("Time (s)")]]  # wall times differ run to run


def test_sequential_sweep_runs_each_seed_into_its_single_run_folder(tiny_csro_run, tmp_path, capsys):
    config = make_config(tmp_path / "cfg", tiny_csro_run.data_dir, "sw")
    out = tmp_path / "out"
    assert sweep(config, out, "--seeds", "0,1", iterations=1) == 0
    for seed in (0, 1):
        run_dir = out / "point-robot" / "sw" / f"seed{seed}"
        assert list(pd.read_csv(run_dir / "progress.csv")["Epoch"]) == [0]
        assert json.loads((run_dir / "variant.json").read_text())["algo_params"]["num_iterations"] == 1
    # the same command as a single run gives the same folder content (numbers, not timings)
    single = tmp_path / "single"
    assert sweep(config, single, "--seed", "1", iterations=1) == 0
    pd.testing.assert_frame_equal(progress(out / "point-robot" / "sw" / "seed1"),
                                  progress(single / "point-robot" / "sw" / "seed1"))
    text = capsys.readouterr().out
    assert "sweep: 2 run(s): 2 done, 0 finished before, 0 failed" in text

    # more iterations: the same sweep continues both runs from their snapshots
    assert sweep(config, out, "--seeds", "0,1", iterations=2) == 0
    text = capsys.readouterr().out
    assert text.count("done (resumed)") == 2
    for seed in (0, 1):
        assert list(pd.read_csv(out / "point-robot" / "sw" / f"seed{seed}" / "progress.csv")["Epoch"]) == [0, 1]
    # and once they are finished, running it again skips them and changes nothing
    before = (out / "point-robot" / "sw" / "seed0" / "progress.csv").read_bytes()
    assert sweep(config, out, "--seeds", "0,1", iterations=2) == 0
    assert "2 run(s): 0 done, 2 finished before, 0 failed" in capsys.readouterr().out
    assert (out / "point-robot" / "sw" / "seed0" / "progress.csv").read_bytes() == before


def test_a_failed_run_is_reported_and_the_others_still_run(tiny_csro_run, tmp_path, capsys):
    good = make_config(tmp_path / "a", tiny_csro_run.data_dir, "good")
    bad = make_config(tmp_path / "b", tmp_path / "no-data", "bad")
    out = tmp_path / "out"
    assert sweep([bad, good], out, "--seeds", "3", iterations=1) == 1
    captured = capsys.readouterr()
    failed = [line for line in captured.err.splitlines() if line.startswith("sweep: failed:")]
    assert len(failed) == 1 and f"{bad} seed 3:" in failed[0] and "no-data" in failed[0]
    assert "1 done, 0 finished before, 1 failed" in captured.out
    assert (out / "point-robot" / "good" / "seed3" / "agent.pth").is_file()
    assert run_state(_cfg(good, out, 1), 3) == "finished" and run_state(_cfg(bad, out, 1), 3) == "new"


def _cfg(config: Path, out: Path, iterations: int) -> dict:
    from rlkit.config import load_config

    return load_config(config, [f"util_params.base_log_dir={out}", f"algo_params.num_iterations={iterations}",
                                *TINY])


@pytest.mark.parametrize("argv, message", [
    (["--seed", "1", "--seeds", "0,1"], "either --seed N"),
    (["--seeds", "0,x"], "comma-separated integers"),
    (["--seeds", "1,1"], "twice"),
    (["--seeds", "-1"], "each of --seeds must be an integer from 0 to 4294967295"),
    (["--seeds", "0,99999999999"], "each of --seeds must be an integer from 0 to 4294967295"),
    (["--seeds", "0,1", "--resume", "somewhere"], "resumes its unfinished runs"),
    (["--cpus-per-run", "2"], "add --ray"),
    (["--ray", "--gpu", "0"], "--gpus-per-run"),
])
def test_bad_sweep_options_are_one_line_errors(tmp_path, capsys, argv, message):
    config = small_point_robot_config(tmp_path)
    assert launch_experiment.main([str(config), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "output").exists()


def test_two_configs_writing_the_same_folder_are_refused(tmp_path, capsys):
    a = small_point_robot_config(tmp_path)
    b = tmp_path / "copy.json"
    b.write_text(a.read_text())
    assert launch_experiment.main([str(a), str(b), f"util_params.base_log_dir={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "would both write" in err and "exp_name" in err
    assert not (tmp_path / "out").exists()


def test_parse_seeds():
    assert parse_seeds("0,1, 2") == [0, 1, 2] and parse_seeds("7") == [7]
    with pytest.raises(SweepError):
        parse_seeds("")


def test_sweep_on_a_local_ray_instance(tiny_csro_run, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    config = make_config(tmp_path / "cfg", tiny_csro_run.data_dir, "ray")
    out = tmp_path / "out"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert sweep(config, out, "--seeds", "0,1", "--ray", "--cpus-per-run", "1", iterations=1) == 0
        assert "2 run(s): 2 done" in capsys.readouterr().out
        # the runs' folders are those of single runs, with the same numbers
        single = tmp_path / "single"
        assert sweep(config, single, "--seed", "0", iterations=1) == 0
        pd.testing.assert_frame_equal(progress(out / "point-robot" / "ray" / "seed0"),
                                      progress(single / "point-robot" / "ray" / "seed0"))
        assert (out / "point-robot" / "ray" / "seed1" / "agent.pth").is_file()
        # a grid on Ray: each point into its own folder, named by its setting
        grid = tmp_path / "grid"
        assert sweep(config, grid, "--seeds", "0", "algo_params.club_loss_weight=10,25", "--ray",
                     "--cpus-per-run", "1", iterations=1) == 0
        assert "2 run(s): 2 done" in capsys.readouterr().out
        for weight in (10, 25):
            variant = json.loads((grid / "point-robot" / f"ray__club_loss_weight={weight}" / "seed0" /
                                  "variant.json").read_text())
            assert variant["algo_params"]["club_loss_weight"] == weight
        # more CPUs per run than the instance has: one line, nothing runs
        assert sweep(config, out, "--seeds", "0,1", "--ray", "--cpus-per-run", "3", iterations=2) == 2
        assert "the Ray cluster has 2" in capsys.readouterr().err
    finally:
        ray.shutdown()


# --------------------------------------------------------------------------------------
# issue 19: a rerun with other settings is refused, never skipped or mixed


def test_a_rerun_with_changed_settings_is_refused_for_finished_and_unfinished_runs(tiny_csro_run, tmp_path,
                                                                                    capsys):
    config = make_config(tmp_path / "cfg", tiny_csro_run.data_dir, "chg")
    out = tmp_path / "out"
    assert sweep(config, out, "--seeds", "0", iterations=1) == 0
    seed0 = out / "point-robot" / "chg" / "seed0"
    before = {p.name: p.read_bytes() for p in seed0.iterdir() if p.is_file() and p.name != ".lock"}
    capsys.readouterr()
    # finished run (same length), unfinished run (longer), and a new seed beside them: all refused up front
    for iterations, seeds in ((1, "0"), (2, "0"), (2, "0,1")):
        assert sweep(config, out, "--seeds", seeds, "algo_params.policy_lr=0.001", iterations=iterations) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {config} seed 0: {seed0} was made with other settings")
        assert "algo_params.policy_lr: 0.0003 then, 0.001 now" in err[0] and "--restart" in err[0]
    after = {p.name: p.read_bytes() for p in seed0.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == before and not (out / "point-robot" / "chg" / "seed1").exists()
    # fewer iterations than the finished run made is another experiment too
    assert sweep(config, out, "--seeds", "0", iterations=0) == 2
    assert "algo_params.num_iterations: 1 then, 0 now" in capsys.readouterr().err


def test_restart_moves_every_existing_run_of_the_sweep_aside(tiny_csro_run, tmp_path, capsys):
    config = make_config(tmp_path / "cfg", tiny_csro_run.data_dir, "rst")
    out = tmp_path / "out"
    assert sweep(config, out, "--seeds", "0", iterations=1) == 0
    assert sweep(config, out, "--seeds", "0,1", "--restart", "algo_params.policy_lr=0.001", iterations=1) == 0
    assert "2 run(s): 2 done, 0 finished before, 0 failed" in capsys.readouterr().out
    folder = out / "point-robot" / "rst"
    moved = list(folder.glob("replaced-seed0-*"))
    assert len(moved) == 1 and (moved[0] / "agent.pth").is_file()
    assert json.loads((moved[0] / "variant.json").read_text())["algo_params"]["policy_lr"] == 0.0003
    for seed in (0, 1):
        assert json.loads((folder / f"seed{seed}" / "variant.json").read_text())["algo_params"]["policy_lr"] == 0.001
    assert not list(folder.glob("replaced-seed1-*"))  # nothing to move for a new run


def test_ray_is_not_started_when_every_run_is_finished_or_refused(tiny_csro_run, tmp_path, monkeypatch, capsys):
    from rlkit.launchers import sweep as sweep_module

    config = make_config(tmp_path / "cfg", tiny_csro_run.data_dir, "noray")
    out = tmp_path / "out"
    assert sweep(config, out, "--seeds", "0", iterations=1) == 0

    def no_ray():
        raise AssertionError("Ray was started")

    monkeypatch.setattr(sweep_module, "_import_ray", no_ray)
    capsys.readouterr()
    assert sweep(config, out, "--seeds", "0", "--ray", iterations=1) == 0
    assert "1 run(s): 0 done, 1 finished before, 0 failed" in capsys.readouterr().out
    assert sweep(config, out, "algo_params.policy_lr=0.001", "--seeds", "0", "--ray", iterations=1) == 2
    assert "was made with other settings" in capsys.readouterr().err


def test_an_override_after_ray_is_not_taken_for_its_address(tmp_path, capsys):
    config = small_point_robot_config(tmp_path)
    assert launch_experiment.main([str(config), "--ray", "algo_params.policy_lr=0.001"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ray took 'algo_params.policy_lr=0.001' for the Ray address" in err[0]


def test_execute_refuses_a_finished_run_made_with_other_settings(tiny_csro_run, tmp_path):
    """The launcher refuses up front; a caller of execute() is protected as well."""
    from rlkit.launchers.sweep import execute

    config = make_config(tmp_path / "cfg", tiny_csro_run.data_dir, "ex")
    out = tmp_path / "out"
    assert sweep(config, out, "--seeds", "0", iterations=1) == 0
    cfg = _cfg(config, out, 1)
    assert execute(cfg, 0, "x").status == "skipped"
    cfg["algo_params"]["policy_lr"] = 0.001
    outcome = execute(cfg, 0, "x")
    assert outcome.status == "failed" and "algo_params.policy_lr: 0.0003 then, 0.001 now" in outcome.message


def test_a_two_value_grid_runs_the_product_into_folders_named_by_the_settings(tiny_csro_run, tmp_path, capsys):
    """`club_loss_weight=10,25` was "expected a number"; now it is a grid axis, crossed with the seeds."""
    config = make_config(tmp_path / "cfg", tiny_csro_run.data_dir, "g")
    out = tmp_path / "out"
    assert sweep(config, out, "--seeds", "0,1", "algo_params.club_loss_weight=10,25", iterations=1) == 0
    assert "sweep: 4 run(s): 4 done" in capsys.readouterr().out
    env = out / "point-robot"
    assert sorted(p.name for p in env.iterdir()) == ["g__club_loss_weight=10", "g__club_loss_weight=25"]
    for weight in (10, 25):
        for seed in (0, 1):
            variant = json.loads((env / f"g__club_loss_weight={weight}" / f"seed{seed}" / "variant.json").read_text())
            assert variant["algo_params"]["club_loss_weight"] == weight and variant["seed"] == seed
    # the grid points really differ, and the same command again finds every run finished
    a = progress(env / "g__club_loss_weight=10" / "seed0")
    b = progress(env / "g__club_loss_weight=25" / "seed0")
    assert not a.equals(b)
    assert sweep(config, out, "--seeds", "0,1", "algo_params.club_loss_weight=10,25", iterations=1) == 0
    assert "sweep: 4 run(s): 0 done, 4 finished before" in capsys.readouterr().out
    # rlkit.plot on the env folder: one group per grid point, each with its two seeds
    from rlkit.plot import expand_run_dirs, group_runs

    groups = group_runs(expand_run_dirs([env]))
    assert {k: len(v) for k, v in groups.items()} == {"point-robot/g__club_loss_weight=10": 2,
                                                       "point-robot/g__club_loss_weight=25": 2}


def test_grid_axes_and_what_is_not_one():
    from rlkit.launchers.sweep import grid_axes, grid_points

    fixed, axes = grid_axes(["algo_params.club_loss_weight=10,25", "latent_size=5,8",
                             "algo_params.train_epoch=[100,200,100]", "util_params.exp_name=a,b",
                             "algo_params.eval_epoch=[100,200,100],[100,300,100]"])
    assert fixed == ["algo_params.train_epoch=[100,200,100]", "util_params.exp_name=a,b"]  # a list; a string
    assert axes == [("algo_params.club_loss_weight", ["10", "25"]), ("latent_size", ["5", "8"]),
                    ("algo_params.eval_epoch", ["[100,200,100]", "[100,300,100]"])]
    points = grid_points(axes)
    assert len(points) == 8 and points[0] == (["algo_params.club_loss_weight=10", "latent_size=5",
                                               "algo_params.eval_epoch=[100,200,100]"],
                                              "club_loss_weight=10__latent_size=5__eval_epoch=_100_200_100_")
    with pytest.raises(SweepError, match="lists a value twice"):
        grid_axes(["latent_size=5,5"])
    with pytest.raises(SweepError, match="a value between every two commas"):
        grid_axes(["latent_size=5,"])


@pytest.mark.parametrize("overrides, message", [
    (["latent_size=5,5.0"], "'latent_size=5,5.0' lists a value twice: 5 and 5.0 are both latent_size=5"),
    (["algo_params.use_club=true,1"],
     "'algo_params.use_club=true,1' lists a value twice: true and 1 are both algo_params.use_club=true"),
    (["algo_params.club_loss_weight=10,1e1,25"], "10 and 1e1 are both algo_params.club_loss_weight=10.0"),
    (["algo_params.eval_epoch=[100,200,100],[100, 200, 100]"], "lists a value twice"),
    (["latent_size=6,7", "latent_size=9"], "latent_size is given twice (latent_size=6,7, latent_size=9)"),
    (["latent_size=9", "latent_size=6,7"], "latent_size is given twice (latent_size=9, latent_size=6,7)"),
])
def test_a_grid_refuses_one_value_spelled_twice_and_a_key_given_twice(overrides, message):
    """`latent_size=5,5.0` ran the same setting twice into two folders, and `latent_size=6,7 latent_size=9`
    dropped the 9: values are compared as the config types them, and an axis's key may be given once."""
    from rlkit.launchers.sweep import grid_axes

    with pytest.raises(SweepError) as info:
        grid_axes(overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_grid_keeps_values_that_differ_once_typed(tmp_path, capsys):
    from rlkit.launchers.sweep import grid_axes

    assert grid_axes(["algo_params.club_loss_weight=10,10.5"])[1] == [("algo_params.club_loss_weight", ["10", "10.5"])]
    assert grid_axes(["algo_params.use_club=true,0"])[1] == [("algo_params.use_club", ["true", "0"])]
    # the command says it in one line before anything runs
    config = small_point_robot_config(tmp_path)
    assert launch_experiment.main([str(config), f"util_params.base_log_dir={tmp_path / 'out'}",
                                   "latent_size=6,7", "latent_size=9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: latent_size is given twice")
    assert not (tmp_path / "out").exists()
