"""Replay instead of blame: is a result record still what the current code computes?

A record goes stale by the cheap git check when code its model depends on changed since its
commit; that flags every refactor. The replay settles it: the record's config is trained again for
its first few epochs (``epochs``, default 2) on the current code, and the per-epoch loss terms and
valid metrics are compared with the record's own first epochs (``log_head``, which every run record
carries since 2026-12-05). A record made before then gets its head once by the same replay on the
code of its own commit (a temporary git worktree), and keeps it. With the same torch on the same
CPU model the replay is exact, and the comparison asks for equal numbers (``rtol`` 0). A head made
on another CPU model or torch (the record's ``machine``; a head replayed at the record's commit
before heads named their machine counts as unknown) differs in the last bits of its floats
(vectorised kernels round differently; measured between an AMD EPYC and an Intel Xeon: loss terms
up to a relative 1e-7 after two epochs, and a near-tie ranked the other way at one user moves a
metric@50 by 1e-5 on ml100k). There the comparison allows :data:`CROSS_MACHINE_RTOL` on loss terms
and :data:`CROSS_MACHINE_METRIC_RTOL` on valid metrics unless told otherwise (:func:`default_rtol`);
a stamp made so names its tolerance. A replay off by more than that (the perturbation's InfoNCE
can amplify rounding to a relative 3e-6 in one epoch) is decided exactly instead: the record's own
commit is replayed on this machine too, and the two replays must agree to the last bit.

A record whose replay matches is stamped ``verified: {commit, epochs}``; the git check then counts
changes from that commit on, so a refactor that changes no number leaves every record current. A
record evaluated by mode (cold items: warm / cold / all; cold users: warm / cold_users) replays those modes after the
short training. Replays run in a subprocess with a graph cache of their own code tree, empty when
the verification starts (:meth:`Checkouts.cache`): nothing a graph built by other code or a loaded
module holds can hide a change, and the replays of one verification on one code tree build each
graph once (a TikTok replay of one epoch: 15 s with an empty cache, 11 s with the graphs built).

A replay of the first epochs cannot see where a run stopped; two checks on the record can: its
early stop under its own rule (:func:`siger.train.record.stop_check`), and under today's plain
command where the record predates a stop key (:class:`DefaultRule`). A record either flags is
not stamped.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from siger.train.record import REPO, git_state, log_head, machine, stop_check

CROSS_MACHINE_RTOL = 1e-6  # loss terms: 10x the largest difference measured across CPU models
CROSS_MACHINE_METRIC_RTOL = 1e-4  # valid metrics: ~10 near-ties ordered the other way on ml100k


def cpu_and_torch(machine_line: str | None) -> tuple[str, str] | None:
    """The CPU model and torch version of a :func:`siger.train.record.machine` line, or None."""
    if not machine_line:
        return None
    cpu = re.match(r"(.*?), \d+ cpus", machine_line)
    torch_v = re.search(r"torch ([^,]+)", machine_line)
    return (cpu.group(1), torch_v.group(1)) if cpu and torch_v else None


def default_rtol(head_machine: str | None, here: str) -> tuple[float, float]:
    """``(loss terms, valid metrics)`` tolerances: exact when the head was made on this CPU model
    with this torch, else :data:`CROSS_MACHINE_RTOL` and :data:`CROSS_MACHINE_METRIC_RTOL` (an
    unknown machine counts as another)."""
    a, b = cpu_and_torch(head_machine), cpu_and_torch(here)
    return (0.0, 0.0) if a is not None and a == b else (CROSS_MACHINE_RTOL, CROSS_MACHINE_METRIC_RTOL)


def head_machine(rec: dict[str, Any]) -> str | None:
    """The machine that made ``rec``'s head: the run's own for its own head, the replaying machine
    for a head replayed at its commit (None when that went unrecorded)."""
    if rec.get("log_head_source", "the run itself") == "the run itself":
        return rec.get("machine")
    return rec.get("log_head_machine")


class ReplayError(RuntimeError):
    """A replay that could not run (missing data, a commit that is not in the repository, a crash)."""


def _data_dir(cfg: dict[str, Any], data_dir: str | None) -> str | None:
    """Where the record's dataset is read now: ``data_dir`` if given, else the record's own folder
    (relative paths from the repository root), else None (bundled or $SIGER_DATA_DIR)."""
    name = cfg["train"]["dataset"]
    for cand in (data_dir, cfg["train"].get("data_dir")):
        if cand is None:
            continue
        p = Path(cand) if Path(cand).is_absolute() else REPO / cand
        if (p / name).is_dir():
            return str(p)
    if cfg["train"].get("data_dir") is None:
        return None  # the record read the bundled (or $SIGER_DATA_DIR) copy
    raise ReplayError(f"dataset {name!r} not found under {data_dir or cfg['train'].get('data_dir')!r} "
                      "(give --data-dir: the folder holding it)")


class DefaultRule:
    """Whether today's plain command would end a run where its record did. A record made before
    a stop key existed (its config lacks it) ran under what the key's ``absent`` value says, which
    is what a replay uses; today's command gets the key's default instead. When that moves the
    warm-up on the record's dataset (a floor in steps: more epochs on a dataset with few batches
    an epoch) past the record's early stop, the record is no longer what the command gives, and
    :meth:`__call__` says so. Each dataset is read once, to count its training pairs."""

    def __init__(self, data_dir: str | None = None):
        self.data_dir = data_dir
        self._n: dict[tuple[str, str | None], int] = {}

    def n_train(self, cfg: dict[str, Any]) -> int:
        from siger.data.dataset import load_dataset

        where = _data_dir(cfg, self.data_dir)
        key = (cfg["train"]["dataset"], where)
        if key not in self._n:
            self._n[key] = int(load_dataset(key[0], where).train_matrix.nnz)
        return self._n[key]

    def __call__(self, rec: dict[str, Any]) -> str | None:
        from siger.config import TrainConfig
        from siger.train.stopping import STOP_KEYS, effective_warmup

        t = rec["config"]["train"]
        missing = [k for k in STOP_KEYS if k not in t]
        if not missing or rec.get("stopped") != "early_stop":
            return None
        today = TrainConfig()
        keys = {k: t.get(k, getattr(today, k)) for k in STOP_KEYS}
        warmup = effective_warmup(keys["warmup_epochs"], keys["warmup_steps"], self.n_train(rec["config"]),
                                  t["batch_size"])
        why = stop_check({**rec, "config": {**rec["config"], "train": {**t, **keys}}}, warmup)
        if why is None:
            return None
        return (f"made before {', '.join(missing)} existed; with today's default "
                f"({', '.join(f'{k} {keys[k]}' for k in missing)}) the plain command's {why}")


def replay(config: dict[str, Any], epochs: int, code: Path, data_dir: str | None = None,
           modes: list[str] | None = None, cache_dir: Path | None = None) -> dict[str, Any]:
    """Train ``config`` (a saved ``Config.to_dict()``) for ``epochs`` epochs with the code checked
    out at ``code``, in a subprocess; returns ``{"head": log_head(...), "modes": ...}`` (``modes``:
    the cold-start evaluation of the short run, when asked). ``cache_dir``: a graph cache that only
    the code at ``code`` has written (default: an empty one, removed after)."""
    cfg = json.loads(json.dumps(config))
    cfg["train"].update(epochs=epochs, progress=False, data_dir=_data_dir(cfg, data_dir))
    with tempfile.TemporaryDirectory(prefix="siger-replay-") as tmp:
        tmp = Path(tmp)
        # graphs built by other code cannot hide a change
        cfg["train"]["cache_dir"] = str(cache_dir if cache_dir is not None else tmp / "cache")
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": str(cfg["train"].get("num_threads") or 1)}
        run = tmp / "run"
        cmds = [[sys.executable, "-m", "siger.cli", "train", "--config", str(tmp / "config.yaml"), "--out", str(run)]]
        if modes:
            cmds.append([sys.executable, "-m", "siger.cli", "evaluate", "--run", str(run), "--modes", ",".join(modes)])
        for cmd in cmds:
            out = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise ReplayError(f"replay at {code} failed ({' '.join(cmd[3:5])}): {out.stderr.strip()[-1500:]}")
        history = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
        res: dict[str, Any] = {"head": log_head(history, epochs)}
        if modes:
            rec = json.loads((run / "record.json").read_text())
            res["modes"] = rec.get("modes")
        return res


def compare(want: list[dict[str, Any]], got: list[dict[str, Any]], rtol: float = 0.0,
            metric_rtol: float | None = None) -> list[str]:
    """The differences between two log heads (same epochs, loss terms, valid metrics), as lines;
    [] when they agree within ``rtol`` (0: exactly; ``metric_rtol`` for the valid metrics,
    default ``rtol``)."""
    diffs = []
    tol = {"loss": rtol, "valid": rtol if metric_rtol is None else metric_rtol}
    if len(got) < len(want):
        diffs.append(f"replay has {len(got)} epochs, the record {len(want)}")
    for a, b in zip(want, got):
        for part in ("loss", "valid"):
            x, y = a.get(part) or {}, b.get(part) or {}
            for k in sorted(set(x) | set(y)):
                if k not in x or k not in y:
                    diffs.append(f"epoch {a['epoch']} {part} {k}: only in {'the record' if k in x else 'the replay'}")
                elif abs(x[k] - y[k]) > tol[part] * max(abs(x[k]), abs(y[k])):
                    diffs.append(f"epoch {a['epoch']} {part} {k}: record {x[k]!r}, replay {y[k]!r}")
    return diffs


def _compare_modes(want: dict | None, got: dict | None, rtol: float) -> list[str]:
    if not want:
        return []
    diffs = []
    for split, modes in want.items():
        for mode, metrics in modes.items():
            for k, v in metrics.items():
                w = ((got or {}).get(split) or {}).get(mode, {}).get(k)
                if w is None or abs(v - w) > rtol * max(abs(v), abs(w)):
                    diffs.append(f"{split} {mode} {k}: record {v!r}, replay {w!r}")
    return diffs


class Checkouts:
    """Temporary git worktrees of past commits (one per commit) and a graph cache per code tree,
    removed on close."""

    def __init__(self, repo: Path = REPO):
        self.repo, self._dirs = repo, {}
        self._root = Path(tempfile.mkdtemp(prefix="siger-commits-"))
        self._caches: dict[str, Path] = {}
        self._lock = threading.Lock()

    def cache(self, code: Path) -> Path:
        """The graph cache of the replays that run the code at ``code`` (empty at first: only
        that code writes it)."""
        key = str(Path(code).resolve())
        with self._lock:
            if key not in self._caches:
                self._caches[key] = self._root / "caches" / str(len(self._caches))
            return self._caches[key]

    def __call__(self, commit: str) -> Path:
        with self._lock:  # parallel replays: one worktree per commit, git's own lock taken once
            return self._checkout(commit)

    def _checkout(self, commit: str) -> Path:
        if commit not in self._dirs:
            path = self._root / commit[:12]
            out = subprocess.run(["git", "-C", str(self.repo), "worktree", "add", "--detach", str(path), commit],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise ReplayError(f"cannot check out commit {commit}: {out.stderr.strip()}")
            self._dirs[commit] = path
        return self._dirs[commit]

    def close(self) -> None:
        for path in self._dirs.values():
            subprocess.run(["git", "-C", str(self.repo), "worktree", "remove", "--force", str(path)],
                           capture_output=True)
        self._dirs.clear()
        self._caches.clear()
        shutil.rmtree(self._root, ignore_errors=True)


@dataclass
class Verdict:
    """One record's replay: ``ok``, the differences, and where its head came from."""

    record_id: str
    label: str
    ok: bool
    diffs: list[str]
    head_source: str
    rtol: tuple[float, float] = (0.0, 0.0)  # (loss terms, valid metrics)


def record_modes(rec: dict[str, Any]) -> list[str] | None:
    """The evaluation modes a record was evaluated by (cold items: warm, cold, all; cold users:
    warm, cold_users), or None for a record of the usual protocol."""
    modes = (rec.get("modes") or {}).get("test")
    return list(modes) if modes else None


def ensure_head(rec: dict[str, Any], epochs: int, checkouts: Checkouts, data_dir: str | None = None) -> str | None:
    """Give ``rec`` its first ``epochs`` epochs (``log_head``; ``modes_head`` for a cold-start
    record) by a replay at its own commit if it lacks them; returns where its head came from, or
    None when it has no clean commit to replay at."""
    modes = record_modes(rec)
    # the evaluation modes are measured after the replay's last epoch: a head for that many epochs
    have_modes = (rec.get("modes_head") or {}).get("epochs") == epochs
    if len(rec.get("log_head") or []) >= epochs and (not modes or have_modes):
        return rec.get("log_head_source", "the run itself")
    if not rec.get("commit") or rec.get("dirty_code"):
        return None
    code = checkouts(rec["commit"])
    old = replay(rec["config"], epochs, code, data_dir, modes, checkouts.cache(code))
    rec["log_head"], rec["log_head_source"] = old["head"], f"replayed at {rec['commit'][:12]}"
    rec["log_head_machine"] = machine()
    if modes:
        rec["modes_head"] = {"epochs": epochs, "modes": old["modes"]}
    return rec["log_head_source"]


def verify_record(rec: dict[str, Any], epochs: int, checkouts: Checkouts, data_dir: str | None = None,
                  rtol: float | None = None, code: Path = REPO) -> Verdict:
    """Replay one run record on the code at ``code`` and compare (see the module docstring). A
    record without a ``log_head`` gets one from a replay at its own commit, stored in ``rec``.
    ``rtol`` None: :func:`default_rtol` of the machine that made the head and this one; a number:
    that tolerance on every compared value."""
    modes = record_modes(rec)
    label = f"{rec.get('table')}/{rec.get('dataset')}/{rec.get('label')}/seed {rec.get('seed')}"
    source = ensure_head(rec, epochs, checkouts, data_dir)
    if source is None:
        return Verdict(rec["id"], label, False, ["no clean commit to replay the record's own code at"], "-")
    tol = default_rtol(head_machine(rec), machine()) if rtol is None else (rtol, rtol)
    new = replay(rec["config"], epochs, code, data_dir, modes, checkouts.cache(code))
    diffs = compare(rec["log_head"][:epochs], new["head"], *tol)
    if modes:
        diffs += _compare_modes(rec["modes_head"]["modes"], new["modes"], tol[1])
    if diffs and any(tol) and rec.get("commit") and not rec.get("dirty_code"):
        # a head from another machine, off by more than the tolerance: the record's own commit,
        # replayed on this machine, decides exactly (both sides then round alike)
        own = checkouts(rec["commit"])
        old = replay(rec["config"], epochs, own, data_dir, modes, checkouts.cache(own))
        diffs = compare(old["head"], new["head"]) + (_compare_modes(old["modes"], new["modes"], 0.0) if modes else [])
        return Verdict(rec["id"], label, not diffs, diffs,
                       f"{source}; re-derived at {rec['commit'][:12]} on this machine", (0.0, 0.0))
    return Verdict(rec["id"], label, not diffs, diffs, source, tol)


def verify(records: list[dict[str, Any]], sample: int | None, epochs: int = 2, data_dir: str | None = None,
           rtol: float | None = None, seed: int = 0, only_stale: bool = True, log: Callable[[str], None] = print,
           save: Callable[[list[dict[str, Any]]], None] | None = None,
           per_setting: bool = False, jobs: int = 1) -> tuple[list[dict[str, Any]], list[Verdict]]:
    """Replay ``sample`` run records (all when None; by default only those the git check finds
    stale), stamp the ones that match with the current commit, and return the updated records
    and the verdicts (``save``: called with the records after each one, so a stopped
    verification keeps what it did). Refuses to stamp while the code has uncommitted changes.

    ``per_setting``: replay one run (the lowest seed) of each setting made at one commit on one
    dataset, and stamp the setting's other seeds by it (``verified.by``): the seeds of a setting
    run the same code, only their random draws differ.

    ``jobs``: replays at once (each a one-thread subprocess, as its record ran); the verdicts are
    logged, stamped and saved in the same order as with one."""
    from siger.experiments.records import setting_key
    from siger.experiments.staleness import Staleness

    state = git_state()
    if state["dirty_code"]:
        raise ReplayError(f"uncommitted changes in {', '.join(state['dirty_code'])}: commit before verifying "
                          "(a verified record names the commit it was replayed at)")
    stale = Staleness()
    by_id: dict[str, list[dict[str, Any]]] = {}  # one run may sit in several tables: replayed once
    for r in records:
        if r.get("kind") == "run" and (not only_stale or stale(r)):
            by_id.setdefault(r["id"], []).append(r)
    groups: dict[str, list[str]] = {rid: [rid] for rid in by_id}
    if per_setting:
        keyed: dict[tuple, list[str]] = {}
        for rid, rs in by_id.items():
            r = rs[0]
            keyed.setdefault((setting_key(r), r.get("commit"), r["dataset"], bool(r.get("modes"))), []).append(rid)
        groups = {}
        for members in keyed.values():
            members.sort(key=lambda i: (by_id[i][0].get("seed") or 0, i))
            groups[members[0]] = members
    ids = sorted(groups)
    if sample is not None and sample < len(ids):
        ids = random.Random(seed).sample(ids, sample)
    checkouts = Checkouts()
    today = DefaultRule(data_dir)
    verdicts = []
    def one(rid: str) -> Verdict:
        return verify_record(by_id[rid][0], epochs, checkouts, data_dir, rtol)

    pool = ThreadPoolExecutor(max(1, jobs)) if jobs > 1 else None
    try:
        for rid, v in zip(ids, pool.map(one, ids) if pool else map(one, ids)):
            rec = by_id[rid][0]
            verdicts.append(v)
            log(f"{'ok  ' if v.ok else 'DIFF'} {v.label} (head: {v.head_source}"
                + (f"; made on another CPU or torch: rtol {v.rtol[0]:g} (losses), {v.rtol[1]:g} (metrics)"
                   if any(v.rtol) else "") + ")"
                + "".join(f"\n       {d}" for d in v.diffs[:5]))
            for r in (r for member in groups[rid] for r in by_id[member]):
                if r["id"] == rid:
                    for k in ("log_head", "log_head_source", "log_head_machine", "modes_head"):
                        if k in rec:
                            r[k] = rec[k]
                stop = stop_check(r) or today(r)
                if v.ok and stop is None:
                    r["verified"] = {"commit": state["commit"], "epochs": epochs,
                                     **({"rtol": list(v.rtol)} if any(v.rtol) else {}),
                                     **({"by": rid} if r["id"] != rid else {})}
                    r.pop("replay_differs", None)
                else:
                    r.pop("verified", None)
                    r["replay_differs"] = v.diffs[:5] + ([stop] if stop else [])
                    if stop:
                        log(f"STOP {r.get('table')}/{r['dataset']}/{r.get('label')}/seed {r.get('seed')}: {stop}")
            if save is not None:
                save(records)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        checkouts.close()
    return records, verdicts
