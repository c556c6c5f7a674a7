"""launch_experiment.py end to end on a tiny point-robot dataset: files, resume, bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import launch_experiment
from rlkit.behavior.config import compose_sac_config
from rlkit.behavior.generate import BehaviourPolicyGenerator, GenerationJob
from rlkit.data import split_tasks
from rlkit.evaluation.reference import random_policy_return
from rlkit.launchers import meta_train
from rlkit.errors import INTERRUPTED_EXIT
from tests.helpers import forget_data_fingerprint, regenerate_checkpoint

REPO = Path(__file__).resolve().parents[1]
ENV_PARAMS = {"n_tasks": 6, "randomize_tasks": 0, "max_episode_steps": 20}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "point-robot"
    sac = compose_sac_config("train_quick", ["num_train_steps=300", "num_seed_steps=100", "eval_frequency=100",
                                              "num_eval_sample_episodes=2", "agent.hidden_dim=32",
                                              "agent.batch_size=32"])
    BehaviourPolicyGenerator(GenerationJob("point-robot", ENV_PARAMS, list(range(6)), sac, root,
                                           progress=False)).run()
    return root


def overrides(dataset, out, iterations=2):
    return [f"algo_params.data_dir={dataset}", f"util_params.base_log_dir={out}", "env_params.n_tasks=6",
            "n_train_tasks=4", "n_eval_tasks=2", "algo_params.meta_batch=3", "'algo_params.train_epoch=[100,300,100]'",
            "'algo_params.eval_epoch=[100,300,100]'", "algo_params.n_trj=2", f"algo_params.num_iterations={iterations}",
            "algo_params.num_train_steps_per_itr=4", "algo_params.embedding_batch_size=32",
            "algo_params.batch_size=16", "algo_params.num_steps_per_eval=40", "net_size=32", "latent_size=4"]


def run(dataset, out, *extra, iterations=2, expect=0):
    args = [str(REPO / "configs" / "point-robot.json"), "--seed", "1", "--exp_name", "t",
            *[o.strip("'") for o in overrides(dataset, out, iterations)], *extra]
    assert launch_experiment.main(args) == expect
    return out / "point-robot" / "t" / "seed1"


def test_run_directory_tells_the_whole_story(dataset, tmp_path):
    run_dir = run(dataset, tmp_path)
    names = {p.name for p in run_dir.iterdir()}
    assert {"variant.json", "progress.csv", "debug.log", "git.txt", "agent.pth", "agent_itr_0.pth"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    variant = json.loads((run_dir / "variant.json").read_text())
    assert variant["algo_params"]["num_iterations"] == 2 and variant["algo_params"]["use_club"] is True
    progress = pd.read_csv(run_dir / "progress.csv")
    assert list(progress["Epoch"]) == [0, 1]
    for col in ("Average_OnlineReturn_all_test_tasks", "Average_OfflineReturn_all_test_tasks",
                "Average_NpOnlineReturn_all_test_tasks", "QF Loss", "VF Loss", "Policy Loss", "Club Loss",
                "Z Loss", "Number of train steps total", "eval/np_online_return_episode_2"):
        assert col in progress.columns, col
    assert np.isfinite(progress["Average_NpOnlineReturn_all_test_tasks"]).all()
    assert list(progress["Number of train steps total"]) == [4, 8]


@pytest.mark.parametrize("preset,has,lacks", [
    ("CORRO", ["CORRO CVAE Loss", "CORRO InfoNCE Loss"], ["Z Loss", "Club Loss"]),
    ("CORRO-relabel", ["CORRO InfoNCE Loss"], ["CORRO CVAE Loss", "Z Loss"]),
    ("UNICORN-SS", ["Z Loss", "Reconstruction Loss"], ["Club Loss", "CORRO InfoNCE Loss"]),
])
def test_the_newer_baselines_train_and_resume_from_their_presets(dataset, tmp_path, preset, has, lacks):
    """CORRO (both sources of negatives) and UNICORN-SS run end to end on the same data as CSRO, log their
    own statistics and nobody else's, and a resumed run picks their networks back up from the snapshot."""
    run_dir = run(dataset, tmp_path, f"algo_type={preset}", iterations=1)
    run(dataset, tmp_path, f"algo_type={preset}", "--resume", str(run_dir), iterations=2)  # extends the finished run
    progress = pd.read_csv(run_dir / "progress.csv")
    assert list(progress["Epoch"]) == [0, 1]
    assert set(has) <= set(progress.columns) and not set(lacks) & set(progress.columns)
    assert np.isfinite(progress[has].to_numpy(float)).all()
    assert np.isfinite(progress["Average_NpOnlineReturn_all_test_tasks"]).all()
    state = torch.load(run_dir / "agent.pth", map_location="cpu", weights_only=True)
    nets = set(state["trainer"]["networks"])
    assert ("corro" in nets) == (preset == "CORRO") and ("unicorn_decoder" in nets) == (preset == "UNICORN-SS")


def test_relabelled_negatives_are_the_queried_rows_with_the_envs_outcome_in_training_tasks(dataset, tmp_path):
    """CORRO-relabel's negatives come from the sampler on demand, for the queried context rows only: each
    keeps its row's (s, a), and its (r, s') is the env's step from there in one of the training tasks."""
    from rlkit.config import load_config
    from rlkit.envs import make_env
    from rlkit.launchers.meta_train import MetaTrainer, load_experiment_data

    cfg = load_config(REPO / "configs" / "point-robot.json",
                      [o.strip("'") for o in overrides(dataset, tmp_path, 1)] + ["algo_type=CORRO-relabel",
                                                                               "algo_params.allow_eval=false"])
    data = load_experiment_data(cfg, 1, torch.device("cpu"))
    trainer = MetaTrainer(cfg, 1, torch.device("cpu"), logger=None, data=data)
    g = torch.Generator().manual_seed(0)
    task_ids = torch.as_tensor(data.train_tasks[:3])
    batch = trainer.trainer.sample(task_ids, g)  # the CSRO trainer's sampler (rlkit.trainers.csro)
    task, row = torch.tensor([0, 2, 1, 2]), torch.tensor([5, 0, 31, 7])
    rows = batch.relabel(task, row, 6)
    ctx = batch.context
    assert rows.shape == (4, 6, ctx.shape[-1])
    env = make_env("point-robot", **cfg["env_params"])
    for i in range(4):
        np.testing.assert_array_equal(rows[i, :, :4], ctx[task[i], row[i], :4].expand(6, -1))  # s, a kept
        s, a = rows[i, :, :2].double(), rows[i, :, 2:4].double()
        outcomes = [env.relabel_outcomes(s, a, torch.full((6,), t)) for t in data.train_tasks]
        for k in range(6):  # each negative is the env's outcome in some training task
            assert any(abs(float(r[k]) - float(rows[i, k, 4])) < 1e-5 for _, r in outcomes)
    assert batch.relabel(task, row, 6).shape == rows.shape and not torch.equal(batch.relabel(task, row, 6), rows)


def test_corro_negatives_compares_the_cvae_with_the_envs_truth_on_the_runs_data(dataset, tmp_path, capsys):
    from rlkit import corro_negatives

    run_dir = run(dataset, tmp_path, "algo_type=CORRO", iterations=1)
    rep = corro_negatives.measure(run_dir, queries=64)
    assert rep["queries"] == 64 and rep["negatives_per_query"] == 16
    # stepping the env in each query's own task gives back the stored rewards: the relabelling is right
    assert rep["own_task_max_error"] < 1e-5
    for source in ("cvae", "env"):
        assert rep[source]["spread"] >= 0 and 0 <= rep[source]["share_within_0.01"] <= 1
    assert rep["env"]["spread"] > 0.01  # 4 training tasks' goals give different rewards
    torch.manual_seed(123)  # the global RNG must not matter: --seed decides the queries and the CVAE's draws
    assert corro_negatives.measure(run_dir, queries=64) == rep
    assert corro_negatives.measure(run_dir, queries=64, seed=1)["cvae"] != rep["cvae"]
    assert corro_negatives.main([str(run_dir), "--queries", "64"]) == 0
    assert "the run's CVAE" in capsys.readouterr().out
    csro = run(dataset, tmp_path / "csro", iterations=1)
    assert corro_negatives.main([str(csro)]) == 2
    assert "not a CORRO run with generated negatives" in capsys.readouterr().err


def test_corro_negatives_says_why_it_measures_other_than_the_queries_asked():
    """`--queries 50` on 30 training tasks reported 30 queries without a word: the queries are spread evenly
    over the training tasks (so that no task weighs more), and the report now says so in one line."""
    from rlkit.corro_negatives import format_report, spread_queries

    assert spread_queries(64, 4) == (16, None)
    per_task, note = spread_queries(50, 30)
    assert per_task == 1 and note == ("--queries 50 gives 30: the same number of queries from each training task, "
                                      "1 from each of 30 (ask a multiple of 30 for exactly that many)")
    assert spread_queries(10, 30)[1] == ("--queries 10 gives 30: the same number of queries from each training task, "
                                         "1 from each of 30 (at least one each)")
    per_task, note = spread_queries(100, 30)
    assert per_task == 3 and note.startswith("--queries 100 gives 90: the same number of queries from each training "
                                             "task, 3 from each of 30 (ask a multiple of 30")
    stats = {"spread": 0.1, "median_gap": 0.2, "share_within_0.01": 0.3}
    rep = {"queries": 30, "queries_asked": 50, "note": note, "negatives_per_query": 16, "iteration": 0,
           "cvae": stats, "env": stats, "own_task_max_error": 0.0}
    assert format_report(rep).splitlines()[0] == note
    assert note not in format_report({**rep, "note": None})


def test_progress_holds_every_column_of_the_authors_progress_csv(dataset, tmp_path):
    """viskit overlays runs by column name: all 89 of the authors' columns are there, with values."""
    fixture = REPO / "tests" / "fixtures" / "authors_progress_header_point_robot.txt"
    header = [line for line in fixture.read_text().splitlines() if line and not line.startswith("#")]
    assert len(header) == 89
    run_dir = run(dataset, tmp_path, "latent_size=20")
    progress = pd.read_csv(run_dir / "progress.csv")
    missing = [c for c in header if c not in progress.columns]
    assert not missing, missing
    # what only a run with BRAC computes is NaN here; everything else has values
    assert progress[[f"div_estimate {s}" for s in ("Mean", "Std", "Max", "Min")]].isna().all().all()
    rest = [c for c in header if not c.startswith("div_estimate")]
    assert np.isfinite(progress[rest].to_numpy(dtype=float)).all()
    last = progress.iloc[-1]
    assert last["Number of env steps total"] == 0 and last["Epoch Time (s)"] >= last["Train Time (s)"]
    assert last["Total Train Time (s)"] > progress.iloc[0]["Total Train Time (s)"]
    assert last["(Previous) Eval Time (s)"] == pytest.approx(progress.iloc[0]["Eval Time (s)"])
    train, test = split_tasks(6, 4, 2, interpolation=True)  # configs/point-robot.json interleaves: test = [1, 4]
    assert last["task_idx"] == test[-1] and last["task idx"] in train  # last test task / a train task
    # "Q Predictions Std" is numpy's population std: Max >= Mean >= Min, Std >= 0
    assert (progress["Q Predictions Max"] >= progress["Q Predictions Mean"]).all()
    assert (progress["Q Predictions Std"] >= 0).all()
    # ours beside theirs: normalized scores, 0 = random policy, 100 = best behaviour checkpoint on the test tasks
    log = pd.read_csv(dataset / "_generator" / "returns.csv")
    best = log[log["task"].isin(test)].groupby("step")["deterministic_return"].mean().max()
    random = random_policy_return("point-robot", {**ENV_PARAMS, "randomize_tasks": False}, list(test), 20)
    expected = 100 * (progress["Average_OfflineReturn_all_test_tasks"] - random) / (best - random)
    np.testing.assert_allclose(progress["Average_OfflineNormalizedScore_all_test_tasks"], expected, rtol=1e-6)


def test_auto_selection_takes_checkpoints_and_episodes_from_the_dataset(dataset, tmp_path, capsys):
    """train_epoch / eval_epoch / n_trj = auto: what the dataset holds (checkpoints 100 and 200, 2 sampled
    episodes each: both checkpoints, since the first is only skipped when there are more than two)."""
    run_dir = run(dataset, tmp_path, "algo_params.train_epoch=auto", "algo_params.eval_epoch=auto",
                  "algo_params.n_trj=auto", iterations=1)
    algo = json.loads((run_dir / "variant.json").read_text())["algo_params"]
    assert algo["train_epoch"] == [100, 300, 100] and algo["eval_epoch"] == [100, 300, 100] and algo["n_trj"] == 2
    # asking for more episodes than exist names what does exist
    args = [str(REPO / "configs" / "point-robot.json"), "--seed", "1", "--exp_name", "more",
            *[o.strip("'") for o in overrides(dataset, tmp_path)], "algo_params.n_trj=5"]
    capsys.readouterr()
    assert launch_experiment.main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fewer than n_trj=5" in err[0] and "100 (2), 200 (2)" in err[0]
    assert not (tmp_path / "point-robot" / "more").exists()  # nothing written for a run that cannot start


def test_kill_and_resume_reproduce_the_uninterrupted_run(dataset, tmp_path, monkeypatch, capsys):
    full = pd.read_csv(run(dataset, tmp_path / "full", iterations=3) / "progress.csv")

    calls = {"n": 0}
    real_evaluate = meta_train.evaluate

    def dying_evaluate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed during iteration 2")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(meta_train, "evaluate", dying_evaluate)
    capsys.readouterr()
    run(dataset, tmp_path / "killed", iterations=3, expect=INTERRUPTED_EXIT)  # Ctrl-C: one line, no traceback
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("interrupted (Ctrl-C / SIGINT): run ") and " stopped after iteration 1; " in line
    monkeypatch.setattr(meta_train, "evaluate", real_evaluate)
    run_dir = tmp_path / "killed" / "point-robot" / "t" / "seed1"
    assert len(pd.read_csv(run_dir / "progress.csv")) == 2
    run(dataset, tmp_path / "killed", "--resume", str(run_dir), iterations=3)
    resumed = pd.read_csv(run_dir / "progress.csv")
    cols = [c for c in full.columns if not c.endswith("Time (s)")]  # wall times differ run to run
    assert list(resumed["Epoch"]) == [0, 1, 2]
    pd.testing.assert_frame_equal(full[cols], resumed[cols])


def test_bad_config_and_missing_data_fail_clearly(dataset, tmp_path):
    cmd = [sys.executable, str(REPO / "launch_experiment.py"), str(REPO / "configs" / "point-robot.json"),
           "algo_params.num_iteration=5"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2 and "did you mean 'algo_params.num_iterations'" in res.stderr
    res = subprocess.run(cmd[:3] + [f"algo_params.data_dir={tmp_path / 'nothing'}",
                                    f"util_params.base_log_dir={tmp_path / 'out'}"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2 and ("policy_train.py" in res.stderr or "rlkit.cli.policy_train" in res.stderr)
    res = subprocess.run(cmd[:3] + ["--resume", str(tmp_path / "no-run")], capture_output=True, text=True,
                         cwd=tmp_path)
    assert res.returncode != 0 and "no-run" in res.stderr + res.stdout


def test_nan_guard_stops_with_the_last_good_snapshot(dataset, tmp_path, capsys):
    """A diverging run stops at the first non-finite iteration, names what diverged and exits 3."""
    args = [str(REPO / "configs" / "point-robot.json"), "--seed", "1", "--exp_name", "t",
            *[o.strip("'") for o in overrides(dataset, tmp_path, 4)], "algo_params.reward_scale=1e38"]
    assert launch_experiment.main(args) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]  # the run's log lines come before it
    assert err.startswith("error: iteration ") and "non-finite" in err and "QF Loss" in err
    run_dir = tmp_path / "point-robot" / "t" / "seed1"
    rows = pd.read_csv(run_dir / "progress.csv") if (run_dir / "progress.csv").is_file() else pd.DataFrame()
    bad_itr = int(err.split("iteration ")[1].split(":")[0])
    assert len(rows) == bad_itr  # nothing of the diverged iteration was logged
    for col in rows.columns:
        assert np.isfinite(rows[col].to_numpy(float)).all()


def test_resume_skips_a_truncated_snapshot(dataset, tmp_path, capsys):
    run_dir = run(dataset, tmp_path, iterations=2)
    data = (run_dir / "agent.pth").read_bytes()
    (run_dir / "agent.pth").write_bytes(data[: len(data) // 3])  # a write cut short by a full disk
    capsys.readouterr()
    run(dataset, tmp_path, "--resume", str(run_dir), iterations=3)
    err = capsys.readouterr().err
    assert "warning: skipping a snapshot that does not load" in err and "agent.pth" in err
    assert "resumed from" in err and "agent_itr_0.pth at iteration 1" in err
    assert list(pd.read_csv(run_dir / "progress.csv")["Epoch"]) == [0, 1, 2]


def test_resume_picks_the_highest_iteration_not_the_newest_file(dataset, tmp_path, capsys):
    """A copied run directory does not keep modification times: the iteration decides."""
    import os
    import time

    run_dir = run(dataset, tmp_path, iterations=2)
    future = time.time() + 100
    os.utime(run_dir / "agent_itr_0.pth", (future, future))  # as `cp -r` may leave it: newer than agent.pth
    capsys.readouterr()
    run(dataset, tmp_path, "--resume", str(run_dir), iterations=3)
    assert "agent.pth at iteration 2" in capsys.readouterr().err
    assert list(pd.read_csv(run_dir / "progress.csv")["Epoch"]) == [0, 1, 2]


def test_context_chunks_make_one_update_each(dataset, tmp_path, monkeypatch):
    """embedding_mini_batch_size 16 of embedding_batch_size 32: every step is two updates on 16-transition
    contexts (the authors' loop); the progress counter counts steps, as theirs."""
    from rlkit.torch.csro import CSROTrainer

    shapes = []
    real = CSROTrainer.train_step

    def spy(self, batch, with_stats=False):
        shapes.append(tuple(batch.context.shape))
        return real(self, batch, with_stats)

    monkeypatch.setattr(CSROTrainer, "train_step", spy)
    run_dir = run(dataset, tmp_path, "algo_params.embedding_mini_batch_size=16", iterations=1)
    assert len(shapes) == 2 * 4 and {s[1] for s in shapes} == {16}
    assert list(pd.read_csv(run_dir / "progress.csv")["Number of train steps total"]) == [4]


def test_path_to_weights_initialises_every_network(dataset, tmp_path):
    import torch

    from rlkit.core.logger import load_snapshot

    source = run(dataset, tmp_path / "a", iterations=1)  # writes agent_itr_0.pth
    warm = run(dataset, tmp_path / "b", f"path_to_weights={source.parent}", "epoch_to_weights=0",
               "algo_params.num_train_steps_per_itr=0", iterations=1)
    a = load_snapshot(source / "agent_itr_0.pth")["trainer"]["networks"]
    b = load_snapshot(warm / "agent_itr_0.pth")["trainer"]["networks"]
    assert set(a) == set(b)
    for name in a:
        for key in a[name]:
            torch.testing.assert_close(a[name][key], b[name][key])
    assert "initialised from" in (warm / "debug.log").read_text()
    args = [str(REPO / "configs" / "point-robot.json"), "--seed", "1", "--exp_name", "c",
            *[o.strip("'") for o in overrides(dataset, tmp_path / "c")], f"path_to_weights={source.parent}",
            "epoch_to_weights=7"]
    assert launch_experiment.main(args) != 0  # no agent_itr_7.pth: a one-line error, nothing written
    assert not (tmp_path / "c" / "point-robot").exists()


def test_debug_runs_go_to_the_debug_folder_and_log_every_task(dataset, tmp_path):
    run_dir = run(dataset, tmp_path, "util_params.debug=true", iterations=1)
    debug_dir = run_dir.parent.parent / "debug" / "seed1"
    assert not run_dir.exists() and debug_dir.is_dir()
    assert "final return per test task" in (debug_dir / "debug.log").read_text()


def test_a_float64_run_computes_records_and_reloads_in_float64(dataset, tmp_path, capsys):
    """util_params.dtype=float64: networks, optimizer moments, alpha and the buffer are float64 (the
    float32 dataset cast on load), variant.json says so, the process's default dtype is restored
    afterwards, load_run rebuilds the agent and its offline data in float64, and a resume in
    float32 is refused (half a run in each precision matches neither)."""
    from rlkit.core.logger import load_snapshot
    from rlkit.core.precision import dtype_of
    from rlkit.evaluation.run_loader import load_run

    run_dir = run(dataset, tmp_path, "util_params.dtype=float64", iterations=1)
    assert torch.get_default_dtype() == torch.float32
    assert json.loads((run_dir / "variant.json").read_text())["util_params"]["dtype"] == "float64"
    trainer = load_snapshot(run_dir / "agent.pth")["trainer"]
    floats = [v for net in trainer["networks"].values() for v in net.values() if v.is_floating_point()]
    floats += [v for opt in trainer["optimizers"].values() for s in opt["state"].values() for k, v in s.items()
               if k != "step" and torch.is_tensor(v)]
    assert floats and all(v.dtype == torch.float64 for v in floats) and trainer["alpha_var"].dtype == torch.float64
    loaded = load_run(run_dir)
    assert dtype_of(loaded.agent) == torch.float64 and loaded.offline_buffer("test").dtype == torch.float64
    assert loaded.sample_offline_context([loaded.test_tasks[0]], 5).dtype == torch.float64
    capsys.readouterr()
    run(dataset, tmp_path, "--resume", str(run_dir), iterations=2, expect=2)
    assert "was computed in float64; resume it with util_params.dtype=float64" in capsys.readouterr().err


def test_computing_in_restores_the_default_dtype_after_an_error():
    from rlkit.core.precision import compute_dtype, computing_in

    with pytest.raises(RuntimeError):
        with computing_in("float64"):
            assert compute_dtype() == torch.float64 and torch.zeros(1).dtype == torch.float64
            raise RuntimeError("a failed run")
    assert compute_dtype() == torch.float32
    with pytest.raises(ValueError, match="dtype must be one of float32, float64, got 'half'"):
        with computing_in("half"):
            pass


# --------------------------------------------------------------------------------------
# issue 19: --resume continues only the run its folder holds


def _tiny_args(tiny, out, *extra, iterations=1):
    return [str(tiny.config), "--seed", "0", "--exp_name", "same", f"algo_params.data_dir={tiny.data_dir}",
            f"util_params.base_log_dir={out}", "algo_params.train_epoch=[100,200,100]",
            "algo_params.eval_epoch=[100,200,100]", "algo_params.n_trj=2", f"algo_params.num_iterations={iterations}",
            "algo_params.num_train_steps_per_itr=2", "algo_params.num_steps_per_eval=20", "net_size=32",
            "latent_size=4", *extra]


@pytest.mark.parametrize("change, key", [
    (["algo_params.policy_lr=0.001"], "algo_params.policy_lr: 0.0003 then, 0.001 now"),
    (["algo_type=FOCAL"], "algo_type: 'CSRO' then, 'FOCAL' now"),
    (["latent_size=5"], "latent_size: 4 then, 5 now"),
])
def test_resume_refuses_changed_settings_before_touching_the_run(tiny_csro_run, tmp_path, capsys, change, key):
    out = tmp_path / "out"
    assert launch_experiment.main(_tiny_args(tiny_csro_run, out)) == 0
    run_dir = out / "point-robot" / "same" / "seed0"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != ".lock"}
    capsys.readouterr()
    rc = launch_experiment.main(_tiny_args(tiny_csro_run, out, "--resume", str(run_dir), *change, iterations=2))
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run_dir} was made with other settings (")
    assert key in err[0] and "only algo_params.num_iterations may grow" in err[0] and "--restart" in err[0]
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == before  # variant.json, progress.csv, snapshots: untouched


def test_resume_may_extend_a_run_but_not_shorten_it(tiny_csro_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert launch_experiment.main(_tiny_args(tiny_csro_run, out)) == 0
    run_dir = out / "point-robot" / "same" / "seed0"
    # more iterations, another device option and --no-verify: the same experiment, continued
    assert launch_experiment.main(_tiny_args(tiny_csro_run, out, "--resume", str(run_dir), "--no-verify",
                                             "util_params.use_gpu=false", iterations=2)) == 0
    assert list(pd.read_csv(run_dir / "progress.csv")["Epoch"]) == [0, 1]
    assert json.loads((run_dir / "variant.json").read_text())["algo_params"]["num_iterations"] == 2
    capsys.readouterr()
    assert launch_experiment.main(_tiny_args(tiny_csro_run, out, "--resume", str(run_dir), iterations=1)) == 2
    assert "algo_params.num_iterations: 2 then, 1 now" in capsys.readouterr().err


def test_restart_moves_the_old_run_aside_and_never_deletes_it(tiny_csro_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert launch_experiment.main(_tiny_args(tiny_csro_run, out)) == 0
    run_dir = out / "point-robot" / "same" / "seed0"
    old_variant = (run_dir / "variant.json").read_text()
    # the plain rerun points at both ways on
    assert launch_experiment.main(_tiny_args(tiny_csro_run, out, "algo_params.policy_lr=0.001")) == 2
    assert "use --resume to continue it, --restart to move it aside" in capsys.readouterr().err
    assert launch_experiment.main(_tiny_args(tiny_csro_run, out, "--restart", "algo_params.policy_lr=0.001")) == 0
    moved = list(run_dir.parent.glob("replaced-seed0-*"))
    assert len(moved) == 1 and (moved[0] / "variant.json").read_text() == old_variant
    assert (moved[0] / "agent.pth").is_file()
    assert json.loads((run_dir / "variant.json").read_text())["algo_params"]["policy_lr"] == 0.001
    assert launch_experiment.main(_tiny_args(tiny_csro_run, out, "--restart", "--resume", str(run_dir))) == 2
    assert "give one of them" in capsys.readouterr().err


def test_one_settings_comparison_for_resume_sweeps_and_reproduce():
    from rlkit.core import logger
    from rlkit.reproduce import plan

    assert plan.settings_drift is logger.settings_drift
    ran = {"seed": 0, "algo_params": {"num_iterations": 3, "policy_lr": 3e-4, "verify_data": True, "data_dir": "a"},
           "util_params": {"base_log_dir": "x", "dtype": "float32"}, "seed_list": [0]}
    run_control = {"algo_params": {"num_iterations": 5, "policy_lr": 3e-4, "verify_data": False, "data_dir": "b"},
                   "util_params": {"base_log_dir": "y", "dtype": "float32"}, "seed_list": [1, 2]}
    assert logger.settings_drift(ran, run_control, resuming=True) == []
    assert logger.settings_drift(ran, {"util_params": {"dtype": "float64"}}, resuming=True) == [
        "util_params.dtype: 'float32' then, 'float64' now"]


def test_resume_refuses_data_the_run_was_not_trained_on(dataset, tmp_path, capsys):
    """Was: --resume after the folder was regenerated (same tasks, other episodes) trained the rest of the
    run on the new data. The run records its data's fingerprint; a resume on other data is one line."""
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    run_dir = run(data, tmp_path / "out", iterations=1)
    recorded = json.loads((run_dir / "variant.json").read_text())["data_fingerprint"]
    assert set(recorded) == {"train", "test"} and all(len(v) == 16 for v in recorded.values())
    assert recorded["train"] != recorded["test"]
    state = torch.load(run_dir / "agent.pth", map_location="cpu", weights_only=True)
    assert state["data_fingerprint"] == recorded
    assert meta_train.run_data_fingerprint(json.loads((run_dir / "variant.json").read_text()), 1) == recorded
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != "debug.log"}
    regenerate_checkpoint(data, 0, 200)  # task 0 trains (test tasks: 1, 4)
    capsys.readouterr()
    run(data, tmp_path / "out", "--resume", str(run_dir), iterations=2, expect=2)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run_dir} was trained on other data than {data} holds now")
    now = meta_train.run_data_fingerprint(json.loads((run_dir / "variant.json").read_text()), 1)
    assert f"data fingerprint train {recorded['train']} then, {now['train']} now)" in err[0]
    assert "test" not in err[0].split("(data fingerprint")[1]  # the test tasks' data did not change
    assert "point algo_params.data_dir at the dataset it was trained on" in err[0]
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != "debug.log"} == before


def test_a_run_from_before_data_fingerprints_resumes_with_a_note(dataset, tmp_path, capsys):
    run_dir = run(dataset, tmp_path, iterations=1)
    recorded = json.loads((run_dir / "variant.json").read_text())["data_fingerprint"]
    forget_data_fingerprint(run_dir)
    capsys.readouterr()
    run(dataset, tmp_path, "--resume", str(run_dir), iterations=2)
    notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "was made before runs recorded their data's fingerprint" in notes[0]
    assert json.loads((run_dir / "variant.json").read_text())["data_fingerprint"] == recorded  # from now on
    assert list(pd.read_csv(run_dir / "progress.csv")["Epoch"]) == [0, 1]


def test_corro_negatives_refuses_training_data_the_run_was_not_trained_on(dataset, tmp_path):
    from rlkit import corro_negatives
    from rlkit.evaluation.run_loader import RunLoadError

    run_dir = run(dataset, tmp_path, "algo_type=CORRO", iterations=1)
    other = tmp_path / "regenerated"
    shutil.copytree(dataset, other)
    regenerate_checkpoint(other, 0, 200)
    with pytest.raises(RunLoadError, match=r"the training tasks' data in .* is not what .* was trained on "
                                           r"\(data fingerprint train [0-9a-f]{16} then, [0-9a-f]{16} now\)"):
        corro_negatives.measure(run_dir, queries=8, data_dir=other)
