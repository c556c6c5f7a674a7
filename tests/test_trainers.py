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
        get_trainer("nope")
    message = str(err.value)
    assert "\n" not in message and "'nope'" in message and "registered trainers: borel, csro, prompt-dt" in message
    with pytest.raises(ConfigError, match="unknown algo_params.trainer 'nope'; registered trainers: .*csro"):
        load_run_config("point-robot", ["algo_params.trainer=nope"])


def test_a_config_written_before_the_trainer_key_is_csro():
    from rlkit.trainers import trainer_of

    assert "csro" in trainer_names() and get_trainer("csro") is CSROMethod
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


# Every trainer through one suite (in the style of SB3's tests over its MODEL_LIST): one shipped preset of
# each registered trainer and the toy from user code (BOReL-RR is BOReL's trainer with relabelled batches,
# tests/test_borel.py). Each entry: the method's arguments, its tiny settings.
TINY_BOREL = ["borel.latent_size=3", "borel.gru_hidden_size=8", "borel.net_sizes=[16,16]", "borel.vae_meta_batch=2",
              "borel.vae_episodes_per_task=2", "borel.rl_episodes_per_task=2", "borel.vae_train_steps=1000",
              "borel.policy_start_step=2"]
TINY_PROMPT_DT = ["prompt_dt.embed_dim=16", "prompt_dt.n_layer=1", "prompt_dt.n_head=2", "prompt_dt.K=4",
                  "prompt_dt.prompt_length=3", "prompt_dt.windows_per_task=2", "prompt_dt.warmup_steps=2"]
METHODS = {
    "toy": ([f"algo_params.trainer={NAME}"], []),
    "CSRO": (["algo_type=CSRO"], ["algo_params.embedding_batch_size=16", "algo_params.embedding_mini_batch_size=16"]),
    "BOReL": (["algo_type=BOReL"], TINY_BOREL),
    "Prompt-DT": (["algo_type=Prompt-DT"], TINY_PROMPT_DT),
}


def _train(run, out, iterations, *extra, method="toy"):
    from rlkit.cli import meta_train as launch_experiment

    args, tiny = METHODS[method]
    assert launch_experiment.main([
        str(run.config), "--seed", "0", "--exp_name", "toy", *args, *tiny,
        f"algo_params.data_dir={run.data_dir}", f"util_params.base_log_dir={out}",
        "algo_params.train_epoch=[100,200,100]", "algo_params.eval_epoch=[100,200,100]", "algo_params.n_trj=2",
        f"algo_params.num_iterations={iterations}", "algo_params.num_train_steps_per_itr=3",
        "algo_params.batch_size=16", "algo_params.num_steps_per_eval=40", *extra]) == 0
    return out / "point-robot" / "toy" / "seed0"


def test_every_shipped_method_preset_is_a_registered_trainer_with_its_section():
    from rlkit.config import algo_presets, load_config, read_json_object
    from rlkit.trainers import trainer_of

    shipped = {name: read_json_object(path)["algo_params"]["trainer"] for name, path in algo_presets().items()}
    assert set(shipped.values()) == {"csro", "borel", "prompt-dt"}
    for preset, trainer in shipped.items():
        cfg = load_config("point-robot", [f"algo_type={preset}"])
        assert trainer_of(cfg) is get_trainer(trainer), preset
    assert set(METHODS) - {"toy"} <= set(shipped) and set(shipped.values()) == {shipped[m] for m in METHODS if m != "toy"}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_trainer_trains_resumes_exactly_reloads_and_is_read_back(method, tiny_csro_run, toy_registered,
                                                                         tmp_path):
    """Train, snapshot, kill and resume exactly (an unbroken run's rows), reload with ``weights_only``,
    evaluate under the protocols, predict through rlkit.load, and roll the protocol video out."""
    import rlkit
    from rlkit import evaluate
    from rlkit.evaluation.run_loader import load_run
    from rlkit.trainers import trainer_of

    whole = _train(tiny_csro_run, tmp_path / "whole", 2, method=method)
    part = _train(tiny_csro_run, tmp_path / "part", 1, method=method)
    _train(tiny_csro_run, tmp_path / "part", 2, "--resume", str(part), method=method)
    a, b = pd.read_csv(whole / "progress.csv"), pd.read_csv(part / "progress.csv")
    assert list(a.columns) == list(b.columns) and list(a["Epoch"]) == [0, 1]
    same = [c for c in a.columns if c not in TIMES]
    pd.testing.assert_frame_equal(a[same], b[same])  # resumed exactly: the same rows as an unbroken run
    assert np.isfinite(a["Average_OnlineReturn_all_test_tasks"]).all()
    variant = json.loads((whole / "variant.json").read_text())
    cls = trainer_of(variant)
    state = torch.load(whole / "agent.pth", map_location="cpu", weights_only=True)
    assert state["trainer"]["networks"] and state["config"]["algo_params"]["trainer"] == cls.name

    run = load_run(whole)  # the registry rebuilds this trainer's agent
    fresh = cls.load_agent(variant, int(state["obs_dim"]), int(state["act_dim"]), state["trainer"])
    assert type(run.agent) is type(fresh)
    for (name, p), (_, q) in zip(run.agent.state_dict().items(), fresh.state_dict().items()):
        torch.testing.assert_close(p, q, msg=name)
    # the run-reading tools draw the offline protocol's context as this trainer's training evaluations do
    tasks = run.test_tasks[:2]
    rows = run.sample_offline_context(tasks, 4, generator=torch.Generator().manual_seed(5))
    own = cls.offline_context(variant, run.offline_buffer("test"), torch.Generator().manual_seed(5))
    torch.testing.assert_close(rows, own(torch.as_tensor(tasks), 4).to(rows.dtype))
    if method == "BOReL":  # one episode's window: each row's s' is the next row's s (uniform draws are not)
        o, d = run.obs_dim, run.act_dim
        torch.testing.assert_close(rows[:, 1:, :o], rows[:, :-1, o + d + 1:])
    assert evaluate.main([str(whole), "--protocols", "online,offline,np_online", "--num_evals", "1"]) == 0
    assert any(whole.glob("eval_itr1.csv"))
    from rlkit import context_shift

    if cls.task_embedding:  # a trainer with a task embedding (CSRO's z, BOReL's belief mean) gets the z diagnostics
        assert context_shift.main([str(whole), "--draws", "2", "--num_evals", "1"]) == 0
        assert json.loads((whole / "context_shift_itr1.json").read_text())["sources"]
    else:  # none (the toy, Prompt-DT): refused in one line, nothing written
        assert context_shift.main([str(whole), "--draws", "2", "--num_evals", "1"]) == 2
        assert not any(whole.glob("context_shift_itr*.json"))

    import gymnasium as gym

    agent = rlkit.load(whole)  # predict: adapt on one env's steps, actions in the env's own units
    env = gym.make("rlkit.envs:csro/PointRobot-v0", task=agent.test_tasks[0])
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        action, _ = agent.predict(obs)
        assert env.action_space.contains(np.asarray(action, dtype=env.action_space.dtype))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        agent.observe(obs, action, reward, next_obs, terminated)
        obs = next_obs

    from rlkit.cli import show_path  # the protocol video CLI rolls this trainer's agent out under each protocol

    figs = tmp_path / "figs"
    assert show_path.main([str(tiny_csro_run.config), "--exp_name", "toy", "--base_log_dir", str(tmp_path / "whole"),
                           "--out", str(figs), "--video", "--video_task", str(run.test_tasks[0]), "--num_tasks", "1",
                           "--protocols", "offline,online,np_online"]) == 0
    assert (figs / f"protocols_task{run.test_tasks[0]}_itr1.gif").stat().st_size > 0


def test_the_toy_trainer_from_user_code_writes_its_own_columns_and_networks(tiny_csro_run, toy_registered, tmp_path):
    whole = _train(tiny_csro_run, tmp_path / "whole", 1)
    a = pd.read_csv(whole / "progress.csv")
    assert "BC Loss" in a.columns and "Z mean eval0" not in a.columns
    assert json.loads((whole / "variant.json").read_text())["algo_params"]["trainer"] == NAME
    state = torch.load(whole / "agent.pth", map_location="cpu", weights_only=True)
    assert set(state["trainer"]["networks"]) == {"policy"}
    run = __import__("rlkit.evaluation.run_loader", fromlist=["load_run"]).load_run(whole)
    assert isinstance(run.agent, ToyAgent)
    torch.testing.assert_close(run.agent.linear.weight, state["trainer"]["networks"]["policy"]["linear.weight"])


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
