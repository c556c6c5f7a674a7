"""python -m rlkit.reproduce on a tiny plan: dataset, runs, records, table; budget stops and resumes."""

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from rlkit.config import ConfigError, save_config
from rlkit.evaluation.protocols import PROGRESS_KEYS
from rlkit.reproduce.plan import PROTOCOLS, load_plan, plan_path
from rlkit.reproduce.report import claims, plan_reference
from rlkit.reproduce.runner import ReproduceError, parse_budget
from tests.helpers import processes_mentioning, small_point_robot_config

REPO = Path(__file__).resolve().parents[1]


def tiny_plan(tmp: Path, iterations: int = 3, steps: int = 5) -> Path:
    config = small_point_robot_config(tmp)
    plan = tmp / "tiny.yaml"
    plan.write_text(f"""
env: point-robot
scale: tiny
config: {config}
description: a test plan
dataset:
  preset: train_quick
  seed: 0
  overrides: [num_train_steps=300, num_seed_steps=100, eval_frequency=100, num_eval_sample_episodes=2,
              agent.hidden_dim=32, agent.batch_size=32]
methods: [CSRO, FOCAL]
seeds: [0]
train_overrides: ["algo_params.train_epoch=[100,300,100]", "algo_params.eval_epoch=[100,300,100]",
                  algo_params.n_trj=2, algo_params.num_iterations={iterations},
                  algo_params.num_train_steps_per_itr={steps}, algo_params.embedding_batch_size=32,
                  algo_params.batch_size=16, algo_params.num_steps_per_eval=40, net_size=32, latent_size=4]
parallel: 2
threads_per_run: 1
final_window: 2
context_shift_draws: 4
claims: true
reductions:
  - {{what: "everything tiny", why: "a test"}}
paper:
  FOCAL: {{offline: -4.4, online: -14.9}}
""")
    return plan


def stamp_dataset(repro, generator_config: dict | None = None) -> None:
    """What a finished build leaves, without building: the stamp, and a dataset.json that records the
    generator settings the plan resolves to (or ``generator_config``)."""
    from omegaconf import OmegaConf

    from rlkit.behavior.config import compose_sac_config
    from rlkit.data import DatasetWriter

    ds = repro.plan.dataset
    made = generator_config or {"sac": OmegaConf.to_container(compose_sac_config(ds.preset, ds.overrides),
                                                              resolve=True), "seed": ds.seed}
    DatasetWriter(repro.layout.data_dir, repro.plan.env, {}, [], 2, 2, made, fsync=False)
    save_config({"policy_train_args": repro.portable_dataset_args()}, repro.layout.dataset_stamp)


def args(plan: Path, tmp: Path, *extra: str) -> list[str]:
    return [str(plan), "--out", str(tmp / "work"), "--records", str(tmp / "records"), "--report-dir",
            str(tmp / "report"), *extra]


def test_budget_stops_cleanly_resumes_and_recorded_runs_are_never_retrained(tmp_path, monkeypatch, capsys):
    from rlkit.reproduce import __main__ as cli
    from rlkit.reproduce import runner

    monkeypatch.setattr(runner, "MIN_START_S", 0.0)  # let the tiny budgets below start work at all
    plan = tiny_plan(tmp_path, iterations=4, steps=80)
    # 1. the budget ends while the dataset is generated (that takes 10 s or more)
    assert cli.main(args(plan, tmp_path, "--budget", "3s")) == runner.BUDGET_EXIT
    out = capsys.readouterr().out
    assert "budget reached with work left" in out and "run the same command again" in out
    assert not (tmp_path / "records").exists()
    # 2. again with a budget: the dataset resumes; the budget ends during meta-training
    assert cli.main(args(plan, tmp_path, "--budget", "8s")) == runner.BUDGET_EXIT
    capsys.readouterr()
    # 3. no budget: everything finishes
    assert cli.main(args(plan, tmp_path)) == 0
    capsys.readouterr()
    for method in ("CSRO", "FOCAL"):
        run_dir = tmp_path / "work" / "point-robot-tiny" / "runs" / "point-robot" / method / "seed0"
        progress = pd.read_csv(run_dir / "progress.csv")
        assert list(progress["Epoch"]) == [0, 1, 2, 3]  # no duplicated, no missing rows across the kills
        record = json.loads((tmp_path / "records" / "point-robot-tiny" / f"{method}_seed0.json").read_text())
        assert record["method"] == method and record["num_iterations"] == 4 and record["train_steps"] == 320
        expected = progress["Average_NpOnlineReturn_all_test_tasks"].tail(2).mean()
        assert record["final"]["np_online"] == pytest.approx(expected)
        assert set(record["context_shift"]["sources"]) >= {"offline", "online", "np_online"}
        assert record["config"]["algo_type"] == method
        reference = record["reference"]  # the dataset is there when the record is written
        assert len(reference["tasks"]) == 2 and reference["random"] < 0 and reference["behaviour_best"] is not None
    table = (tmp_path / "report" / "point-robot-tiny.md").read_text()
    assert "| CSRO | 0 |" in table and "| FOCAL | 0 |" in table and "(-4.4)" in table
    assert f"a uniform-random policy scores {reference['random']:.1f}" in table
    assert (tmp_path / "report" / "point-robot-tiny.png").stat().st_size > 10_000
    # the dataset's profile is kept beside the records, and the page shows it
    profile = json.loads((tmp_path / "records" / "point-robot-tiny" / "dataset_profile.json").read_text())
    assert list(profile) == ["100", "200"] and all(-25 < row["deterministic"] < 0 for row in profile.values())
    assert "Behaviour data (point-robot dataset" in table and f"| 200 | {profile['200']['deterministic']:.1f} |" in table
    # 4. every record exists: nothing starts
    assert cli.main(args(plan, tmp_path)) == 0
    assert "start" not in capsys.readouterr().out
    # 5. a lost record: only that run's summary is redone, from its finished run directory
    csro_record = tmp_path / "records" / "point-robot-tiny" / "CSRO_seed0.json"
    before = csro_record.read_text()
    (tmp_path / "records" / "point-robot-tiny" / "FOCAL_seed0.json").unlink()
    assert cli.main(args(plan, tmp_path)) == 0
    out = capsys.readouterr().out
    assert "start FOCAL seed 0 context shift" in out and "start CSRO" not in out
    assert csro_record.read_text() == before
    # 6. the plan edited after the records were made: its records no longer describe it, so nothing
    #    is counted, trained or rewritten, and the error names the setting
    plan.write_text(plan.read_text().replace("algo_params.n_trj=2", "algo_params.n_trj=1"))
    assert cli.main(args(plan, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "was made under other settings" in err and "algo_params.n_trj: 2 then, 1 now" in err
    assert "\n" not in err.strip()
    assert csro_record.read_text() == before


def test_a_run_started_under_another_plan_is_not_resumed(tmp_path):
    from rlkit.reproduce.runner import Budget, Layout, Reproduction

    plan = load_plan(tiny_plan(tmp_path))
    layout = Layout(tmp_path / "work", tmp_path / "records")
    repro = Reproduction(plan, layout, Budget(None), echo=lambda m: None)
    run_dir = layout.run_dir(plan, "CSRO", 0)
    run_dir.mkdir(parents=True)
    (run_dir / "agent.pth").write_bytes(b"snapshot")
    ran = plan.resolved_config("CSRO")
    # what may differ on a resume: where the data and logs live, the device, options added since
    ran["algo_params"]["data_dir"] = "/elsewhere/offline_dataset"
    ran["util_params"]["base_log_dir"] = "/elsewhere/runs"
    ran.update(seed=0, exp_name="CSRO", device="cuda:0")
    del ran["algo_params"]["layer_norm"]
    save_config(ran, run_dir / "variant.json")
    assert "--resume" in repro.train_job("CSRO", 0).cmd
    ran["algo_params"]["train_epoch"] = [100, 200, 100]  # the plan's checkpoint range changed since
    save_config(ran, run_dir / "variant.json")
    with pytest.raises(ReproduceError, match=r"started under other settings .*algo_params.train_epoch: "
                                             r"\[100, 200, 100\] then, \[100, 300, 100\] now"):
        repro.train_job("CSRO", 0)
    assert (run_dir / "agent.pth").read_bytes() == b"snapshot"


def test_a_run_is_not_resumed_or_summarised_on_a_rebuilt_dataset(tmp_path):
    """The plan's dataset rebuilt (the same recipe gives other data) under a half-trained run: the runner
    compares the run's data fingerprint with what the dataset's metadata gives, before it resumes the run
    or summarises it."""
    from rlkit.data.synthetic import write_synthetic_dataset
    from rlkit.launchers.meta_train import run_data_fingerprint
    from rlkit.reproduce.runner import Budget, Layout, Reproduction
    from tests.helpers import regenerate_checkpoint

    plan = load_plan(tiny_plan(tmp_path))
    layout = Layout(tmp_path / "work", tmp_path / "records")
    messages = []
    repro = Reproduction(plan, layout, Budget(None), echo=messages.append)
    write_synthetic_dataset(layout.data_dir, 6, (100, 200), n_sampled=2)
    run_dir = layout.run_dir(plan, "CSRO", 0)
    run_dir.mkdir(parents=True)
    (run_dir / "agent.pth").write_bytes(b"snapshot")
    ran = plan.resolved_config("CSRO")
    ran.update(seed=0, exp_name="CSRO")
    recorded = run_data_fingerprint(ran, 0, layout.data_dir)
    save_config({**ran, "data_fingerprint": recorded}, run_dir / "variant.json")
    assert "--resume" in repro.train_job("CSRO", 0).cmd
    regenerate_checkpoint(layout.data_dir, 0, 200)  # task 0 trains (test tasks of 6 interleaved: 1, 4)
    now = run_data_fingerprint(ran, 0, layout.data_dir)
    assert now["test"] == recorded["test"] and now["train"] != recorded["train"]
    message = (f"{run_dir} was trained on other data than {layout.data_dir} holds now (data fingerprint train "
               f"{recorded['train']} then, {now['train']} now): move that run away")
    for job in (repro.train_job, repro.shift_job):
        with pytest.raises(ReproduceError, match=re.escape(message)):
            job("CSRO", 0)
    assert (run_dir / "agent.pth").read_bytes() == b"snapshot"
    # a run from before runs recorded their data's fingerprint: said, and resumed
    save_config(ran, run_dir / "variant.json")
    assert "--resume" in repro.train_job("CSRO", 0).cmd
    assert "was made before runs recorded their data's fingerprint" in messages[-1]


def test_a_record_keeps_the_fingerprint_of_its_data(tmp_path):
    from rlkit.reproduce.records import build_record

    plan = load_plan(tiny_plan(tmp_path))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    columns = {"Epoch": [0, 1], "Number of train steps total": [5, 10], "Train Time (s)": [1.0, 1.0],
               "Eval Time (s)": [0.5, 0.5], **{key: [-9.0, -8.0] for key in PROGRESS_KEYS.values()}}
    pd.DataFrame(columns).to_csv(run_dir / "progress.csv", index=False)
    fingerprint = {"train": "0123456789abcdef", "test": "fedcba9876543210"}
    variant = {**plan.resolved_config("CSRO"), "seed": 0, "data_fingerprint": fingerprint}
    variant["algo_params"]["data_dir"] = str(tmp_path / "gone")  # no references: the record still builds
    save_config(variant, run_dir / "variant.json")
    assert build_record(plan, "CSRO", 0, run_dir)["data_fingerprint"] == fingerprint


def test_a_longer_plan_extends_an_unfinished_run_but_never_matches_a_shorter_record():
    from rlkit.reproduce.plan import settings_drift

    planned = {"algo_params": {"num_iterations": 100, "lr": 1e-4}, "util_params": {"dtype": "float32", "gpu_id": 0}}
    ran = {"algo_params": {"num_iterations": 30, "lr": 1e-4}, "util_params": {"dtype": "float32", "gpu_id": 3}}
    assert settings_drift(ran, planned, resuming=True) == []  # a 30-iteration run continues to 100
    assert settings_drift(ran, planned) == ["algo_params.num_iterations: 30 then, 100 now"]  # not its record
    longer = {**ran, "algo_params": {"num_iterations": 120, "lr": 1e-4}}
    assert settings_drift(longer, planned, resuming=True) == ["algo_params.num_iterations: 120 then, 100 now"]
    wider = {**ran, "util_params": {"dtype": "float64", "gpu_id": 0}}  # precision is not run control
    assert settings_drift(wider, planned, resuming=True) == ["util_params.dtype: 'float64' then, 'float32' now"]


def _ignore_sigint():  # what a shell without job control does to a command started with `&`
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _default_sigint():  # a runner started from a terminal, whatever the test process itself inherited
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig, background", [(signal.SIGTERM, False), (signal.SIGINT, False),
                                             (signal.SIGTERM, True)])
def test_stopping_the_runner_stops_its_children(tmp_path, sig, background):
    """The children run in sessions of their own; a stopped runner must not leave them behind, and
    they stop cleanly (SIGINT, not SIGKILL after the grace period) even when the runner was
    started in the background with SIGINT ignored."""
    plan = tiny_plan(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "rlkit.reproduce", *args(plan, tmp_path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ignore_sigint if background else _default_sigint)
    marker = str(tmp_path / "work")
    deadline = time.monotonic() + 60
    started = tmp_path / "work" / "point-robot-tiny" / "offline_dataset" / "_generator"
    # the dataset child is up and past its interpreter's start (its lock file is written): a SIGINT that
    # lands while Python is still starting kills it silently, which a CPU-starved machine makes likely
    while not (any("policy_train.py" in a for a in processes_mentioning(marker)) and started.is_dir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), (out, err)
    child_log = (tmp_path / "work" / "point-robot-tiny" / "logs" / "dataset.log").read_text()
    # it saw the SIGINT (before or after its own handler was set up) and stopped itself, rather than sitting
    # out the grace period and dying by SIGKILL without a word (timing cannot tell: a starved CPU slows both)
    assert "interrupted" in child_log or "KeyboardInterrupt" in child_log
    assert "the reproduction stopped" in err and "continue it with the same command: " in err and "Traceback" not in err
    assert processes_mentioning(marker) == []


def test_report_only_needs_no_work_folder(tmp_path):
    from rlkit.reproduce import __main__ as cli

    assert cli.main(args(tiny_plan(tmp_path), tmp_path, "--report-only")) == 0
    assert not (tmp_path / "work").exists()
    assert "Not finished yet: CSRO seed 0, FOCAL seed 0." in (tmp_path / "report" / "point-robot-tiny.md").read_text()


def test_threads_per_run_come_from_the_plan_unless_overridden(tmp_path, monkeypatch, capsys):
    from rlkit.reproduce import __main__ as cli
    from rlkit.reproduce import runner

    plan = load_plan(tiny_plan(tmp_path))  # threads_per_run: 1
    layout = runner.Layout(tmp_path / "work", tmp_path / "records")
    started = []
    monkeypatch.setattr(runner.Job, "start", lambda job, threads: started.append(threads) or job.__setattr__(
        "proc", type("Done", (), {"poll": lambda self: 0, "returncode": 1})()))
    monkeypatch.setattr(runner.Reproduction, "ensure_dataset", lambda self: True)
    for threads, expected in ((None, 1), (2, 2)):
        with pytest.raises(ReproduceError, match="failed"):  # the stand-in child "fails" at once
            runner.Reproduction(plan, layout, runner.Budget(None), threads=threads, echo=lambda m: None).run()
        assert started[-1] == expected
    assert runner.child_env(2)["OMP_NUM_THREADS"] == "2"
    assert cli.main(args(tiny_plan(tmp_path), tmp_path, "--threads", "-1")) == 2
    assert "--threads must be 0" in capsys.readouterr().err


def test_methods_and_seeds_select_part_of_the_plan(tmp_path, monkeypatch, capsys):
    from rlkit.reproduce import __main__ as cli
    from rlkit.reproduce import runner

    path = tiny_plan(tmp_path)
    path.write_text(path.read_text().replace("seeds: [0]", "seeds: [0, 1, 2]"))
    plan = load_plan(path)
    layout = runner.Layout(tmp_path / "work", tmp_path / "records")
    everything = runner.Reproduction(plan, layout, runner.Budget(None), echo=lambda m: None)
    assert everything.pending() == [(m, s) for s in (0, 1, 2) for m in ("CSRO", "FOCAL")]
    # the selection keeps the plan's order, whatever order it was given in
    part = runner.Reproduction(plan, layout, runner.Budget(None), echo=lambda m: None,
                               methods=["FOCAL"], seeds=[2, 0])
    assert part.pending() == [("FOCAL", 0), ("FOCAL", 2)]
    started = []
    monkeypatch.setattr(runner.Job, "start", lambda job, threads: started.append(job.label) or job.__setattr__(
        "proc", type("Done", (), {"poll": lambda self: 0, "returncode": 1})()))
    monkeypatch.setattr(runner.Reproduction, "ensure_dataset", lambda self: True)
    with pytest.raises(ReproduceError, match="FOCAL seed 2 failed"):  # the stand-in child "fails" at once
        runner.Reproduction(plan, layout, runner.Budget(None), echo=lambda m: None, methods=["FOCAL"],
                            seeds=[2]).run()
    assert started == ["FOCAL seed 2"]
    # names outside the plan are one-line errors that list what the plan has
    assert cli.main(args(path, tmp_path, "--methods", "CSRO,PEARL")) == 2
    err = capsys.readouterr().err
    assert "method 'PEARL' is not in plan 'point-robot-tiny'; its methods: CSRO, FOCAL" in err
    assert cli.main(args(path, tmp_path, "--seeds", "1,7")) == 2
    assert "seed 7 is not in plan 'point-robot-tiny'; its seeds: 0, 1, 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.parse_args([str(path), "--seeds", "one"])
    assert "give whole numbers" in capsys.readouterr().err
    # a finished selection exits 0 and names the runs the table still lacks
    monkeypatch.setattr(runner.Reproduction, "run", lambda self: not self.pending())
    for m, s in (("CSRO", 1), ("FOCAL", 1)):
        record = runner.record_path(tmp_path / "records", plan, m, s)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text("{}")
    monkeypatch.setattr(cli, "write_report", lambda *a: tmp_path / "report.md")
    assert cli.main(args(path, tmp_path, "--seeds", "1")) == 0
    out = capsys.readouterr().out
    assert "1 methods x 1 seeds" not in out and "2 methods x 1 seeds" in out
    assert "still without a record: CSRO seed 0, FOCAL seed 0, CSRO seed 2, FOCAL seed 2" in out


def test_budget_parsing():
    assert parse_budget("50m") == 3000 and parse_budget("1h30m") == 5400 and parse_budget("90") == 90
    assert parse_budget(None) is None
    with pytest.raises(ReproduceError, match="like 90s, 50m"):
        parse_budget("fifty minutes")


def test_committed_plans_load_and_bad_plans_fail_clearly(tmp_path):
    for scale, newer in (("cpu", ["CORRO", "UNICORN-SS", "CORRO-relabel", "UNICORN-SUP", "Prompt-DT"]), ("paper", [])):
        plan = load_plan(plan_path("point-robot", scale))
        assert plan.methods == ["CSRO", "FOCAL", "offline-PEARL", *newer]
    with pytest.raises(ConfigError, match="did you mean 'point-robot-cpu'"):
        plan_path("point-robot", "cpus")
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: point-robot\nscale: x\nconfig: configs/point-robot.json\ndataset: {preset: train_point}\n"
                   "methods: [CSRO, FOCL]\nseeds: [0]\n")
    with pytest.raises(ConfigError, match="unknown method 'FOCL'"):
        load_plan(bad)
    bad.write_text("env: point-robot\nscale: x\nconfig: configs/point-robot.json\ndataset: {preset: train_point}\n"
                   "methods: [CSRO]\nseeds: [0]\nseed: 3\n")
    with pytest.raises(ConfigError, match="unknown key 'seed' \\(did you mean 'seeds'\\?\\)"):
        load_plan(bad)


def test_claims_follow_the_numbers():
    def s(**kw):
        return {m: {p: (v, 0.0, 2) for p, v in protos.items()} for m, protos in kw.items()}

    paper_like = s(FOCAL={"offline": -4.4, "online": -14.9, "np_online": -9.0},
                   CSRO={"offline": -5.0, "online": -10.0, "np_online": -5.5},
                   **{"offline-PEARL": {"offline": -5.1, "online": -17.8, "np_online": -12.0}})
    assert all(held for _, held, _ in claims(paper_like))
    flat = s(FOCAL={"offline": -5.0, "online": -5.0, "np_online": -5.0},
             CSRO={"offline": -5.0, "online": -5.0, "np_online": -9.0},
             **{"offline-PEARL": {"offline": -5.0, "online": -5.0, "np_online": -5.0}})
    verdicts = [held for _, held, _ in claims(flat)]
    assert verdicts.count(False) >= 4
    assert all(held is None for _, held, _ in claims({}))
    # a plan without offline PEARL is not asked about it; "not yet measured" stays for what it could measure
    without_pearl = claims(paper_like, ["CSRO", "FOCAL"])
    assert len(without_pearl) == len(claims(paper_like)) - 1 and all(held for _, held, _ in without_pearl)
    assert not any("PEARL" in statement for statement, _, _ in without_pearl)
    assert [statement for statement, _, _ in claims({}, ["CSRO"])] == [
        "CSRO with non-prior context stays near its offline-context level (within 25 %)"]


def test_plan_reference_from_records_and_without_dataset(tmp_path):
    stored = {"random": -20.0, "behaviour_best": -4.0, "behaviour_best_step": 4800, "behaviour_data": -7.0,
              "tasks": [2, 6], "episode_length": 20, "random_episodes": 10, "data_dir": "gone"}
    config = {"algo_params": {"data_dir": str(tmp_path / "gone")}}
    with_ref = [{"seed": s, "config": config, "reference": {**stored, "random": -20.0 - s}} for s in (0, 1)]
    values, note = plan_reference(with_ref)
    assert values["random"] == -20.5 and values["behaviour_best"] == -4.0 and values["behaviour_best_step"] == 4800
    assert note == ""
    old = {"seed": 2, "config": config}  # written before references were kept; its dataset is not here
    values, note = plan_reference(with_ref + [old])
    assert values["random"] == -20.5 and note == "reference returns from 2 of 3 runs"
    values, note = plan_reference([old])
    assert values is None and "no reference lines" in note


def test_a_record_never_takes_its_references_from_another_dataset_in_its_folder(tmp_path):
    """A record without stored references reads them from its data_dir only when the dataset there was
    made with the generator settings the record names: a plan folder reused for new data settings
    must not lend the old records the new data's reference lines."""
    from omegaconf import OmegaConf

    from rlkit.behavior.config import compose_sac_config
    from rlkit.data import DatasetWriter
    from rlkit.reproduce.report import _dataset_is_the_records

    made_as = {"preset": "train_point", "seed": 0, "overrides": ["agent.hidden_dim=256"]}
    data_dir = tmp_path / "offline_dataset"
    sac = OmegaConf.to_container(compose_sac_config("train_point", ["agent.hidden_dim=64"]), resolve=True)
    DatasetWriter(data_dir, "point-robot", {}, [], 2, 2, {"sac": sac, "seed": 0}, fsync=False)
    record = {"seed": 0, "dataset": made_as, "config": {"algo_params": {"data_dir": str(data_dir)}}}
    assert not _dataset_is_the_records(record)
    values, note = plan_reference([record])
    assert values is None and "no reference lines" in note
    # the same dataset is the record's when the record names its settings
    assert _dataset_is_the_records({**record, "dataset": {**made_as, "overrides": ["agent.hidden_dim=64"]}})
    assert not _dataset_is_the_records({**record, "dataset": {**made_as, "seed": 1}})
    # no dataset there: not the record's either
    assert not _dataset_is_the_records({**record, "config": {"algo_params": {"data_dir": str(tmp_path / "gone")}}})


def test_a_moved_work_folder_keeps_its_dataset(tmp_path):
    """The dataset stamp names no absolute path, so a work folder copied elsewhere is recognised;
    a dataset made with other settings is still refused."""
    from rlkit.reproduce.runner import Budget, Layout, Reproduction

    plan = load_plan(tiny_plan(tmp_path))
    first = Reproduction(plan, Layout(tmp_path / "a" / plan.name, tmp_path / "rec"), Budget(None), echo=lambda m: None)
    first.layout.root.mkdir(parents=True)
    stamp_dataset(first)
    assert str(first.layout.data_dir) not in first.portable_dataset_args()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    moved = Reproduction(plan, Layout(tmp_path / "b" / plan.name, tmp_path / "rec"), Budget(None), echo=lambda m: None)
    assert moved.dataset_ready()
    save_config({"policy_train_args": ["--seed", "7"]}, moved.layout.root / "dataset.done.json")
    with pytest.raises(ReproduceError, match="made with other settings"):
        moved.dataset_ready()
    # a stamp of the older kind, holding the absolute paths of the checkout and work folder that made it
    committed = load_plan(plan_path("point-robot", "cpu"))
    here = Reproduction(committed, Layout(tmp_path / "c" / committed.name, tmp_path / "rec"), Budget(None),
                        echo=lambda m: None)
    old = ["/old/checkout/configs/point-robot.json" if a == "configs/point-robot.json" else
           "/old/out/point-robot-cpu/offline_dataset" if a == "<data_dir>" else a for a in here.portable_dataset_args()]
    assert old != here.portable_dataset_args()
    here.layout.root.mkdir(parents=True)
    stamp_dataset(here)
    save_config({"policy_train_args": old}, here.layout.dataset_stamp)
    assert here.dataset_ready()


def test_a_plan_can_train_on_another_plans_dataset(tmp_path, capsys):
    """Plans that differ only in training settings share one dataset: no second generation."""
    from rlkit.reproduce import __main__ as cli
    from rlkit.reproduce.runner import Budget, Layout, Reproduction

    base_path = tiny_plan(tmp_path)
    variant_path = tmp_path / "variant.yaml"
    text = base_path.read_text().replace("scale: tiny", "scale: tiny-longer").replace(
        "algo_params.num_iterations=3", "algo_params.num_iterations=4")
    own_dataset = text[text.index("dataset:"):text.index("methods:")]
    variant_path.write_text(text.replace(own_dataset, "dataset: {from_plan: tiny.yaml}\n"))
    base, variant = load_plan(base_path), load_plan(variant_path)
    assert variant.name == "point-robot-tiny-longer" and variant.dataset_home == "point-robot-tiny"
    assert variant.dataset == base.dataset and variant.num_iterations == 4
    base_layout = Layout.for_plan(tmp_path / "work", base, tmp_path / "records")
    layout = Layout.for_plan(tmp_path / "work", variant, tmp_path / "records")
    assert layout.root == tmp_path / "work" / "point-robot-tiny-longer"
    assert layout.data_dir == base_layout.data_dir and layout.dataset_stamp == base_layout.dataset_stamp
    # the base plan's finished dataset is recognised by the variant as its own: nothing is generated
    repro = Reproduction(base, base_layout, Budget(None), echo=lambda m: None)
    layout.dataset_stamp.parent.mkdir(parents=True)
    stamp_dataset(repro)
    assert Reproduction(variant, layout, Budget(None), echo=lambda m: None).ensure_dataset()
    # a variant cannot also set dataset settings, name an unknown plan, another env's plan, or itself
    for dataset, message in [("{from_plan: tiny.yaml, seed: 1}", "has no settings of its own (found seed)"),
                             ("{from_plan: no-such-plan}", "'no-such-plan' is not a plan"),
                             ("{from_plan: cheetah-vel-cpu}", "is a 'cheetah-vel' dataset, which 'point-robot' does not learn from"),
                             ("{from_plan: variant.yaml}", "leads back to itself")]:
        bad = variant_path.read_text().replace("dataset: {from_plan: tiny.yaml}", f"dataset: {dataset}")
        variant_path.write_text(bad)
        assert cli.main(args(variant_path, tmp_path, "--report-only")) == 2
        err = capsys.readouterr().err
        assert message in err and "\n" not in err.strip()
        variant_path.write_text(bad.replace(f"dataset: {dataset}", "dataset: {from_plan: tiny.yaml}"))


def test_status_says_what_is_done_from_the_files(tmp_path, capsys):
    from rlkit.evaluation.protocols import PROGRESS_KEYS
    from rlkit.reproduce import __main__ as cli
    from rlkit.reproduce.runner import Layout, record_path

    path = tiny_plan(tmp_path)  # CSRO, FOCAL x seed 0; 3 iterations
    plan = load_plan(path)
    layout = Layout.for_plan(tmp_path / "work", plan, tmp_path / "records")

    def status(*extra):
        assert cli.main(args(path, tmp_path, "--status", *extra)) == 0
        return capsys.readouterr().out

    out = status()
    assert "offline_dataset: not started" in out and "CSRO seed 0: not started" in out
    assert not (tmp_path / "work").exists() and not (tmp_path / "report").exists()  # it only looks
    layout.data_dir.mkdir(parents=True)
    assert "offline_dataset: started, not finished" in status()
    layout.dataset_stamp.write_text("{}")
    run_dir = layout.run_dir(plan, "CSRO", 0)
    run_dir.mkdir(parents=True)
    pd.DataFrame({"Epoch": [0, 1], **{PROGRESS_KEYS[p]: [-9.0, -7.25] for p in PROTOCOLS}}).to_csv(
        run_dir / "progress.csv", index=False)
    out = status()
    assert "offline_dataset: ready" in out
    assert "CSRO seed 0: 2 of 3 iterations (last iteration: online -7.25, offline -7.25, np_online -7.25)" in out
    record = record_path(tmp_path / "records", plan, "FOCAL", 0)
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    assert "FOCAL seed 0: recorded" in status()
    assert "FOCAL" not in status("--methods", "CSRO")


def test_a_dataset_built_with_other_generator_settings_is_refused(tmp_path, capsys):
    """The same policy_train arguments resolve to other settings when a SAC preset's defaults change
    (same_init became the default): the dataset records what it was made with, and the plan is refused."""
    from rlkit.reproduce.runner import Budget, Layout, Reproduction

    plan = load_plan(tiny_plan(tmp_path))
    lines = []
    repro = Reproduction(plan, Layout.for_plan(tmp_path / "work", plan, tmp_path / "records"), Budget(None),
                         echo=lines.append)
    stamp_dataset(repro)
    assert repro.dataset_ready()
    profile = json.loads((tmp_path / "records" / plan.name / "dataset_profile.json").read_text())
    assert profile == {}  # the stand-in dataset holds no checkpoint; a real one is profiled (test below)
    made = json.loads((repro.layout.data_dir / "dataset.json").read_text())["generator_config"]
    del made["sac"]["same_init"]  # a dataset written before the option: independent initial weights
    shutil.rmtree(repro.layout.data_dir)
    stamp_dataset(repro, made)
    with pytest.raises(ReproduceError, match=r"other generator settings .*sac.same_init: False there, True now"):
        repro.dataset_ready()
    # a stamp whose dataset is gone is not "ready": the dataset is built again
    shutil.rmtree(repro.layout.data_dir)
    assert not repro.dataset_ready() and not repro.layout.dataset_stamp.exists()
    assert "holds none: building it again" in lines[-1]


def test_sparse_point_robot_learns_from_the_point_robot_dataset(tmp_path):
    """Both generators train on the dense reward: one dataset, made once, serves the sparse env."""
    from rlkit.envs import offline_data_env

    assert offline_data_env("sparse-point-robot") == "point-robot" and offline_data_env("point-robot") == "point-robot"
    sparse = load_plan(plan_path("sparse-point-robot", "cpu-slow-behaviour"))
    assert sparse.dataset_home == "point-robot-cpu-slow-behaviour"
    assert sparse.dataset == load_plan(plan_path("point-robot", "cpu-slow-behaviour")).dataset


# ------------------------------------------------------------------ the runner never loses a run
def _hold_run_lock(run_dir: Path) -> subprocess.Popen:
    """Another process (a second runner's child, an orphan of a killed runner) holding the run's lock."""
    code = ("import sys, time; from pathlib import Path; from rlkit.core.logger import RunLock; "
            "RunLock.acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_runner_does_not_touch_a_live_run(tmp_path, monkeypatch, capsys):
    from rlkit.reproduce import __main__ as cli
    from rlkit.reproduce import runner

    plan = load_plan(tiny_plan(tmp_path))
    layout = runner.Layout.for_plan(tmp_path / "work", plan, tmp_path / "records")
    started = []
    monkeypatch.setattr(runner.Job, "start", lambda job, threads: started.append(job.label))
    monkeypatch.setattr(runner.Reproduction, "ensure_dataset", lambda self: True)
    for snapshot in (False, True):  # a live run before its first snapshot, and one that has snapshots
        run_dir = layout.run_dir(plan, "CSRO", 0)
        shutil.rmtree(tmp_path / "work", ignore_errors=True)
        run_dir.mkdir(parents=True)
        (run_dir / "progress.csv").write_text("Epoch,x\n0,1.0\n")
        if snapshot:
            (run_dir / "agent.pth").write_bytes(b"snapshot")
        before = sorted((p.name, p.read_bytes()) for p in run_dir.iterdir() if p.name != ".lock")
        holder = _hold_run_lock(run_dir)
        try:
            assert cli.main(args(tiny_plan(tmp_path), tmp_path)) == 2
        finally:
            holder.kill()
            holder.wait()
        err = capsys.readouterr().err
        assert f"is in use by process {holder.pid}" in err and "touches nothing of it" in err
        assert "\n" not in err.strip()
        assert sorted((p.name, p.read_bytes()) for p in run_dir.iterdir() if p.name != ".lock") == before
        assert started == [] and list(run_dir.parent.iterdir()) == [run_dir]


def test_a_run_folder_without_snapshot_is_moved_aside_not_deleted(tmp_path):
    from rlkit.reproduce.runner import Budget, Layout, Reproduction

    plan = load_plan(tiny_plan(tmp_path))
    layout = Layout(tmp_path / "work", tmp_path / "records")
    messages = []
    repro = Reproduction(plan, layout, Budget(None), echo=messages.append)
    run_dir = layout.run_dir(plan, "CSRO", 0)
    run_dir.mkdir(parents=True)
    (run_dir / "progress.csv").write_text("Epoch,x\n0,1.0\n1,2.0\n")  # rows written, the first snapshot lost
    job = repro.train_job("CSRO", 0)
    assert "--resume" not in job.cmd and not run_dir.exists()
    aside = [p for p in run_dir.parent.iterdir()]
    assert len(aside) == 1 and aside[0].name.startswith("aside.seed0.")
    assert (aside[0] / "progress.csv").read_text() == "Epoch,x\n0,1.0\n1,2.0\n"
    assert str(aside[0]) in messages[-1]
    run_dir.mkdir()  # a second failed start: another free name, the first one kept
    repro.train_job("CSRO", 0)
    assert len(list(run_dir.parent.iterdir())) == 2


def test_sigkill_of_the_runner_stops_its_children(tmp_path):
    """Children run in sessions of their own; the kernel stops them when the runner dies (PR_SET_PDEATHSIG)."""
    plan = tiny_plan(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "rlkit.reproduce", *args(plan, tmp_path)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_default_sigint)
    marker = str(tmp_path / "work")
    started = tmp_path / "work" / "point-robot-tiny" / "offline_dataset" / "_generator"
    deadline = time.monotonic() + 60
    while not (any("policy_train.py" in a for a in processes_mentioning(marker)) and started.is_dir()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60
    while processes_mentioning(marker):
        assert time.monotonic() < deadline, processes_mentioning(marker)
        time.sleep(0.2)
    child_log = (tmp_path / "work" / "point-robot-tiny" / "logs" / "dataset.log").read_text()
    assert "interrupted" in child_log or "KeyboardInterrupt" in child_log  # stopped cleanly, not killed


# ------------------------------------------------------------------ plans, records and budgets are checked
@pytest.mark.parametrize("old, new, message", [
    ("train_overrides: [", "train_overrides: [algo_type=CSRO, ", "train_overrides may not set algo_type"),
    ("train_overrides: [", "train_overrides: [util_params.exp_name=x, ", "may not set util_params.exp_name"),
    ("train_overrides: [", "train_overrides: [seed=3, ", "may not set seed"),
    ("train_overrides: [", "train_overrides: [algo_params.data_dir=/x, ", "may not set algo_params.data_dir"),
    ("seeds: [0]", "seeds: [0.7]", "seeds must be a list of whole numbers from 0 to 4294967295"),
    ("seeds: [0]", "seeds: [0, 0]", "seeds lists 0 twice"),
    ("seeds: [0]", "seeds: [-1]", "seeds must be a list of whole numbers"),
    ("seeds: [0]", "seeds: 3", "seeds must be a list of whole numbers"),
    ("methods: [CSRO, FOCAL]", "methods: [CSRO, CSRO]", "methods lists 'CSRO' twice"),
    ("scale: tiny", "scale: ../../../x", "scale '../../../x' must be one plain name"),
    ("scale: tiny", "scale: a/b", "scale 'a/b' must be one plain name"),
    ("scale: tiny", "scale: .hidden", "scale '.hidden' must be one plain name"),
    ("paper:\n  FOCAL: {offline: -4.4, online: -14.9}", "paper: [1, 2]", "paper must map methods to"),
    ("paper:\n  FOCAL: {offline: -4.4, online: -14.9}", "paper: {FOCAL: {offlin: -4.4}}", "paper must map methods"),
    ("reductions:\n  - {what: \"everything tiny\", why: \"a test\"}", "reductions: hello",
     "reductions must be a list of {what: ..., why: ...}"),
    ("parallel: 2", "parallel: two", "parallel must be a whole number 1 or more, got 'two'"),
    ("final_window: 2", "final_window: 0", "final_window must be a whole number 1 or more"),
    ("claims: true", "claims: maybe", "claims must be true or false"),
    ("  seed: 0\n", "  seed: 0.5\n", "dataset seed must be a whole number"),
])
def test_bad_plan_values_are_one_line_errors_at_load_time(tmp_path, capsys, old, new, message):
    from rlkit.reproduce import __main__ as cli

    path = tiny_plan(tmp_path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_plan(path)
    assert cli.main(args(path, tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "work").exists() and not (tmp_path / "records").exists()
    assert not (tmp_path / "x").exists()


def _record(plan, method: str, seed: int) -> dict:
    """A record as build_record writes it, without a run behind it."""
    from rlkit.reproduce.records import RECORD_VERSION, dataset_identity

    config = plan.resolved_config(method)
    config.update(seed=seed, exp_name=method)
    return {"record_version": RECORD_VERSION, "plan": plan.name, "env": plan.env, "scale": plan.scale,
            "method": method, "seed": seed, "final_window": plan.final_window, "num_iterations": 3, "train_steps": 15,
            "final": {"offline": -7.5, "online": -7.5, "np_online": -7.5},  # the mean of the last final_window (2)
            "last": {"offline": -7.0, "online": -7.0, "np_online": -7.0},
            "curves": {"steps": [5, 10, 15], **{p: [-9.0, -8.0, -7.0] for p in ("offline", "online", "np_online")}},
            "context_shift": {}, "reference": None, "wall_time_s": {"train": 1.0, "eval": 1.0, "context_shift": 0.0},
            "dataset": dataset_identity(plan), "config": config}


def test_a_record_must_be_what_its_name_says(tmp_path, capsys):
    from rlkit.reproduce import __main__ as cli
    from rlkit.reproduce.records import load_records, record_path

    path = tiny_plan(tmp_path)
    plan = load_plan(path)
    root = tmp_path / "records"
    for m in ("CSRO", "FOCAL"):
        save_config(_record(plan, m, 0), record_path(root, plan, m, 0))
    assert [r["method"] for r in load_records(root, plan)] == ["CSRO", "FOCAL"]
    folder = root / plan.name
    good = {p.name: p.read_bytes() for p in folder.iterdir()}

    def refused(message: str) -> None:
        with pytest.raises(ValueError, match=re.escape(message)):
            load_records(root, plan)
        assert cli.main(args(path, tmp_path, "--report-only")) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
        for p in folder.iterdir():
            p.unlink()
        for name, data in good.items():
            (folder / name).write_bytes(data)

    # a CSRO record copied over FOCAL's: FOCAL would count as done and CSRO show twice
    (folder / "FOCAL_seed0.json").write_bytes(good["CSRO_seed0.json"])
    refused("FOCAL_seed0.json holds CSRO seed 0 (a copy of CSRO_seed0.json), not what its name says")
    # a duplicate under another name would count as a second seed
    (folder / "CSRO_seed0 (copy).json").write_bytes(good["CSRO_seed0.json"])
    refused("CSRO_seed0 (copy).json holds CSRO seed 0 (a copy of CSRO_seed0.json), not what its name says")
    # a record renamed to another seed
    (folder / "FOCAL_seed0.json").unlink()
    (folder / "FOCAL_seed1.json").write_bytes(good["FOCAL_seed0.json"])
    refused("FOCAL_seed1.json holds FOCAL seed 0, not what its name says")
    # content edited to another method than its config ran
    edited = json.loads(good["FOCAL_seed0.json"])
    edited["method"] = "CSRO"
    (folder / "FOCAL_seed0.json").write_text(json.dumps(edited))
    refused("says CSRO seed 0 but its config ran FOCAL seed 0")
    # another plan's record, another scale, another final window
    for key, value, message in (("plan", "point-robot-cpu", "holds plan 'point-robot-cpu', but plan point-robot-tiny"),
                                ("scale", "cpu", "holds scale 'cpu'"), ("final_window", 3, "holds final_window 3")):
        rec = json.loads(good["CSRO_seed0.json"])
        rec[key] = value
        (folder / "CSRO_seed0.json").write_text(json.dumps(rec))
        refused(message)
    # a record without its config (or another field the table reads)
    for key in ("config", "final", "seed"):
        rec = json.loads(good["CSRO_seed0.json"])
        del rec[key]
        (folder / "CSRO_seed0.json").write_text(json.dumps(rec))
        refused(f"CSRO_seed0.json lacks {key!r}")
    rec = json.loads(good["CSRO_seed0.json"])
    rec["seed"] = "0"
    (folder / "CSRO_seed0.json").write_text(json.dumps(rec))
    refused("has a malformed 'seed'")
    (folder / "CSRO_seed0.json").write_text("[1, 2]")
    refused("is not a record")


def test_a_record_must_agree_with_itself(tmp_path, capsys):
    """Was: a record whose final no longer matched its curves, or whose config claimed more iterations than
    its curves hold, went into the table. "final" is recomputed as build_record computes it (the mean of the
    last final_window values, NaN skipped) and compared to 1e-9 relative, never bit for bit."""
    import math

    from rlkit.reproduce import __main__ as cli
    from rlkit.reproduce.records import load_records, record_path

    path = tiny_plan(tmp_path)  # 3 iterations, final_window 2
    plan = load_plan(path)
    root = tmp_path / "records"
    target = record_path(root, plan, "CSRO", 0)

    def accepted(rec) -> None:
        save_config(rec, target)
        assert [r["method"] for r in load_records(root, plan)] == ["CSRO"]

    def refused(rec, message: str) -> None:
        save_config(rec, target)
        with pytest.raises(ValueError, match=re.escape(message)):
            load_records(root, plan)
        assert cli.main(args(path, tmp_path, "--report-only")) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err

    good = _record(plan, "CSRO", 0)
    accepted(good)
    edited = json.loads(json.dumps(good))
    edited["final"]["online"] = -6.0
    refused(edited, f"record {target} does not agree with itself: its final online return -6.0 is not the mean "
                    "of the last 2 values of its online curve (-7.5)")
    edited = json.loads(json.dumps(good))
    edited["last"]["offline"] = -8.0
    refused(edited, "its last offline return -8.0 is not the last value of its offline curve (-7.0)")
    # curves cut to 2 iterations (final and last still agree with them) under a config of 3
    short = json.loads(json.dumps(good))
    short["curves"] = {"steps": [10, 15], **{p: [-8.0, -7.0] for p in PROTOCOLS}}
    short.update(num_iterations=2)
    refused(short, f"record {target} does not agree with itself: its config runs algo_params.num_iterations=3 "
                   "but its curves hold 2 iterations")
    edited = json.loads(json.dumps(good))
    edited["curves"]["np_online"] = [-8.0, -7.0]
    refused(edited, "its np_online curve holds 2 values but its steps 3")
    edited = json.loads(json.dumps(good))
    edited["num_iterations"] = 5
    refused(edited, "it says num_iterations 5 but its curves hold 3 iterations")
    edited = json.loads(json.dumps(good))
    edited["train_steps"] = 20
    refused(edited, "it says train_steps 20 but its curves end at step 15")
    # what the writer does with NaN (an evaluation that failed): null in the curve, skipped by the mean
    nan = json.loads(json.dumps(good))
    nan["curves"]["online"] = [-9.0, None, -7.0]
    nan["final"]["online"], nan["last"]["online"] = -7.0, -7.0
    accepted(nan)
    nan["curves"]["online"] = [-9.0, None, None]
    nan["final"]["online"], nan["last"]["online"] = None, None
    accepted(nan)
    # the same mean from another CPU's rounding: a few ulps off is the same number
    ulp = json.loads(json.dumps(good))
    ulp["final"]["online"] = math.nextafter(math.nextafter(-7.5, 0.0), 0.0)
    accepted(ulp)


def test_a_budget_too_small_to_start_anything_is_refused_up_front(tmp_path, capsys):
    from rlkit.reproduce import __main__ as cli

    for text in ("0", "10s", "59"):
        with pytest.raises(ReproduceError, match="under the minimum of 60s"):
            parse_budget(text)
        assert cli.main(args(tiny_plan(tmp_path), tmp_path, "--budget", text)) == 2
        err = capsys.readouterr().err
        assert f"--budget '{text}' is under the minimum of 60s" in err and err.count("\n") == 1
        assert not (tmp_path / "work").exists()
    assert parse_budget("60s") == 60 and parse_budget("1m") == 60


def _curve_record(method: str, seed: int, steps: list[int], online: list | None = None) -> dict:
    from rlkit.evaluation.reference import ReferenceReturns

    values = [-20.0 + i + seed for i in range(len(steps))]
    return {"method": method, "seed": seed,
            "curves": {"steps": steps, "offline": values, "online": values if online is None else online,
                       "np_online": values},
            "reference": ReferenceReturns(-30.0, -5.0, 400, -8.0, tuple(range(10)), 20, 10, "data").as_dict()}


def test_the_plan_figure_is_fit_for_a_paper(tmp_path, monkeypatch, capsys):
    """Before: a 90 dpi PNG 13 in wide (8 pt when printed at page width), titled with the plan's scale name,
    offline panel first unlike rlkit.plot, a band where one seed had data."""
    from rlkit import plot as rplot
    from rlkit.reproduce.plan import DatasetPlan, Plan
    from rlkit.reproduce.report import plot_curves
    from tests.test_plot_references import (
        assert_legible_at_its_width,
        bands,
        capture_figures,
        figure_texts,
        legend_texts,
        png_dpi,
        png_size,
    )

    plan = Plan(env="point-robot", scale="cpu-longer", config=Path("c.yaml"), description="",
                dataset=DatasetPlan("expert"), methods=["CSRO", "FOCAL"], seeds=[0, 1, 2], train_overrides=[])
    steps = [100, 200, 300, 400, 500]
    records = [_curve_record("CSRO", 0, steps), _curve_record("CSRO", 1, steps, [None, None, None, -17.0, -16.0]),
               _curve_record("CSRO", 2, [*steps, 600], [None] * 6), _curve_record("FOCAL", 0, steps)]
    path = plot_curves(plan, records, tmp_path / "fig" / "plan.png")
    assert path == tmp_path / "fig" / "plan.png" and png_dpi(path) >= 200
    assert png_size(path)[0] / png_dpi(path) <= rplot.FULL_WIDTH_IN + 0.05
    assert (tmp_path / "fig" / "plan.pdf").read_bytes()[:5] == b"%PDF-"
    err = capsys.readouterr().err
    assert ("warning: the CSRO runs have different lengths (seed 0 to step 500, seed 1 to step 500, seed 2 to step "
            "600); the figure uses only the steps up to 500, which all of them reached") in err

    seen = capture_figures(monkeypatch)
    plot_curves(plan, records, tmp_path / "plan.png")
    fig = seen[0]
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == [rplot.PROTOCOL_TITLES[p] for p in rplot.PROTOCOL_ORDER]
    assert_legible_at_its_width(fig)
    texts = figure_texts(fig)
    assert not any("scale" in t.get_text() or "cpu" in t.get_text() for t in texts)
    legend = legend_texts(fig)
    assert legend[:3] == ["CSRO (mean of 2 seeds)", "FOCAL (1 seed)", "uniform-random policy (-30.0)"]
    assert "CSRO (mean of 3 seeds)" in legend and "min-max over 2-3 seeds" in legend
    assert "best behaviour checkpoint, generator step 400 (-5.0)" in legend
    online, offline, _ = axes
    assert len(bands(online)) == 1 and len(bands(offline)) == 1  # FOCAL's one seed has none
    assert bands(online)[0].get_paths()[0].vertices[:, 0].min() == 400  # where seed 1 joins seed 0
    assert bands(offline)[0].get_paths()[0].vertices[:, 0].min() == 100


def test_runs_on_two_generations_of_a_plans_dataset_are_said_on_the_page():
    """Same recipe, regenerated data: the records' behaviour references differ, and the page says which
    runs trained on which generation instead of averaging them silently."""
    from rlkit.reproduce.report import dataset_generations, generations_note

    base = {"random": -448.0, "behaviour_best_step": 27500, "tasks": [2, 6], "episode_length": 200,
            "random_episodes": 10, "data_dir": "gone"}
    config = {"algo_params": {"data_dir": "gone"}}

    def rec(method, seed, best, data):
        return {"method": method, "seed": seed, "config": config,
                "reference": {**base, "random": -448.0 - seed, "behaviour_best": best, "behaviour_data": data}}

    same = [rec("CSRO", 0, -289.0, -344.4), rec("FOCAL", 0, -289.0, -344.4), rec("FOCAL", 1, -289.0, -344.4)]
    assert len(dataset_generations(same)) == 1 and generations_note(same) == []  # random differs by seed: fine
    mixed = same + [rec("CSRO", 1, -265.0, -330.2)]
    gens = dataset_generations(mixed)
    assert [len(recs) for _, recs in gens] == [3, 1]
    note = " ".join(generations_note(mixed))
    assert "2 generations" in note and "CSRO seed 0, FOCAL seed 0, FOCAL seed 1 (best behaviour checkpoint -289.0" in note
    assert "CSRO seed 1 (best behaviour checkpoint -265.0, data -330.2)" in note
    assert dataset_generations([{"seed": 0, "config": config}]) == []  # no references: nothing to compare


def test_a_report_figure_rebuilt_with_other_font_tools_leaves_its_pdf_as_it_was(tmp_path, monkeypatch):
    """`--report-only` rewrote docs/results/*.pdf on a machine whose fontTools subsets the embedded font
    into other bytes, dirtying the tree for a figure that showed the same: writing the same records twice,
    once with another font subsetter, gives byte-identical files."""
    from rlkit.reproduce.plan import DatasetPlan, Plan
    from rlkit.reproduce.report import plot_curves
    from tests.test_plot_references import _other_font_subsetter

    plan = Plan(env="point-robot", scale="cpu", config=Path("c.yaml"), description="",
                dataset=DatasetPlan("expert"), methods=["CSRO"], seeds=[0, 1], train_overrides=[])
    records = [_curve_record("CSRO", 0, [100, 200, 300]), _curve_record("CSRO", 1, [100, 200, 300])]
    with monkeypatch.context() as m:
        _other_font_subsetter(m)
        plot_curves(plan, records, tmp_path / "plan.png")
    first = {ext: (tmp_path / f"plan.{ext}").read_bytes() for ext in ("png", "pdf")}
    plot_curves(plan, records, tmp_path / "plan.png")
    assert {ext: (tmp_path / f"plan.{ext}").read_bytes() for ext in ("png", "pdf")} == first


def test_method_overrides_reach_only_their_method_and_cannot_change_the_length(tmp_path):
    """A method's own settings (BOReL's VAE stage) go to its runs alone; a method the plan lacks, or one
    that would train for other steps than the rest, is refused in one line."""
    path = tiny_plan(tmp_path)
    text = path.read_text().replace("methods: [CSRO, FOCAL]", "methods: [CSRO, BOReL]")
    path.write_text(text + 'method_overrides:\n  BOReL: ["borel.vae_train_steps=7", "borel.policy_start_step=7"]\n')
    plan = load_plan(path)
    assert plan.resolved_config("BOReL")["borel"] == {"variant": "BOReL", "vae_train_steps": 7, "policy_start_step": 7}
    assert "borel" not in plan.resolved_config("CSRO")
    run = plan.run_overrides("BOReL", tmp_path / "d", tmp_path / "o")
    assert run[-2:] == ["borel.vae_train_steps=7", "borel.policy_start_step=7"]
    assert not any(o.startswith("borel.") for o in plan.run_overrides("CSRO", tmp_path / "d", tmp_path / "o"))
    for bad, message in (('  FOCAL: ["algo_params.batch_size=8"]\n', "names 'FOCAL', which is not among"),
                         ('  BOReL: ["algo_params.num_iterations=9"]\n', "may not set 'algo_params.num_iterations=9'"),
                         ('  BOReL: ["algo_type=CSRO"]\n', "may not set algo_type")):
        path.write_text(text + "method_overrides:\n" + bad)
        with pytest.raises(ConfigError, match=message) as err:
            load_plan(path)
        assert "\n" not in str(err.value)
def test_a_method_without_a_task_embedding_is_recorded_without_context_shift_and_its_table_says_n_a(tmp_path):
    """Prompt-DT has no z: the runner writes its record right after training (no context-shift job, which
    would refuse it) and the report's context-shift cells say n/a; CSRO's training still goes on to it."""
    from rlkit.reproduce import runner
    from rlkit.reproduce.records import load_records
    from rlkit.reproduce.report import markdown

    path = tiny_plan(tmp_path)
    path.write_text(path.read_text().replace("methods: [CSRO, FOCAL]", "methods: [CSRO, Prompt-DT]"))
    plan = load_plan(path)
    messages = []
    repro = runner.Reproduction(plan, runner.Layout.for_plan(tmp_path / "work", plan, tmp_path / "records"),
                                runner.Budget(None), echo=messages.append)
    assert repro.has_task_embedding("CSRO") and not repro.has_task_embedding("Prompt-DT")
    n = plan.num_iterations
    for method in ("CSRO", "Prompt-DT"):  # finished trainings, as a run leaves them
        run_dir = repro.layout.run_dir(plan, method, 0)
        run_dir.mkdir(parents=True)
        columns = {"Epoch": list(range(n)), "Number of train steps total": [5 * (i + 1) for i in range(n)],
                   "Train Time (s)": [1.0] * n, "Eval Time (s)": [0.5] * n,
                   **{key: [-9.0 + i for i in range(n)] for key in PROGRESS_KEYS.values()}}
        pd.DataFrame(columns).to_csv(run_dir / "progress.csv", index=False)
        save_config({**plan.resolved_config(method), "seed": 0}, run_dir / "variant.json")
        (run_dir / "agent.pth").write_bytes(b"snapshot")
    follow = repro.finish(runner.Job("CSRO seed 0", [], tmp_path / "log", "CSRO", 0))
    assert follow.kind == "shift" and "rlkit.context_shift" in follow.cmd
    assert repro.status()[-1].startswith("Prompt-DT seed 0: trained, record pending")
    assert repro.next_job("Prompt-DT", 0) is None  # trained: only its record was missing, now written
    record = runner.record_path(repro.layout.records, plan, "Prompt-DT", 0)
    assert record.is_file() and "Prompt-DT seed 0 done" in messages[-1]
    assert json.loads(record.read_text())["context_shift"] == {}
    assert repro.finish(runner.Job("Prompt-DT seed 0", [], tmp_path / "log", "Prompt-DT", 0)) is None
    page = markdown(plan, load_records(repro.layout.records, plan), None, "test")
    assert "| Prompt-DT | n/a | n/a | n/a |" in page
