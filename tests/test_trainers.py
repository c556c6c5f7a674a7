"""The trainer seam (rlkit.trainers): the registry, and a trainer registered from outside the package
that trains through the generic loop, snapshots, resumes and is read back by the run tools."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from rlkit.config import ConfigError
from rlkit.launchers.meta_train import load_run_config
from rlkit.trainers import CSROMethod, Trainer, get_trainer, register_trainer, trainer_names, unregister_trainer
from tests.toy_trainer import NAME, ToyAgent, ToyBCTrainer

TIMES = ("Train Time (s)", "(Previous) Eval Time (s)", "Epoch Time (s)", "Total Train Time (s)", "Eval Time (s)")


def test_an_unknown_trainer_is_one_line_naming_the_registered_ones():
    with pytest.raises(ConfigError) as err:
        get_trainer("borel")
    message = str(err.value)
    assert "\n" not in message and "'borel'" in message and "registered trainers: csro" in message
    with pytest.raises(ConfigError, match="unknown algo_params.trainer 'nope'; registered trainers: .*csro"):
        load_run_config("point-robot", ["algo_params.trainer=nope"])


def test_every_shipped_preset_names_a_registered_trainer_and_old_configs_are_csro():
    from rlkit.config import algo_presets, load_config
    from rlkit.trainers import trainer_of

    assert "csro" in trainer_names() and get_trainer("csro") is CSROMethod
    for preset in algo_presets():
        assert trainer_of(load_config("point-robot", [f"algo_type={preset}"])) is CSROMethod, preset
    assert trainer_of({"algo_params": {}}) is CSROMethod  # a variant written before the key existed


def test_register_trainer_refuses_what_is_not_a_trainer_and_a_taken_name():
    with pytest.raises(TypeError, match="not a rlkit.trainers.base.Trainer subclass"):
        register_trainer(object)

    class Other(ToyBCTrainer):
        name = "csro"

    with pytest.raises(ValueError, match="'csro' is already CSROMethod"):
        register_trainer(Other)
    assert get_trainer("csro") is CSROMethod
    with pytest.raises(TypeError, match="abstract"):
        Trainer()


@pytest.fixture
def toy_registered():
    register_trainer(ToyBCTrainer)
    yield ToyBCTrainer
    unregister_trainer(NAME)


def _train(run, out, iterations, *extra):
    from rlkit.cli import meta_train as launch_experiment

    assert launch_experiment.main([
        str(run.config), "--seed", "0", "--exp_name", "toy", f"algo_params.trainer={NAME}",
        f"algo_params.data_dir={run.data_dir}", f"util_params.base_log_dir={out}",
        "algo_params.train_epoch=[100,200,100]", "algo_params.eval_epoch=[100,200,100]", "algo_params.n_trj=2",
        f"algo_params.num_iterations={iterations}", "algo_params.num_train_steps_per_itr=3",
        "algo_params.batch_size=16", "algo_params.num_steps_per_eval=40", *extra]) == 0
    return out / "point-robot" / "toy" / "seed0"


def test_a_toy_trainer_from_user_code_trains_resumes_and_is_read_back(tiny_csro_run, toy_registered, tmp_path):
    from rlkit import evaluate
    from rlkit.evaluation.run_loader import load_run

    whole = _train(tiny_csro_run, tmp_path / "whole", 2)
    part = _train(tiny_csro_run, tmp_path / "part", 1)
    _train(tiny_csro_run, tmp_path / "part", 2, "--resume", str(part))
    a, b = pd.read_csv(whole / "progress.csv"), pd.read_csv(part / "progress.csv")
    assert list(a.columns) == list(b.columns) and "BC Loss" in a.columns and "Z mean eval0" not in a.columns
    assert list(a["Epoch"]) == [0, 1] and list(a["Number of train steps total"]) == [3, 6]
    same = [c for c in a.columns if c not in TIMES]
    pd.testing.assert_frame_equal(a[same], b[same])  # resumed exactly: the same rows as an unbroken run
    assert np.isfinite(a["Average_OnlineReturn_all_test_tasks"]).all()
    assert json.loads((whole / "variant.json").read_text())["algo_params"]["trainer"] == NAME
    state = torch.load(whole / "agent.pth", map_location="cpu", weights_only=True)
    assert set(state["trainer"]["networks"]) == {"policy"}

    run = load_run(whole)  # the registry rebuilds the toy's agent, not a CSROAgent
    assert isinstance(run.agent, ToyAgent)
    torch.testing.assert_close(run.agent.linear.weight, state["trainer"]["networks"]["policy"]["linear.weight"])
    assert evaluate.main([str(whole), "--protocols", "online,offline,np_online", "--num_evals", "1"]) == 0
    assert any(whole.glob("eval_itr1.csv"))

    from rlkit.cli import show_path  # the protocol video CLI rolls the toy's agent out under each protocol

    figs = tmp_path / "figs"
    assert show_path.main([str(tiny_csro_run.config), "--exp_name", "toy", "--base_log_dir", str(tmp_path / "whole"),
                           "--out", str(figs), "--video", "--video_task", str(run.test_tasks[0]), "--num_tasks", "1",
                           "--protocols", "offline,online,np_online"]) == 0
    assert (figs / f"protocols_task{run.test_tasks[0]}_itr1.gif").stat().st_size > 0


def test_context_shift_refuses_in_one_line_a_run_whose_agent_has_no_task_embedding(tiny_csro_run, toy_registered,
                                                                                   tmp_path, capsys):
    from rlkit import context_shift

    whole = _train(tiny_csro_run, tmp_path / "whole", 1)
    capsys.readouterr()  # the training's log
    assert context_shift.main([str(whole)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no" in err and f"trainer '{NAME}'" in err and "infer_z" in err


def test_a_snapshot_from_before_the_trainer_key_loads_as_csro(tiny_csro_run, tmp_path):
    from rlkit.evaluation.run_loader import load_run
    from rlkit.torch.csro import CSROAgent

    old = tmp_path / "seed0"
    shutil.copytree(tiny_csro_run.run_dir, old)
    for snap in old.glob("agent*.pth"):
        state = torch.load(snap, map_location="cpu", weights_only=True)
        del state["config"]["algo_params"]["trainer"]
        torch.save(state, snap)
    variant = json.loads((old / "variant.json").read_text())
    del variant["algo_params"]["trainer"]
    (old / "variant.json").write_text(json.dumps(variant))
    assert isinstance(load_run(old).agent, CSROAgent)
