"""The engine's shape, read from its source: wings whose imports point one way, no import circle,
no file too long to read in one sitting, and a dashboard that never loads TensorFlow.

Imports are read with `ast`, every one of them: at module level, inside functions (the lazy imports
that keep readers free of TensorFlow are still arrows) and under `if TYPE_CHECKING`. Nothing here
imports the engine, so the checks take well under a second; the dashboard's check runs in a fresh
interpreter, as the dashboard does.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

ENGINE = ROOT / "lottery_engine"

# The wings from the bottom up: a module may import its own wing and the wings before it, never
# one after it. Root files stand in the order by themselves: preflight.py (the files a config
# names, checked before a run) sits on data and models, which read them, and under every entry
# point that calls it; pipeline.py (a whole run) sits on report and under science (an experiment
# is runs); the entry points sit on top. config (the schema, reading and validating a config) sits
# right on foundations: reading a config reads nothing but the config (issue 29, item 1).
ORDER = ["foundations", "config", "data", "pruning", "models", "preflight", "evaluation",
         "training", "lottery", "export", "report", "pipeline", "science", "entry"]
ROOT_FILES = {"preflight": "preflight", "pipeline": "pipeline", "api": "entry",
              "model_summary": "entry", "__init__": "entry"}

MAX_LINES = 450
# Files allowed over MAX_LINES, each with its line count, until they are split; none may grow.
# Empty since validation.py gave its primitives, label rules and recipe keys their own files.
TOO_LONG: dict[str, int] = {}


def _modules() -> dict[str, Path]:
    """Every module of the engine by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(ENGINE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def wing(name: str) -> str:
    """The wing of an engine module: its package under lottery_engine/, or a root file's place."""
    parts = name.split(".")
    if len(parts) > 1 and (ENGINE / parts[1]).is_dir():
        return parts[1]
    return ROOT_FILES[parts[1] if len(parts) > 1 else "__init__"]


def _imported(name: str, path: Path) -> set[str]:
    """The modules (engine or not) that the file imports anywhere in it, by dotted name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return found


def _engine_module(name: str) -> str | None:
    """The engine module that importing `name` runs (a name inside a module: that module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        targets = {_engine_module(target) for target in _imported(name, path)}
        graph[name] = {target for target in targets if target and target != name}
    return graph


GRAPH = _graph()


def test_every_engine_file_is_in_a_wing_of_the_order():
    unplaced = []
    for name in MODULES:
        try:
            assert wing(name) in ORDER
        except (KeyError, AssertionError):
            unplaced.append(name)
    assert not unplaced, f"put these in a wing of ORDER (or name a root file in ROOT_FILES): " \
                         f"{unplaced}"


def test_no_import_points_up_the_wings():
    upward = [f"{source} ({wing(source)}) imports {target} ({wing(target)})"
              for source, targets in sorted(GRAPH.items()) for target in sorted(targets)
              if ORDER.index(wing(target)) > ORDER.index(wing(source))]
    assert not upward, "imports pointing up the wings:\n" + "\n".join(upward)


def test_no_import_circle():
    """Depth-first search; a back edge closes a circle, reported as the modules around it."""
    state, path, circles = {}, [], []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for target in sorted(GRAPH[node]):
            if state.get(target) == "open":
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = "done"

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_engine_never_imports_the_queue_or_the_dashboard():
    above = sorted(f"{name} imports {target}" for name, path in MODULES.items()
                   for target in _imported(name, path) if target.split(".")[0] in ("jobs", "app"))
    assert not above, above


def test_a_wing_package_imports_nothing():
    """Importing one module of a wing must not load its siblings: the dashboard reads
    export/export_records.py without export/exporter.py's TensorFlow."""
    loud = [name for name, path in MODULES.items()
            if path.name == "__init__.py" and name != "lottery_engine" and _imported(name, path)]
    assert not loud, loud


def test_no_engine_file_over_the_line_limit():
    lines = {str(path.relative_to(ENGINE)): len(path.read_text().splitlines())
             for path in MODULES.values()}
    too_long = {file: count for file, count in lines.items()
                if count > MAX_LINES and count > TOO_LONG.get(file, 0)}
    assert not too_long, f"over {MAX_LINES} lines (or grown past TOO_LONG): {too_long}"
    done = [file for file in TOO_LONG if lines.get(file, 0) <= MAX_LINES]
    assert not done, f"split or gone, take them off TOO_LONG: {done}"


def _dashboard_imports() -> list[str]:
    """The project's own modules that the dashboard's files import (app/ and its views)."""
    first_party = ("app", "jobs", "lottery_engine")
    found = set()
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.split(".")[0] in first_party)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 \
                    and node.module.split(".")[0] in first_party:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    is_module = (ROOT / (sub.replace(".", "/") + ".py")).is_file()
                    found.add(sub if is_module else node.module)
    return sorted(found)


def test_the_dashboard_imports_no_tensorflow():
    """What the dashboard's pages and modules import, imported in a fresh interpreter, loads
    neither TensorFlow nor Keras (tests/app/test_app.py renders the pages themselves)."""
    modules = _dashboard_imports()
    assert "lottery_engine.foundations.runfolder" in modules and "app.lab" in modules, modules
    code = (f"import importlib, sys\n"
            f"for name in {modules!r}:\n"
            f"    importlib.import_module(name)\n"
            f"loaded = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
            f"assert not loaded, loaded\n"
            f"print('clean')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0 and "clean" in result.stdout, result.stderr[-2000:]
