"""Reference returns (random / behaviour policy), normalized scores, IQM aggregates and the plot CLI that uses them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rlkit import plot as rplot
from rlkit.data import read_checkpoint_episodes
from rlkit.envs import make_wrapped_env
from rlkit.evaluation import reference as ref
from rlkit.evaluation.aggregate import iqm_with_ci
from rlkit.evaluation.protocols import PROGRESS_KEYS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ENV_PARAMS = {"n_tasks": 8, "randomize_tasks": False, "max_episode_steps": 20}


# ------------------------------------------------------------------------------ normalized score
def test_normalized_score_maps_random_to_0_and_behaviour_to_100():
    assert ref.normalized_score(-20.0, -20.0, -5.0) == 0.0
    assert ref.normalized_score(-5.0, -20.0, -5.0) == 100.0
    np.testing.assert_allclose(ref.normalized_score([-12.5, -35.0], -20.0, -5.0), [50.0, -100.0])
    assert isinstance(ref.normalized_score(-12.5, -20.0, -5.0), float)
    with pytest.raises(ValueError, match="behaviour return != random return"):
        ref.normalized_score(1.0, -5.0, -5.0)


# ------------------------------------------------------------------------------ random policy
def _slow_random_return(task_ids, mpl, episodes, seed):
    """One env per (task, episode), stepped one by one with the same action draws as the batched rollout."""
    task_of = np.repeat(task_ids, episodes)
    rng = np.random.default_rng(seed)
    draws = [rng.uniform(-1.0, 1.0, size=(len(task_of), 2)).astype(np.float32) for _ in range(mpl)]
    totals = []
    for i, task in enumerate(task_of):
        env = make_wrapped_env("point-robot", **ENV_PARAMS)  # actions in [-1, 1], as the vector env takes
        env.reset_task(int(task))
        env.reset()
        totals.append(sum(env.step(draws[t][i])[1] for t in range(mpl)))
    totals = np.array(totals)
    return np.mean([totals[task_of == t].mean() for t in task_ids])


def test_random_policy_return_matches_a_one_env_at_a_time_rollout():
    got = ref.random_policy_return("point-robot", ENV_PARAMS, [2, 6], 20, episodes=3, seed=4)
    assert got == pytest.approx(_slow_random_return([2, 6], 20, 3, 4), rel=1e-6)
    assert got == ref.random_policy_return("point-robot", ENV_PARAMS, [2, 6], 20, episodes=3, seed=4)
    assert got != ref.random_policy_return("point-robot", ENV_PARAMS, [2, 6], 20, episodes=3, seed=5)


# ------------------------------------------------------------------------------ behaviour policy
def _dataset(root: Path) -> Path:
    """A dataset folder with only the generator's returns log: tasks 2, 6 test; step 300 lacks task 6."""
    data = root / "data"
    (data / "_generator").mkdir(parents=True)
    rows = []
    for step, base in ((100, -18.0), (200, -6.0), (300, 0.0)):
        for task in range(8):
            if step == 300 and task == 6:
                continue
            rows.append({"step": step, "task": task, "deterministic_return": base + task, "sampled_return": base})
    pd.DataFrame(rows).to_csv(data / "_generator" / "returns.csv", index=False)
    return data


def _variant(data_dir: Path) -> dict:
    return {"env_name": "point-robot", "env_params": ENV_PARAMS, "n_train_tasks": 6, "n_eval_tasks": 2,
            "interpolation": True, "randomize_tasks": False,
            "algo_params": {"data_dir": str(data_dir), "max_path_length": 20, "eval_epoch": [100, 200, 100],
                            "sparse_rewards": False}}


def test_behaviour_returns_best_complete_checkpoint_and_data_mean(tmp_path):
    data = _dataset(tmp_path)
    best, step, used = ref.behaviour_policy_returns(data, [2, 6], steps=[100])
    # step 300 is incomplete for the test tasks; step 200: mean(-6+2, -6+6) = -2
    assert (best, step) == (-2.0, 200)
    assert used == pytest.approx(np.mean([-18.0 + 2, -18.0 + 6]))
    with pytest.raises(ref.ReferenceUnavailable, match="no behaviour returns: .*nowhere does not exist"):
        ref.behaviour_policy_returns(tmp_path / "nowhere", [2, 6])


def test_reference_returns_of_a_variant(tmp_path):
    data = _dataset(tmp_path)
    r = ref.reference_returns(_variant(data))
    assert r.tasks == (2, 6)  # the interpolation split of 6/2
    assert (r.behaviour_best, r.behaviour_best_step, r.behaviour_data) == (-2.0, 200, -14.0)
    assert r.random == pytest.approx(_slow_random_return([2, 6], 20, 10, 0), rel=1e-6)
    assert ref.ReferenceReturns.from_dict(json.loads(json.dumps(r.as_dict()))) == r
    with pytest.raises(ref.ReferenceUnavailable, match="is not here"):
        ref.reference_returns(_variant(tmp_path / "moved"))


def _dense_reward_dataset(root: Path, steps=(100, 200), n_tasks: int = 4) -> Path:
    """A native dataset whose rewards are dense point-robot rewards (negative distances), some within
    the goal radius; two deterministic episodes per checkpoint (their mean is the checkpoint's return)
    and sampled ones that must not count."""
    from rlkit.data.native import DatasetWriter
    from rlkit.data.synthetic import synthetic_episodes

    rng = np.random.default_rng(7)
    data = root / "sparse_data"
    writer = DatasetWriter(data, "sparse-point-robot", {"n_tasks": n_tasks, "max_episode_steps": 20},
                           [{"goal": float(i)} for i in range(n_tasks)], 2, 2, {"test": True}, fsync=False)
    for task in range(n_tasks):
        for step in steps:
            episodes = synthetic_episodes(rng, task, step, 2, 3, 20, 2, 2)
            for e in episodes:
                e.rewards[:] = -rng.uniform(0.0, 0.5, size=len(e.rewards)) * (1.0 if e.sampled else task + 1)
            writer.write_checkpoint(task, step, episodes)
    return data


def _slow_sparse_return(data: Path, task: int, step: int, radius: float) -> float:
    from rlkit.data import read_checkpoint_episodes

    totals = []
    for e in read_checkpoint_episodes(data, task, step):
        if not e.sampled:
            totals.append(sum((1.0 + float(r)) if float(r) >= -radius else 0.0 for r in e.rewards))
    return sum(totals) / len(totals)


def test_sparse_behaviour_returns_sparsify_the_deterministic_episodes_of_the_data(tmp_path):
    data = _dense_reward_dataset(tmp_path)
    per_step = {step: np.mean([_slow_sparse_return(data, t, step, 0.2) for t in (1, 3)]) for step in (100, 200)}
    best_step = max(per_step, key=per_step.get)
    best, step, used = ref.behaviour_policy_returns(data, [1, 3], steps=[100], sparse_goal_radius=0.2)
    assert step == best_step and best == pytest.approx(per_step[best_step]) and used == pytest.approx(per_step[100])
    assert best > 0  # on the sparse scale: random scores 0 there, not the dense -20
    # the variant's sparse_rewards switch chooses it; without a generator log the dense returns come from the
    # same deterministic episodes, unsparsified
    variant = {"env_name": "sparse-point-robot", "env_params": {"n_tasks": 4, "randomize_tasks": False,
                                                                "max_episode_steps": 20, "goal_radius": 0.2},
               "n_train_tasks": 2, "n_eval_tasks": 2, "interpolation": True, "randomize_tasks": False,
               "algo_params": {"data_dir": str(data), "max_path_length": 20, "eval_epoch": [100, 200, 100],
                               "sparse_rewards": True}}
    r = ref.reference_returns(variant)
    assert (r.behaviour_best, r.behaviour_best_step) == (pytest.approx(per_step[best_step]), best_step)
    assert r.random >= 0.0
    dense = ref.reference_returns({**variant, "algo_params": {**variant["algo_params"], "sparse_rewards": False}})
    dense_per_step = {step: np.mean([np.mean([float(e.rewards.sum()) for e in read_checkpoint_episodes(data, t, step)
                                              if not e.sampled]) for t in (1, 3)]) for step in (100, 200)}
    assert dense.behaviour_best == pytest.approx(max(dense_per_step.values())) and dense.behaviour_best < 0


# ------------------------------------------------------------------------------ IQM aggregates
def _slow_iqm(values):
    v = np.sort(np.asarray(values, dtype=float).ravel())
    cut = len(v) // 4  # scipy's trim_mean(0.25): floor(n / 4) from each end
    return v[cut:len(v) - cut].mean()


@pytest.mark.parametrize("values", [[3.0, -1.0, 7.5], [1.0, 2.0, 3.0, 100.0], list(np.arange(10.0) ** 2)])
def test_iqm_is_the_mean_of_the_middle_half_and_the_ci_holds_it(values):
    agg = iqm_with_ci(values, reps=500, seed=3)
    assert agg.iqm == pytest.approx(_slow_iqm(values))
    assert agg.mean == pytest.approx(np.mean(values)) and agg.n_runs == len(values)
    assert min(values) <= agg.low <= agg.iqm <= agg.high <= max(values)
    assert agg == iqm_with_ci(values, reps=500, seed=3)  # deterministic with a fixed seed


def test_iqm_ci_stratified_over_tasks_and_seed_dependent():
    rng = np.random.default_rng(0)
    scores = np.stack([rng.normal(0, 1, 8), rng.normal(50, 1, 8)], axis=1)  # [runs, tasks]
    agg = iqm_with_ci(scores, reps=400, seed=0)
    assert agg.iqm == pytest.approx(_slow_iqm(scores))
    # stratified: every resample keeps 8 runs of each task, so the IQM stays between the task means' average
    assert 20 < agg.low <= agg.iqm <= agg.high < 30
    assert iqm_with_ci(scores, reps=400, seed=1) != agg
    with pytest.raises(ValueError, match="finite"):
        iqm_with_ci([1.0, np.nan])


# ------------------------------------------------------------------------------ the plot CLI
def _runs_with_dataset(root: Path, data: Path) -> list[Path]:
    runs = []
    for seed, shift in ((0, 0.0), (1, 2.0), (2, -1.0)):
        run = root / "point-robot" / "exp" / f"seed{seed}"
        run.mkdir(parents=True)
        epochs = np.arange(5)
        pd.DataFrame({"Epoch": epochs, "Number of train steps total": 100 * (epochs + 1),
                      **{key: -20.0 + epochs + shift for key in PROGRESS_KEYS.values()}}).to_csv(
            run / "progress.csv", index=False)
        (run / "variant.json").write_text(json.dumps(_variant(data)))
        runs.append(run)
    return runs


def test_plot_cli_reference_lines_normalized_and_aggregates(tmp_path, capsys):
    data = _dataset(tmp_path)
    runs = _runs_with_dataset(tmp_path, data)
    out = tmp_path / "figs" / "curves.png"
    assert rplot.main([str(tmp_path / "point-robot" / "exp"), "--out", str(out), "--reps", "200"]) == 0
    captured = capsys.readouterr()
    assert "note:" not in captured.err
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "figs" / "curves_aggregates.png").read_bytes()[:8] == PNG_MAGIC
    table = pd.read_csv(tmp_path / "figs" / "curves_aggregates.csv")
    online = table[table["key"] == PROGRESS_KEYS["online"]].iloc[0]
    finals = [np.mean(-20.0 + np.arange(2, 5) + s) for s in (0.0, 2.0, -1.0)]  # last 3 evaluations per seed
    assert online["iqm"] == pytest.approx(_slow_iqm(finals)) and online["seeds"] == 3
    assert online["ci_low"] <= online["iqm"] <= online["ci_high"]
    assert "point-robot/exp" in captured.out

    # normalized: the random return maps to 0 and the best behaviour checkpoint (-2.0) to 100
    loaded = rplot.load_runs(runs)
    r = loaded.reference_of(runs[0])
    scores = rplot.final_scores(loaded, runs, PROGRESS_KEYS["online"], 3, normalized=True)
    np.testing.assert_allclose(scores, 100 * (np.array(finals) - r.random) / (-2.0 - r.random))
    assert rplot.main([str(runs[0]), "--out", str(tmp_path / "n.png"), "--normalized"]) == 0


def test_plot_without_dataset_notes_and_still_plots(tmp_path, capsys):
    runs = _runs_with_dataset(tmp_path, tmp_path / "gone")
    assert rplot.main([str(runs[0]), "--out", str(tmp_path / "c.png")]) == 0
    err = capsys.readouterr().err
    assert err.count("note: no reference lines") == 1 and "is not here" in err
    assert (tmp_path / "c.png").is_file() and not (tmp_path / "c_aggregates.csv").exists()  # one seed: no aggregate
    assert rplot.main([str(runs[0]), "--out", str(tmp_path / "n.png"), "--normalized"]) == 2
    assert "--normalized needs the reference returns" in capsys.readouterr().err


# ------------------------------------------------------------------------------ runs that must not be mixed
def _run(root: Path, env: str, exp: str, seed: int, epochs: int, online=None) -> Path:
    run = root / env / exp / f"seed{seed}"
    run.mkdir(parents=True)
    values = -20.0 + np.arange(epochs) + seed
    frame = {"Epoch": np.arange(epochs), **{key: values for key in PROGRESS_KEYS.values()}}
    if online is not None:
        frame[PROGRESS_KEYS["online"]] = online
    pd.DataFrame(frame).to_csv(run / "progress.csv", index=False)
    (run / "variant.json").write_text(json.dumps({"env_name": env}))
    return run


def test_plot_refuses_runs_of_different_envs(tmp_path, capsys):
    point = _run(tmp_path, "point-robot", "exp", 0, 5)
    cheetah = _run(tmp_path, "cheetah-vel", "exp", 0, 5)
    mixed = tmp_path / "mixed" / "exp"  # copied into one experiment folder, they would make one "2 seeds" line
    mixed.mkdir(parents=True)
    for i, run in enumerate((point, cheetah)):
        target = mixed / f"seed{i}"
        target.mkdir()
        for f in run.iterdir():
            (target / f.name).write_bytes(f.read_bytes())
    for what in ([str(point), str(cheetah)], [str(mixed)]):
        assert rplot.main([*what, "--out", str(tmp_path / "c.png"), "--no-reference"]) == 2
        err = capsys.readouterr().err
        assert "these runs are of 2 different envs (point-robot: " in err and "cheetah-vel: " in err
        assert "plot each env on its own" in err and err.count("\n") == 1
        assert not (tmp_path / "c.png").exists() and not (tmp_path / "c_aggregates.csv").exists()
    assert rplot.main([str(point), "--out", str(tmp_path / "c.png"), "--no-reference"]) == 0


def test_a_short_seed_leaves_the_others_curve_whole_and_is_named(tmp_path, capsys, monkeypatch):
    """One killed seed used to cut its experiment's whole curve to its length: now the curve is the mean
    of the seeds that reached each x, a warning names the short seed, and the aggregate (a final score
    per seed) still compares the seeds at the point all of them reached."""
    runs = [_run(tmp_path, "point-robot", "exp", 0, 6), _run(tmp_path, "point-robot", "exp", 1, 4),
            _run(tmp_path, "point-robot", "exp", 2, 6)]
    out = tmp_path / "c.png"
    seen = capture_figures(monkeypatch)
    assert rplot.main([str(tmp_path / "point-robot" / "exp"), "--out", str(out), "--no-reference",
                       "--reps", "50"]) == 0
    err = capsys.readouterr().err
    assert ("warning: the runs of point-robot/exp have different lengths (Epoch seed0 to 5, seed1 to 3, seed2 to 5; "
            "short: seed1): its curve is the mean of the seeds that reached each Epoch, and its aggregate uses "
            "only Epoch up to 3, which all of them reached") in err
    online = visible_axes(seen[0])[0]
    line = online.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), np.arange(6))  # to the longest seed, not the shortest
    values = -20.0 + np.arange(6)
    np.testing.assert_allclose(line.get_ydata(), [v + 1 for v in values[:4]] + [v + 1 for v in values[4:]])
    assert bands(online)[0].get_paths()[0].vertices[:, 0].max() == 5  # seeds 0 and 2 go on together
    table = pd.read_csv(tmp_path / "c_aggregates.csv")
    # each seed's final score is the mean of its last 3 evaluations up to epoch 3: -20 + (1, 2, 3) + seed
    finals = sorted(np.mean(-20.0 + np.arange(1, 4) + s) for s in (0, 1, 2))
    assert table["scores"].iloc[0] == " ".join(f"{v:.4g}" for v in finals)
    assert len(pd.read_csv(runs[0] / "progress.csv")) == 6  # files are only read
    # a seed short in the middle of the curve too: where only one seed has an x, that seed alone
    runs[1].joinpath("progress.csv").write_text(pd.read_csv(runs[1] / "progress.csv").iloc[[0, 1]].to_csv(index=False))
    loaded = rplot.load_runs([tmp_path / "point-robot" / "exp"], references=False)
    assert [len(f) for f in loaded.frames.values()] == [6, 2, 6]
    # experiments of different lengths (each consistent): plotted, with a warning that says so
    _run(tmp_path, "point-robot", "other", 0, 4)
    _run(tmp_path, "point-robot", "other", 1, 4)
    _run(tmp_path, "point-robot", "long", 0, 6)
    _run(tmp_path, "point-robot", "long", 1, 6)
    assert rplot.main([str(tmp_path / "point-robot" / "other"), str(tmp_path / "point-robot" / "long"), "--out",
                       str(out), "--no-reference", "--reps", "50"]) == 0
    err = capsys.readouterr().err
    assert "the experiments end at different points (point-robot/other at Epoch 3, point-robot/long at Epoch 5)" in err
    assert "different lengths (" not in err


def test_plot_labels_name_the_curves_one_per_experiment(tmp_path, capsys, monkeypatch):
    for w in (10, 25):
        for seed in (0, 1):
            _run(tmp_path, "point-robot", f"g__club_loss_weight={w}", seed, 4)
    env = str(tmp_path / "point-robot")
    seen = capture_figures(monkeypatch)
    assert rplot.main([env, "--out", str(tmp_path / "c.png"), "--no-reference", "--reps", "20",
                       "--labels", "CLUB weight 10, CLUB weight 25"]) == 0
    curves, intervals = seen
    assert legend_texts(curves)[:2] == ["CLUB weight 10 (mean of 2 seeds)", "CLUB weight 25 (mean of 2 seeds)"]
    ticks = [t.get_text() for t in visible_axes(intervals)[0].get_yticklabels()]
    assert ticks == ["CLUB weight 10 (2 seeds)", "CLUB weight 25 (2 seeds)"]
    table = pd.read_csv(tmp_path / "c_aggregates.csv")
    assert list(dict.fromkeys(table["experiment"])) == ["CLUB weight 10", "CLUB weight 25"]
    capsys.readouterr()
    for labels, message in (("one", "--labels gives 1 label for 2 experiments (point-robot/g__club_loss_weight=10, "
                                    "point-robot/g__club_loss_weight=25)"),
                            ("a,b,c", "--labels gives 3 labels for 2 experiments"),
                            ("a,a", "--labels names 'a' twice"),
                            ("a,", "--labels has an empty label")):
        assert rplot.main([env, "--out", str(tmp_path / "d.png"), "--no-reference", "--labels", labels]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "d.png").exists()


def test_a_grid_s_aggregate_figure_has_no_text_over_text(tmp_path, monkeypatch):
    """A grid's experiment names are long (EXP__club_loss_weight=10__latent_size=5): as y tick labels they
    squeezed the panels until titles and tick labels ran into each other."""
    for w in (10, 25):
        for size in (5, 8):
            for seed in (0, 1, 2):
                _run(tmp_path, "point-robot", f"CSRO__club_loss_weight={w}__latent_size={size}", seed, 5)
    seen = capture_figures(monkeypatch)
    assert rplot.main([str(tmp_path / "point-robot"), "--out", str(tmp_path / "c.png"), "--no-reference",
                       "--reps", "20"]) == 0
    curves, intervals = seen
    for fig in seen:
        assert_legible_at_its_width(fig)
    names = " ".join(t.get_text() for t in visible_axes(intervals)[0].get_yticklabels())
    assert "club_loss_weight=25" in names and "latent_size=8" in names
    # long labels and wide numbers: three panels side by side would collide, so they stack
    for w in (10, 25):
        for seed in (0, 1, 2):
            run = _run(tmp_path / "wide", "point-robot", f"w{w}", seed, 5)
            frame = pd.read_csv(run / "progress.csv")
            frame[list(PROGRESS_KEYS.values())] *= 617.3
            frame.to_csv(run / "progress.csv", index=False)
    labels = ",".join(f"CSRO with its CLUB weight at {w} and the paper's latent size" for w in (10, 25))
    assert rplot.main([str(tmp_path / "wide" / "point-robot"), "--out", str(tmp_path / "w.png"), "--no-reference",
                       "--reps", "20", "--labels", labels]) == 0
    stacked = seen[-1]
    assert_legible_at_its_width(stacked)
    assert len({round(ax.get_position().y0, 3) for ax in visible_axes(stacked)}) == 3


def _set_variant(run: Path, **settings) -> None:
    variant = json.loads((run / "variant.json").read_text())
    for dotted, value in settings.items():
        node = variant
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    (run / "variant.json").write_text(json.dumps(variant))


def test_plot_refuses_to_average_seeds_made_with_other_settings(tmp_path, capsys):
    """`--restart` with other settings re-makes a seed in the same experiment folder: rlkit.plot averaged it
    with its siblings as one curve. Seeds whose variant.json differ in more than the seed and where the
    run ran are refused, naming the keys."""
    runs = [_run(tmp_path, "point-robot", "exp", s, 4) for s in range(3)]
    for i, run in enumerate(runs):  # where and as which seed each ran: the same experiment
        _set_variant(run, seed=i, util_params__base_log_dir=f"/disk{i}", algo_params__data_dir=f"/data{i}",
                     latent_size=5, algo_params__policy_lr=3e-4, algo_params__num_iterations=4 + i)
    out = tmp_path / "c.png"
    assert rplot.main([str(tmp_path / "point-robot" / "exp"), "--out", str(out), "--no-reference",
                       "--reps", "20"]) == 0
    _set_variant(runs[2], latent_size=9, algo_params__policy_lr=1e-3)
    assert rplot.main([str(tmp_path / "point-robot" / "exp"), "--out", str(tmp_path / "d.png"),
                       "--no-reference"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the seeds of point-robot/exp were made with different "
                                               "settings: seed2 differs from seed0 in algo_params.policy_lr, "
                                               "latent_size")
    assert not (tmp_path / "d.png").exists()


def test_plot_legend_counts_only_seeds_with_data(tmp_path, monkeypatch):
    key = PROGRESS_KEYS["online"]
    _run(tmp_path, "point-robot", "exp", 0, 3)
    _run(tmp_path, "point-robot", "exp", 1, 3, online=[np.nan] * 3)  # no online evaluation yet
    loaded = rplot.load_runs([tmp_path / "point-robot" / "exp"], keys=[key, PROGRESS_KEYS["offline"]],
                             references=False)
    members = loaded.groups["point-robot/exp"]
    assert rplot.seeds_with_data(loaded, members, key) == 1
    assert rplot.seeds_with_data(loaded, members, PROGRESS_KEYS["offline"]) == 2
    seen = capture_figures(monkeypatch)
    rplot.plot_runs(None, out=tmp_path / "c.png", loaded=loaded)
    assert legend_texts(seen[0])[:2] == ["point-robot/exp (1 seed)", "point-robot/exp (mean of 2 seeds)"]


# ------------------------------------------------------------------------------ figures fit for a paper
def png_dpi(path: Path) -> float:
    """The resolution a PNG declares (its pHYs chunk, pixels per metre), in dots per inch."""
    import struct

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"pHYs":
            x, y, unit = struct.unpack(">IIB", data[pos + 8:pos + 17])
            assert unit == 1 and x == y  # metres, square pixels
            return x * 0.0254
        pos += 12 + length
    raise AssertionError(f"{path} has no pHYs chunk")


def png_size(path: Path) -> tuple[int, int]:
    import struct

    return struct.unpack(">II", path.read_bytes()[16:24])


@pytest.fixture(autouse=True)
def _close_captured_figures():
    """Figures kept open by :func:`capture_figures` are closed after each test."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def capture_figures(monkeypatch, module=rplot) -> list:
    """Keep the figures ``module`` would save (open, for inspection) instead of writing them."""
    seen = []
    monkeypatch.setattr(module, "save_figure", lambda fig, path, formats=(): seen.append(fig) or path)
    return seen


def figure_texts(fig) -> list:
    """Every text a drawn figure shows: titles, axis labels, the tick labels inside the axes' limits, legends."""
    fig.canvas.draw()
    texts = list(fig.texts) + [t for legend in fig.legends for t in legend.get_texts()]
    for ax in visible_axes(fig):
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, ax.xaxis.offsetText, ax.yaxis.offsetText]
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            texts += [lab for loc, lab in zip(axis.get_ticklocs(), axis.get_ticklabels())
                      if lo - 1e-9 <= loc <= hi + 1e-9]
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def legend_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def visible_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.get_visible()]


def bands(ax) -> list:
    from matplotlib.collections import PolyCollection

    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_plot_writes_a_high_resolution_png_and_a_vector_file_in_the_formats_asked(tmp_path, capsys):
    _run(tmp_path, "point-robot", "exp", 0, 5)
    _run(tmp_path, "point-robot", "exp", 1, 5)
    exp = tmp_path / "point-robot" / "exp"
    assert rplot.main([str(exp), "--out", str(tmp_path / "c.png"), "--no-reference", "--reps", "50"]) == 0
    printed = capsys.readouterr().out.splitlines()
    for stem in ("c", "c_aggregates"):
        png, pdf = tmp_path / f"{stem}.png", tmp_path / f"{stem}.pdf"
        assert str(png) in printed and str(pdf) in printed
        assert png_dpi(png) >= 200 and pdf.read_bytes()[:5] == b"%PDF-"
        width_in = png_size(png)[0] / png_dpi(png)
        assert 6.0 < width_in <= rplot.FULL_WIDTH_IN + 0.05  # three panels: the width of a two-column page
    # --format: the aggregates follow it too, and --out's own format is always written
    assert rplot.main([str(exp), "--out", str(tmp_path / "v.svg"), "--format", "png", "--no-reference",
                       "--reps", "50"]) == 0
    for stem in ("v", "v_aggregates"):
        assert (tmp_path / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
        assert png_dpi(tmp_path / f"{stem}.png") >= 200 and not (tmp_path / f"{stem}.pdf").exists()
    capsys.readouterr()
    for bad in (["--format", "png,gif"], ["--out", str(tmp_path / "c.jpg")]):
        assert rplot.main([str(exp), *bad, "--no-reference"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "pdf" in err


def test_plot_text_is_9_pt_at_the_figure_s_printed_width(tmp_path, monkeypatch):
    data = _dataset(tmp_path)
    runs = _runs_with_dataset(tmp_path, data)
    seen = capture_figures(monkeypatch)
    assert rplot.main([str(runs[0].parent), "--out", str(tmp_path / "c.png"), "--reps", "50"]) == 0
    assert rplot.main([str(runs[0].parent), "--keys", PROGRESS_KEYS["online"], "--out", str(tmp_path / "one.png"),
                       "--reps", "50"]) == 0
    assert rplot.main([str(runs[0].parent), "--out", str(tmp_path / "n.png"), "--reps", "50", "--normalized"]) == 0
    curves, intervals, one, one_intervals, normalized, normalized_intervals = seen
    assert one.get_figwidth() == rplot.COLUMN_WIDTH_IN and curves.get_figwidth() == rplot.FULL_WIDTH_IN
    for fig in seen:
        assert_legible_at_its_width(fig)


def assert_legible_at_its_width(fig) -> None:
    """Every text 9 pt or more; none sticks out of the figure's width (placed at that width, the figure
    prints at its size) nor covers another text."""
    texts = figure_texts(fig)
    assert len(texts) > 10
    assert [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 9] == []
    boxes = [(t.get_text(), t.get_window_extent()) for t in texts]
    for i, (text, box) in enumerate(boxes):
        assert box.x0 >= -1 and box.x1 <= fig.bbox.x1 + 1, text
        assert not [other for other, b in boxes[i + 1:] if box.overlaps(b)], text


def test_plot_wraps_a_legend_too_wide_for_the_figure(tmp_path, monkeypatch):
    exp = "an_experiment_name_long_enough_to_be_wider_than_one_column_of_a_paper_at_nine_points"
    _run(tmp_path, "point-robot", exp, 0, 3)
    seen = capture_figures(monkeypatch)
    rplot.plot_runs([tmp_path / "point-robot" / exp], keys=[PROGRESS_KEYS["online"]], out=tmp_path / "c.png",
                    references=False)
    fig = seen[0]
    assert "\n" in legend_texts(fig)[0] and legend_texts(fig)[0].replace("\n  ", " ").startswith("point-robot/")
    fig.canvas.draw()
    assert fig.legends[0].get_window_extent().width <= fig.bbox.width


def test_plot_band_only_where_two_seeds_have_data_and_says_what_it_is(tmp_path, monkeypatch):
    key, off = PROGRESS_KEYS["online"], PROGRESS_KEYS["offline"]
    _run(tmp_path, "point-robot", "exp", 0, 5)
    _run(tmp_path, "point-robot", "exp", 1, 5, online=[np.nan, np.nan, np.nan, -17.0, -16.0])
    _run(tmp_path, "point-robot", "exp", 2, 5, online=[np.nan] * 5)
    _run(tmp_path, "point-robot", "solo", 0, 5)
    seen = capture_figures(monkeypatch)
    for band in ("minmax", "std", "none"):
        rplot.plot_runs([tmp_path / "point-robot" / "exp", tmp_path / "point-robot" / "solo"], keys=[key, off],
                        out=tmp_path / "c.png", references=False, band=band)
    minmax, std, none = seen
    online, offline = visible_axes(minmax)
    assert len(bands(online)) == 1 and len(bands(offline)) == 1  # the one-seed experiment has none
    assert bands(online)[0].get_paths()[0].vertices[:, 0].min() == 3  # epochs 3-4: two seeds; before, one
    assert bands(offline)[0].get_paths()[0].vertices[:, 0].min() == 0
    assert "min-max over 2-3 seeds" in legend_texts(minmax)
    assert "mean ± std over 2-3 seeds" in legend_texts(std)
    assert all(not bands(ax) for ax in visible_axes(none)) and not any("over" in t for t in legend_texts(none))
    # the online panel counts 2 seeds with data, the offline panel 3
    assert legend_texts(minmax)[:3] == ["point-robot/exp (mean of 2 seeds)", "point-robot/solo (1 seed)",
                                        "point-robot/exp (mean of 3 seeds)"]
    # one seed everywhere: no band, no band in the legend
    rplot.plot_runs([tmp_path / "point-robot" / "solo"], keys=[key], out=tmp_path / "c.png", references=False)
    assert not bands(visible_axes(seen[-1])[0]) and legend_texts(seen[-1]) == ["point-robot/solo (1 seed)"]


def test_plot_iteration_ticks_are_whole_numbers(tmp_path, monkeypatch):
    _run(tmp_path, "point-robot", "exp", 0, 5)
    seen = capture_figures(monkeypatch)
    rplot.plot_runs([tmp_path / "point-robot" / "exp"], out=tmp_path / "c.png", references=False)
    for ax in visible_axes(seen[0]):
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert len(ticks) >= 3 and all(float(t).is_integer() for t in ticks), ticks


def test_plot_normalized_titles_labels_and_reference_lines_say_so(tmp_path, monkeypatch):
    data = _dataset(tmp_path)
    runs = _runs_with_dataset(tmp_path, data)
    seen = capture_figures(monkeypatch)
    args = [str(runs[0].parent), "--out", str(tmp_path / "c.png"), "--reps", "50"]
    assert rplot.main(args) == 0
    assert rplot.main([*args, "--normalized"]) == 0
    raw, raw_intervals, norm, norm_intervals = seen
    titles = [rplot.PROTOCOL_TITLES[p] for p in rplot.PROTOCOL_ORDER]
    assert [ax.get_title() for ax in visible_axes(raw)] == titles
    assert [ax.get_title() for ax in visible_axes(norm)] == [f"{t}\nnormalized score" for t in titles]
    assert [ax.get_title() for ax in visible_axes(norm_intervals)] == [f"{t}\nnormalized score" for t in titles]
    assert visible_axes(norm)[0].get_ylabel() == "normalized score"
    assert visible_axes(raw)[0].get_ylabel() == "average test return\n(2 test tasks, 20-step episodes)"
    assert {ax.get_xlabel() for ax in visible_axes(norm_intervals)} == {"final normalized score"}
    assert {ax.get_xlabel() for ax in visible_axes(raw_intervals)} == {"final test return"}
    assert "one seed's final score: mean of its last 3 evaluations" in legend_texts(raw_intervals)
    legend = " | ".join(legend_texts(norm))
    assert "uniform-random policy (score 0, return" in legend and "(score 100, return -2.0)" in legend
    assert "score" not in " | ".join(legend_texts(raw))


def test_saved_figures_are_the_same_bytes_each_time(tmp_path):
    """A vector file carried its creation date, so every regeneration of a committed figure changed it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    digests = []
    for name in ("a", "b"):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        rplot.save_figure(fig, tmp_path / f"{name}.png", formats=("png", "pdf", "svg"))
        digests.append([(tmp_path / f"{name}.{ext}").read_bytes() for ext in ("png", "pdf", "svg")])
    assert digests[0] == digests[1]


def _other_font_subsetter(monkeypatch):
    """Make matplotlib embed a different (still valid) font program, as another fontTools release does."""
    from matplotlib.backends import _backend_pdf_ps

    original = _backend_pdf_ps.font_as_file

    def other(font):
        font["head"].fontRevision = 99.0
        return original(font)

    monkeypatch.setattr(_backend_pdf_ps, "font_as_file", other)


def _save_line(path: Path, y, formats=("png", "pdf")) -> None:
    """A one-line figure saved as the plots save theirs (paper rc: TrueType fonts embedded in the PDF)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context(rplot.PAPER_RC):
        fig, ax = plt.subplots()
        ax.plot([0, 1], y, label="a curve")
        ax.set_title("a title")
        ax.legend()
        rplot.save_figure(fig, path, formats=formats)


def test_a_pdf_is_not_rewritten_when_only_its_font_program_would_change(tmp_path, monkeypatch):
    """`rlkit.reproduce --report-only` rewrote a committed PDF whose drawing had not changed, because
    another fontTools subsets the embedded font into other bytes: the tree went dirty for nothing. A
    PDF whose objects are the same apart from its font programs (and metadata) is left as it is."""
    with monkeypatch.context() as m:
        _other_font_subsetter(m)
        _save_line(tmp_path / "c.png", [1, 0])
    first = (tmp_path / "c.pdf").read_bytes()
    _save_line(tmp_path / "fresh.png", [1, 0], formats=("pdf",))
    assert (tmp_path / "fresh.pdf").read_bytes() != first  # the font programs do differ
    _save_line(tmp_path / "c.png", [1, 0])
    assert (tmp_path / "c.pdf").read_bytes() == first
    _save_line(tmp_path / "c.png", [1, 0.5])  # another drawing is written
    assert (tmp_path / "c.pdf").read_bytes() != first
    assert rplot.pdf_drawing(b"not a pdf") is None
    assert rplot.pdf_drawing(first) == rplot.pdf_drawing((tmp_path / "fresh.pdf").read_bytes())
