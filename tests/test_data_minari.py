"""Minari interchange (docs/minari.md): native -> Minari -> native, Minari's own view of the data,
recover_environment, training reading ``minari:NAMESPACE``, and bad Minari input."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("minari")

from rlkit.config import load_config  # noqa: E402
from rlkit.data import DatasetError, DatasetWriter, MultiTaskBuffer, load_offline_data, split_tasks_from_variant  # noqa: E402
from rlkit.data.__main__ import main  # noqa: E402
from rlkit.data.native import read_checkpoint_episodes, read_metadata  # noqa: E402
from rlkit.data.normalizer import load_normalizer, save_normalizer  # noqa: E402
from rlkit.data.synthetic import synthetic_episodes, write_synthetic_dataset  # noqa: E402
from rlkit.envs import make_env  # noqa: E402
from tests.helpers import REPO, small_point_robot_config  # noqa: E402

N_TASKS, STEPS, LENGTH = 4, (100, 200), 20
NS = "csro-test/point-robot"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """MINARI_DATASETS_PATH (and HOME) in a tmp folder for the whole module: nothing goes to ~/.minari."""
    root = tmp_path_factory.mktemp("minari_store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root / "datasets"))
        mp.setenv("HOME", str(root / "home"))
        yield root / "datasets"


@pytest.fixture(scope="module")
def native(tmp_path_factory, store):
    """A point-robot dataset with the env's real tasks: true terminals, time-limit ends, an episode that
    ends with neither, an episode whose next_obs is not the following obs, a normalizer and an older
    generator config."""
    root = tmp_path_factory.mktemp("minari_native") / "point-robot"
    cfg = load_config(small_point_robot_config(root.parent, n_tasks=N_TASKS, n_train=3))
    env_params = dict(cfg["env_params"])
    env = make_env("point-robot", **env_params)
    tasks = [env.task_params(i) for i in range(N_TASKS)]
    rng = np.random.default_rng(3)
    for gen in ({"seed": 1, "sac": {"num_train_steps": 300}, "note": "first"}, {"seed": 1, "note": "second"}):
        writer = DatasetWriter(root, "point-robot", env_params, tasks, 2, 2, gen, fsync=False)
    for task in range(N_TASKS):
        for step in STEPS:
            eps = synthetic_episodes(rng, task, step, 1, 3, LENGTH, 2, 2, early_end_prob=0.4)
            if (task, step) == (1, 200):
                eps[0] = dataclasses.replace(eps[0], terminated=False, truncated=False)
                nxt = eps[2].next_observations.copy()
                nxt[len(nxt) // 2] += 0.5
                eps[2] = dataclasses.replace(eps[2], next_observations=nxt)
            writer.write_checkpoint(task, step, eps)
    save_normalizer(root, np.array([2.5, 0.75]))
    assert read_metadata(root).get("generator_config_history")  # carried over too
    assert main(["convert", str(root), f"minari:{NS}", "--to", "minari"]) == 0
    return root


def test_round_trip_is_exact(native, tmp_path):
    """native -> Minari -> native gives the same data files byte for byte (every array, episode order and
    boundaries, terminal vs timeout flags), the same dataset.json (tasks, generator configs, checkpoints)
    and the same normalizer."""
    back = tmp_path / "back"
    assert main(["convert", f"minari:{NS}", str(back), "--to", "native"]) == 0
    a, b = read_metadata(native), read_metadata(back)
    a.pop("updated"), b.pop("updated")
    assert a == b
    assert sorted(a["files"]) == [f"task_{t:03d}/step_{s:08d}.npy" for t in range(N_TASKS) for s in STEPS]
    for rel in a["files"]:
        assert (native / rel).read_bytes() == (back / rel).read_bytes(), rel
    ends = [(e.terminated, e.truncated) for e in read_checkpoint_episodes(back, 1, 200)]
    assert (False, False) in ends and (True, False) in ends and (False, True) in ends
    np.testing.assert_array_equal(load_normalizer(back), [2.5, 0.75])
    assert main(["verify", f"minari:{NS}"]) == 0


def test_minari_sees_episodes_flags_and_metadata(native, store):
    """Through minari's own API: each task is one dataset whose episodes, terminations and truncations
    are the native ones, in file order, with checkpoint / action mode / index as episode metadata."""
    import minari

    names = sorted(d.name for d in (store / NS).iterdir() if d.is_dir() and d.name != "_csro_native")  # not a dataset
    assert names == [f"task-{t:03d}-v0" for t in range(N_TASKS)]
    recorded = read_metadata(native)
    for task in (0, 1):
        ds = minari.load_dataset(f"{NS}/task-{task:03d}-v0")
        meta = ds.storage.metadata
        assert meta["csro_task"] == task and meta["csro_task_params"] == recorded["tasks"][task]
        assert meta["csro_dataset"]["generator_config"] == recorded["generator_config"]
        want = [(s, e) for s in STEPS for e in read_checkpoint_episodes(native, task, s)]
        assert ds.total_episodes == len(want)
        ep_meta = list(ds.storage.get_episode_metadata(range(len(want))))
        for ep, m, (step, e) in zip(ds.iterate_episodes(), ep_meta, want):
            assert (m["behaviour_checkpoint"], m["action_mode"], m["episode_index"]) == \
                (step, "sampled" if e.sampled else "deterministic", e.index)
            np.testing.assert_array_equal(ep.observations[:-1], e.observations)
            np.testing.assert_array_equal(ep.actions, e.actions)
            np.testing.assert_array_equal(ep.rewards, e.rewards)
            term, trunc = np.zeros(len(e), bool), np.zeros(len(e), bool)
            term[-1], trunc[-1] = e.terminated, e.truncated
            np.testing.assert_array_equal(ep.terminations, term)
            np.testing.assert_array_equal(ep.truncations, trunc)


def test_a_minari_user_gets_a_card_an_eval_env_and_normalized_scores(native, store):
    """Were: author, code_permalink and requirements "Not provided", no eval_env_spec, and
    minari.get_normalized_score raised for want of ref_min_score / ref_max_score. The card holds no
    placeholder: what pyproject.toml gives (here: no authors, no URL) or nothing."""
    import minari
    from packaging.requirements import Requirement

    from rlkit.data.card import project_info
    from rlkit.data.minari_format import RANDOM_EPISODES
    from rlkit.envs.random_policy import random_policy_return

    info = project_info()
    env_params = read_metadata(native)["env_params"]
    for task in (0, 2):
        ds = minari.load_dataset(f"{NS}/task-{task:03d}-v0")
        meta = ds.storage.metadata
        assert set(meta.get("author", ())) == set(info.authors)  # minari keeps a set
        assert set(meta.get("author_email", ())) == set(info.emails)
        assert meta.get("code_permalink") == info.url
        assert {Requirement(r).name for r in meta["requirements"]} == {"gymnasium", "mujoco"}  # all on PyPI
        assert ds.recover_environment(eval_env=True).spec.kwargs["task"] == task  # the task's own env
        best = max(np.mean([e.rewards.sum() for e in read_checkpoint_episodes(native, task, s) if not e.sampled])
                   for s in STEPS)
        random = random_policy_return("point-robot", env_params, [task], LENGTH, episodes=RANDOM_EPISODES)
        assert meta["ref_max_score"] == pytest.approx(best) and meta["ref_min_score"] == pytest.approx(random)
        got = minari.get_normalized_score(ds, np.array([random, best, (random + best) / 2]))
        np.testing.assert_allclose(got, [0.0, 1.0, 0.5], atol=1e-9)


def test_the_card_names_who_made_the_data_and_a_real_url(fixed, store, capsys):
    """Were: author "CSRO reference implementation (...)" (a placeholder), no e-mail, code_permalink
    "csro 0.1.0 (...)" (no URL: `minari show` rendered a broken link) and the requirement csro==0.1.0,
    which no registry serves."""
    import minari
    from packaging.requirements import Requirement

    ns = "csro-test/card"
    assert main(["convert", str(fixed), f"minari:{ns}", "--to", "minari", "--author", "Ada Lovelace",
                 "--author-email", "ada@example.org", "--code-permalink",
                 "https://github.com/example/csro/tree/0123abc"]) == 0
    meta = minari.load_dataset(f"{ns}/task-001-v0").storage.metadata
    assert set(meta["author"]) == {"Ada Lovelace"} and set(meta["author_email"]) == {"ada@example.org"}
    assert meta["code_permalink"] == "https://github.com/example/csro/tree/0123abc"
    assert all(Requirement(r).name in ("gymnasium", "mujoco") for r in meta["requirements"])
    capsys.readouterr()
    for flag, value, says in (("--code-permalink", "csro 0.1.0", "must be a URL"),
                              ("--code-permalink", "github.com/x/y", "must be a URL"),
                              ("--author-email", "nobody", "e-mail address")):
        err = _one_line_error(capsys, ["convert", str(fixed), "minari:csro-test/bad-card", "--to", "minari",
                                       flag, value])
        assert says in err and flag in err
    assert not (store / "csro-test" / "bad-card").exists()


def test_the_cards_defaults_come_from_pyproject(tmp_path, monkeypatch):
    """One place for the card: [project] authors, urls and dependencies of pyproject.toml (or of the
    installed package's metadata); a field that has no value there is left out, never made up."""
    import rlkit.data.card as card

    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('''[project]
name = "csro"
version = "9.9"
authors = [{ name = "Grace Hopper", email = "grace@example.org" }, { name = "Alan Turing" }]
dependencies = ["torch>=2.2", "gymnasium[mujoco]>=1.0,<2", "mujoco>=3.1,<5", "numpy"]
[project.urls]
Documentation = "https://example.org/docs"
Source = "https://example.org/csro"
''')
    monkeypatch.setattr(card, "PYPROJECT", pyproject)
    info = card.project_info()
    assert info.authors == ["Grace Hopper", "Alan Turing"] and info.emails == ["grace@example.org"]
    assert info.url == "https://example.org/csro"
    assert info.requirements == ["gymnasium[mujoco]<2,>=1.0", "mujoco<5,>=3.1"]
    got, missing = card.dataset_card()
    assert got["author"] == {"Grace Hopper", "Alan Turing"} and got["author_email"] == {"grace@example.org"}
    assert got["code_permalink"] == "https://example.org/csro" and missing == []
    got, _ = card.dataset_card(author="Me", author_email="me@example.org", code_permalink="https://x.org/y")
    assert got["author"] == {"Me"} and got["author_email"] == {"me@example.org"} and got["code_permalink"] == "https://x.org/y"
    pyproject.write_text('[project]\nname = "csro"\nversion = "1"\ndependencies = ["mujoco"]\n')
    got, missing = card.dataset_card()
    assert "author" not in got and "author_email" not in got and "code_permalink" not in got
    assert missing == ["author", "author_email", "code_permalink"] and got["requirements"] == ["mujoco"]
    # this checkout's own pyproject is the one read
    monkeypatch.undo()
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert card.project_info().authors == [a["name"] for a in project.get("authors", []) if "name" in a]


def test_recover_environment_in_a_fresh_process(native, store):
    """recover_environment() in a process that never imported rlkit builds the task's env (making the
    spec imports rlkit.envs, which registers csro/PointRobot-v0)."""
    task = 2
    code = (
        "import json, sys, minari\n"
        f"ds = minari.load_dataset('{NS}/task-{task:03d}-v0')\n"
        "assert 'rlkit.envs' not in sys.modules\n"
        "env = ds.recover_environment()\n"
        "obs, _ = env.reset(seed=0)\n"
        "nxt, r, term, trunc, _ = env.step(env.action_space.sample())\n"
        "print(json.dumps({'id': env.spec.id, 'task': env.spec.kwargs['task'], 'idx': env.unwrapped.task_idx,\n"
        "                  'goal': [float(x) for x in env.unwrapped.task_params()['goal']], 'r': float(r)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    goal = read_metadata(native)["tasks"][task]["goal"]
    assert got["id"] == "csro/PointRobot-v0" and got["task"] == task and got["idx"] == task
    np.testing.assert_allclose(got["goal"], goal)
    assert np.isfinite(got["r"])


OFFLINE_FIELDS = ("task_ids", "obs", "actions", "rewards", "next_obs", "terminals", "timeouts", "episode_ends",
                  "task_offsets", "episode_offsets", "episode_task", "episode_step", "episode_sampled",
                  "episode_index", "obs_abs_max")


@pytest.mark.parametrize("sample", [True, False])
def test_loader_gives_the_native_tensors(native, store, sample):
    """load_offline_data('minari:NS') == load_offline_data(native folder), array for array, normalizer
    applied; also through the namespace's folder path and into the device buffer."""
    kw = dict(tasks=[3, 0, 1], epochs=[100, 300, 100], n_trj=2 if sample else 1, sample=sample,
              obs_dim=2, act_dim=2, env_name="point-robot", verify=True)
    want = load_offline_data(native, **kw)
    assert want.obs_abs_max is not None and want.terminals.any() and want.timeouts.any()
    for ref in (f"minari:{NS}", store / NS):
        got = load_offline_data(ref, **kw)
        assert got.layout == "minari" and got.metadata == want.metadata
        for name in OFFLINE_FIELDS:
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        rows = torch.arange(len(want))
        a, b = MultiTaskBuffer(want).gather(rows, True), MultiTaskBuffer(got).gather(rows, True)
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_a_dataset_and_its_minari_copy_have_one_fingerprint(native, store):
    """A run trained on the native folder may be evaluated on its Minari copy and the other way round:
    the fingerprint comes from the checksums both record, not from where the bytes lie."""
    from rlkit.data.loader import selection_fingerprint

    kw = dict(tasks=[3, 0], epochs=[100, 300, 100], n_trj=2, sample=True)
    want = load_offline_data(native, **kw, verify=True)
    got = load_offline_data(f"minari:{NS}", **kw, verify=True)
    assert len(want.fingerprint) == 16 and got.fingerprint == want.fingerprint
    assert selection_fingerprint(f"minari:{NS}", **kw) == want.fingerprint
    assert load_offline_data(native, **{**kw, "tasks": [3, 1]}).fingerprint != want.fingerprint


def test_meta_training_reads_algo_params_data_dir_minari(native, tmp_path):
    """The launcher's data step with algo_params.data_dir=minari:NS gives the same buffers as the native dir."""
    from rlkit.launchers.meta_train import load_experiment_data

    config = small_point_robot_config(tmp_path, n_tasks=N_TASKS, n_train=3)
    common = ["algo_params.train_epoch=[100,300,100]", "algo_params.eval_epoch=[100,300,100]",
              "algo_params.n_trj=3"]
    data = [load_experiment_data(load_config(config, [*common, f"algo_params.data_dir={d}"]), 0, torch.device("cpu"))
            for d in (native, f"minari:{NS}")]
    assert data[0].train_tasks == data[1].train_tasks and data[0].test_tasks == data[1].test_tasks
    np.testing.assert_array_equal(data[0].obs_absmax, data[1].obs_absmax)
    for part in ("train", "test"):
        a, b = getattr(data[0], part), getattr(data[1], part)
        rows = torch.arange(len(a))
        assert len(a) == len(b)
        for key, value in a.gather(rows, True).items():
            assert torch.equal(value, b.gather(rows, True)[key]), (part, key)


def test_auto_checkpoints_and_episode_counts_on_minari_data(native, tmp_path):
    """Was: algo_params.train_epoch=auto on minari:NS failed with "... lacks dataset.json (a reference-layout
    dataset?)", although the namespace records the same file table. The launcher's own resolver gives the
    same selection as on the native folder."""
    from rlkit.launchers import meta_train

    config = small_point_robot_config(tmp_path, n_tasks=N_TASKS, n_train=3)
    auto = ["algo_params.train_epoch=auto", "algo_params.eval_epoch=auto", "algo_params.n_trj=auto"]
    got = {}
    for d in (native, f"minari:{NS}"):
        cfg = load_config(config, [*auto, f"algo_params.data_dir={d}"])
        train, test = split_tasks_from_variant(cfg, 0)
        algo = meta_train.resolve_auto(cfg["algo_params"], train, test)
        got[str(d)] = (algo["train_epoch"], algo["eval_epoch"], algo["n_trj"])
    assert got[f"minari:{NS}"] == got[str(native)] == ([100, 300, 100], [100, 300, 100], 3)


def test_auto_on_the_reference_layout_says_why(native, tmp_path):
    from rlkit.launchers import meta_train

    legacy = tmp_path / "legacy"
    assert main(["convert", str(native), str(legacy), "--to", "legacy"]) == 0
    cfg = load_config(small_point_robot_config(tmp_path, n_tasks=N_TASKS, n_train=3),
                      ["algo_params.train_epoch=auto", f"algo_params.data_dir={legacy}"])
    with pytest.raises(DatasetError, match="reference layout, which records no checkpoints.*--to native"):
        meta_train.resolve_auto(cfg["algo_params"], [0, 1, 2], [3])


def test_a_run_on_minari_data_gets_the_same_reference_returns_as_on_the_native_data(native, tmp_path):
    """Was: "normalized scores: NaN (dataset minari:... is not here)", and plot --normalized failed on the run.
    The behaviour references come from the dataset's deterministic episodes when there is no generator log."""
    from rlkit.evaluation.reference import reference_returns

    config = small_point_robot_config(tmp_path, n_tasks=N_TASKS, n_train=3)
    common = ["algo_params.train_epoch=[100,300,100]", "algo_params.eval_epoch=[100,300,100]",
              "algo_params.n_trj=3"]
    refs = [reference_returns(load_config(config, [*common, f"algo_params.data_dir={d}"]), 0)
            for d in (native, f"minari:{NS}")]
    assert refs[1].behaviour_best is not None and np.isfinite(refs[1].behaviour_best)
    for field in ("random", "behaviour_best", "behaviour_best_step", "behaviour_data", "tasks"):
        assert getattr(refs[0], field) == pytest.approx(getattr(refs[1], field)), field
    _, test = split_tasks_from_variant(load_config(config, common), 0)
    per_step = {s: np.mean([np.mean([e.rewards.sum() for e in read_checkpoint_episodes(native, t, s) if not e.sampled])
                            for t in test]) for s in STEPS}
    assert refs[1].behaviour_best == pytest.approx(max(per_step.values()))


def test_later_loads_read_the_checked_native_cache_not_the_minari_episodes(native, store, monkeypatch):
    """Loading from Minari was ~150x the native time (one HDF5 group per episode). The conversion seeds
    a native cache in the namespace, and a namespace without one caches the rebuilt files on its first
    load; loads read them, checked against the recorded
    checksums, and a damaged cache file is rebuilt, never used. `verify` reads Minari itself."""
    from rlkit.data.minari_format import NATIVE_CACHE, MinariSource, resolve

    args = dict(tasks=[0, 1, 2], epochs=[100, 300, 100], n_trj=3, verify=True)
    want = load_offline_data(native, args["tasks"], args["epochs"], args["n_trj"], verify=True)
    cache = resolve(f"minari:{NS}")[0] / NATIVE_CACHE
    rebuilt = []
    real = MinariSource._rebuilt_records
    monkeypatch.setattr(MinariSource, "_rebuilt_records", lambda self, rel, *a, **k: rebuilt.append(rel) or real(
        self, rel, *a, **k))
    # the conversion seeded the cache: even the first load reads no Minari episode
    got = load_offline_data(f"minari:{NS}", args["tasks"], args["epochs"], args["n_trj"], verify=True)
    assert rebuilt == [] and np.array_equal(got.obs, want.obs) and np.array_equal(got.rewards, want.rewards)
    # a namespace without the cache (copied without it) rebuilds on its first load and caches the result
    import shutil

    shutil.rmtree(cache)
    load_offline_data(f"minari:{NS}", args["tasks"], args["epochs"], args["n_trj"], verify=True)
    assert len(rebuilt) == 3 * len(STEPS) and rebuilt.clear() is None
    assert (cache / "task_001" / "step_00000200.npy").read_bytes() == (native / "task_001" / "step_00000200.npy").read_bytes()
    got = load_offline_data(f"minari:{NS}", args["tasks"], args["epochs"], args["n_trj"], verify=True)
    assert rebuilt == [] and np.array_equal(got.obs, want.obs) and np.array_equal(got.rewards, want.rewards)
    damaged = cache / "task_002" / "step_00000100.npy"
    data = bytearray(damaged.read_bytes())
    data[-3] ^= 0xFF
    damaged.write_bytes(bytes(data))
    got = load_offline_data(f"minari:{NS}", args["tasks"], args["epochs"], args["n_trj"], verify=True)
    assert rebuilt == ["task_002/step_00000100.npy"] and np.array_equal(got.obs, want.obs)
    assert damaged.read_bytes() == (native / "task_002" / "step_00000100.npy").read_bytes()  # rewritten
    rebuilt.clear()
    assert main(["verify", f"minari:{NS}"]) == 0 and len(rebuilt) == N_TASKS * len(STEPS)  # Minari, not the cache


FIXED_NS = "csro-test/fixed-length"


@pytest.fixture(scope="module")
def fixed(tmp_path_factory, store):
    """A point-robot dataset whose episodes all have the same length, so that every checkpoint file has
    the same size (what a swap between tasks keeps), converted to Minari."""
    root = tmp_path_factory.mktemp("minari_fixed") / "point-robot"
    cfg = load_config(small_point_robot_config(root.parent, n_tasks=4, n_train=3))
    env_params = dict(cfg["env_params"])
    env = make_env("point-robot", **env_params)
    writer = DatasetWriter(root, "point-robot", env_params, [env.task_params(i) for i in range(4)], 2, 2,
                           {"seed": 1}, fsync=False)
    rng = np.random.default_rng(5)
    for task in range(3):
        for step in STEPS:
            writer.write_checkpoint(task, step, synthetic_episodes(rng, task, step, 1, 2, LENGTH, 2, 2,
                                                                   early_end_prob=0.0))
    assert main(["convert", str(root), f"minari:{FIXED_NS}", "--to", "minari"]) == 0
    return root


def test_a_cache_swapped_between_tasks_is_found_by_verify_and_never_trained_on(fixed, store, capsys, monkeypatch):
    """Was: with --no-verify the cache was trusted by its size alone, so two tasks' cache files swapped
    (same size) trained each task on the other's data, and `verify minari:NS` never read the cache and
    reported 0 problems. Now every cache file is checked against the SHA-256 the namespace records: once,
    then a stamp of its inode, size and times stands for the check (a swap or an in-place copy changes
    them), and verify hashes the cache too."""
    import rlkit.data.minari_format as mf

    args = dict(tasks=[0, 1, 2], epochs=[100, 300, 100], n_trj=2)
    want = load_offline_data(fixed, **args, verify=True)
    cache = mf.resolve(f"minari:{FIXED_NS}")[0] / mf.NATIVE_CACHE
    a, b = cache / "task_000" / "step_00000100.npy", cache / "task_001" / "step_00000100.npy"
    c, d = cache / "task_002" / "step_00000200.npy", cache / "task_000" / "step_00000200.npy"
    assert a.stat().st_size == b.stat().st_size and a.read_bytes() != b.read_bytes()

    # a cache made by the conversion is stamped: a --no-verify load hashes nothing
    hashed = []
    real_sha = mf.sha256_hex
    monkeypatch.setattr(mf, "sha256_hex", lambda raw: hashed.append(len(raw)) or real_sha(raw))
    got = load_offline_data(f"minari:{FIXED_NS}", **args, verify=False)
    assert hashed == [] and np.array_equal(got.obs, want.obs)
    monkeypatch.undo()

    # swapped by renames (other inodes at each path) and by copying bytes over (same inode, new ctime)
    tmp = a.with_name("swap")
    a.rename(tmp), b.rename(a), tmp.rename(b)
    c_bytes = c.read_bytes()
    c.write_bytes(d.read_bytes()), d.write_bytes(c_bytes)
    assert main(["verify", f"minari:{FIXED_NS}"]) == 1
    out = capsys.readouterr().out
    for p in (a, b, c, d):
        assert f"{p.relative_to(store)} does not match" in out or f"{p} does not match" in out, out
    for verify in (False, True):
        got = load_offline_data(f"minari:{FIXED_NS}", **args, verify=verify)
        for name in ("obs", "actions", "rewards", "next_obs", "terminals"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    for p in (a, b, c, d):  # rebuilt from the Minari episodes, byte for byte the native files
        assert p.read_bytes() == (fixed / p.relative_to(cache)).read_bytes()
    assert "rebuilt" in capsys.readouterr().err
    assert main(["verify", f"minari:{FIXED_NS}"]) == 0


# ---- bad input ------------------------------------------------------------------------------


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_foreign_minari_dataset_is_refused(store, tmp_path, capsys):
    import gymnasium
    import minari
    from minari.data_collector import EpisodeBuffer

    box = gymnasium.spaces.Box(-1, 1, (2,), np.float32)
    buf = EpisodeBuffer(observations=np.zeros((4, 2), np.float32), actions=np.zeros((3, 2), np.float32),
                        rewards=np.zeros(3), terminations=np.array([0, 0, 1], bool), truncations=np.zeros(3, bool))
    with pytest.warns(UserWarning):
        minari.create_dataset_from_buffers("foreign/plain-v0", [buf], observation_space=box, action_space=box)
    for ref in ("minari:foreign", "minari:foreign/plain-v0"):
        with pytest.raises(DatasetError, match="not a CSRO|not written by"):
            load_offline_data(ref, [0], 100, 1)
        err = _one_line_error(capsys, ["convert", ref, str(tmp_path / "x"), "--to", "native"])
        assert "CSRO" in err or "rlkit.data convert" in err
    err = _one_line_error(capsys, ["convert", "minari:no-such-namespace", str(tmp_path / "y"), "--to", "native"])
    assert "no Minari namespace" in err and "MINARI_DATASETS_PATH" in err


def test_a_damaged_native_file_is_refused_before_any_minari_dataset_is_written(native, store, tmp_path, capsys):
    copy = tmp_path / "damaged"
    shutil.copytree(native, copy)
    target = copy / "task_003" / "step_00000200.npy"  # the last file: earlier tasks would convert first
    data = bytearray(target.read_bytes())
    data[-5] ^= 0xFF
    target.write_bytes(bytes(data))
    err = _one_line_error(capsys, ["convert", str(copy), "minari:csro-test/damaged", "--to", "minari"])
    assert "task_003/step_00000200.npy fails its SHA-256 check" in err
    assert not (store / "csro-test" / "damaged").exists()  # nothing half-written to delete


@pytest.mark.parametrize("where", ["hdf5", "cache", "namespace"])
def test_a_full_disk_during_export_is_one_line_and_leaves_nothing(fixed, store, capsys, monkeypatch, where):
    """Was: an h5py traceback, and a half-written namespace (and its parent namespace) left in the store.
    The disk fills in Minari's HDF5 writer on the second task, in the native cache, or in the last write
    (the namespace metadata)."""
    import errno

    import minari.namespace
    from minari.dataset._storages.hdf5_storage import HDF5Storage

    import rlkit.data.minari_format as mf

    calls = {"n": 0}

    def full(real):
        def write(*a, **k):
            calls["n"] += 1
            if calls["n"] >= 2 or where == "namespace":
                raise OSError(errno.ENOSPC, "No space left on device", str(store / "somewhere" / "main_data.hdf5"))
            return real(*a, **k)
        return write

    if where == "hdf5":
        monkeypatch.setattr(HDF5Storage, "update_episodes", full(HDF5Storage.update_episodes))
    elif where == "cache":
        monkeypatch.setattr(mf, "atomic_write_bytes", full(mf.atomic_write_bytes))
    else:
        monkeypatch.setattr(minari.namespace, "update_namespace_metadata", full(minari.namespace.update_namespace_metadata))
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    capsys.readouterr()
    err = _one_line_error(capsys, ["convert", str(fixed), "minari:csro-full/ns", "--to", "minari", "--author", "A",
                                   "--author-email", "a@example.org", "--code-permalink", "https://example.org/a"])
    assert "No space left on device" in err and "main_data.hdf5" in err and "csro-full/ns" in err, err
    assert "removed" in err and "free some disk space" in err
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before  # not even the parent namespace


def test_missing_csro_metadata_is_refused(native, store, tmp_path, capsys):
    """A copy of the namespace (read by folder path) whose task dataset lost its csro metadata, or whose
    episodes no longer match it."""
    copy = tmp_path / "copy"
    shutil.copytree(store / NS, copy)
    meta_path = copy / "task-001-v0" / "data" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    files = meta.pop("csro_files")
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="csro_files"):
        load_offline_data(copy, [0], 100, 1)
    _one_line_error(capsys, ["info", str(copy)])
    rel = "task_001/step_00000100.npy"
    files[rel]["episodes"]["sampled"]["length"][0] += 1  # the table no longer matches the stored episodes
    meta_path.write_text(json.dumps({**meta, "csro_files": files}))
    with pytest.raises(DatasetError, match="do not match"):
        load_offline_data(copy, [1], 100, 1)
    meta_path.write_text(json.dumps({**meta, "csro_files": files, "total_episodes": meta["total_episodes"] - 1}))
    with pytest.raises(DatasetError, match="holds .* episodes but"):
        load_offline_data(copy, [0], 100, 1)


def test_conversion_refusals(native, store, tmp_path, capsys):
    # the namespace exists already
    err = _one_line_error(capsys, ["convert", str(native), f"minari:{NS}", "--to", "minari"])
    assert "already exists" in err
    # a legacy source goes through native first
    legacy = tmp_path / "legacy"
    assert main(["convert", str(native), str(legacy), "--to", "legacy"]) == 0
    assert "native first" in _one_line_error(capsys, ["convert", str(legacy), "minari:x/legacy", "--to", "minari"])
    # an env gymnasium cannot rebuild: refused before anything is written
    synth = write_synthetic_dataset(tmp_path / "synth", 1, [100], env_name="synthetic")
    assert "not a registered env" in _one_line_error(capsys, ["convert", str(synth), "minari:x/s", "--to", "minari"])
    assert not (store / "x" / "s").exists()
    # a Minari name as the destination of a non-Minari conversion
    assert "--to minari" in _one_line_error(capsys, ["convert", str(native), "minari:x/y", "--to", "legacy"])
    # the normalizer is computed on the native dataset, not on its Minari copy
    assert "native dataset" in _one_line_error(capsys, ["normalizer", f"minari:{NS}"])
    # a namespace is path parts of letters, digits, '_' and '-': '..' used to write outside the store
    # (then a traceback from Minari's id parser)
    for ns in ("../../escape", "x/../y", "x//y", "a b"):
        err = _one_line_error(capsys, ["convert", str(native), f"minari:{ns}", "--to", "minari"])
        assert "Minari namespace parts are letters, digits" in err
    assert not (store.parent / "escape").exists() and not (store.parent.parent / "escape").exists()


def test_without_minari_installed_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # import minari -> ImportError
    with pytest.raises(DatasetError, match=r"pip install 'csro\[minari\]'"):
        load_offline_data("minari:csro/point-robot", [0], 100, 1)
