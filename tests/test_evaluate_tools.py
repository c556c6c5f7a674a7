"""Post-hoc tools: run loader, evaluator CLI, show_path.py, context-shift diagnostics, learning curves."""

import csv
import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rlkit import context_shift as cs
from rlkit import evaluate as ev
from rlkit import plot as rplot
from rlkit.evaluation.protocols import PROGRESS_KEYS, PROTOCOLS, EvalSettings, run_protocol, trace_episodes
from rlkit.evaluation.run_loader import LoadedRun, RunLoadError, load_run

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _show_path():
    spec = importlib.util.spec_from_file_location("show_path", REPO / "show_path.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------ run loader
def test_load_run_restores_agent_and_metadata(tiny_csro_run):
    run = load_run(tiny_csro_run.run_dir)
    assert run.iteration == 1 and run.snapshot_path.name == "agent.pth"
    assert run.test_tasks == [2, 6] and len(run.train_tasks) == 6
    assert not run.agent.training and run.env_name == "point-robot"
    assert load_run(tiny_csro_run.run_dir, itr=0).snapshot_path.name == "agent_itr_0.pth"
    ctx = run.sample_offline_context([6, 2, 0], 20)  # test and train tasks in one call
    assert ctx.shape == (3, 20, 2 + 2 + 1)


def test_load_run_errors_are_one_line(tiny_csro_run, tmp_path):
    with pytest.raises(RunLoadError, match="does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(RunLoadError, match=r"no snapshot \(agent.pth"):
        load_run(tmp_path)
    with pytest.raises(RunLoadError, match=r"iteration 7 .*available iterations: 0, 1 \(agent.pth\)"):
        load_run(tiny_csro_run.run_dir, itr=7)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "agent.pth").write_bytes(b"not a torch file")
    with pytest.raises(RunLoadError, match="corrupted") as info:
        load_run(broken)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------ evaluator
def test_evaluator_cli_writes_csv_and_json(tiny_csro_run, tmp_path, capsys):
    out = tmp_path / "ev" / "result"
    assert ev.main([str(tiny_csro_run.run_dir), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    # stderr is no terminal here: a status line instead of a bar, counting 3 protocols x 2 tasks x 2 x 40 steps
    status = captured.err.splitlines()[-1]
    assert status.startswith("evaluate: 480/480 transition (100%), ") and status.endswith("(done)")
    assert "Average_NpOnlineReturn_all_test_tasks" in printed and str(out) + ".csv" in printed

    with open(out.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:9] == ["protocol", "split", "task", "key", "final_return", "final_return_std",
                                  "num_repeats", "num_episodes", "return_episode_1"]
    assert "return_episode_2" in rows[0]  # 40 evaluation steps / 20-step episodes
    per_task = [r for r in rows if r["task"] != "all"]
    averages = {r["key"]: r for r in rows if r["task"] == "all"}
    assert {(r["protocol"], int(r["task"])) for r in per_task} == {(p, t) for p in PROTOCOLS for t in (2, 6)}
    assert set(averages) == {PROGRESS_KEYS[p] for p in PROTOCOLS}  # the default: the protocols of training
    for protocol, key in ((p, PROGRESS_KEYS[p]) for p in PROTOCOLS):
        mine = [float(r["final_return"]) for r in per_task if r["protocol"] == protocol]
        assert float(averages[key]["final_return"]) == pytest.approx(np.mean(mine))

    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["iteration"] == 1 and summary["num_evals"] == 2 and summary["task_ids"] == [2, 6]
    assert set(summary["averages"]) == {PROGRESS_KEYS[p] for p in PROTOCOLS}
    record = summary["per_task"][0]
    assert len(record["episode_returns"]) == 2 and len(record["return_curve"]) == 2
    assert record["final_return"] == pytest.approx(np.mean([r[-1] for r in record["episode_returns"]]))
    # the online protocol is deterministic on point-robot: the evaluator reproduces the training log
    logged = pd.read_csv(tiny_csro_run.run_dir / "progress.csv").iloc[-1]
    assert summary["averages"]["Average_OnlineReturn_all_test_tasks"] == pytest.approx(
        logged["Average_OnlineReturn_all_test_tasks"], rel=1e-5)


def test_evaluator_runs_the_on_demand_stress_test_protocol(tiny_csro_run, tmp_path):
    """--protocols offline,offline_other_task: the same offline data, each test task given the other's;
    it needs the offline data like the offline protocol (what it reads, not its name)."""
    out = tmp_path / "stress"
    assert ev.main([str(tiny_csro_run.run_dir), "--protocols", "offline,offline_other_task", "--num_evals", "1",
                    "--out", str(out)]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["protocols"] == ["offline", "offline_other_task"]
    assert set(summary["averages"]) >= {"Average_OfflineReturn_all_test_tasks",
                                         "Average_OfflineOtherTaskReturn_all_test_tasks"}


def test_evaluator_default_output_and_train_tasks(tiny_csro_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_csro_run.run_dir, run_dir)
    assert ev.main([str(run_dir), "--itr", "0", "--protocols", "online", "--tasks", "all", "--num_evals", "1"]) == 0
    summary = json.loads((run_dir / "eval_itr0.json").read_text())
    assert (run_dir / "eval_itr0.csv").is_file()
    assert set(summary["averages"]) == {"Average_OnlineReturn_all_train_tasks", "Average_OnlineReturn_all_test_tasks"}
    assert sorted(summary["task_ids"]) == list(range(8)) and summary["num_evals"] == 1


def test_evaluator_errors(tiny_csro_run, tmp_path, capsys):
    assert ev.main([str(tmp_path / "missing")]) == 2
    assert "error: run directory" in capsys.readouterr().err
    assert ev.main([str(tiny_csro_run.run_dir), "--itr", "3"]) == 2
    err = capsys.readouterr().err
    assert "no snapshot of iteration 3" in err and "available iterations: 0, 1 (agent.pth)" in err
    assert ev.main([str(tiny_csro_run.run_dir), "--protocols", "online,bogus"]) == 2
    assert "unknown protocol" in capsys.readouterr().err
    assert ev.main([str(tiny_csro_run.run_dir), "--data_dir", str(tmp_path / "nodata")]) == 2
    assert "offline data not found" in capsys.readouterr().err


# ------------------------------------------------------------------------------ traces and show_path
def test_trace_rebuilds_episodes_and_context(tiny_csro_run):
    run = load_run(tiny_csro_run.run_dir)
    settings = run.settings(num_evals=2)
    for protocol in ("online", "np_online"):
        res = run_protocol(protocol, run.agent, run.env_name, run.env_params, run.test_tasks, settings,
                           seed=3, record_trace=True)
        tr = res.trace
        assert tr["rewards"].shape == tr["ended"].shape == tr["active"].shape
        assert tr["next_obs"].shape == tr["obs"].shape
        for m in range(len(res.task_of)):
            episodes = trace_episodes(tr, m)
            scored = [ep["return"] for ep in episodes if not ep["exploring"]]
            np.testing.assert_allclose(scored, res.episode_returns[m], rtol=1e-6)
            assert all(len(ep["steps"]) == 20 for ep in episodes)
        # the context rebuilt from the trace gives the protocol's own final z
        contexts = cs.protocol_contexts(res, run.agent.use_next_obs_in_context, 20)
        assert [len(first) for first, _ in contexts] == [20] * len(contexts)
        assert [len(full) for _, full in contexts] == res.context_lengths.tolist()
        z_full = cs._infer_each(run.agent, [full for _, full in contexts], "cpu")
        np.testing.assert_allclose(z_full, res.z, rtol=1e-5, atol=1e-6)


def test_show_path_point_robot_pngs(tiny_csro_run, tmp_path, capsys):
    show_path = _show_path()
    out = tmp_path / "figs"
    assert show_path.main([str(tiny_csro_run.config), "--seed", "0", "--exp_name", "tiny",
                           "--base_log_dir", str(tiny_csro_run.base_log_dir), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out.split()
    assert "rollouts: 240/240 transition (100%)" in captured.err  # 3 protocols x 2 test tasks x 1 x 40 steps
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["paths_itr1.png", "returns_itr1.png"]
    assert sorted(printed) == sorted(str(p) for p in pngs)
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in pngs)
    assert show_path.main([str(tiny_csro_run.config), "--seed", "5", "--exp_name", "tiny",
                           "--base_log_dir", str(tiny_csro_run.base_log_dir)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_show_path_refuses_a_config_of_other_env_settings(tiny_csro_run, tmp_path, capsys):
    """Was: the run's own env was used silently, under a config that says otherwise."""
    show_path = _show_path()
    cfg = json.loads(tiny_csro_run.config.read_text())
    cfg["env_params"]["max_episode_steps"] = 30
    other = tmp_path / "point-robot.json"
    other.write_text(json.dumps(cfg))
    assert show_path.main([str(other), "--exp_name", "tiny", "--base_log_dir", str(tiny_csro_run.base_log_dir),
                           "--out", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sets env_params.max_episode_steps other than the run" in err[0]
    assert not (tmp_path / "figs").exists()

    class Run:  # a run folder copied under another env's name
        env_name, env_params, run_dir = "sparse-point-robot", cfg["env_params"], tmp_path

    with pytest.raises(ValueError, match="is a 'point-robot' config, but the run .* was trained on 'sparse-point-robot'"):
        show_path.check_same_env(cfg, Run, other)


def test_show_path_video_replays_each_protocol_side_by_side(tiny_csro_run, tmp_path, capsys):
    from PIL import Image

    from rlkit.evaluation.protocol_video import side_by_side, supports_video

    show_path = _show_path()
    out = tmp_path / "figs"
    assert show_path.main([str(tiny_csro_run.config), "--exp_name", "tiny", "--base_log_dir",
                           str(tiny_csro_run.base_log_dir), "--out", str(out), "--video", "--video_task", "6",
                           "--protocols", "offline,online,np_online"]) == 0
    gif = out / "protocols_task6_itr1.gif"
    assert str(gif) in capsys.readouterr().out.split()
    im = Image.open(gif)
    # three 256-wide panels with 4-pixel gaps; one frame per step of the longest clip. Each clip: the
    # protocol's exploration episodes, then 2 evaluation episodes; offline explores none: 2 x 20 steps
    from rlkit.evaluation.protocol_video import protocol_frames

    run = load_run(tiny_csro_run.run_dir)
    results = show_path.rollouts(run, ["offline", "online", "np_online"], [6], seed=0)
    clips = {p: protocol_frames(run, r, 6, p) for p, r in results.items()}
    assert len(clips["offline"]) == 2 * run.settings().max_path_length
    assert im.size[0] == 3 * 256 + 2 * 4 and im.n_frames == max(len(c) for c in clips.values())
    im.seek(0)
    first = np.asarray(im.convert("RGB"))
    assert (first[:, :256] != 255).any() and (first[:, 260:516] != 255).any()  # every panel is drawn
    # a clip that ends first holds its last frame
    a, b = [np.zeros((2, 2, 3), np.uint8)] * 2, [np.ones((2, 2, 3), np.uint8)] * 3
    frames = side_by_side([a, b], gap=1)
    assert len(frames) == 3 and frames[2].shape == (2, 5, 3) and (frames[2][:, :2] == 0).all()
    assert supports_video("point-robot") and supports_video("sparse-point-robot") and supports_video("cheetah-vel")
    assert show_path.main([str(tiny_csro_run.config), "--exp_name", "tiny", "--base_log_dir",
                           str(tiny_csro_run.base_log_dir), "--video_task", "3"]) == 2  # not a test task
    assert "not test tasks of this run" in capsys.readouterr().err


def _untrained_run(env_name: str, run_dir, horizon: int, *extra: str) -> LoadedRun:
    """A 4-task run of an untrained agent (tasks 2, 3 held out) with ``horizon``-step episodes, two per
    evaluation: enough for the online protocols, which need no data."""
    from rlkit.config import load_config
    from rlkit.envs import make_env
    from rlkit.torch.csro import CSROAgent, CSROHyperParams

    cfg = load_config(REPO / "configs" / f"{env_name}.json", [
        "env_params.n_tasks=4", "n_train_tasks=2", "n_eval_tasks=2", f"env_params.max_episode_steps={horizon}",
        f"algo_params.max_path_length={horizon}", f"algo_params.num_steps_per_eval={2 * horizon}",
        "algo_params.meta_batch=2", *extra])
    env = make_env(cfg["env_name"], **cfg["env_params"])
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    torch.manual_seed(0)
    agent = CSROAgent(obs_dim, act_dim, CSROHyperParams.from_config(cfg)).eval()
    return LoadedRun(run_dir=run_dir, snapshot_path=run_dir / "agent.pth", iteration=0, config=cfg, agent=agent,
                     train_tasks=[0, 1], test_tasks=[2, 3], obs_dim=obs_dim, act_dim=act_dim, obs_absmax=None,
                     device=torch.device("cpu"))


@pytest.mark.parametrize("env_name,figure", [("cheetah-vel", "velocity_itr0.png"),
                                              ("ant-goal", "goal_distance_itr0.png")])
def test_show_path_mujoco_figures(env_name, figure, tmp_path):
    """MuJoCo figures from an untrained agent on 10-step episodes (online protocols need no data)."""
    run = _untrained_run(env_name, tmp_path, 10)
    paths = _show_path().make_figures(run, tmp_path / "figs", protocols=("online", "np_online"), tasks=[2, 3])
    assert [p.name for p in paths] == [figure, "returns_itr0.png"]
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in paths)


def test_show_path_video_of_a_mujoco_env_renders_the_scored_episode(tmp_path):
    """Cheetah-vel clips from an untrained agent on 60-step episodes: a long episode's clip shows the
    first evaluation episode after the protocol's exploration, one rendered frame per step."""
    from PIL import Image

    from rlkit.evaluation.protocol_video import clip_plan, protocol_frames

    run = _untrained_run("cheetah-vel", tmp_path, 60, "algo_params.num_exp_traj_eval=1")
    paths = _show_path().make_figures(run, tmp_path / "figs", protocols=("online", "np_online"), tasks=[3],
                                      video_task=3)
    gif = next(p for p in paths if p.suffix == ".gif")  # an .mp4 follows it where an encoder is installed
    assert gif.name == "protocols_task3_itr0.gif"
    assert clip_plan(60) == (False, 1, 1) and clip_plan(200) == (False, 1, 2) and clip_plan(20) == (True, 2, 1)
    im = Image.open(gif)
    assert im.size == (2 * 256 + 4, 192) and im.n_frames == 60
    im.seek(59)
    last = np.asarray(im.convert("RGB"))
    assert last[:, :256].std() > 10 and last[:, 260:].std() > 10  # both panels rendered
    # the online panel shows its first evaluation episode after the prior-z episode, with its return
    results = _show_path().rollouts(run, ["online"], [3], seed=0)
    frames = protocol_frames(run, results["online"], 3, "online")
    ep = [e for e in _show_path().labelled_episodes(results["online"], 0, 1, 60) if e["kind"] != "exploration"][0]
    assert len(frames) == 60 and ep["steps"][0] == 60


def test_trace_records_env_infos():
    class ZeroAgent:
        latent_dim, use_next_obs_in_context = 2, False

        def infer_z(self, context, lengths):
            return torch.zeros(len(lengths), 2)

        def act(self, obs, z, deterministic):
            return torch.zeros(obs.shape[0], 6)

    settings = EvalSettings(max_path_length=5, num_steps_per_eval=10, num_evals=1)
    res = run_protocol("online", ZeroAgent(), "cheetah-vel", dict(n_tasks=3, max_episode_steps=5), [0, 2], settings,
                       record_trace=True)
    assert res.trace["info"]["x_velocity"].shape == (10, 2)
    assert np.isfinite(res.trace["info"]["x_velocity"]).all() and "task" not in res.trace["info"]


# ------------------------------------------------------------------------------ context shift
def test_nearest_centroid_chance_for_task_blind_embeddings():
    rng = np.random.default_rng(0)
    n_tasks, n = 5, 400
    labels = np.repeat(np.arange(n_tasks), n)
    fit, test = rng.normal(size=(len(labels), 4)), rng.normal(size=(len(labels), 4))
    acc = cs.nearest_centroid_accuracy(fit, labels, test, labels)
    assert acc == pytest.approx(1 / n_tasks, abs=0.05)
    # a constant encoder ties every centroid: exactly chance on balanced data, undefined shift ratio
    const = np.ones((len(labels), 4))
    assert cs.nearest_centroid_accuracy(const, labels, const, labels) == pytest.approx(1 / n_tasks)
    assert math.isnan(cs.shift_ratio(const, labels, const, labels))
    assert math.isinf(cs.shift_ratio(const, labels, const + 1.0, labels))


def test_nearest_centroid_perfect_for_separable_embeddings():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 50)
    centres = 10.0 * np.eye(4)
    fit = centres[labels] + 0.1 * rng.normal(size=(200, 4))
    test = centres[labels] + 0.1 * rng.normal(size=(200, 4))
    assert cs.nearest_centroid_accuracy(fit, labels, test, labels) == 1.0
    assert cs.shift_ratio(fit, labels, test, labels) < 0.05
    # shuffled test labels: the classifier is right only where the shuffle kept the label
    perm = np.roll(labels, 50)
    assert cs.nearest_centroid_accuracy(fit, labels, test, perm) == 0.0


def test_shift_ratio_by_hand():
    fit = np.array([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [2.0, 0.0]])
    fit_labels = np.array([3, 3, 7, 7])
    z, labels = np.array([[1.0, 0.0], [2.0, 1.0]]), np.array([3, 7])
    assert cs.shift_ratio(fit, fit_labels, z, labels) == pytest.approx((1.0 + 1.0) / 2 / 2.0)
    assert cs.centroid_spread(np.array([[0, 0], [3, 4], [0, 0]])) == pytest.approx((5 + 0 + 5) / 3)
    with pytest.raises(ValueError, match="centroid"):
        cs.shift_ratio(fit, fit_labels, z, np.array([3, 5]))
    with pytest.raises(ValueError, match="no fitted centroid"):
        cs.nearest_centroid_accuracy(fit, fit_labels, z, np.array([3, 5]))


class TaskBlindAgent(torch.nn.Module):
    """The run's policy with an encoder that ignores the context (and so the task)."""

    def __init__(self, agent):
        super().__init__()
        self.inner, self.latent_dim, self.use_next_obs_in_context = agent, agent.latent_dim, False

    def infer_z(self, context, lengths):
        return torch.full((context.shape[0], self.latent_dim), 0.3)

    def act(self, obs, z, deterministic):
        return self.inner.act(obs, z, deterministic)


def test_context_shift_task_blind_encoder_scores_chance(tiny_csro_run, tmp_path):
    run = load_run(tiny_csro_run.run_dir)
    report = cs.run_diagnostics(run, tmp_path, agent=TaskBlindAgent(run.agent), draws=6)
    assert report["chance_accuracy"] == 0.5
    for name in cs.SOURCES:
        assert report["sources"][name]["accuracy"] == pytest.approx(0.5)


def test_context_shift_cli_writes_files(tiny_csro_run, tmp_path, capsys):
    assert cs.main([str(tiny_csro_run.run_dir), "--out", str(tmp_path), "--draws", "6"]) == 0
    captured = capsys.readouterr()
    assert "np_online" in captured.out
    assert "context-shift rollouts: 320/320 transition (100%)" in captured.err  # 2 protocols x 2 tasks x 2 x 40
    report = json.loads((tmp_path / "context_shift_itr1.json").read_text())
    assert set(report["sources"]) == set(cs.SOURCES)
    assert report["tasks"] == [2, 6] and report["offline_draws_fit"] == 3 and report["projection"] == "pca"
    for name, src in report["sources"].items():
        assert 0.0 <= src["accuracy"] <= 1.0 and set(src["per_task"]) == {"2", "6"}
        assert src["n"] == (6 if name == "offline" else 4)  # 3 held-out draws x 2 tasks; 2 repeats x 2 tasks
    assert (tmp_path / "context_shift_itr1.png").read_bytes()[:8] == PNG_MAGIC
    emb = np.load(tmp_path / "context_shift_itr1.npz")
    assert emb["z"].shape == (len(emb["task"]), 20) and "offline_fit" in set(emb["source"])
    assert cs.main([str(tiny_csro_run.run_dir), "--itr", "9"]) == 2
    assert "available iterations" in capsys.readouterr().err


def test_pca_2d_orders_components():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 3)) * np.array([5.0, 1.0, 0.1])
    xy, var = cs.pca_2d(z, return_variance=True)
    assert xy.shape == (300, 2) and var[0] > 0.9 and var[1] < var[0]
    assert cs.pca_2d(z[:, :1]).shape == (300, 2)  # 1-D latents are padded


# ------------------------------------------------------------------------------ learning curves
def _fake_runs(root: Path) -> list[Path]:
    runs = []
    for seed, shift in ((0, 0.0), (1, 2.0)):
        run = root / "point-robot" / "exp" / f"seed{seed}"
        run.mkdir(parents=True)
        epochs = np.arange(5)
        pd.DataFrame({"Epoch": epochs, "Number of train steps total": 1000 * (epochs + 1),
                      **{key: -20.0 + epochs + shift for key in PROGRESS_KEYS.values()}}).to_csv(
            run / "progress.csv", index=False)
        runs.append(run)
    return runs


def test_plot_runs_mean_and_band_over_seeds(tmp_path):
    runs = _fake_runs(tmp_path)
    before = [(r / "progress.csv").read_bytes() for r in runs]
    out = rplot.plot_runs(runs, out=tmp_path / "curves.png", x="Number of train steps total")
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert [(r / "progress.csv").read_bytes() for r in runs] == before  # viskit's input untouched
    stats = rplot.aggregate([pd.read_csv(r / "progress.csv") for r in runs], "Epoch",
                            "Average_OnlineReturn_all_test_tasks")
    np.testing.assert_allclose(stats["mean"], -19.0 + np.arange(5))
    np.testing.assert_allclose(stats["high"] - stats["low"], 2.0)
    # an experiment folder stands for its seeds; default output beside them
    assert rplot.main([str(tmp_path / "point-robot" / "exp"), "--band", "std"]) == 0
    assert (tmp_path / "point-robot" / "exp" / "learning_curves.png").is_file()
    assert (tmp_path / "point-robot" / "exp" / "learning_curves.pdf").read_bytes()[:5] == b"%PDF-"  # for a paper


def test_plot_errors(tmp_path, capsys):
    runs = _fake_runs(tmp_path)
    assert rplot.main([str(runs[0]), "--keys", "Average_OnlineReturn_all_test_task"]) == 2
    assert "did you mean 'Average_OnlineReturn_all_test_tasks'" in capsys.readouterr().err
    assert rplot.main([str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_same_seed_same_returns_whatever_ran_before(tiny_csro_run):
    """np_online samples policy actions: the tools seed that sampling from --seed."""
    from rlkit.evaluate import run_evaluation

    run = load_run(tiny_csro_run.run_dir)
    a = run_evaluation(run, ["np_online"], seed=3)
    torch.rand(1000)  # move the global RNG: the next call must not depend on it
    b = run_evaluation(run, ["np_online"], seed=3)
    c = run_evaluation(run, ["np_online"], seed=4)
    returns = [[r["final_return"] for r in x["per_task"]] for x in (a, b, c)]
    assert returns[0] == returns[1]
    assert returns[0] != returns[2]


def test_load_run_takes_the_highest_iteration_of_a_copied_run(tiny_csro_run, tmp_path):
    """evaluate / show_path / context_shift choose the snapshot as --resume does, not by file time."""
    import os
    import time

    copy = tmp_path / "copy"
    shutil.copytree(tiny_csro_run.run_dir, copy)
    future = time.time() + 100
    os.utime(copy / "agent_itr_0.pth", (future, future))
    assert load_run(copy).iteration == 1


def test_an_older_snapshot_is_never_evaluated_silently(tiny_csro_run, tmp_path, capsys):
    """A truncated newest snapshot used to make evaluate / context_shift / show_path fall back to an
    older one without a word: the numbers would then be an earlier iteration's."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_csro_run.run_dir, copy)
    (copy / "agent.pth").write_bytes((copy / "agent.pth").read_bytes()[:1000])  # a kill or a full disk
    assert load_run(copy).iteration == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "agent.pth" in err[0]
    assert err[0].endswith("using the newest snapshot that loads instead: agent_itr_0.pth (iteration 0)")
    load_run(tiny_csro_run.run_dir)
    assert capsys.readouterr().err == ""  # nothing to say when the newest one loads


def test_the_evaluation_tools_check_their_data_as_training_does(tiny_csro_run, tmp_path, capsys):
    """--data_dir was read without checksums or task parameters: another task set's data, or a damaged
    file, gave offline-context numbers for the wrong tasks, or from corrupt transitions."""
    other = tmp_path / "other_tasks"
    shutil.copytree(tiny_csro_run.data_dir, other)
    meta = json.loads((other / "dataset.json").read_text())
    meta["tasks"] = [{k: (np.asarray(v) + 0.5).tolist() if k == "goal" else v for k, v in t.items()}
                     for t in meta["tasks"]]
    (other / "dataset.json").write_text(json.dumps(meta))
    args = ["--protocols", "offline", "--num_evals", "1"]
    assert ev.main([str(tiny_csro_run.run_dir), "--data_dir", str(other), *args]) == 2
    err = capsys.readouterr().err
    assert "made for other tasks" in err and len(err.strip().splitlines()) == 1

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_csro_run.data_dir, damaged)
    (damaged / ".verified.json").unlink(missing_ok=True)
    test_file = sorted((damaged / "task_002").glob("step_*.npy"))[0]
    data = bytearray(test_file.read_bytes())
    data[-5] ^= 0xFF
    test_file.write_bytes(bytes(data))
    assert cs.main([str(tiny_csro_run.run_dir), "--data_dir", str(damaged), "--num_evals", "1",
                    "--out", str(tmp_path / "cs")]) == 2
    assert "fails its SHA-256 check" in capsys.readouterr().err


def test_the_evaluation_tools_refuse_data_the_run_was_not_trained_on(tiny_csro_run, tmp_path, capsys):
    """Was: evaluate, context_shift and show_path --video ran the offline protocol on a regenerated copy of
    the dataset (same tasks, other episodes): numbers of data the run never saw. Only the splits a tool
    reads are compared."""
    from tests.helpers import regenerate_checkpoint

    recorded = json.loads((tiny_csro_run.run_dir / "variant.json").read_text())["data_fingerprint"]
    other = tmp_path / "regenerated"
    shutil.copytree(tiny_csro_run.data_dir, other)
    regenerate_checkpoint(other, 2, 100)  # test task 2
    offline = ["--protocols", "offline", "--num_evals", "1", "--data_dir", str(other)]

    def refused() -> str:
        err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error:")]
        assert len(err) == 1 and f"the test tasks' offline data in {other} is not what" in err[0], err
        assert f"(data fingerprint test {recorded['test']} then, " in err[0] and "pass --data_dir" in err[0]
        return err[0]

    assert ev.main([str(tiny_csro_run.run_dir), *offline, "--out", str(tmp_path / "ev")]) == 2
    refused()
    assert not list(tmp_path.glob("ev*"))
    assert cs.main([str(tiny_csro_run.run_dir), "--data_dir", str(other), "--num_evals", "1", "--draws", "2",
                    "--out", str(tmp_path / "cs")]) == 2
    refused()
    show_path = _show_path()
    assert show_path.main([str(tiny_csro_run.config), "--exp_name", "tiny", "--base_log_dir",
                           str(tiny_csro_run.base_log_dir), "--out", str(tmp_path / "figs"), "--video",
                           "--video_task", "6", *offline]) == 2
    refused()
    # a train task regenerated: the test tasks' data is what the run saw; the train tasks' is not
    train_changed = tmp_path / "train_changed"
    shutil.copytree(tiny_csro_run.data_dir, train_changed)
    regenerate_checkpoint(train_changed, 0, 100)
    args = [str(tiny_csro_run.run_dir), "--protocols", "offline", "--num_evals", "1", "--data_dir", str(train_changed)]
    assert ev.main([*args, "--out", str(tmp_path / "test_only")]) == 0
    capsys.readouterr()
    assert ev.main([*args, "--tasks", "all", "--out", str(tmp_path / "all")]) == 2
    assert f"(data fingerprint train {recorded['train']} then, " in capsys.readouterr().err


def test_a_run_from_before_data_fingerprints_is_evaluated_with_a_note(tiny_csro_run, tmp_path, capsys):
    from tests.helpers import forget_data_fingerprint

    copy = tmp_path / "old_run"
    shutil.copytree(tiny_csro_run.run_dir, copy)
    forget_data_fingerprint(copy)
    capsys.readouterr()
    assert ev.main([str(copy), "--protocols", "offline", "--tasks", "all", "--num_evals", "1"]) == 0
    notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "was made before runs recorded their data's fingerprint" in notes[0]  # once, not per split
