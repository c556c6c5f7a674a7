"""The command-line error convention: one line ``error: ...`` on stderr, exit status 2.

Every error a user can cause and fix (a bad config, a missing or damaged
dataset, a busy run directory, a full disk, a permission) is a
:class:`UserError` or an ``OSError``; :func:`cli` turns those into one line
that says what to do. Anything else keeps its traceback, because it is a bug
to report. This module sits below every other one, so that each layer's error
can derive from :class:`UserError` without importing upwards.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import shlex
import shutil
import signal
import sys
import threading
from typing import Callable, NoReturn, Sequence

USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130  # a command stopped by Ctrl-C / SIGINT (128 + 2, as a shell reports it)


class UserError(Exception):
    """An expected failure whose message (one line) tells the user what to do."""


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USER_ERROR_EXIT)


_OS_HINTS = {
    errno.ENOSPC: "free some disk space",
    errno.EDQUOT: "free some disk space (quota)",
    errno.EACCES: "check the permissions of that path, or choose another folder",
    errno.EPERM: "check the permissions of that path, or choose another folder",
    errno.EROFS: "that file system is read-only: choose another folder",
    errno.ENOENT: "check the path",
}


# after these, the command is run again: the line says how (how_to_go_on)
_RUN_AGAIN_AFTER = (errno.ENOSPC, errno.EDQUOT)


def describe(exc: BaseException) -> str:
    """One line for an expected failure; an OSError names the path and what to do about it."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        hint = _OS_HINTS.get(exc.errno or 0)
        if hint and exc.errno in _RUN_AGAIN_AFTER:
            hint += f", then {how_to_go_on()}"
        return f"{exc.strerror}:{where}" + (f"; {hint}" if hint else "")
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------------------
# interrupts: Ctrl-C (SIGINT) and SIGTERM end every command in one line, never a traceback
#
# SIGTERM raises :class:`Terminated`, a KeyboardInterrupt, so that every clean-up written for Ctrl-C
# (closing files, stopping children, cancelling Ray tasks) runs for ``kill`` and job schedulers too.
# Three phases: while a command's modules are still importing (torch alone takes seconds), the
# handlers installed by :func:`guard_startup` end the process at once with the same one line (nothing
# has been done yet); inside :func:`cli` the signals raise, so ``finally`` blocks run; after the
# command returned, a signal ends the exit quietly (a second Ctrl-C while threads are joined).

TERMINATED_EXIT = 143  # a command stopped by SIGTERM (128 + 15)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it stops through the Ctrl-C path."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


_SIGNAL_WORDS = {signal.SIGINT: "interrupted (Ctrl-C / SIGINT)", signal.SIGTERM: "terminated (SIGTERM)"}
_EXIT_CODES = {signal.SIGINT: INTERRUPTED_EXIT, signal.SIGTERM: TERMINATED_EXIT}
_state = {"phase": "idle", "depth": 0, "hint": None}


def _python() -> str:
    """``python`` when that name runs this interpreter, else its path (a venv the shell does not have)."""
    found = shutil.which("python")
    same = found is not None and os.path.abspath(found) == os.path.abspath(sys.executable)
    return "python" if same else sys.executable


def _program() -> list[str]:
    """How this process was started, without its arguments: ``python -m MOD``, ``python SCRIPT`` or a script."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in ("-m", "-c") and i + 1 < len(argv):
            return [_python(), arg, argv[i + 1]]
        if arg in ("-W", "-X", "--check-hash-based-pycs"):
            i += 2
            continue
        if arg.startswith("-") and arg != "-":
            i += 1
            continue
        if arg.endswith(".py"):
            return [_python(), arg]
        name = os.path.basename(arg)  # a console script (csro-train): its name, when the shell finds it
        found = shutil.which(name)
        return [name if found and os.path.abspath(found) == os.path.abspath(arg) else arg]
    return [_python()]


# The package's commands by what they do: (script at the top of a checkout, console script, module).
TOOLS = {
    "generate": ("policy_train.py", "csro-generate", "rlkit.cli.policy_train"),
    "train": ("launch_experiment.py", "csro-train", "rlkit.cli.meta_train"),
    "show-path": ("show_path.py", "csro-show-path", "rlkit.cli.show_path"),
}
# the root scripts a checkout has (started_as_cli knows the package's commands by them)
_CLI_SCRIPTS = tuple(script for script, _, _ in TOOLS.values())
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def in_checkout() -> bool:
    """Whether the working directory is the root of a checkout of this package (where the hints'
    ``python policy_train.py --config configs/ENV.json`` forms run as typed)."""
    cwd = os.path.abspath(os.getcwd())
    return cwd == _PACKAGE_ROOT and os.path.isfile(os.path.join(cwd, "policy_train.py"))


def tool_command(tool: str) -> list[str]:
    """How to run one of :data:`TOOLS` from here: the checkout's script at its root, else the
    installed console script, else ``python -m`` (a hint must name a command that exists)."""
    script, console, module = TOOLS[tool]
    if in_checkout():
        return ["python", script]
    return [console] if shutil.which(console) else [_python(), "-m", module]


def config_argument(env_name: str | None) -> str:
    """How a hint names a shipped env config: its path in a checkout, its env name elsewhere (an
    installed package resolves names, :func:`rlkit.config.resolve_config`)."""
    name = env_name or "ENV"
    return f"configs/{name}.json" if in_checkout() else name


def started_as_cli() -> bool:
    """Whether this process is one of the package's commands (``python -m rlkit...``, a root script,
    a ``csro-*`` console script), as opposed to a program or notebook that imports rlkit."""
    prog = _program()
    if len(prog) == 3 and prog[1] == "-m":
        return prog[2] == "rlkit" or prog[2].startswith("rlkit.")
    name = os.path.basename(prog[-1])
    return name in _CLI_SCRIPTS or name.startswith("csro-")


def usage_name(module: str) -> str:
    """The program name a command's ``--help`` shows: the console script's (``csro-plot``) when it was
    started as one, else ``python -m MODULE`` (``python -m rlkit.plot``), so that the usage line is
    what the user would type again."""
    name = os.path.basename((sys.argv or [""])[0].replace("\\", "/"))
    name = re.sub(r"(-script\.pyw?|\.exe)$", "", name)  # pip's launchers on Windows
    return name if name.startswith("csro-") else f"python -m {module}"


def this_command(args: Sequence[str] | None = None) -> list[str]:
    """The command line that runs this command again: how it was started, then ``args`` (default: its own)."""
    return [*_program(), *(sys.argv[1:] if args is None else args)]


def on_interrupt(where: str | Callable[[], str], command: Sequence[str] | Callable[[], Sequence[str]] | None = None,
                 how: str | Callable[[], str] = "run the same command again") -> None:
    """What the interrupt line of the running command says: where it stopped and what resumes it.

    ``where``, ``command`` and ``how`` may be callables, evaluated when the interrupt comes (the run
    directory's state then); ``command`` defaults to the command as it was typed. A command run
    inside another one (the demo runs policy_train's and launch_experiment's ``main``) leaves the
    outer command's line as it is: that is the command the user typed. A full disk's error line
    says the same (:func:`how_to_go_on`).
    """
    if _state["depth"] <= 1:
        _state["hint"] = (where, command, how)


def how_to_go_on() -> str:
    """What to run after the running command failed on something the user can fix (a full disk).

    A command that registered with :func:`on_interrupt` says how it goes on (``continue it with:
    ... --resume RUN_DIR``); any other one computes everything again, so the same command is what
    to run: never "it resumes" for a command that does not (an evaluation, a figure).
    """
    how, command = _how_and_command()
    if "same command" in how:
        return how
    return f"{how}: {shlex.join(str(c) for c in command)}"


def _how_and_command() -> tuple[str, Sequence[str]]:
    """What :func:`on_interrupt` registered: how to go on and the command that does it (evaluated now)."""
    _, command, how = _state["hint"] or (None, None, None)
    return _evaluate(how) or "run the same command again", _evaluate(command) or this_command()


def _evaluate(value):
    try:
        return value() if callable(value) else value
    except Exception:  # the line is said on the way out: never a traceback there
        return None


def interrupt_line(exc: BaseException) -> str:
    """The one line an interrupted command prints: what stopped it, where, and the command that resumes it."""
    what = _SIGNAL_WORDS[signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT]
    where = _evaluate((_state["hint"] or (None,))[0]) or "the command stopped before it finished"
    how, command = _how_and_command()
    return f"{what}: {where}; {how}: {shlex.join(str(c) for c in command)}"


def interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt that ``exc`` is, or that it was raised while handling; else None.

    A signal that lands inside a write can make the clean-up fail in its own way: Ctrl-C in
    ``torch.save`` surfaces as a RuntimeError ("unexpected pos") raised while the zip file is
    closed, with the KeyboardInterrupt as its context. That is still the user's interrupt.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _outside_handler(signum, frame) -> None:
    """SIGINT / SIGTERM while no :func:`cli` runs: before it (imports) or after it (the exit)."""
    if _state["phase"] == "done":
        _flush()
        os._exit(_EXIT_CODES[signum])  # the command had ended; only its exit (thread joins) is cut short
    command = shlex.join(this_command())
    print(f"{_SIGNAL_WORDS[signum]}: stopped while starting, before doing anything; run it again: {command}",
          file=sys.stderr)
    _flush()
    os._exit(_EXIT_CODES[signum])  # nothing to clean up yet, and raising here would print a traceback


def guard_startup() -> None:
    """Catch SIGINT / SIGTERM from now until :func:`cli` takes over (the command's imports).

    Called when rlkit is imported by one of its commands (:func:`started_as_cli`), so that a
    Ctrl-C while torch is still importing prints one line instead of a traceback. A signal the
    parent set to be ignored (``nohup``, ``cmd &`` without job control) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(signum, _outside_handler)
    _state["phase"] = "starting"


def ignore_interrupts() -> None:
    """For worker processes forked by a command (a pool's ``initializer``): the parent handles Ctrl-C.

    A terminal sends Ctrl-C to every process of the foreground group; a worker that raised
    KeyboardInterrupt too would print its own traceback. SIGTERM gets its default (the pool uses
    it to stop workers), not the parent's raising handler.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _take_signals() -> dict:
    """Inside a command: SIGINT raises KeyboardInterrupt, SIGTERM :class:`Terminated`; returns the previous handlers."""
    previous = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for signum, handler in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, _raise_terminated)):
        current = signal.getsignal(signum)
        if current in (signal.SIG_DFL, signal.default_int_handler, _outside_handler):
            previous[signum] = current
            signal.signal(signum, handler)
    return previous


def _give_back_signals(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def cli(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a command's ``main``: a :class:`UserError` or an ``OSError`` becomes ``error: ...``, exit 2;
    Ctrl-C (SIGINT) or SIGTERM becomes one line, where the command stopped and the command that resumes
    it (:func:`on_interrupt`), exit 130 or 143 as a shell reports them, without a traceback.

    A command called from another one (nested) leaves errors and interrupts to the outer wrapper.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        if _state["depth"]:
            _state["depth"] += 1
            try:
                return main(*args, **kwargs)
            finally:
                _state["depth"] -= 1
        previous = _take_signals()
        _state.update(depth=1, hint=None, phase="running")
        try:
            return main(*args, **kwargs)
        except (SystemExit, GeneratorExit):
            raise
        except BaseException as exc:
            stop = interrupt_behind(exc)
            if stop is not None:
                # files were closed on the way out, and what the command saves as it goes (checkpoints,
                # snapshots) is what the next run resumes from
                if previous:  # a second signal while the line is said ends the exit at once, quietly
                    _state["phase"] = "done"
                    for signum in previous:
                        signal.signal(signum, _outside_handler)
                print(interrupt_line(stop), file=sys.stderr)
                return TERMINATED_EXIT if isinstance(stop, Terminated) else INTERRUPTED_EXIT
            if isinstance(exc, (UserError, OSError)):
                print(f"error: {describe(exc)}", file=sys.stderr)
                return USER_ERROR_EXIT
            raise
        finally:
            _state.update(depth=0, phase="done", hint=None)
            _give_back_signals(previous)

    return wrapper
