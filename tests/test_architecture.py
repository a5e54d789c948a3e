"""The architecture as a contract: the pipeline's layers (import-linter, pyproject.toml), no import
cycles, and ruff. Each check is shown to fail on a planted violation."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _bin(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if not exe.exists() and shutil.which(name) is None:
        pytest.skip(f"{name} not installed (pip install -e '.[test]')")
    return str(exe) if exe.exists() else name


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_bin("lint-imports"), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": ""})


CYCLES = """
import json, sys
import grimp

pkg = sys.argv[1]
graph = grimp.build_graph(pkg, cache_dir=None)
mods = sorted(m for m in graph.modules if m != pkg)
edges = {m: sorted(graph.find_modules_directly_imported_by(m) - {pkg}) for m in mods}
cycles, state, stack = [], {}, []
sys.setrecursionlimit(10000)

def visit(m):
    state[m] = 1
    stack.append(m)
    for n in edges.get(m, []):
        if state.get(n) == 1:
            cycles.append(stack[stack.index(n):] + [n])
        elif n not in state:
            visit(n)
    stack.pop()
    state[m] = 2

for m in mods:
    if m not in state:
        visit(m)
print(json.dumps(cycles))
"""


def import_cycles(package_dir: Path) -> list[list[str]]:
    """Cycles among the package's modules (an import anywhere in a module, top level or inside a
    function, counts), by depth-first search on grimp's import graph, in a fresh interpreter that
    sees only ``package_dir``'s copy of the package."""
    import json

    out = subprocess.run([sys.executable, "-c", CYCLES, package_dir.name], capture_output=True, text=True,
                         env={"PYTHONPATH": str(package_dir.parent)}, cwd=package_dir.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_layers_are_kept_and_a_reach_up_the_pipeline_breaks_them(tmp_path):
    ok = _lint_imports(REPO)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-2000:]
    assert "1 kept, 0 broken" in ok.stdout
    copy = tmp_path / "siger"
    shutil.copytree(REPO / "siger", copy, ignore=shutil.ignore_patterns("__pycache__", "bundled"))
    with open(copy / "data" / "validate.py", "a") as fh:  # data reaching up to the trainer
        fh.write("\n\ndef _planted():\n    from siger.train import trainer  # noqa: F401\n")
    bad = _lint_imports(tmp_path)
    assert bad.returncode != 0 and "BROKEN" in bad.stdout and "siger.data.validate -> siger.train.trainer" in bad.stdout


def test_no_import_cycles_and_a_planted_one_is_found(tmp_path):
    assert import_cycles(REPO / "siger") == []
    copy = tmp_path / "siger"
    shutil.copytree(REPO / "siger", copy, ignore=shutil.ignore_patterns("__pycache__", "bundled"))
    with open(copy / "models" / "losses.py", "a") as fh:  # losses <-> siger model file
        fh.write("\n\ndef _planted():\n    from siger.models import siger  # noqa: F401\n")
    cycles = import_cycles(copy)
    assert cycles and any("siger.models.losses" in c for c in cycles)


def test_ruff_passes_and_catches_an_unused_import(tmp_path):
    ruff = _bin("ruff")
    out = subprocess.run([ruff, "check", "siger", "benchmarks", "tests"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    out = subprocess.run([ruff, "check", "--config", str(REPO / "pyproject.toml"), str(bad)], capture_output=True,
                         text=True)
    assert out.returncode != 0 and "F401" in out.stdout
