"""The result records: ``results/records.jsonl`` (committed), one JSON record per line.

- ``kind: run``: a finished training run (its ``record.json``, see :mod:`siger.train.record`),
  placed in a ``table`` (e.g. ``comparison``, ``ablation``) under a row ``label``;
- ``kind: mostpop`` / ``content``: the baselines of a dataset (:mod:`siger.experiments.baselines`);
- ``kind: study``: the summary of a ``siger tune`` study (trials, best trial, best valid);
- ``kind: bench``: a benchmark measurement (``python -m benchmarks.bench --record``).

This module reads, writes and edits the store; :mod:`siger.experiments.report` renders every table
of the docs from it, :mod:`siger.experiments.staleness` says which records the code has moved past
and :mod:`siger.experiments.replay` checks them by replaying their first epochs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from siger.artifacts import atomic_write
from siger.train.record import git_state, machine, record_id

RECORDS = Path("results/records.jsonl")


class RecordError(ValueError):
    """A record file or a record that cannot be used."""


# -- reading and writing ------------------------------------------------------------------------
# config keys that say where and how fast a run ran, or which seed: runs differing only in them
# share a setting (one table row)
INCIDENTAL = ("seed", "data_dir", "cache_dir", "num_threads", "progress", "device", "eval_chunk_users", "epochs")


def setting_key(rec: dict[str, Any]) -> str:
    """A run record's setting: its config less the incidental keys, as a canonical string."""
    cfg = {**rec["config"].get("train", {}), **rec["config"].get("model", {})}
    return json.dumps({k: v for k, v in sorted(cfg.items()) if k not in INCIDENTAL}, sort_keys=True)


def load_records(path: str | Path = RECORDS) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for n, line in enumerate(p.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise RecordError(f"{p}:{n}: not a JSON record ({e})") from None
    return out


def save_records(records: list[dict[str, Any]], path: str | Path = RECORDS) -> None:
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    atomic_write(path, lambda t: Path(t).write_text(text))


def merge_records(records: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` with ``new`` appended; a record with the id and table of an existing one
    replaces it (one run may sit in several tables, e.g. the full model of a comparison is the
    reference row of an ablation)."""
    def key(r: dict[str, Any]) -> tuple[str, Any]:
        return r["id"], r.get("table")

    by_key = {key(r): i for i, r in enumerate(records)}
    out = list(records)
    for r in new:
        if key(r) in by_key:
            out[by_key[key(r)]] = r
        else:
            by_key[key(r)] = len(out)
            out.append(r)
    return out


def find_run_records(paths: list[str | Path]) -> list[Path]:
    """Every ``record.json`` at or under ``paths`` (a run folder or a folder of runs)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file() and p.name == "record.json":
            found.append(p)
        elif (p / "record.json").exists():
            found.append(p / "record.json")
        elif p.is_dir():
            found += sorted(p.rglob("record.json"))
        else:
            raise RecordError(f"{p}: no run record (record.json) there; is it a finished run folder?")
    if not found:
        raise RecordError(f"no record.json under {', '.join(map(str, paths))}")
    return found


def add_runs(paths: list[str | Path], table: str, label: str | None = None, note: str | None = None,
             records_path: str | Path = RECORDS, replace: bool = False) -> list[dict[str, Any]]:
    """Append the run records under ``paths`` to the records file, in ``table`` under ``label``
    (default: the model name). Returns the records added.

    ``replace``: the new runs are a rerun of their rows. Each row (label) on each dataset of the
    new runs loses its records in ``table``; the new ones take the place of the first of them
    (the table keeps its row order) and, without ``note``, the note the row had. A row with
    nothing to replace is an error."""
    from siger.experiments.runs import slug
    from siger.models.siger import ABLATIONS

    by_slug = {slug(n): n for n in ABLATIONS}
    new = []
    for f in find_run_records(paths):
        rec = json.loads(f.read_text())
        if rec.get("kind") != "run" or rec.get("test") is None:
            raise RecordError(f"{f}: not a finished run record")
        if rec.get("stopped") == "pruned":
            raise RecordError(f"{f}: a pruned run (a tuner stopped it early) is not a result")
        if table in ("cold", "cold_users") and not rec.get("modes"):
            raise RecordError(f"{f}: no cold-start metrics in this run's record: run "
                              f"`siger evaluate --run {f.parent} --modes warm,cold,all` first")
        row = label or rec["model"]
        if label == "auto":  # the run's folder above seed<S>: a compare model or an ablation variant
            folder = f.parent.parent.name if f.parent.name.startswith("seed") else f.parent.name
            row = by_slug.get(folder, folder)
        rec.update(table=table, label=row, note=note)
        new.append(rec)
    records = load_records(records_path)
    # a run already in another table keeps what replays established for it there: its verified
    # stamp, and the first epochs a replay recovered for a record made before records carried them
    # (with where and on which machine they were replayed)
    for k in ("verified", "log_head", "log_head_source", "log_head_machine"):
        known = {r["id"]: r[k] for r in records if k in r}
        for rec in new:
            if k not in rec and rec["id"] in known:
                rec[k] = known[rec["id"]]
    if replace:
        records = replace_rows(records, new, table, keep_note=note is None)
    save_records(merge_records(records, new), records_path)
    return new


def replace_rows(records: list[dict[str, Any]], new: list[dict[str, Any]], table: str,
                  keep_note: bool) -> list[dict[str, Any]]:
    """``records`` less the records of ``table`` whose (label, dataset) is one of ``new``'s, with
    ``new`` at the place of the first of each (``add_runs``' ``replace``)."""
    out = list(records)
    for key in dict.fromkeys((r["label"], r["dataset"]) for r in new):
        mine = [r for r in new if (r["label"], r["dataset"]) == key]
        old = [i for i, r in enumerate(out) if r.get("table") == table and (r.get("label"), r.get("dataset")) == key]
        if not old:
            raise RecordError(f"--replace: no row {key[0]!r} on {key[1]} in table {table!r} to replace")
        if keep_note:
            note = next((out[i].get("note") for i in old if out[i].get("note")), None)
            for r in mine:
                r["note"] = note
        drop = set(old)
        out = [r for i, r in enumerate(out) if i not in drop]
        out[old[0]:old[0]] = mine
    return out


def remove_rows(table: str, label: str, records_path: str | Path = RECORDS) -> int:
    """Take the row ``label`` out of ``table`` (every record of it, whatever the dataset; the
    same runs in other tables stay). Returns how many records were removed; none is an error."""
    records = load_records(records_path)
    keep = [r for r in records if not (r.get("table") == table and r.get("label") == label)]
    if len(keep) == len(records):
        rows = sorted({r.get("label") for r in records if r.get("table") == table})
        raise RecordError(f"{records_path}: no row {label!r} in table {table!r} (rows there: {rows})")
    save_records(keep, records_path)
    return len(records) - len(keep)


def relabel_rows(table: str, label: str, new: str, note: str | None = None,
                 records_path: str | Path = RECORDS, dataset: str | None = None) -> int:
    """Rename the row ``label`` of ``table`` to ``new`` (on every dataset, or on ``dataset`` only;
    e.g. a row named after defaults that have changed since), optionally with a new ``note``;
    ``new`` equal to ``label`` with a ``note`` changes the note only (e.g. a row whose note names
    defaults that have changed since, or a finding about one dataset's runs). Returns the records
    changed."""
    records = load_records(records_path)
    scope = [r for r in records if r.get("table") == table and dataset in (None, r.get("dataset"))]
    hit = [r for r in scope if r.get("label") == label]
    if not hit:
        rows = sorted({r.get("label") for r in scope})
        where = f"table {table!r}" + (f" on dataset {dataset!r}" if dataset else "")
        raise RecordError(f"{records_path}: no row {label!r} in {where} (rows there: {rows})")
    if new == label and note is None:
        raise RecordError(f"relabel: {label!r} to itself changes nothing (give --note to change its note)")
    if new != label and any(r.get("label") == new for r in scope):
        raise RecordError(f"{records_path}: table {table!r} already has a row {new!r}")
    for r in hit:
        r["label"] = new
        if note is not None:
            r["note"] = note
    save_records(records, records_path)
    return len(hit)


def study_record(study_dir: str | Path, note: str | None = None, chosen: int | None = None) -> dict[str, Any]:
    """The summary of a tune study folder (its ``study.json``); ``chosen``: the trial whose
    values became the defaults, when it is not the study's best (e.g. a constraint ruled the
    best out), kept with its params and metrics."""
    import datetime as dt

    d = Path(study_dir)
    p = d / "study.json"
    if not p.exists():
        raise RecordError(f"{p}: not found (is {d} a study folder with its reports written?)")
    s = json.loads(p.read_text())
    states = [t["state"] for t in s["trials"]]
    best = s["best"]
    rec = {"kind": "study", "model": s["model"], "dataset": s["dataset"], "seed": None, "folder": str(d),
           "metric": s["metric"], "select_by": s["select_by"], "sampler": s["sampler"], "pruner": s["pruner"],
           "space": s["space"], "trials": len(states), "complete": states.count("COMPLETE"),
           "pruned": states.count("PRUNED"), "best": {k: best.get(k) for k in ("number", "params", "valid", "test",
                                                                              "best_epoch", "epochs_run")},
           "importances": s.get("importances") or {}, "note": note, **git_state(),
           "confirmed": ({k: s["confirmed"][k] for k in ("seeds", "seed_list", "best", "rows", "datasets", "aggregate",
                                                              "best_by_value", "tied")
                          if k in s["confirmed"]}
                         if s.get("confirmed") else None),
           "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    if s.get("datasets"):  # a multi-dataset study: relative scores per dataset, the leave-one-out choice
        from siger.experiments.tune.multi import leave_one_out

        rec.update(datasets=s["datasets"], reference=s.get("reference"), aggregate=s.get("aggregate"),
                   lodo=leave_one_out(s["trials"], s["datasets"], s["aggregate"]))
        rec["best"].update(value=best.get("value"), per_dataset={n: {"rel": v["rel"], "rel_test": v["rel_test"]}
                                                                 for n, v in (best.get("datasets") or {}).items()})
    if chosen is not None:
        pick = [t for t in s["trials"] if t["number"] == chosen]
        if not pick or pick[0]["state"] != "COMPLETE":
            raise RecordError(f"{p}: --chosen {chosen}: no complete trial {chosen} in this study")
        rec["chosen"] = {k: pick[0].get(k) for k in ("number", "params", "valid", "test", "best_epoch", "epochs_run")}
    rec["id"] = record_id({**rec, "config": {"folder": str(d)}, "date": s["dataset"]})  # one record per study
    return rec


def bench_record(label: str, setting: str, summary: str, values: dict[str, Any]) -> dict[str, Any]:
    """A benchmark measurement: ``label`` (what), ``setting`` (how), ``summary`` (the line the
    docs show), ``values`` (everything measured)."""
    import datetime as dt

    rec = {"kind": "bench", "label": label, "setting": setting, "summary": summary, "values": values,
           "machine": machine(), **git_state(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "model": values.get("model"), "dataset": values.get("dataset"), "seed": None}
    rec["id"] = record_id({**rec, "config": {"label": label, "setting": setting}})
    return rec


def add_record(rec: dict[str, Any], records_path: str | Path = RECORDS) -> None:
    save_records(merge_records(load_records(records_path), [rec]), records_path)
