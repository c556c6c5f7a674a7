"""Behaviour-policy data generation (policy_train.py): learning, splits, resume, layouts."""

import dataclasses
import json
import re
import subprocess
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
import pytest

import policy_train
from rlkit.behavior.config import compose_sac_config
from rlkit.behavior.generate import BehaviourPolicyGenerator, GenerationJob, weights_path
from rlkit.data import DatasetError, load_offline_data, read_checkpoint_episodes
from rlkit.data.selection import checkpoint_plan, checkpoint_schedule

REPO = Path(__file__).resolve().parents[1]
TINY = ["num_train_steps=500", "num_seed_steps=200", "eval_frequency=100", "num_eval_sample_episodes=3",
        "agent.hidden_dim=32", "agent.batch_size=64"]


def tiny_config(tmp_path, n_tasks=4) -> Path:
    cfg = json.loads((REPO / "configs" / "point-robot.json").read_text())
    cfg["env_params"]["n_tasks"] = n_tasks
    cfg["n_train_tasks"], cfg["n_eval_tasks"] = n_tasks - 1, 1
    cfg["algo_params"]["meta_batch"] = 2
    cfg["algo_params"]["data_dir"] = str(tmp_path / "data")
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    return path


def job(tmp_path, data_dir, tasks=(0, 1), overrides=TINY, legacy=False) -> GenerationJob:
    return GenerationJob(env_name="point-robot", env_params={"n_tasks": 4, "randomize_tasks": 0,
                                                             "max_episode_steps": 20},
                         tasks=list(tasks), sac=compose_sac_config("train_quick", list(overrides)),
                         data_dir=Path(data_dir), progress=False, legacy_layout=legacy)


def all_arrays(root: Path, tasks, steps):
    out = {}
    for t in tasks:
        for s in steps:
            for e in read_checkpoint_episodes(root, t, s):
                out[(t, s, e.sampled, e.index)] = (e.observations, e.actions, e.rewards, e.next_observations)
    return out


def test_checkpoint_schedule_matches_reference_names():
    assert checkpoint_schedule(5000, 2000, 200) == list(range(2000, 5000, 200))
    assert checkpoint_schedule(1_000_000, 50_000, 50_000)[:2] == [50_000, 100_000]
    assert checkpoint_schedule(500, 150, 100) == [200, 300, 400]


def test_split_selection_and_errors(capsys):
    args = policy_train.parse_args(["--config", "x.json", "--split", "4", "--split_idx", "2"])
    assert policy_train.select_tasks(args, 40) == list(range(20, 30))
    args = policy_train.parse_args(["--config", "x.json", "--split", "3"])
    with pytest.raises(SystemExit) as exit_info:
        policy_train.select_tasks(args, 40)
    assert exit_info.value.code == 2 and "does not divide" in capsys.readouterr().err
    args = policy_train.parse_args(["--config", "x.json", "--tasks", "5,0,5"])
    assert policy_train.select_tasks(args, 40) == [0, 5]
    args = policy_train.parse_args(["--config", "x.json", "--tasks", "40"])
    with pytest.raises(SystemExit) as exit_info:
        policy_train.select_tasks(args, 40)
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith("error: --tasks [40] outside")


def test_generation_learns_and_loads(tmp_path):
    gen = BehaviourPolicyGenerator(job(tmp_path, tmp_path / "d", tasks=(0, 1, 2),
                                       overrides=["num_train_steps=800", "num_seed_steps=200", "eval_frequency=100",
                                                  "num_eval_sample_episodes=2"]))
    gen.run()
    returns = np.genfromtxt(tmp_path / "d" / "_generator" / "returns.csv", delimiter=",", names=True)
    first, last = returns[returns["step"] == 200], returns[returns["step"] == 700]
    assert first["deterministic_return"].mean() < -15  # an untrained policy stays near the origin
    assert last["deterministic_return"].mean() > -12  # trained policies reach for their goals
    data = load_offline_data(tmp_path / "d", [0, 1, 2], [200, 800, 100], n_trj=2, sample=1, obs_dim=2, act_dim=2)
    assert data.num_transitions(1) == 6 * 2 * 20
    assert np.all(np.abs(data.actions) <= 1.0)  # normalized actions are stored
    weights = sorted((tmp_path / "d" / "weights" / "task_01").glob("agent_step*.pt"))
    assert len(weights) == 6


def test_resume_after_kill_writes_identical_files(tmp_path):
    BehaviourPolicyGenerator(job(tmp_path, tmp_path / "full")).run()

    killed = BehaviourPolicyGenerator(job(tmp_path, tmp_path / "resumed"))
    original = killed._train_step

    def dying_step(venv, obs):
        if killed.step == 350:
            raise KeyboardInterrupt("simulated kill")
        return original(venv, obs)

    killed._train_step = dying_step
    with pytest.raises(KeyboardInterrupt):
        killed.run()
    assert not (tmp_path / "resumed" / "task_000" / "step_00000400.npz").exists()
    BehaviourPolicyGenerator(job(tmp_path, tmp_path / "resumed")).run()  # same command again
    steps = [200, 300, 400]
    a, b = all_arrays(tmp_path / "full", [0, 1], steps), all_arrays(tmp_path / "resumed", [0, 1], steps)
    assert a.keys() == b.keys() and len(a) == 2 * 3 * 4
    for key in a:
        for x, y in zip(a[key], b[key]):
            np.testing.assert_array_equal(x, y)


def test_legacy_layout_and_eval_regeneration(tmp_path):
    root = tmp_path / "legacy"
    BehaviourPolicyGenerator(job(tmp_path, root, legacy=True)).run()
    files = sorted((root / "goal_idx1").glob("trj_evalsample*_step300.npy"))
    assert len(files) == 3
    data = load_offline_data(root, [0, 1], [200, 500, 100], n_trj=3, sample=1, obs_dim=2, act_dim=2)
    assert data.num_transitions(0) == 3 * 3 * 20
    before = np.load(files[0], allow_pickle=True)
    from rlkit.behavior.generate import regenerate_sampled

    assert regenerate_sampled(job(tmp_path, root, legacy=True)) == 3
    after = np.load(files[0], allow_pickle=True)
    assert before.shape == after.shape
    assert not np.allclose(np.stack(before[:, 1]), np.stack(after[:, 1]))  # fresh stochastic actions


def test_cli_end_to_end_and_bad_input(tmp_path):
    cfg = tiny_config(tmp_path)
    cmd = [sys.executable, str(REPO / "policy_train.py"), "--config", str(cfg), "--preset", "train_quick",
           "--split", "2", "--split_idx", "1", "--no-progress", *TINY]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "data").glob("task_*")) == ["task_002", "task_003"]
    bad = subprocess.run(cmd[:-len(TINY)] + ["--split", "3"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode != 0 and "does not divide" in (bad.stderr + bad.stdout)
    bad = subprocess.run(cmd[:4] + ["--preset", "nope"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode != 0 and "nope" in (bad.stderr + bad.stdout)


def test_first_checkpoint_is_written_after_one_episode_of_updates():
    """The reference names its first checkpoint num_seed_steps but writes it one episode later."""
    assert checkpoint_plan(2500, 2000, 200, 20) == {2020: 2000, 2200: 2200, 2400: 2400}
    assert checkpoint_plan(2400, 2000, 200, 20, delay_first=False) == {2000: 2000, 2200: 2200}
    assert checkpoint_plan(400, 150, 100, 20) == {200: 200, 300: 300}  # 200 > seed steps: on time


def reference_checkpoints(num_train_steps, num_seed_steps, eval_frequency, episode_length):
    """The reference generator's loop written out: {step at which it writes: the step its files are named}.

    At every episode end with ``step > num_seed_steps``, it writes when ``step // eval_frequency`` has
    passed the last checkpoint's, naming the files ``eval_times * eval_frequency``.
    """
    written, eval_times, step = {}, 0, 0
    while step < num_train_steps:
        if step > 0 and step % episode_length == 0 and step > num_seed_steps \
                and step // eval_frequency > eval_times:
            eval_times = step // eval_frequency
            written[step] = eval_times * eval_frequency
        step += 1
    return written


@pytest.mark.parametrize("train,seed,freq,length", [
    (5000, 2000, 200, 20),           # train_point
    (1_000_000, 50_000, 50_000, 200),  # train, MuJoCo
    (1000, 200, 100, 200),           # train_quick on a MuJoCo env: episodes longer than eval_frequency
    (1000, 200, 100, 20),            # train_quick on point-robot
    (1000, 200, 300, 200), (900, 100, 100, 150), (2000, 0, 100, 30)])  # num_seed_steps a multiple of eval_frequency
def test_checkpoints_fall_on_episode_ends_as_the_reference_writes_them(train, seed, freq, length):
    assert checkpoint_plan(train, seed, freq, length) == reference_checkpoints(train, seed, freq, length)


def test_episodes_longer_than_the_checkpoint_interval_write_every_checkpoint_they_promise(tmp_path, capsys):
    """200-step episodes, a checkpoint every 100 steps: the checkpoints are 400, 600, 800 (the
    reference's names), every one is written, and the command says the data is complete instead of
    advising itself again. Before, the first checkpoint was delayed onto the next one's step and lost."""
    cfg = json.loads(tiny_config(tmp_path, n_tasks=2).read_text())
    cfg["env_params"]["max_episode_steps"] = 200
    cfg["n_train_tasks"], cfg["n_eval_tasks"] = 1, 1
    cfg["algo_params"]["meta_batch"] = 1
    path = tmp_path / "long.json"
    path.write_text(json.dumps(cfg))
    overrides = ["num_train_steps=1000", "num_seed_steps=200", "eval_frequency=100", "num_eval_sample_episodes=1",
                 "agent.hidden_dim=16", "agent.batch_size=16"]
    assert policy_train.main(["--config", str(path), "--preset", "train_quick", "--no-progress", *overrides]) == 0
    out = capsys.readouterr().out
    meta = json.loads((tmp_path / "data" / "dataset.json").read_text())
    steps = sorted({int(e["step"]) for e in meta["files"].values()})
    assert steps == [400, 600, 800]
    assert meta["generator_config"]["episode_length"] == 200
    assert "no complete data yet" not in out and "meta-train on it with" in out
    for entry in meta["files"].values():  # a checkpoint's episodes are whole episodes
        assert set(entry["episodes"]["deterministic"]["length"]) == {200}


def test_a_schedule_that_writes_no_checkpoint_is_refused_before_training(tmp_path, capsys):
    path = tiny_config(tmp_path)
    rc = policy_train.main(["--config", str(path), "--preset", "train_quick", "--no-progress",
                            "num_train_steps=200", "num_seed_steps=200"])
    err = capsys.readouterr().err
    assert rc != 0 and len(err.strip().splitlines()) == 1
    assert "writes no checkpoint" in err and "num_train_steps" in err
    assert not (tmp_path / "data" / "dataset.json").exists()


@pytest.mark.parametrize("delay", [True, False])
def test_first_checkpoint_weights_are_trained_only_when_delayed(tmp_path, delay):
    import torch

    j = job(tmp_path, tmp_path / "data", overrides=[*TINY, f"delay_first_checkpoint={str(delay).lower()}"])
    gen = BehaviourPolicyGenerator(j)
    initial = gen.agent.member_state_dict(0)["actor"]
    first = gen.schedule[0]
    gen.run()
    saved = torch.load(weights_path(j.data_dir, 0, first), weights_only=True)["actor"]
    same = all(torch.equal(initial[k], saved[k]) for k in initial)
    assert same is not delay


def test_ray_group_resources_share_cpus_and_gpus():
    from rlkit.behavior.distributed import group_resources

    assert group_resources({"CPU": 16}, 4, use_gpu=False) == {"num_cpus": 4}
    assert group_resources({"CPU": 2}, 8, use_gpu=False) == {"num_cpus": 1}
    assert group_resources({"CPU": 16, "GPU": 1}, 4, use_gpu=True) == {"num_cpus": 4, "num_gpus": 0.25}
    assert group_resources({"CPU": 16, "GPU": 8}, 4, use_gpu=True) == {"num_cpus": 4, "num_gpus": 1.0}


def test_a_dataset_never_mixes_two_generators(tmp_path):
    from dataclasses import replace

    from rlkit.data import DatasetError

    first = job(tmp_path, tmp_path / "data", overrides=[*TINY, "num_train_steps=300"])
    BehaviourPolicyGenerator(first).run()
    with pytest.raises(DatasetError, match=r"generated with other behaviour-policy settings \(seed: 0 there, 1 now\)"):
        BehaviourPolicyGenerator(replace(first, seed=1))
    other_lr = job(tmp_path, tmp_path / "data", overrides=[*TINY, "num_train_steps=300", "agent.actor_lr=0.5"])
    with pytest.raises(DatasetError, match=r"sac.agent.actor_lr: 0.001 there, 0.5 now"):
        BehaviourPolicyGenerator(other_lr)
    # other tasks with the same settings (a --split job), or more episodes for an --eval top-up, are fine
    BehaviourPolicyGenerator(replace(first, tasks=[2, 3]))
    BehaviourPolicyGenerator(job(tmp_path, tmp_path / "data", overrides=[*TINY, "num_train_steps=300",
                                                                         "num_eval_sample_episodes=9"]))


def test_resume_state_saves_each_replay_row_once(tmp_path):
    import torch

    j = job(tmp_path, tmp_path / "data")
    BehaviourPolicyGenerator(j).run()
    seg_dir = j.data_dir / "_generator" / f"replay_{j.tag}"
    names = sorted(p.name for p in seg_dir.glob("rows_*.pt"))
    # checkpoints written at steps 220 (one episode after the 200 of seed steps), 300 and 400
    assert names == ["rows_0000000000_0000000220.pt", "rows_0000000220_0000000300.pt",
                     "rows_0000000300_0000000400.pt"]
    state = torch.load(j.state_path, weights_only=True)
    assert state["replay"]["segments"] == [[0, 220], [220, 300], [300, 400]] and "data" not in state["replay"]
    rows = torch.load(seg_dir / names[1], weights_only=True)
    assert rows["obs"].shape[:2] == (2, 80)  # 2 tasks x the 80 rows added between the two saves


def test_concurrent_generators_share_a_dataset_safely(tmp_path):
    """Two processes on disjoint tasks both land complete; two on the same tasks: the second is refused."""
    from rlkit.data import verify_dataset

    config = tiny_config(tmp_path)
    data = tmp_path / "data"
    base = [sys.executable, str(REPO / "policy_train.py"), "--config", str(config), "--preset", "train_quick",
            "--data_dir", str(data), "--no-progress", "num_train_steps=300", "num_seed_steps=200",
            "eval_frequency=100", "num_eval_sample_episodes=2", "agent.hidden_dim=16"]
    procs = [subprocess.Popen(base + ["--tasks", t], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for t in ("0,1", "2,3", "0,1")]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes[1] == 0, outs[1][1]
    # of the two on tasks 0,1 exactly one ran; the other was told why (unless the first had already finished)
    same = [(c, e) for c, (_, e) in zip((codes[0], codes[2]), (outs[0], outs[2]))]
    assert any(c == 0 for c, _ in same)
    for c, err in same:
        assert c == 0 or (c == 2 and "are being generated by process" in err.strip().splitlines()[-1])
    meta = json.loads((data / "dataset.json").read_text())
    assert {int(e["task"]) for e in meta["files"].values()} == {0, 1, 2, 3}
    assert len(meta["files"]) == 4  # one checkpoint (200) per task
    assert verify_dataset(data) == []


def test_policy_train_prints_the_meta_training_command_that_fits():
    from rlkit.cli.policy_train import meta_train_command

    def of(env, preset, **params):
        return GenerationJob(env_name=env, env_params=params, tasks=[0], sac=compose_sac_config(preset),
                             data_dir=Path("D"))

    cmd = meta_train_command("configs/point-robot.json", of("point-robot", "train_point", n_tasks=2))
    # the paper's point-robot selection, derived from the preset's schedule
    assert "'algo_params.train_epoch=[2200,5000,200]'" in cmd and "algo_params.n_trj=50" in cmd
    cmd = meta_train_command("c.json", of("cheetah-vel", "train", n_tasks=2))
    assert "'algo_params.eval_epoch=[100000,1000000,50000]'" in cmd


def _initial_actor(tmp_path, tasks, same_init: bool) -> dict[int, dict]:
    gen = BehaviourPolicyGenerator(job(tmp_path, tmp_path / f"d{len(tasks)}{same_init}", tasks=tasks,
                                       overrides=[*TINY, f"same_init={str(same_init).lower()}"]))
    return {t: gen.agent.member_state_dict(j) for j, t in enumerate(tasks)}


def _equal_members(a: dict, b: dict) -> bool:
    return all(torch.equal(a[net][k], b[net][k]) for net in ("actor", "critic", "critic_target") for k in a[net])


def test_same_init_starts_every_task_from_one_draw_whatever_the_job(tmp_path):
    """The authors seed every task's process alike, so their behaviour policies start from the same
    weights; with same_init a task's start does not depend on which tasks share the job either."""
    both = _initial_actor(tmp_path, [0, 1, 3], same_init=True)
    alone = _initial_actor(tmp_path, [3], same_init=True)
    assert _equal_members(both[0], both[1]) and _equal_members(both[1], both[3])
    assert _equal_members(both[3], alone[3])
    independent = _initial_actor(tmp_path, [0, 1, 3], same_init=False)
    assert not _equal_members(independent[0], independent[1])
    assert not _equal_members(independent[3], both[3])


def test_a_dataset_from_before_same_init_is_not_extended_with_shared_initial_weights():
    from rlkit.data.native import generator_clash

    old = {"seed": 0, "sac": {"agent": {"hidden_dim": 32}, "num_train_steps": 500}}  # written before the option
    assert "sac.same_init: False there, True now" in generator_clash(old, {**old, "sac": {**old["sac"], "same_init": True}})
    assert generator_clash(old, {**old, "sac": {**old["sac"], "same_init": False}}) == ""


def test_a_dataset_from_before_the_delayed_first_checkpoint_is_not_extended_with_it():
    from rlkit.data.native import generator_clash

    old = {"seed": 0, "sac": {"agent": {"hidden_dim": 32}, "num_train_steps": 500}}
    new = {**old, "sac": {**old["sac"], "delay_first_checkpoint": True}}
    assert "sac.delay_first_checkpoint: False there, True now" in generator_clash(old, new)


def test_a_float64_generator_computes_in_float64_and_writes_float32_files(tmp_path):
    """dtype=float64: the ensemble, its optimizers and the replay are float64; the dataset stays the
    float32 file format, and dataset.json records the dtype (a generator identity key)."""
    gen = BehaviourPolicyGenerator(job(tmp_path, tmp_path / "data", overrides=[*TINY, "num_train_steps=300",
                                                                                "dtype=float64"]))
    gen.run()
    assert gen.agent.dtype == torch.float64 and all(v.dtype == torch.float64 for v in gen.replay.data.values())
    assert all(p.dtype == torch.float64 for p in [*gen.agent.actor.parameters(), *gen.agent.critic.parameters()])
    ep = read_checkpoint_episodes(tmp_path / "data", 0, 200)[0]
    assert ep.observations.dtype == ep.actions.dtype == ep.rewards.dtype == np.float32
    header = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert header["generator_config"]["sac"]["dtype"] == "float64"
    assert torch.get_default_dtype() == torch.float32
    with pytest.raises(ValueError, match="dtype must be one of float32, float64, got 'float16'"):
        compose_sac_config("train_quick", ["dtype=float16"])


def test_a_dataset_is_extended_only_in_the_dtype_it_was_made_in():
    """float32 and float64 policies drift apart within a few hundred updates, so the dtype is part of
    the generator's identity; datasets from before the option were float32."""
    from rlkit.data.native import generator_clash

    old = {"seed": 0, "sac": {"agent": {"hidden_dim": 32}, "num_train_steps": 500}}  # written before the option
    with_dtype = lambda d: {**old, "sac": {**old["sac"], "dtype": d}}  # noqa: E731
    assert "sac.dtype: 'float32' there, 'float64' now" in generator_clash(old, with_dtype("float64"))
    assert "sac.dtype: 'float64' there, 'float32' now" in generator_clash(with_dtype("float64"), with_dtype("float32"))
    assert generator_clash(old, with_dtype("float32")) == ""


def test_after_part_of_the_tasks_policy_train_suggests_generating_the_rest(tmp_path, capsys, monkeypatch):
    """A job on --tasks writes part of the dataset: the next step it prints is the command for the
    other tasks (which then prints the meta-training command), not a meta-training command that
    would stop at the first missing task."""
    from rlkit.cli import policy_train

    monkeypatch.chdir(tmp_path)
    config = tiny_config(tmp_path)
    base = ["--config", str(config), "--preset", "train_quick", "--data_dir", str(tmp_path / "data"),
            "--no-progress", "num_train_steps=300", "num_seed_steps=200", "eval_frequency=100",
            "num_eval_sample_episodes=2", "agent.hidden_dim=16"]
    assert policy_train.main(base + ["--tasks", "0,1"]) == 0
    out = capsys.readouterr().out
    assert "2 of 4 tasks have no complete data yet" in out and "meta-train on it" not in out
    suggested = shlex.split(out.strip().splitlines()[-1])
    # a command that exists where it runs (here, away from the checkout's root: python -m)
    from rlkit.errors import tool_command

    program = tool_command("generate")
    assert suggested[:len(program)] == program and suggested[suggested.index("--tasks") + 1] == "2,3"
    assert policy_train.main(suggested[len(program):]) == 0  # the suggestion, as pasted
    out = capsys.readouterr().out
    assert "meta-train on it with" in out and "no complete data" not in out


def _checksums(root: Path) -> dict:
    return {rel: e["sha256"] for rel, e in json.loads((root / "dataset.json").read_text())["files"].items()}


def test_a_job_never_rewrites_checkpoints_another_job_wrote(tmp_path):
    """`--tasks 1` on a dataset where task 1 is done used to regenerate it silently (new checksums, the
    dataset a mix of two generator runs). Now it is refused; --restart moves the old files aside."""
    from rlkit.behavior.generate import REPLACED_DIR, existing_checkpoints
    from rlkit.data import verify_dataset

    root = tmp_path / "data"
    BehaviourPolicyGenerator(job(tmp_path, root, tasks=(0, 1))).run()
    before = _checksums(root)
    assert existing_checkpoints(job(tmp_path, root, tasks=(1, 2))) == {1: [200, 300, 400]}
    with pytest.raises(DatasetError, match=r"checkpoints of task\(s\) 1 .*add --restart"):
        BehaviourPolicyGenerator(job(tmp_path, root, tasks=(1,))).run()
    assert _checksums(root) == before  # nothing was touched
    BehaviourPolicyGenerator(job(tmp_path, root, tasks=(0, 1))).run()  # the job that wrote them: resumes, done
    assert _checksums(root) == before

    again = dataclasses.replace(job(tmp_path, root, tasks=(1,), overrides=TINY), restart=True)
    BehaviourPolicyGenerator(again).run()
    (aside,) = (root / REPLACED_DIR).iterdir()
    moved = json.loads((aside / "dataset_entries.json").read_text())
    assert sorted(moved) == sorted(rel for rel in before if rel.startswith("task_001/"))
    assert all((aside / rel).is_file() for rel in moved)
    assert sorted((aside / "weights" / "task_01").glob("*.pt"))  # the old weights went with them
    after = _checksums(root)
    assert {r: c for r, c in after.items() if r.startswith("task_000/")} == \
        {r: c for r, c in before.items() if r.startswith("task_000/")}
    assert sorted(r for r in after if r.startswith("task_001/")) == sorted(moved)  # regenerated, all of them
    assert verify_dataset(root) == []


def test_a_job_killed_in_its_first_checkpoint_resumes_rather_than_refusing_itself(tmp_path, monkeypatch):
    """The step-0 resume state a fresh job saves makes its own partly written first checkpoint its own."""
    from rlkit.data import DatasetWriter

    BehaviourPolicyGenerator(job(tmp_path, tmp_path / "full")).run()
    real, calls = DatasetWriter.write_checkpoint, []

    def dies_at_the_second_file(self, *a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill")
        return real(self, *a, **kw)

    monkeypatch.setattr(DatasetWriter, "write_checkpoint", dies_at_the_second_file)
    with pytest.raises(KeyboardInterrupt):
        BehaviourPolicyGenerator(job(tmp_path, tmp_path / "killed")).run()
    monkeypatch.setattr(DatasetWriter, "write_checkpoint", real)
    assert list(_checksums(tmp_path / "killed")) == ["task_000/step_00000200.npy"]  # task 0 written, task 1 not
    BehaviourPolicyGenerator(job(tmp_path, tmp_path / "killed")).run()  # the same command again
    assert _checksums(tmp_path / "killed") == _checksums(tmp_path / "full")


def test_policy_train_refuses_to_regenerate_finished_tasks_in_one_line(tmp_path, capsys, monkeypatch):
    from rlkit.cli import policy_train

    monkeypatch.chdir(tmp_path)
    base = ["--config", str(tiny_config(tmp_path)), "--preset", "train_quick", "--data_dir", str(tmp_path / "data"),
            "--no-progress", "num_train_steps=300", "num_seed_steps=200", "eval_frequency=100",
            "num_eval_sample_episodes=2", "agent.hidden_dim=16"]
    assert policy_train.main(base + ["--tasks", "0,1"]) == 0
    before = _checksums(tmp_path / "data")
    capsys.readouterr()
    assert policy_train.main(base + ["--split", "2", "--split_idx", "0"]) == 0  # tasks 0,1: the same job, done
    assert _checksums(tmp_path / "data") == before
    assert policy_train.main(base + ["--split", "4", "--split_idx", "1"]) == 2  # task 1 alone: another job
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "already holds checkpoints of task(s) 1 " in err
    assert _checksums(tmp_path / "data") == before
    assert policy_train.main(base + ["--split", "4", "--split_idx", "1", "--restart"]) == 0
    assert "moved the old checkpoints of task 1 to" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        policy_train.main(base + ["--tasks", "0", "--restart", "--eval"])
    assert "give one of them" in capsys.readouterr().err


def test_task_lists_are_named_as_given_not_as_a_range(tmp_path, capsys, monkeypatch):
    """`--tasks 0,5,7` was labelled "tasks 0..7" (in the summary, the interrupt line, the progress bar
    and the busy-lock message), as if it were eight tasks: a list is written as it is, a run of
    consecutive ids compactly."""
    from rlkit.behavior.generate import task_ids_text
    from rlkit.cli import policy_train as cli

    assert task_ids_text([0, 5, 7]) == "0,5,7" and task_ids_text([3]) == "3" and task_ids_text([0, 1]) == "0,1"
    assert task_ids_text(list(range(8))) == "0-7" and task_ids_text([0, 1, 2, 3, 5, 7, 8, 9]) == "0-3,5,7-9"
    assert task_ids_text([7, 5, 0]) == "7,5,0"  # in the order given
    wheres = []
    monkeypatch.setattr(cli, "on_interrupt", lambda where, **kw: wheres.append(where))
    monkeypatch.setattr(BehaviourPolicyGenerator, "run", lambda self: None)  # what it labels, not what it trains
    config = tiny_config(tmp_path, n_tasks=8)
    data = tmp_path / "data"
    assert cli.main(["--config", str(config), "--preset", "train_quick", "--data_dir", str(data), "--no-progress",
                     "--tasks", "0,5,7", "agent.hidden_dim=16"]) == 0
    assert f"dataset: {data} (tasks 0,5,7)" in capsys.readouterr().out
    assert wheres == [f"generation of tasks 0,5,7 into {data} stopped (finished checkpoints and episodes are kept)"]
    gen = BehaviourPolicyGenerator(dataclasses.replace(job(tmp_path, tmp_path / "other", tasks=(0, 2, 3)),
                                                       env_params={"n_tasks": 8, "randomize_tasks": 0}))
    held = gen.lock()
    try:
        with pytest.raises(DatasetError, match=r"^tasks 0,2,3 \(seed 0\) of .* are being generated by process"):
            gen.lock()
    finally:
        held.release()


def test_the_hint_for_unfinished_data_is_the_command_that_continues_it(tmp_path):
    """A dataset cut short (half its tasks) names the command with the preset, seed and overrides it was
    made with; that command adds the rest, where the bare command would be refused as another generator."""
    cfg = tiny_config(tmp_path)
    made = [*TINY, "agent.actor_lr=3e-4"]
    base = [sys.executable, str(REPO / "policy_train.py"), "--config", str(cfg), "--preset", "train_quick",
            "--seed", "3", "--no-progress"]
    res = subprocess.run([*base, "--split", "2", "--split_idx", "0", *made], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    with pytest.raises(DatasetError) as err:
        load_offline_data(tmp_path / "data", [0, 1, 2, 3], [300, 500, 100], n_trj=1, env_name="point-robot")
    hint = re.search(r"generate them with `([^`]*)`", str(err.value)).group(1)
    assert "--preset train_quick --seed 3" in hint and "agent.actor_lr=3e-4" in hint
    # the bare command is refused, and the refusal names the settings to give
    bare = subprocess.run([*base[:4], "--data_dir", str(tmp_path / "data"), "--no-progress"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert bare.returncode != 0 and "to continue it, give the settings it was made with (--preset train_quick " \
                                    "--seed 3" in bare.stderr + bare.stdout
    args = shlex.split(hint)
    args[args.index("--config") + 1] = str(cfg)  # the hint names the env's shipped config; this test's is smaller
    run = [sys.executable, str(REPO / "policy_train.py"), *args[args.index("--config"):], "--no-progress"]
    res = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    data = load_offline_data(tmp_path / "data", [0, 1, 2, 3], [300, 500, 100], n_trj=1, env_name="point-robot")
    assert sorted(set(data.task_ids.tolist())) == [0, 1, 2, 3]
