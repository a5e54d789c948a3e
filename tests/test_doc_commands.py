"""Every command in README.md and docs/*.md is exercised, so what the docs say stays true.

The fenced ``bash`` blocks of each page are run in order in a sandbox folder (so a page's later
commands see what its earlier ones made): ``siger`` commands through the CLI on small synthetic
datasets standing in for tiktok / baby / ml100k, with ``--epochs 1`` and small trial / seed counts;
commands that cannot run here (a server, ResNet weights one must supply, installs, benchmarks)
are checked for options the program does not know. The ``python`` blocks run too.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from siger.cli import make_parser
from tests.conftest import write_inter

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)

# cheap stand-ins: trial, seed and job counts; every training run gets these keys
SMALL = {"--trials": "2", "--seeds": "1", "--jobs": "1", "--epochs": "1"}
TRAINING = ("train", "tune", "compare", "ablate")
FAST_KEYS = ["--batch_size", "64", "--progress", "false", "--startup-trials", "1"]
NOT_RUN = {"serve"}  # blocks forever; its options are checked
RUN_BENCHMARKS = {"benchmarks.cold_split"}  # cheap benchmark helpers whose output later commands use
PARSE_ONLY_IF = {"features": lambda argv: "image" in argv}  # needs ResNet weights one supplies


def blocks(page: Path, lang: str) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(page.read_text()) if m.group(1) == lang]


def commands(page: Path) -> list[list[str]]:
    """Every command of the page's bash blocks: continuations joined, comments dropped, `a && b` split."""
    out = []
    for block in blocks(page, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].strip() if not line.lstrip().startswith("#") else ""
            for part in line.split("&&"):
                part = part.strip()
                if part:
                    out.append(shlex.split(part))
    return out


def _dataset(root: Path, name: str, modalities: tuple[str, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(60):
        lo = 0 if u < 30 else 40
        its = rng.choice(np.arange(lo, lo + 40), size=10, replace=False)
        rows += [(u, int(i), 0 if j < 8 else j - 7) for j, i in enumerate(its)]
    d = root / name
    d.mkdir(parents=True)
    write_inter(d / f"{name}.inter", rows)
    for m in modalities:
        np.save(d / f"{m}_feat.npy", rng.normal(size=(80, 8)).astype(np.float32))


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    _dataset(shared, "tiktok", ("image", "audio"), 0)
    _dataset(shared, "baby", ("image", "text"), 1)
    _dataset(shared, "ml100k", ("text",), 2)
    rng = np.random.default_rng(3)  # raw logs for `siger prepare`: users 10..49, items 100..139
    lines = ["user_id,item_id,rating,timestamp"]
    for u in range(10, 50):
        for i in rng.choice(np.arange(100, 140), size=12, replace=False):
            lines.append(f"{u},{i},{rng.integers(1, 6)},{rng.integers(10**9, 2 * 10**9)}")
    (tmp_path / "ratings.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "items.csv").write_text("item_id,title\n" + "".join(f"{i},Item number {i}\n" for i in range(100, 140)))
    (tmp_path / "my_space.yaml").write_text("params:\n  learning_rate: {low: 1.0e-3, high: 1.0e-2, log: true}\n"
                                            "fixed:\n  warmup_epochs: 0\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def siger_argv(argv: list[str], sandbox: Path) -> list[str]:
    """A siger command made cheap and pointed at the sandbox datasets."""
    argv = list(argv)
    for i, a in enumerate(argv):
        if a in SMALL and i + 1 < len(argv) and not (argv[0] == "recommend"):
            argv[i + 1] = SMALL[a]
        if a == "--data-dir" and i + 1 < len(argv) and argv[i + 1].endswith("shared/data"):
            argv[i + 1] = str(sandbox / "shared")
        if a.startswith("../shared/data/"):  # a dataset folder named by its path (siger derive --from)
            argv[i] = str(sandbox / "shared" / a[len("../shared/data/"):])
    if argv[0] in TRAINING or (argv[0] == "results" and "mostpop" in argv) or argv[0] == "info":
        if "--data-dir" not in argv and "--config" not in argv:
            argv += ["--data-dir", str(sandbox / "shared")]
    if argv[0] in TRAINING and "--help" not in argv:
        if "--epochs" not in argv:
            argv += ["--epochs", "1"]
        extra = FAST_KEYS if argv[0] == "tune" else FAST_KEYS[:4]
        for key, value in zip(extra[::2], extra[1::2]):
            if key not in argv:
                argv += [key, value]
    return argv


def check_options(prog: list[str], argv: list[str]) -> None:
    """Options of a command that is not run must exist: a siger subcommand's (or a config key),
    or a benchmark module's (its --help)."""
    if prog[0] == "siger":
        args, extra = make_parser().parse_known_args(argv)
        from siger.config import build_config, parse_cli_overrides

        if extra:
            build_config(getattr(args, "model", "SIGER") or "SIGER", None, parse_cli_overrides(extra))
        return
    help_text = subprocess.run(prog + ["--help"], capture_output=True, text=True, cwd=ROOT, timeout=120).stdout
    for opt in (a.split("=")[0] for a in argv if a.startswith("--")):
        assert opt in help_text, f"{' '.join(prog)}: no option {opt}"


def run_page(page: Path, sandbox: Path) -> int:
    from siger.cli import main

    n = 0
    for cmd in commands(page):
        where = f"{page.name}: {shlex.join(cmd)}"
        if cmd[0] in ("pip", "python3", ".", "bash", "source"):
            continue  # set-up commands (CI runs .ci/run itself)
        if cmd[0] == "torchrun":  # data-parallel: the siger command it launches, in one process
            cmd = cmd[cmd.index("siger"):]
        if cmd[0] == "python" and cmd[1] == "-m" and cmd[2] in RUN_BENCHMARKS:
            import importlib

            argv = list(cmd[3:])
            if "--data-dir" not in argv:
                argv += ["--data-dir", str(sandbox / "shared")]
            assert importlib.import_module(cmd[2]).main(argv) == 0, where
            n += 1
            continue
        if cmd[0] == "python" and cmd[1] == "-m" and cmd[2].startswith("benchmarks."):
            check_options([sys.executable, "-m", cmd[2]], cmd[3:])
            n += 1
            continue
        assert cmd[0] == "siger", f"{where}: a command the doc test does not know how to run"
        argv = cmd[1:]
        if argv[0] in NOT_RUN or PARSE_ONLY_IF.get(argv[0], lambda a: False)(argv):
            check_options(["siger"], argv)
            n += 1
            continue
        argv = siger_argv(argv, sandbox)
        if "--help" in argv:
            with pytest.raises(SystemExit) as ex:
                main(argv)
            assert ex.value.code == 0, where
        else:
            assert main(argv) == 0, where
        n += 1
    for code in blocks(page, "python"):
        exec(compile(code, f"{page.name} (python block)", "exec"), {})
        n += 1
    return n


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_command_of_the_page_runs(page, sandbox, monkeypatch, capsys):
    monkeypatch.setenv("SIGER_TEST_DATA", str(sandbox / "shared"))
    n = run_page(page, sandbox)
    has_code = bool(blocks(page, "bash") or blocks(page, "python"))
    assert n > 0 or not has_code
