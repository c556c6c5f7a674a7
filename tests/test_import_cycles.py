"""The package's modules import each other one way: no cycles, and rlkit/cli/ holds only commands.

rlkit/cli/protocol_video.py took the private ``_first_env_of`` and ``labelled_episodes`` from
rlkit/cli/show_path.py, which imported the video writer back: two CLI modules tied in a circle,
and rollout code living among the commands. Every ``import`` counts, at module level or inside a
function (a lazy import still ties the modules). A submodule taking a name from its own package's
``__init__`` (``from rlkit.envs import register_env`` while rlkit/envs/__init__.py imports the
submodule to register its envs) is the package's face, not a cycle between modules.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "rlkit"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the rlkit modules it imports (the deepest module each import names)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for name in names:
                target = resolve(name) if name.startswith("rlkit") else None
                if target and target != module and not module.startswith(target + "."):  # not its own package
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_rlkit_cli_holds_only_commands():
    """Each module of rlkit/cli/ is a command: a console script of pyproject, or a root script's."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"].values()
    commands = {entry.split(":")[0] for entry in scripts}
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        if path.name != "__init__.py":
            assert f"rlkit.cli.{path.stem}" in commands, f"{path.relative_to(REPO)} is not a command"
