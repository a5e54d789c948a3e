"""A run's record: what was run, by which code, where, and what it measured (``record.json``).

Every finished run writes one. ``siger results add`` appends records to the committed
``results/records.jsonl``, from which ``siger report`` renders every result table, so no number in
the docs is typed by hand. The git commit and the code paths that were uncommitted at training
time let the report mark a record whose code has changed since ("stale"), unless a replay of its
first epochs on the changed code matched (``siger results verify``, :mod:`siger.experiments.replay`).
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from siger.train.stopping import eval_epochs, patience_used

# the code whose change can change a run's numbers (model, training, evaluation, data handling,
# the cold-start protocol)
CODE_PATHS = ("siger/models", "siger/train/trainer.py", "siger/train/stopping.py", "siger/eval", "siger/data/dataset.py", "siger/data/graphs.py",
              "siger/data/sampler.py", "siger/data/validate.py", "siger/data/bundled", "siger/data/holdout.py",
              "siger/data/variants.py", "siger/data/cold.py", "siger/data/prepare.py", "siger/config.py",
              "siger/distributed.py", "siger/experiments/coldstart.py")
# the code of the cold-start protocols alone (new items, new users): a run evaluated without them
# (no modes in its record) does not depend on it
COLD_START_PATHS = ("siger/models/newitems.py", "siger/models/newusers.py", "siger/data/cold.py", "siger/eval/cold.py",
                    "siger/experiments/coldstart.py")
HEAD_EPOCHS = 3  # epochs of a run's log kept in its record (log_head), for replays


def log_head(history: list[dict[str, Any]], epochs: int = HEAD_EPOCHS) -> list[dict[str, Any]]:
    """The first ``epochs`` entries of a run's history: epoch, loss terms and valid metrics."""
    return [{"epoch": h["epoch"], "loss": h["loss"], **({"valid": h["valid"]} if "valid" in h else {})}
            for h in history[:epochs]]
REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def model_code_paths(model: str | None, repo: Path = REPO, cold_start: bool = True) -> tuple[str, ...]:
    """The git pathspecs of the code a run of ``model`` depends on: :data:`CODE_PATHS` less the
    search spaces and the files of models it does not import (a change to VBPR does not make a
    SIGER result stale; SIGER imports MGCN's file, so a change there does), and less the
    cold-start protocols' code (:data:`COLD_START_PATHS`) unless ``cold_start`` (a run evaluated
    by mode). ``model`` None or not a model file's (MostPop, the content baseline): no model file."""
    mdir = repo / "siger" / "models"
    files = {p.stem: p.read_text() for p in sorted(mdir.glob("*.py")) if p.stem != "__init__"} if mdir.is_dir() else {}
    owners = {m.group(1): stem for stem, text in files.items()
              for m in re.finditer(r'^    name = "([^"]+)"', text, re.M)}
    model_files = set(owners.values())
    keep: set[str] = set()
    todo = [owners[model]] if model in owners else []
    while todo:  # the model's file and the model files it imports, transitively
        stem = todo.pop()
        if stem in keep:
            continue
        keep.add(stem)
        todo += [d for d in re.findall(r"^from siger\.models\.(\w+) import", files.get(stem, ""), re.M)
                 if d in model_files]
    drop = sorted(model_files - keep)
    # the search spaces and the registry's import list (a new model file registered) change no number
    return (*CODE_PATHS, ":(exclude)siger/models/spaces", ":(exclude)siger/models/__init__.py",
            *(f":(exclude)siger/models/{d}.py" for d in drop),
            *(() if cold_start else (f":(exclude){p}" for p in COLD_START_PATHS)))


def path_in(path: str, pathspecs: tuple[str, ...]) -> bool:
    """Whether a repository path falls under the pathspecs (plain prefixes and ``:(exclude)``)."""
    def under(p: str, spec: str) -> bool:
        return p == spec or p.startswith(spec.rstrip("/") + "/")
    inc = [s for s in pathspecs if not s.startswith(":(exclude)")]
    exc = [s[len(":(exclude)"):] for s in pathspecs if s.startswith(":(exclude)")]
    return any(under(path, s) for s in inc) and not any(under(path, s) for s in exc)


def git_state() -> dict[str, Any]:
    """``{"commit": sha or None, "dirty_code": [code paths with uncommitted changes]}``."""
    if not (REPO / ".git").exists():
        return {"commit": None, "dirty_code": []}
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--", *CODE_PATHS) or ""
    dirty = sorted({line[3:].strip() for line in status.splitlines() if line.strip()})
    return {"commit": commit, "dirty_code": dirty}


@functools.lru_cache(maxsize=1)
def _loaded_state() -> tuple[str | None, tuple[str, ...]]:
    st = git_state()
    return st["commit"], tuple(st["dirty_code"])


def loaded_code_state() -> dict[str, Any]:
    """:func:`git_state` as it was the first time this process asked: the code a long-lived
    process (a tuning worker) runs is the code it loaded, whatever is committed or edited later."""
    commit, dirty = _loaded_state()
    return {"commit": commit, "dirty_code": list(dirty)}


def machine() -> str:
    """One line: CPU model, CPU count, torch version and threads, Python."""
    import torch

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "?"
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} cpus{gpu}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}")


def run_record(result: dict[str, Any], config: dict[str, Any], git: dict[str, Any] | None = None,
               history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The record of a finished run from its ``metrics.json`` content and resolved config;
    ``git``: :func:`git_state` taken when the run's code was loaded (default: now); ``history``:
    the run's log, whose first epochs the record keeps (``log_head``, what a replay compares)."""
    from siger.version import __version__

    rec = {
        "kind": "run",
        "model": result["model"],
        "dataset": result["dataset"],
        "seed": result["seed"],
        "config": config,
        "version": __version__,
        **(git if git is not None else git_state()),
        "valid": result["valid"],
        "test": result["test"],
        "best_epoch": result["best_epoch"],
        "epochs_run": result["epochs_run"],
        "stopped": "pruned" if result.get("pruned") else ("early_stop" if result.get("stopped_early") else "epochs"),
        **({"warmup_epochs_effective": result["warmup_epochs_effective"]}
           if "warmup_epochs_effective" in result else {}),
        "seconds_per_epoch": result["seconds_per_epoch"],
        "seconds_per_eval": result.get("seconds_per_eval"),
        "peak_rss_mb": result["peak_rss_mb"],
        "n_parameters": result.get("n_parameters"),
        **({"model_summary": result["model_summary"]} if result.get("model_summary") else {}),
        "machine": machine(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if history:
        rec["log_head"] = log_head(history)
    rec["id"] = record_id(rec)
    return rec


def record_id(rec: dict[str, Any]) -> str:
    """A stable id: the same run (config, seed, date) always gets the same id."""
    key = json.dumps({k: rec.get(k) for k in ("kind", "model", "dataset", "seed", "config", "date")}, sort_keys=True)
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def stop_check(rec: dict[str, Any], warmup: int | None = None) -> str | None:
    """None when a run record's early stop is what the current rule decides at its last epoch
    (:mod:`siger.train.stopping`: patience counts evaluations after the warm-up only), else why
    not. A replay of the first epochs cannot see the rule; this check can, from the record alone.
    Runs that reached their epoch cap or were pruned are not early stops.

    ``warmup``: judge by this warm-up (epochs) instead of the record's own (e.g. a study's
    warm-up now, where its default has changed since the run); default: the record's effective
    warm-up, or its ``warmup_epochs`` for records made before they carried one."""
    if rec.get("stopped") != "early_stop":
        return None
    t = rec["config"]["train"]
    if warmup is None:
        warmup = rec.get("warmup_epochs_effective", t.get("warmup_epochs", 0))
    patience = t["patience"]
    last, best = rec["epochs_run"] - 1, rec["best_epoch"]
    used = patience_used(eval_epochs(last, t.get("eval_every", 1), t["epochs"]), best, warmup)
    if used >= patience:
        return None
    return (f"early stop at epoch {last} (best {best}, inside the {warmup}-epoch warm-up): the current rule "
            f"counts {used} of its {patience} evaluations of patience there and trains on; rerun the run")
