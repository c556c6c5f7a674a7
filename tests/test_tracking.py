"""Run tracking: Weights & Biases (a fake module, wandb is not a dependency) and TensorBoard tags / hparams."""

from __future__ import annotations

import json
import os
import sys
import types

import pandas as pd
import pytest

from rlkit.cli import meta_train as launch_experiment
from rlkit.core.logger import RunLogger
from rlkit.core.tracking import WANDB_ID_FILE, key_hparams
from tests.helpers import small_point_robot_config

TINY = ["algo_params.train_epoch=[100,200,100]", "algo_params.eval_epoch=[100,200,100]", "algo_params.n_trj=2",
        "algo_params.num_train_steps_per_itr=2", "algo_params.embedding_batch_size=16", "algo_params.batch_size=16",
        "algo_params.num_steps_per_eval=20", "net_size=32", "latent_size=4"]


class FakeWandb(types.ModuleType):
    """Records what a run sends to ``wandb``."""

    def __init__(self):
        super().__init__("wandb")
        self.inits, self.logs, self.finished = [], [], 0

    def init(self, **kwargs):
        self.inits.append(kwargs)
        fake = self

        class Run:
            def log(self, row, step=None):
                fake.logs.append((dict(row), step))

            def finish(self):
                fake.finished += 1

        return Run()


def tiny_run(tiny_csro_run, tmp_path, *extra, iterations=2):
    config = small_point_robot_config(tmp_path, n_tasks=8, n_train=6, meta_batch=4)
    args = [str(config), "--seed", "4", "--exp_name", "trk", f"algo_params.data_dir={tiny_csro_run.data_dir}",
            f"util_params.base_log_dir={tmp_path / 'out'}", f"algo_params.num_iterations={iterations}", *TINY, *extra]
    return launch_experiment.main(args), tmp_path / "out" / "point-robot" / "trk" / "seed4"


def test_wandb_gets_the_variant_and_every_progress_row(tiny_csro_run, tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)  # online: a key is needed (never sent: wandb is fake)
    status, run_dir = tiny_run(tiny_csro_run, tmp_path, "--wandb")
    assert status == 0
    (init,) = fake.inits
    variant = json.loads((run_dir / "variant.json").read_text())
    assert variant["util_params"]["wandb"] is True
    assert (init["project"], init["group"], init["name"]) == ("point-robot", "trk", "trk-seed4")
    assert json.loads(json.dumps(init["config"])) == variant
    assert init["id"] == (run_dir / WANDB_ID_FILE).read_text().strip() and init["resume"] == "allow"
    progress = pd.read_csv(run_dir / "progress.csv")
    assert [step for _, step in fake.logs] == list(progress["Epoch"]) == [0, 1]
    for (row, _), (_, csv_row) in zip(fake.logs, progress.iterrows()):
        # keys grouped into W&B sections (was ~100 flat keys in one): group/COLUMN, one per column
        groups = {key.split("/", 1)[0] for key in row}
        assert groups == {"train", "eval", "time", "diagnostics"}
        column = {key: key if key in progress.columns else key.split("/", 1)[1] for key in row}  # eval/... stays
        assert set(column.values()) == set(progress.columns)
        assert {"train/QF Loss", "eval/Average_OnlineReturn_all_test_tasks", "time/Epoch",
                "diagnostics/Z variance eval"} <= set(row)
        for key, value in row.items():  # NaN where the run does not compute a column (no BRAC: div_estimate)
            assert value == pytest.approx(csv_row[column[key]], rel=1e-12, nan_ok=True), key
    assert fake.finished == 1

    # resuming the run (two more iterations) continues the same W&B run
    status, _ = tiny_run(tiny_csro_run, tmp_path, "--wandb", "--resume", str(run_dir), iterations=4)
    assert status == 0 and fake.inits[1]["id"] == init["id"] and fake.finished == 2
    assert [step for _, step in fake.logs] == [0, 1, 2, 3]


def test_wandb_missing_is_one_line_before_anything_is_written(tiny_csro_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    status, run_dir = tiny_run(tiny_csro_run, tmp_path, "util_params.wandb=true")
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("error: ") and "pip install wandb" in err[0]
    assert not run_dir.exists()
    status, _ = tiny_run(tiny_csro_run, tmp_path, "--wandb", "--seeds", "0,1")  # a sweep says it once
    assert status == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


# A stand-in for the real package in a subprocess: wandb.init without a key raises, as wandb's UsageError does,
# after leaving a trace that it was reached.
FAKE_WANDB_PACKAGE = """
import os
from pathlib import Path


class UsageError(Exception):
    pass


def init(**kwargs):
    Path(os.environ["FAKE_WANDB_MARKER"]).write_text("wandb.init was called")
    raise UsageError("api_key not configured (no-tty). call wandb.login(key=[your_api_key])")
"""


def _no_wandb_env(tmp_path, **extra) -> dict:
    """A clean environment: no WANDB_* variables, HOME an empty folder (no ~/.netrc, no wandb settings)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k not in ("NETRC", "HOME")}
    return {**env, "HOME": str(home), **extra}


def test_wandb_online_without_a_key_is_one_line_and_writes_nothing(tiny_csro_run, tmp_path):
    """As a user meets it: a real process, no key anywhere. Before: wandb's UsageError traceback, after the
    run folder was made. Now: one line saying how to get a key or log offline, and no run folder."""
    import subprocess

    from tests.helpers import REPO

    fake = tmp_path / "fake-site"
    (fake / "wandb").mkdir(parents=True)
    (fake / "wandb" / "__init__.py").write_text(FAKE_WANDB_PACKAGE)
    marker, out = tmp_path / "init-called", tmp_path / "out"
    config = small_point_robot_config(tmp_path, n_tasks=8, n_train=6, meta_batch=4)
    env = _no_wandb_env(tmp_path, PYTHONPATH=f"{REPO}:{fake}", FAKE_WANDB_MARKER=str(marker))
    cmd = [sys.executable, str(REPO / "launch_experiment.py"), str(config), "--wandb", "--exp_name", "nokey",
           f"algo_params.data_dir={tiny_csro_run.data_dir}", f"util_params.base_log_dir={out}",
           "algo_params.num_iterations=1", *TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(err) == 1 and err[0].startswith("error: ") and "API key" in err[0] and "WANDB_MODE=offline" in err[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not marker.exists()


def test_wandb_sweep_without_a_key_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", FakeWandb())
    for key, value in _no_wandb_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("WANDB_") or k == "NETRC"]:
        monkeypatch.delenv(key)
    config = small_point_robot_config(tmp_path)
    status = launch_experiment.main([str(config), "--wandb", "--seeds", "0,1",
                                     f"util_params.base_log_dir={tmp_path / 'out'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "API key" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["env", "netrc", "NETRC", "settings", "identity-token"])
def test_wandb_key_found_where_wandb_looks(tmp_path, where):
    from rlkit.core.tracking import check_wandb_credentials, wandb_credentials

    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home)}
    assert wandb_credentials(env) is None
    if where == "env":
        env["WANDB_API_KEY"] = "k" * 40
    elif where == "netrc":
        (home / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    elif where == "NETRC":
        (tmp_path / "n").write_text("machine wandb.example.org login user password secret\n")
        env.update(NETRC=str(tmp_path / "n"), WANDB_BASE_URL="https://wandb.example.org")
    elif where == "settings":
        (home / ".config" / "wandb").mkdir(parents=True)
        (home / ".config" / "wandb" / "settings").write_text("[default]\napi_key = " + "k" * 40 + "\n")
    else:
        (tmp_path / "token").write_text("jwt")
        env["WANDB_IDENTITY_TOKEN_FILE"] = str(tmp_path / "token")
    assert wandb_credentials(env) is not None
    check_wandb_credentials(env)  # no error


def test_wandb_netrc_for_another_host_is_no_key(tmp_path):
    from rlkit.core.tracking import TrackingError, check_wandb_credentials

    (tmp_path / ".netrc").write_text("machine github.com login u password p\n")
    with pytest.raises(TrackingError, match="no API key"):
        check_wandb_credentials({"HOME": str(tmp_path), "WANDB_DIR": str(tmp_path)})


@pytest.mark.parametrize("how", ["WANDB_MODE", "workspace settings"])
def test_wandb_offline_needs_no_key(tmp_path, how):
    from rlkit.core.tracking import check_wandb_credentials

    env = {"HOME": str(tmp_path), "WANDB_DIR": str(tmp_path)}
    if how == "WANDB_MODE":
        env["WANDB_MODE"] = "offline"
    else:  # what `wandb offline` writes in the working directory
        (tmp_path / "wandb").mkdir()
        (tmp_path / "wandb" / "settings").write_text("[default]\nmode = offline\n")
    check_wandb_credentials(env)


def test_tensorboard_has_one_tag_per_scalar_and_the_run_hparams(tiny_csro_run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    status, run_dir = tiny_run(tiny_csro_run, tmp_path)
    assert status == 0
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    columns = list(pd.read_csv(run_dir / "progress.csv").columns)
    assert len(tags) == len(columns)  # one tag per progress.csv column
    assert not [t for t in tags if t.count("/") > 1 or t.startswith("eval/eval/")]
    assert {"eval/online_return_episode_1", "eval/Average_NpOnlineReturn_all_test_tasks", "train/QF Loss",
            "time/Epoch", "diagnostics/task_idx"} <= tags

    hp = EventAccumulator(str(run_dir / "hparams"))  # the finished run's one HParams session
    hp.Reload()
    content = hp.PluginTagToContent("hparams")
    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(raw) for tag, raw in content.items()}
    experiment = next(d.experiment for d in data.values() if d.HasField("experiment"))
    start = next(d.session_start_info for d in data.values() if d.HasField("session_start_info"))
    metrics = {m.name.tag for m in experiment.metric_infos}
    assert metrics == {f"eval/Average_{p}{kind}_all_test_tasks" for p in ("Online", "Offline", "NpOnline")
                       for kind in ("Return", "NormalizedScore")} and metrics <= tags
    assert metrics <= set(hp.Tags()["scalars"])  # their final values, beside the session
    variant = json.loads((run_dir / "variant.json").read_text())
    from rlkit.trainers import trainer_of

    expected = key_hparams(variant, 4, trainer_of(variant).hparam_keys())  # the generic keys and CSRO's
    assert set(start.hparams) == set(expected)
    assert {"algo_params.use_corro", "algo_params.use_unicorn_decoder", "algo_params.z_loss_weight"} <= set(expected)
    assert start.hparams["seed"].number_value == 4 and start.hparams["algo_type"].string_value == "CSRO"
    assert start.hparams["algo_params.use_club"].number_value == 1  # torch writes booleans as 0 / 1
    assert start.hparams["algo_params.policy_lr"].number_value == pytest.approx(expected["algo_params.policy_lr"])


def test_a_run_extended_by_a_resume_keeps_one_hparams_session_with_its_final_settings(tiny_csro_run, tmp_path):
    """Was: a second session written into the run's events, and TensorBoard showed the first, stale one
    (num_iterations 3 for a 5-iteration run)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    status, run_dir = tiny_run(tiny_csro_run, tmp_path, iterations=1)
    assert status == 0
    status, _ = tiny_run(tiny_csro_run, tmp_path, "--resume", str(run_dir), iterations=2)
    assert status == 0
    sessions = [p for p in run_dir.rglob("events.out.tfevents.*") if p.parent.name == "hparams"]
    assert len(sessions) == 1 and not list(run_dir.glob(".hparams*"))
    hp = EventAccumulator(str(run_dir / "hparams"))
    hp.Reload()
    starts = [plugin_data_pb2.HParamsPluginData.FromString(raw).session_start_info
              for raw in hp.PluginTagToContent("hparams").values()
              if plugin_data_pb2.HParamsPluginData.FromString(raw).HasField("session_start_info")]
    assert len(starts) == 1 and starts[0].hparams["algo_params.num_iterations"].number_value == 2
    final = pd.read_csv(run_dir / "progress.csv").iloc[-1]["Average_OnlineReturn_all_test_tasks"]
    (event,) = hp.Scalars("eval/Average_OnlineReturn_all_test_tasks")
    assert event.value == pytest.approx(final, rel=1e-6)
    main = EventAccumulator(str(run_dir))  # the run's own events hold no session any more
    main.Reload()
    try:
        in_main = main.PluginTagToContent("hparams")
    except KeyError:  # no content of that plugin at all
        in_main = {}
    assert not in_main


def test_record_tabular_does_not_double_a_group_prefix(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with RunLogger.create(tmp_path, "point-robot", "t", 0, {"a": 1}, console=False) as run:
        run.record_tabular("eval/online_return_episode_1", 1.0, group="eval")
        run.record_tabular("evaluation", 2.0, group="eval")  # a prefix only when followed by "/"
        run.record_tabular("QF Loss", 3.0, group="trainer")
        run.dump_tabular(0)
    acc = EventAccumulator(str(run.run_dir))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {"eval/online_return_episode_1", "eval/evaluation", "trainer/QF Loss"}
    assert list(pd.read_csv(run.run_dir / "progress.csv").columns) == ["eval/online_return_episode_1", "evaluation",
                                                                       "QF Loss"]
