"""Re-scoring finished trials that a changed training rule would have trained on.

Optuna fixes a trial's value when it finishes. When the rule that ends a run changes (the early
stop that counted patience from a peak inside the warm-up did), a finished trial can hold a value
the current code would not give. Each time a study is opened to run, :func:`requeue_stale` finds
such trials from their runs' records (:func:`siger.train.record.stop_check`, per run) and
queues a **retry** of each: the same values, the same run folder, and ``retry_of`` naming the
trials it replaces. Its finished runs are reused as they are; a run the current rule would not
have stopped continues from its checkpoint, and the trial's value is taken again.

A retried trial is **superseded** (:func:`superseded`): from then on the study's count of
finished trials, its best trial, the pruners' reference curves, the leave-one-dataset-out choice
and the reports read its retry instead, and study.md lists it as superseded. Optuna's TPE sampler
still sees both (it reads the storage directly); the retry has the same values, so that only
weights one point twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

from siger.train.record import stop_check


def superseded(trials: Iterable[Any]) -> dict[int, int]:
    """``{trial number: the number of the newest retry that replaces it}``. A retry names what
    it replaces in its ``retry_of`` user attribute (a list of numbers); a retry of a retry (a
    killed retry re-queued by the heartbeat keeps the attribute) replaces the same trials."""
    out: dict[int, int] = {}
    for t in trials:
        for n in t.user_attrs.get("retry_of") or []:
            if n != t.number:
                out[n] = max(out.get(n, -1), t.number)
    return out


def live_trials(study, states=None) -> list[Any]:
    """The study's trials in ``states`` (all when None) that no retry replaces (one read of the
    storage: the pruners call this at every evaluation)."""
    trials = study.get_trials(deepcopy=False)
    gone = superseded(trials)
    return [t for t in trials if t.number not in gone and (states is None or t.state in states)]


def _run_folders(run: Path) -> list[Path]:
    """A trial's run folders: its own (with one folder per dataset in a multi-dataset study) and
    the ``<run>-seed<S>`` folders of its extra seeds."""
    return [run, *sorted(run.parent.glob(f"{run.name}-seed*"))] if run.parent.exists() else [run]


def stale_runs(run: Path, datasets: Iterable[str] | None = None,
               warmup_of: Callable[[dict[str, Any]], int | None] | None = None) -> list[str]:
    """Why the current rule would train on in the runs of the trial whose run folder is ``run``:
    one line per run record that :func:`stop_check` flags (none: the trial's value stands).
    ``warmup_of(record)``: the warm-up the study's config gives that run now (its default may
    have changed since: a ``warmup_steps`` floor); None: the record's own. With it, a run pruned
    inside that warm-up is flagged too (the trainer ignores a pruner there).
    ``datasets`` (a multi-dataset trial: the datasets its value read) limits the search to their
    folders: a folder the trial never reached (pruned before it, or left from an earlier trial
    sharing the run folder) holds no part of its value, and a retry would not reach it either."""
    out = []
    keep = None if datasets is None else set(datasets)
    for folder in _run_folders(run):
        for rec_path in sorted(folder.rglob("record.json")) if folder.exists() else []:
            if keep is not None and rec_path.parent != folder and rec_path.parent.name not in keep:
                continue
            try:
                rec = json.loads(rec_path.read_text())
            except (OSError, ValueError):
                continue  # an unreadable record is not evidence either way; the run's resume decides
            warmup = warmup_of(rec) if warmup_of is not None else None
            why = stop_check(rec, warmup)
            if rec.get("stopped") == "pruned" and warmup is not None and rec["epochs_run"] - 1 < warmup:
                why = (f"pruned at epoch {rec['epochs_run'] - 1}, inside the {warmup}-epoch warm-up the trainer "
                       "now keeps from pruners too: the run trains on")
            if why:
                out.append(f"{rec_path.parent.relative_to(run.parent)}: {why}")
    return out


def _datasets_of(trial) -> list[str] | None:
    """The datasets a multi-dataset trial's value read (its ``datasets`` user attribute); None for
    a single-dataset trial."""
    per = trial.user_attrs.get("datasets")
    return list(per) if isinstance(per, dict) else None


def requeue_stale(study, out: Path, params_of: Callable[[Any], dict[str, Any]],
                  log: Callable[[str], None] = print,
                  warmup_of: Callable[[dict[str, Any]], int | None] | None = None,
                  also: Callable[[Any], list[str]] | None = None) -> list[dict[str, Any]]:
    """Queue one retry per set of values whose finished trials hold a stale value (see the module
    docstring); ``params_of(trial)`` gives the values the trial ran (the keys of later space
    extensions included); ``warmup_of``: see :func:`stale_runs`; ``also(trial)``: further reasons
    a trial's value is stale (e.g. a multi-dataset study's reference run has moved since). Trials that ran the same values (a sampler's repeat, or a heartbeat
    retry sharing the run folder) get one retry, in the run folder of the first, which replaces
    them all: the same values and seed train the same run. Trials already replaced, or with a
    retry waiting or running, are left alone. Returns what was queued: ``{"run_dir",
    "retry_of", "why"}`` each."""
    trials = study.get_trials(deepcopy=False)
    gone = superseded(trials)
    groups: dict[str, list[Any]] = {}
    for t in trials:
        if t.state.name in ("COMPLETE", "PRUNED") and t.number not in gone and t.user_attrs.get("run_dir"):
            groups.setdefault(json.dumps(params_of(t), sort_keys=True, default=str), []).append(t)
    queued = []
    for group in groups.values():
        why = [w for t in group for w in stale_runs(Path(out) / t.user_attrs["run_dir"], _datasets_of(t), warmup_of)]
        why += [w for t in group for w in (also(t) if also is not None else [])]
        if not why:
            continue
        group = sorted(group, key=lambda t: t.number)
        run_dir, numbers = group[0].user_attrs["run_dir"], [t.number for t in group]
        study.enqueue_trial(params_of(group[0]), user_attrs={"run_dir": run_dir, "retry_of": numbers,
                                                               "rescore": why})
        queued.append({"run_dir": run_dir, "retry_of": numbers, "why": why})
        log(f"re-queued trial{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))} ({run_dir}): "
            f"{len(why)} reason(s), first: {why[0]}")
    return queued


__all__ = ["live_trials", "requeue_stale", "stale_runs", "superseded"]
