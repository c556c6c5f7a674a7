"""Ctrl-C and SIGTERM end every command in one line: where it stopped and the command that resumes it.

Each command runs as a user runs it (a subprocess, in a session of its own as a terminal's job) and
is stopped while it works: SIGINT goes to its whole process group, as a terminal's Ctrl-C does (so
worker processes get it too), SIGTERM to the process, as ``kill`` does. The exit status is what a
shell reports (130, 143), there is no traceback, and the one line's command parses back (shlex) to
the command that continues the work.

The work-phase checks of launch_experiment.py and policy_train.py run both signals here; each other
command gets one signal here and the other one under ``make test-slow`` (they share one code path,
:func:`rlkit.errors.cli`, and a subprocess costs seconds of imports).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from rlkit.errors import INTERRUPTED_EXIT, TERMINATED_EXIT, Terminated, cli, interrupt_behind, on_interrupt
from tests.helpers import REPO, small_point_robot_config

TINY = ["algo_params.train_epoch=[100,200,100]", "algo_params.eval_epoch=[100,200,100]", "algo_params.n_trj=2",
        "algo_params.num_train_steps_per_itr=5", "algo_params.embedding_batch_size=16", "algo_params.batch_size=16",
        "algo_params.num_steps_per_eval=20", "net_size=32", "latent_size=4"]
EXIT = {signal.SIGINT: INTERRUPTED_EXIT, signal.SIGTERM: TERMINATED_EXIT}
WORD = {signal.SIGINT: "interrupted (", signal.SIGTERM: "terminated ("}
slow_half = pytest.mark.slow
# the reading tools are stopped at their first status line, so a long job costs nothing; 40 evaluations
# took under a second on a fast CPU and ended before the signal came
MANY_EVALS = "5000"


@dataclass
class Stopped:
    rc: int
    out: str
    err: str

    def the_line(self, sig: int) -> tuple[str, str, list[str]]:
        """(where, how, command) of the one interrupt line, after checking the exit and the absence of tracebacks."""
        assert self.rc == EXIT[sig], (self.rc, self.out[-2000:], self.err[-3000:])
        assert "Traceback" not in self.err + self.out, self.err[-3000:]
        lines = [ln for ln in self.err.splitlines() if ln.startswith(("interrupted (", "terminated ("))]
        assert len(lines) == 1 and lines[0].startswith(WORD[sig]), self.err[-3000:]
        head, _, rest = lines[0].partition("; ")
        how, _, command = rest.partition(": ")
        return head.partition("): ")[2], how, shlex.split(command)


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def run_and_stop(cmd: list[str], cwd: Path, sig: int, ready: Callable[[int, str], bool],
                 timeout: float = 600) -> Stopped:
    """Start ``cmd``, wait until ``ready(pid, output so far)``, send ``sig``, wait for the end."""
    cwd.mkdir(parents=True, exist_ok=True)
    out_path, err_path = cwd / "_stdout.txt", cwd / "_stderr.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CSRO_PROGRESS_INTERVAL": "0.3"}
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, env=env, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout
    try:
        while not ready(proc.pid, out_path.read_text() + err_path.read_text()):
            assert proc.poll() is None, f"ended before the signal:\n{out_path.read_text()}\n{err_path.read_text()}"
            assert time.monotonic() < deadline, "never got to work"
            time.sleep(0.02)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # Ctrl-C: the terminal signals the whole foreground group
        else:
            os.kill(proc.pid, sig)  # kill PID
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return Stopped(proc.returncode, out_path.read_text(), err_path.read_text())


def python_ok(word: str) -> bool:
    return word in ("python", sys.executable)


def importing_torch(pid: int, _: str) -> bool:
    """The command is importing its modules (torch's library is mapped): before its ``main`` runs."""
    return "libtorch" in _maps(pid)


def status_line(desc: str) -> Callable[[int, str], bool]:
    """A progress status line of ``desc`` (``CSRO_PROGRESS_INTERVAL`` makes them frequent) that is not its
    final ``(done)`` line: it is working, with work left (a fast machine finished a small job between the
    first status line and the signal, and the test then saw a command that had nothing left to stop)."""
    pattern = re.compile(re.escape(desc) + r".*: \d+/\d+(?!.*\(done\))")
    return lambda pid, text: pattern.search(text) is not None


# SIGINT and SIGTERM in the default suite
both_here = pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])


def one_here(here: int):
    """``here`` in the default suite, the other signal under ``make test-slow``."""
    other = signal.SIGTERM if here == signal.SIGINT else signal.SIGINT
    return pytest.mark.parametrize("sig", [here, pytest.param(other, marks=slow_half)],
                                   ids=[signal.Signals(here).name, signal.Signals(other).name])


# ---- launch_experiment.py ------------------------------------------------------------------


@both_here
def test_launch_experiment_names_the_resume_command(tiny_csro_run, tmp_path, sig):
    config = small_point_robot_config(tmp_path, n_tasks=8, n_train=6, meta_batch=4)
    out = tmp_path / "my out"  # a space: the command must come back quoted
    args = [str(config), "--seed", "2", "--exp_name", "it's", f"algo_params.data_dir={tiny_csro_run.data_dir}",
            f"util_params.base_log_dir={out}", "algo_params.num_iterations=100000", *TINY]
    run_dir = out / "point-robot" / "it's" / "seed2"
    res = run_and_stop([sys.executable, str(REPO / "launch_experiment.py"), *args], tmp_path / "cwd", sig,
                       lambda pid, text: (run_dir / "agent.pth").is_file())
    where, how, command = res.the_line(sig)
    assert re.fullmatch(rf"run {re.escape(str(run_dir))} stopped after iteration \d+", where), where
    assert how == "continue it with"
    assert python_ok(command[0]) and command[1:] == [str(REPO / "launch_experiment.py"), *args, "--resume",
                                                      str(run_dir)]


@one_here(signal.SIGTERM)
def test_a_sweep_is_rerun_as_it_was(tiny_csro_run, tmp_path, sig):
    config = small_point_robot_config(tmp_path, n_tasks=8, n_train=6, meta_batch=4)
    out = tmp_path / "out"
    args = [str(config), "--seeds", "0,1", "--exp_name", "sw", f"algo_params.data_dir={tiny_csro_run.data_dir}",
            f"util_params.base_log_dir={out}", "algo_params.num_iterations=100000", *TINY]
    first = out / "point-robot" / "sw" / "seed0"
    res = run_and_stop([sys.executable, str(REPO / "launch_experiment.py"), *args], tmp_path / "cwd", sig,
                       lambda pid, text: (first / "agent.pth").is_file())
    where, how, command = res.the_line(sig)
    assert where.startswith(f"the sweep of 2 run(s) stopped in {first} after iteration")
    assert how.startswith("run the same command again")
    assert python_ok(command[0]) and command[1:] == [str(REPO / "launch_experiment.py"), *args]


# ---- policy_train.py --------------------------------------------------------------------------


@both_here
def test_policy_train_is_continued_by_the_same_command(tmp_path, sig):
    config = small_point_robot_config(tmp_path)
    data = tmp_path / "data set"
    args = ["--config", str(config), "--preset", "train_quick", "--data_dir", str(data), "--tasks", "0,1",
            "num_train_steps=1000000", "num_seed_steps=50", "eval_frequency=100", "num_eval_sample_episodes=2",
            "agent.hidden_dim=16", "agent.batch_size=16"]
    res = run_and_stop([sys.executable, str(REPO / "policy_train.py"), *args], tmp_path / "cwd", sig,
                       status_line("point-robot tasks 0,1"))
    where, how, command = res.the_line(sig)
    assert where.startswith(f"generation of tasks 0,1 into {data} stopped")
    assert how == "continue it with the same command"
    assert python_ok(command[0]) and command[1:] == [str(REPO / "policy_train.py"), *args]


# ---- the tools that read a run ------------------------------------------------------------------


def _same_command(res: Stopped, sig: int, expected: list[str]) -> None:
    _, how, command = res.the_line(sig)
    assert how.startswith("run") and python_ok(command[0]) and command[1:] == expected


@one_here(signal.SIGINT)
def test_evaluate(tiny_csro_run, tmp_path, sig):
    args = [str(tiny_csro_run.run_dir), "--num_evals", MANY_EVALS, "--out", str(tmp_path / "ev.json")]
    res = run_and_stop([sys.executable, "-m", "rlkit.evaluate", *args], tmp_path / "cwd", sig, status_line("evaluate"))
    _same_command(res, sig, ["-m", "rlkit.evaluate", *args])


@one_here(signal.SIGTERM)
def test_context_shift(tiny_csro_run, tmp_path, sig):
    args = [str(tiny_csro_run.run_dir), "--num_evals", MANY_EVALS, "--draws", "2", "--out", str(tmp_path / "cs")]
    res = run_and_stop([sys.executable, "-m", "rlkit.context_shift", *args], tmp_path / "cwd", sig,
                       status_line("context-shift rollouts"))
    _same_command(res, sig, ["-m", "rlkit.context_shift", *args])


@one_here(signal.SIGINT)
def test_show_path(tiny_csro_run, tmp_path, sig):
    args = [str(tiny_csro_run.config), "--seed", "0", "--exp_name", tiny_csro_run.exp_name, "--base_log_dir",
            str(tiny_csro_run.base_log_dir), "--num_evals", MANY_EVALS, "--out", str(tmp_path / "sp")]
    res = run_and_stop([sys.executable, str(REPO / "show_path.py"), *args], tmp_path / "cwd", sig,
                       status_line("rollouts"))
    _same_command(res, sig, [str(REPO / "show_path.py"), *args])


@one_here(signal.SIGTERM)
def test_demo(tmp_path, sig):
    args = ["--out", str(tmp_path / "demo")]
    res = run_and_stop([sys.executable, "-m", "rlkit.demo", *args], tmp_path / "cwd", sig,
                       status_line("point-robot tasks 0-39"))
    _same_command(res, sig, ["-m", "rlkit.demo", *args])


# ---- while a command is still importing (torch takes seconds) -----------------------------------


@pytest.mark.parametrize("module, sig", [
    ("rlkit.plot", signal.SIGINT), pytest.param("rlkit.plot", signal.SIGTERM, marks=slow_half),
    ("rlkit.data", signal.SIGTERM), pytest.param("rlkit.data", signal.SIGINT, marks=slow_half),
    ("rlkit.reproduce", signal.SIGINT), pytest.param("rlkit.reproduce", signal.SIGTERM, marks=slow_half),
])
def test_a_signal_while_importing(tmp_path, module, sig):
    """Before the fix: Python's KeyboardInterrupt traceback from inside an import (SIGTERM: killed silently)."""
    args = ["--help"]  # what it would do does not matter: it is stopped before
    res = run_and_stop([sys.executable, "-m", module, *args], tmp_path, sig, importing_torch)
    where, how, command = res.the_line(sig)
    assert where == "stopped while starting, before doing anything" and how == "run it again"
    assert python_ok(command[0]) and command[1:] == ["-m", module, *args]


def test_the_startup_guard_is_for_the_commands_only(tmp_path):
    """A console-script name (csro-*) gets the guard as soon as it imports rlkit; any other program that
    imports rlkit keeps Python's own Ctrl-C behaviour (a library must not take over a user's signals)."""
    body = "import os, signal, time\nimport rlkit\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(30)\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name, guarded in (("csro-selftest", True), ("my_script.py", False)):
        script = tmp_path / name
        script.write_text(f"#!{sys.executable}\n{body}")
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        if guarded:
            assert proc.returncode == INTERRUPTED_EXIT and "Traceback" not in proc.stderr
            assert proc.stderr.startswith("interrupted (Ctrl-C / SIGINT): stopped while starting")
            assert len(proc.stderr.strip().splitlines()) == 1
        else:
            assert "KeyboardInterrupt" in proc.stderr


# ---- worker processes ---------------------------------------------------------------------------


def test_forked_data_workers_leave_ctrl_c_to_the_command(tmp_path):
    """The dataset reader's worker pool gets the terminal's Ctrl-C too: before, each worker printed a
    KeyboardInterrupt traceback; now they ignore it and the command says its one line."""
    script = tmp_path / "csro-pool-check"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys, time
        from rlkit.data.loader import _map_tasks
        from rlkit.errors import cli

        def work(i, files, n):  # task 0 works on; task 1 ends at once, and its worker waits for more, idle
            if i == 0:
                print("working", flush=True)
                time.sleep(5)
            return i

        @cli
        def main():
            _map_tasks(work, [(i, ["file"], 1) for i in range(2)], workers=2)  # (task, files, count) each
            return 0

        sys.exit(main())
        """))
    res = run_and_stop([sys.executable, str(script)], tmp_path / "cwd", signal.SIGINT,
                       lambda pid, text: "working" in text, timeout=120)
    res.the_line(signal.SIGINT)


# ---- the wrapper itself (in process) --------------------------------------------------------------


def test_an_error_raised_by_the_interrupt_is_the_interrupt(capsys):
    """Ctrl-C inside torch.save surfaces as RuntimeError("unexpected pos ...") raised while the zip file is
    closed, with the KeyboardInterrupt as its context: before, a traceback and exit 1."""
    @cli
    def main():
        on_interrupt(where="here", command=["cmd", "a b"], how="continue with")
        try:
            raise Terminated
        except KeyboardInterrupt:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1500800 vs 1500688")

    assert main() == TERMINATED_EXIT
    assert capsys.readouterr().err == "terminated (SIGTERM): here; continue with: cmd 'a b'\n"
    assert interrupt_behind(ValueError("a bug")) is None


def test_a_command_inside_a_command_leaves_the_line_to_the_outer_one(capsys):
    """The demo runs policy_train's main: its interrupt line is the demo's (the command the user typed)."""
    @cli
    def inner():
        on_interrupt(where="inner", how="inner way")
        raise KeyboardInterrupt

    @cli
    def outer():
        on_interrupt(where="outer", command=["outer"], how="outer way")
        inner()
        return 0

    assert outer() == INTERRUPTED_EXIT
    assert capsys.readouterr().err == "interrupted (Ctrl-C / SIGINT): outer; outer way: outer\n"


def test_the_sigterm_handler_is_installed_for_the_command_and_given_back():
    seen = {}

    @cli
    def main():
        seen["handler"] = signal.getsignal(signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises Terminated before this ends
        return 0

    before = signal.getsignal(signal.SIGTERM)
    assert main() == TERMINATED_EXIT
    assert seen["handler"] is not before and signal.getsignal(signal.SIGTERM) is before


def test_suggested_meta_training_command_is_shell_quoted():
    from rlkit.behavior.config import compose_sac_config
    from rlkit.behavior.generate import GenerationJob
    from rlkit.cli.policy_train import meta_train_command
    from rlkit.errors import tool_command

    job = GenerationJob(env_name="point-robot", env_params={"n_tasks": 2}, tasks=[0],
                        sac=compose_sac_config("train_point"), data_dir=Path("data dir"))
    words = shlex.split(meta_train_command("my configs/it's.json", job))
    program = tool_command("train")
    assert words[:len(program) + 1] == [*program, "my configs/it's.json"]
    assert "algo_params.data_dir=data dir" in words and "algo_params.train_epoch=[2200,5000,200]" in words
