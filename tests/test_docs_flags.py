"""Every ``--flag`` the README and docs/ name is a flag some command accepts.

The commands are the console scripts of pyproject.toml (the registry of the
package's CLIs), their subcommands, the demo and the benchmark runner; a flag
is known when it shows in a command's ``--help``. Docs drift silently
otherwise: docs/configuration.md once documented a ``--config-overrides``
that no command had.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FLAG = re.compile(r"(?<![\w-])--[a-zA-Z][a-zA-Z0-9_-]*")
# flags of other programs that the docs quote (git status --porcelain in a run's git report)
FOREIGN = {"--porcelain"}
EXTRA_ENTRY_POINTS = ["rlkit.demo:main", "benchmarks.run_all:main"]


def _help_text(entry: str, args: list[str]) -> str:
    module, func = entry.split(":")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        with pytest.raises(SystemExit):
            getattr(importlib.import_module(module), func)(args)
    return out.getvalue()


def _known_flags() -> set[str]:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    known: set[str] = set()
    for entry in [*scripts.values(), *EXTRA_ENTRY_POINTS]:
        text = _help_text(entry, ["--help"])
        known |= set(FLAG.findall(text))
        sub = re.search(r"\{([a-z_,-]+)\}", text)  # subcommands, e.g. python -m rlkit.data {info,convert,...}
        for name in sub.group(1).split(",") if sub else []:
            known |= set(FLAG.findall(_help_text(entry, [name, "--help"])))
    return known


def test_every_flag_the_docs_name_exists():
    known = _known_flags()
    assert {"--resume", "--restart", "--seeds", "--status", "--to"} <= known  # the collection works
    unknown = {}
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for flag in set(FLAG.findall(page.read_text(encoding="utf-8"))) - known - FOREIGN:
            unknown.setdefault(flag, []).append(page.relative_to(REPO).as_posix())
    assert not unknown, f"flags named in the docs that no command accepts: {unknown}"


def _readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def test_the_readme_names_every_console_script_of_pyproject():
    """The README's list of console scripts lacked csro-corro-negatives: it is now checked against the
    registry (pyproject's [project.scripts]), and so is the table of rlkit/cli/__init__.py."""
    scripts = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])
    listing = re.search(r"Every command is also a console script.*?\)", _readme(), re.S)
    assert listing, "the README's sentence listing the console scripts is gone"
    assert set(re.findall(r"`(csro-[a-z-]+)`", listing.group(0))) == scripts
    import rlkit.cli

    assert set(re.findall(r"``(csro-[a-z-]+)``", rlkit.cli.__doc__)) == scripts


def test_the_readme_names_every_method_preset():
    """The layout once said configs/algos/ holds three presets when it held six: the Methods table has
    one row per preset file, and the layout line names no count that could go stale."""
    presets = {p.stem for p in (REPO / "configs" / "algos").glob("*.json")}
    methods = _readme().split("## Methods", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `([^`]+)` \|", methods, re.M)) == presets
    layout = next(line for line in _readme().splitlines() if line.startswith("configs/algos/"))
    assert not re.search(r"\((?:[\w-]+, )+[\w-]+\)", layout), f"the layout line lists the presets: {layout!r}"


PYTHON_M_COMMANDS = {"csro-evaluate": "rlkit.evaluate", "csro-context-shift": "rlkit.context_shift",
                     "csro-corro-negatives": "rlkit.corro_negatives", "csro-plot": "rlkit.plot",
                     "csro-data": "rlkit.data", "csro-reproduce": "rlkit.reproduce"}


def test_usage_names_the_program_as_it_was_started(monkeypatch):
    """`csro-plot --help` said `usage: python -m rlkit.plot`: the usage line shows the console script's
    name when started as one, and `python -m MODULE` otherwise."""
    from rlkit.errors import usage_name

    for argv0, shown in (("/venv/bin/csro-plot", "csro-plot"), ("C:\\venv\\Scripts\\csro-plot.exe", "csro-plot"),
                         ("/repo/rlkit/plot.py", "python -m rlkit.plot"), ("-c", "python -m rlkit.plot"),
                         ("", "python -m rlkit.plot")):
        monkeypatch.setattr("sys.argv", [argv0])
        assert usage_name("rlkit.plot") == shown, argv0
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for script, module in PYTHON_M_COMMANDS.items():
        for argv0, shown in ((f"/venv/bin/{script}", script), ("/repo/x/__main__.py", f"python -m {module}")):
            monkeypatch.setattr("sys.argv", [argv0])
            assert _help_text(scripts[script], ["--help"]).startswith(f"usage: {shown} "), (script, argv0)


def test_a_console_script_s_help_shows_its_own_name(tmp_path):
    """Through a real console script (this environment's, or one written like pip writes them) with
    this checkout on PYTHONPATH."""
    import os
    import subprocess
    import sys

    script = Path(sys.executable).parent / "csro-plot"
    if not script.is_file():
        script = tmp_path / "csro-plot"
        script.write_text(f"#!{sys.executable}\nimport sys\nfrom rlkit.plot import main\nsys.exit(main())\n")
        script.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("usage: csro-plot "), out.stdout[:200] + out.stderr
    out = subprocess.run([sys.executable, "-m", "rlkit.plot", "--help"], capture_output=True, text=True, env=env,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("usage: python -m rlkit.plot "), out.stdout[:200]
