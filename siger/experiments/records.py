"""Result records and the report rendered from them.

``results/records.jsonl`` (committed) holds one JSON record per line:

- ``kind: run``: a finished training run (its ``record.json``, see :mod:`siger.train.record`),
  placed in a ``table`` (e.g. ``comparison``, ``ablation``) under a row ``label``;
- ``kind: mostpop``: the MostPop baseline of a dataset (for scale);
- ``kind: study``: the summary of a ``siger tune`` study (trials, best trial, best valid);
- ``kind: bench``: a benchmark measurement (``python -m benchmarks.bench --record``).

``siger report`` renders ``docs/results.md`` and the comparison PNGs from the records alone, and
rewrites every ``<!-- report:NAME -->`` ... ``<!-- /report -->`` block of README.md and docs/*.md
with the rendered block ``NAME``; ``siger report --check`` says whether the committed files
are what the records render to (a CI test runs it). A run record whose code (model, training,
evaluation, data) changed since its commit, or that was trained with uncommitted code, is
marked in every table.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from siger.artifacts import atomic_write
from siger.experiments.stats import fmt_paired, mean_std, paired_diff
from siger.experiments.summary import SUMMARY_METRICS as HEAD_METRICS
from siger.train.record import REPO, model_code_paths, path_in, record_id

RECORDS = Path("results/records.jsonl")
RESULTS_DOC = Path("docs/results.md")
ABLATION_REF = "SIGER (full)"  # the row an ablation table's deltas are taken against
COMPARISON_REF = "SIGER (defaults)"  # the row a comparison table's deltas are taken against
DELTA_METRICS = ("recall@20", "ndcg@20")  # the paired differences a table shows
INCIDENTAL = ("seed", "data_dir", "cache_dir", "num_threads", "progress", "device", "eval_chunk_users", "epochs")


class RecordError(ValueError):
    """A record file or a record that cannot be used."""


# -- reading and writing ------------------------------------------------------------------------
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


def _merge(records: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
        if table == "cold" and not rec.get("modes"):
            raise RecordError(f"{f}: no cold-start metrics in this run's record: run "
                              f"`siger evaluate --run {f.parent} --modes warm,cold,all` first")
        row = label or rec["model"]
        if label == "auto":  # the run's folder above seed<S>: a compare model or an ablation variant
            folder = f.parent.parent.name if f.parent.name.startswith("seed") else f.parent.name
            row = by_slug.get(folder, folder)
        rec.update(table=table, label=row, note=note)
        new.append(rec)
    records = load_records(records_path)
    if replace:
        records = _replace_rows(records, new, table, keep_note=note is None)
    save_records(_merge(records, new), records_path)
    return new


def _replace_rows(records: list[dict[str, Any]], new: list[dict[str, Any]], table: str,
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


def mostpop_record(dataset: str, data_dir: str | None, topk: tuple[int, ...] = (5, 10, 20, 50)) -> dict[str, Any]:
    """MostPop on the test split: every user gets the most-interacted train items (train masked)."""
    import datetime as dt

    import torch

    from siger.data.dataset import load_dataset
    from siger.eval.ranking import evaluate

    data = load_dataset(dataset, data_dir)
    pop = np.bincount(data.train[:, 1], minlength=data.n_items).astype(np.float32)
    u = torch.ones(data.n_users, 1)
    i = torch.from_numpy(pop).unsqueeze(1)
    test = evaluate(u, i, data.train_matrix, data.matrix("test"), list(topk), 4096)
    valid = evaluate(u, i, data.train_matrix, data.matrix("valid"), list(topk), 4096)
    from siger.train.record import git_state

    rec = {"kind": "mostpop", "model": "MostPop", "dataset": data.name, "seed": None,
           "config": {"data_dir": data_dir, "topk": list(topk)}, "valid": valid, "test": test, **git_state(),
           "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "table": "comparison",
           "label": "MostPop (for scale)"}
    rec["id"] = record_id({"kind": "mostpop", "dataset": data.name})  # one per dataset: a rerun replaces it
    return rec


def content_record(dataset: str, data_dir: str | None, topk: tuple[int, ...] = (5, 10, 20, 50)) -> dict[str, Any]:
    """The content-only cold-start baseline on a cold-start dataset: each user's mean train-item
    features, cosine to each item's features (see :func:`siger.eval.cold.content_embeddings`)."""
    import datetime as dt

    from siger.data.cold import load_cold
    from siger.data.dataset import load_dataset
    from siger.eval.cold import content_embeddings, evaluate_modes
    from siger.train.record import git_state

    data = load_dataset(dataset, data_dir)
    cold = load_cold(data.path, data.n_users)
    u, w, c = content_embeddings(data, cold)
    modes = {split: evaluate_modes(u, w, c, data, cold, split, list(topk)) for split in ("valid", "test")}
    rec = {"kind": "content", "model": "content", "dataset": data.name, "seed": None,
           "config": {"data_dir": data_dir, "topk": list(topk)}, "modes": modes, "valid": modes["valid"]["warm"],
           "test": modes["test"]["warm"], **git_state(), "table": "cold", "label": "content only (cosine)",
           "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    rec["id"] = record_id({"kind": "content", "dataset": data.name})
    return rec


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
    from siger.train.record import git_state

    rec = {"kind": "study", "model": s["model"], "dataset": s["dataset"], "seed": None, "folder": str(d),
           "metric": s["metric"], "select_by": s["select_by"], "sampler": s["sampler"], "pruner": s["pruner"],
           "space": s["space"], "trials": len(states), "complete": states.count("COMPLETE"),
           "pruned": states.count("PRUNED"), "best": {k: best.get(k) for k in ("number", "params", "valid", "test",
                                                                              "best_epoch", "epochs_run")},
           "importances": s.get("importances") or {}, "note": note, **git_state(),
           "confirmed": ({k: s["confirmed"][k] for k in ("seeds", "seed_list", "best", "rows")}
                         if s.get("confirmed") else None),
           "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
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

    from siger.train.record import git_state, machine

    rec = {"kind": "bench", "label": label, "setting": setting, "summary": summary, "values": values,
           "machine": machine(), **git_state(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "model": values.get("model"), "dataset": values.get("dataset"), "seed": None}
    rec["id"] = record_id({**rec, "config": {"label": label, "setting": setting}})
    return rec


def add_record(rec: dict[str, Any], records_path: str | Path = RECORDS) -> None:
    save_records(_merge(load_records(records_path), [rec]), records_path)


# -- staleness -------------------------------------------------------------------------------
class Staleness:
    """Whether a record's code still is the code of HEAD, judged on the code its model depends
    on (:func:`siger.train.record.model_code_paths`; answers cached per commit and model)."""

    def __init__(self, repo: Path = REPO):
        self.repo = repo
        self._cache: dict[tuple[str, str | None], str | None] = {}
        self._paths: dict[str | None, tuple[str, ...]] = {}

    def paths(self, model: str | None) -> tuple[str, ...]:
        if model not in self._paths:
            self._paths[model] = model_code_paths(model, self.repo)
        return self._paths[model]

    def __call__(self, rec: dict[str, Any]) -> str | None:
        """None (current), 'stale' (code changed since the record's commit) or 'uncommitted'
        (trained with uncommitted code changes)."""
        if rec.get("kind") not in ("run", "mostpop", "content"):
            return None
        model = rec.get("model") if rec.get("kind") == "run" else None
        paths = self.paths(model)
        if any(path_in(p, paths) for p in rec.get("dirty_code") or []):
            return "uncommitted"
        if rec.get("replay_differs"):
            return "stale"
        # a record whose replay matched counts from the commit it was verified at
        commit = (rec.get("verified") or {}).get("commit") or rec.get("commit")
        if not commit:
            return "uncommitted"
        key = (commit, model)
        if key not in self._cache:
            try:
                res = subprocess.run(["git", "-C", str(self.repo), "diff", "--quiet", commit, "HEAD", "--", *paths],
                                     capture_output=True, timeout=30)
                self._cache[key] = None if res.returncode == 0 else "stale"
                if res.returncode not in (0, 1):
                    self._cache[key] = "unknown commit"
            except (OSError, subprocess.SubprocessError):
                self._cache[key] = "unknown commit"
        return self._cache[key]


MARKS = {"stale": "†", "uncommitted": "‡", "unknown commit": "?"}


# -- rendering -------------------------------------------------------------------------------
def _setting(rec: dict[str, Any]) -> str:
    cfg = {**rec["config"].get("train", {}), **rec["config"].get("model", {})}
    return json.dumps({k: v for k, v in sorted(cfg.items()) if k not in INCIDENTAL}, sort_keys=True)


def _fmt(ms: tuple[float, float], n: int) -> str:
    return f"{ms[0]:.4f} ± {ms[1]:.4f}" if n > 1 else f"{ms[0]:.4f}"


def group_runs(records: list[dict[str, Any]], table: str, dataset: str) -> dict[str, list[dict[str, Any]]]:
    """The run records of one table and dataset by row label, in first-seen order. One label's
    records must share one setting (they may differ only in seed and where they ran)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("kind") in ("run", "mostpop") and r.get("table") == table and r["dataset"] == dataset:
            rows.setdefault(r["label"], []).append(r)
    for label, rs in rows.items():
        runs = [r for r in rs if r["kind"] == "run"]
        if len({_setting(r) for r in runs}) > 1:
            raise RecordError(f"table {table!r} on {dataset}: row {label!r} mixes runs of different settings; "
                              "give each setting its own --label")
        seeds = [r["seed"] for r in runs]
        if len(seeds) != len(set(seeds)):
            raise RecordError(f"table {table!r} on {dataset}: row {label!r} has seed(s) twice: {sorted(seeds)}")
    return rows


# tables whose rows a choice was made among on valid (any table named confirmation...; one per
# model, e.g. confirmation_siger): they show the valid metric the choice read
VALID_TABLES = ("confirmation",)
VALID_METRIC = "recall@20"


def _by_seed(rs: list[dict[str, Any]], metric: str) -> dict[int, float]:
    return {r["seed"]: r["test"][metric] for r in rs if r.get("seed") is not None}


def _row(label: str, rs: list[dict[str, Any]], stale: Staleness, ref: list[dict[str, Any]] | None = None,
         valid: bool = False) -> tuple[list[str], dict[str, float]]:
    n = len(rs)
    marks = "".join(sorted({MARKS[m] for m in (stale(r) for r in rs) if m}))
    means = {m: mean_std([r["test"][m] for r in rs]) for m in HEAD_METRICS}
    cells = [f"{label}{(' ' + marks) if marks else ''}", str(n) if rs[0]["kind"] == "run" else "—"]
    if valid:
        cells.append(_fmt(mean_std([r["valid"][VALID_METRIC] for r in rs]), n))
    cells += [_fmt(means[m], n) for m in HEAD_METRICS]
    if ref is not None:  # the paired difference to the reference row, seed by seed, with its 95 % interval
        cells += [fmt_paired(paired_diff(_by_seed(rs, m), _by_seed(ref, m))) if rs[0]["kind"] == "run" else "—"
                  for m in DELTA_METRICS]
    if rs[0]["kind"] == "run":
        spe = np.mean([r["seconds_per_epoch"] for r in rs])
        ep = np.mean([r["epochs_run"] for r in rs])
        best = np.mean([r["best_epoch"] for r in rs])
        rss = max(r["peak_rss_mb"] for r in rs)
        cells += [f"{spe:.1f}", f"{ep:.0f} ({best:.0f})", f"{rss:.0f}"]
    else:
        cells += ["—", "—", "—"]
    return cells, {m: v[0] for m, v in means.items()}


def run_table(records, table: str, dataset: str, stale: Staleness, ref_label: str | None = None) -> str:
    rows = group_runs(records, table, dataset)
    if not rows:
        return ""
    valid = table.startswith(VALID_TABLES)
    head = ["", "seeds", *(["valid Recall@20"] if valid else []), "Recall@10", "Recall@20", "NDCG@10", "NDCG@20"]
    first = 3 if valid else 2  # the column of the first test metric
    ref = None
    if ref_label is not None and ref_label in rows:
        ref = rows[ref_label]
        head += ["Δ R@20 (paired, 95 % CI)", "Δ N@20 (paired, 95 % CI)"]
    head += ["s/epoch", "epochs (best)", "peak RSS MB"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    best = {m: max(mean_std([r["test"][m] for r in rs])[0] for rs in rows.values()) for m in HEAD_METRICS}
    best_valid = max(mean_std([r["valid"][VALID_METRIC] for r in rs])[0] for rs in rows.values()) if valid else None
    for label, rs in rows.items():
        cells, means = _row(label, rs, stale, ref if label != ref_label else None, valid)
        if ref is not None and label == ref_label:
            cells[first + 4:first + 4] = ["—", "—"]
        if valid and len(rows) > 1 and math.isclose(mean_std([r["valid"][VALID_METRIC] for r in rs])[0], best_valid):
            cells[2] = f"**{cells[2]}**"  # the row the choice on valid picks
        for j, m in enumerate(HEAD_METRICS):  # the best mean of each metric in bold
            if len(rows) > 1 and math.isclose(means[m], best[m]):
                cells[first + j] = f"**{cells[first + j]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _notes(records, table: str, dataset: str) -> list[str]:
    rows = group_runs(records, table, dataset)
    return [f"- **{label}**: {rs[0]['note']}" for label, rs in rows.items() if rs[0].get("note")]


def _seeds(records, table: str, dataset: str) -> str:
    seeds = sorted({r["seed"] for rs in group_runs(records, table, dataset).values() for r in rs if r["seed"] is not None})
    return ", ".join(map(str, seeds)) if seeds else "—"


def study_table(records) -> str:
    studies = [r for r in records if r.get("kind") == "study"]
    if not studies:
        return ""
    lines = ["| model | dataset | trials (complete / pruned) | sampler, pruner | chosen on | best trial | "
             "best valid | its test R@20 / N@20 | confirmed (top K over seeds): chosen trial, mean valid | folder |",
             "|---|---|---:|---|---|---:|---:|---:|---|---|"]
    for s in studies:
        b = s["best"]
        c = s.get("confirmed")
        conf = (f"top {len(c['rows'])} x {c['seeds']} seeds: trial {c['best']['number']}, "
                f"{c['best']['valid_mean']:.4f} ± {c['best']['valid_std']:.4f}" if c else "—")
        lines.append(f"| {s['model']} | {s['dataset']} | {s['trials']} ({s['complete']} / {s['pruned']}) | "
                     f"{s['sampler']}, {s['pruner']} | {s['select_by']} {s['metric']} | {b['number']} | "
                     f"{b['valid'][s['metric']]:.4f} | {b['test']['recall@20']:.4f} / {b['test']['ndcg@20']:.4f} | "
                     f"{conf} | `{s['folder']}` |")
    return "\n".join(lines)


COLD_MODES = ("warm", "cold", "all")


def cold_table(records, dataset: str, stale: Staleness) -> str:
    """Test Recall@20 / NDCG@20 per evaluation mode for the records of table ``cold``."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("table") == "cold" and r["dataset"] == dataset and r.get("modes"):
            rows.setdefault(r["label"], []).append(r)
    if not rows:
        return ""
    head = ["", "seeds"] + [f"{m} {k}" for m in COLD_MODES for k in ("R@20", "N@20")]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for label, rs in rows.items():
        runs = [r for r in rs if r["kind"] == "run"]
        if len({_setting(r) for r in runs}) > 1:
            raise RecordError(f"table 'cold' on {dataset}: row {label!r} mixes settings")
        marks = "".join(sorted({MARKS[m] for m in (stale(r) for r in rs) if m}))
        n = len(rs)
        cells = [label + (f" {marks}" if marks else ""), str(n) if runs else "—"]
        for mode in COLD_MODES:
            for metric in ("recall@20", "ndcg@20"):
                vals = [r["modes"]["test"][mode][metric] for r in rs if mode in r["modes"]["test"]]
                cells.append(_fmt(mean_std(vals), len(vals)) if len(vals) == n else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench_table(records) -> str:
    benches = [r for r in records if r.get("kind") == "bench"]
    if not benches:
        return ""
    lines = ["| benchmark | setting | measured | machine | date |", "|---|---|---|---|---|"]
    for b in benches:
        lines.append(f"| {b['label']} | {b.get('setting', '')} | {b['summary']} | {b.get('machine', '')} | "
                     f"{b['date'][:10]} |")
    return "\n".join(lines)


def choices_table(records) -> str:
    """SIGER's open choices: the spec's value (``--preset spec``), today's default, and each SIGER
    study's best trial and importance for the key (studies chose on valid)."""
    import dataclasses

    from siger.config import build_config
    from siger.models.siger import SIGER, SPEC_PRESET

    cfg = build_config(SIGER.name)  # what a user gets with no flags (model and training defaults)
    default = {**dataclasses.asdict(cfg.model), "learning_rate": cfg.train.learning_rate}
    studies = [r for r in records if r.get("kind") == "study" and r["model"] == "SIGER"]
    keys = list(SPEC_PRESET)
    for st in studies:
        keys += [k for k in st["space"]["params"] if k not in keys]
    head = ["key", "spec (`--preset spec`)", "default now"]
    for st in studies:
        head += [f"best on {st['dataset']} ({st['trials']} trials)"]
        if st.get("chosen"):
            head += [f"chosen on {st['dataset']}: trial {st['chosen']['number']}"]
        head += [f"importance ({st['dataset']})"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]

    def show(v):
        return "—" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))

    for k in keys:
        cells = [f"`{k}`", show(SPEC_PRESET.get(k)), show(default.get(k))]
        for st in studies:
            searched = k in st["space"]["params"]
            best = (st.get("confirmed") or {}).get("best") or st["best"]
            cells += [show(best["params"].get(k)) if searched else "(fixed)"]
            if st.get("chosen"):
                cells += [show(st["chosen"]["params"].get(k)) if searched else "(fixed)"]
            cells += [show(st["importances"].get(k)) if searched and st["importances"] else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _datasets(records) -> list[str]:
    seen: list[str] = []
    for r in records:
        if r.get("kind") in ("run", "mostpop", "content") and r["dataset"] not in seen:
            seen.append(r["dataset"])
    return seen


def _tables(records) -> list[str]:
    seen: list[str] = []
    for r in records:
        if r.get("kind") in ("run", "mostpop") and r.get("table") and r["table"] not in seen:
            seen.append(r["table"])
    return seen


def _title(table: str) -> str:
    """A table's heading: ``ablation_baby`` -> "Ablation baby", ``confirmation_siger`` -> "Confirmation (SIGER)"."""
    if table.startswith("confirmation_"):
        return f"Confirmation ({table[len('confirmation_'):].upper()})"
    return table.replace("_", " ").capitalize()


def render(records: list[dict[str, Any]], stale: Staleness | None = None) -> dict[str, str]:
    """Every rendered block by name: ``results`` (the whole docs/results.md), ``headline``
    (README's table), ``<table>:<dataset>`` tables, ``studies`` and ``benchmarks``."""
    stale = stale or Staleness()
    blocks: dict[str, str] = {}
    for ds in _datasets(records):
        ct = cold_table(records, ds, stale)
        if ct:
            blocks[f"cold:{ds}"] = ct
        for table in _tables(records):
            if table == "cold":
                continue
            ref = ABLATION_REF if table.startswith("ablation") else COMPARISON_REF if table == "comparison" else None
            t = run_table(records, table, ds, stale, ref_label=ref)
            if t:
                blocks[f"{table}:{ds}"] = t
    blocks["studies"] = study_table(records)
    blocks["siger_choices"] = choices_table(records)
    blocks["benchmarks"] = bench_table(records)
    main_job = [r for r in records if r.get("kind") == "bench" and r["label"].startswith("main job")]
    blocks["main_job"] = (f"How long it takes: {main_job[-1]['summary']} ({main_job[-1]['machine']}; "
                          f"measured {main_job[-1]['date'][:10]} by `python -m benchmarks.main_job --record`)."
                          if main_job else "How long it takes: not measured yet (`python -m benchmarks.main_job`).")
    head = ["| dataset | model | seeds | Recall@20 | NDCG@20 |", "|---|---|---:|---:|---:|"]
    for ds in _datasets(records):
        for label, rs in group_runs(records, "comparison", ds).items():
            n = len(rs)
            r20 = _fmt(mean_std([r["test"]["recall@20"] for r in rs]), n)
            n20 = _fmt(mean_std([r["test"]["ndcg@20"] for r in rs]), n)
            head.append(f"| {ds} | {label} | {n if rs[0]['kind'] == 'run' else '—'} | {r20} | {n20} |")
    blocks["headline"] = "\n".join(head) if len(head) > 2 else "No results recorded yet."
    lines = ["# Results", "",
             "Rendered by `siger report` from `results/records.jsonl` "
             f"({len(records)} records); do not edit by hand. Protocol: MMRec (full ranking over all items, "
             "the user's train items masked, test metrics at the best-valid epoch); mean ± sample std over "
             "seeds; s/epoch is training time per epoch on the machine of each record. "
             f"Δ columns: the row minus the reference row ({COMPARISON_REF} in a comparison, {ABLATION_REF} in an "
             "ablation), seed by seed over the seeds both have, mean and 95 % interval (Student's t). "
             "Marks: † the model, training, evaluation or data code changed since the record's commit and no "
             "replay on the current code has matched it since (`siger results verify`); "
             "‡ trained with uncommitted code changes.", ""]
    for ds in _datasets(records):
        lines += [f"## {ds}", ""]
        for table in _tables(records):
            key = f"{table}:{ds}"
            if table == "cold" or key not in blocks:  # the cold block has its own section below
                continue
            lines += [f"### {_title(table)} (seeds {_seeds(records, table, ds)})", "",
                      blocks[key], ""]
            notes = _notes(records, table, ds)
            if notes:
                lines += notes + [""]
            if table == "comparison":
                lines += [f"![{ds} comparison](results/{ds}_comparison.png)", ""]
        if f"cold:{ds}" in blocks:
            lines += ["### Cold-start items (test, by evaluation mode)", "",
                      "warm: the usual protocol on the items trained on; cold: only the held-out (never trained) "
                      "items ranked, for users with one; all: both ranked together. See docs/cold_start.md.", "",
                      blocks[f"cold:{ds}"], ""]
    if blocks["studies"]:
        lines += ["## Hyper-parameter studies", "", "Each study chose on valid only; its test column is "
                  "recorded at the chosen trial's best-valid epoch and was not used to choose.", "",
                  blocks["studies"], ""]
    if blocks["benchmarks"]:
        lines += ["## Benchmarks", "", blocks["benchmarks"], ""]
    blocks["results"] = "\n".join(lines).rstrip() + "\n"
    return blocks


BLOCK = re.compile(r"(<!-- report:([\w:.-]+) -->\n)(.*?)(<!-- /report -->)", re.S)


def fill_blocks(text: str, blocks: dict[str, str], where: str) -> str:
    """``text`` with every ``<!-- report:NAME -->`` block replaced by the rendered ``NAME``."""
    def sub(m: re.Match) -> str:
        name = m.group(2)
        if name not in blocks:
            raise RecordError(f"{where}: report block {name!r} has nothing to render (no such table in the records)")
        return m.group(1) + blocks[name].rstrip() + "\n" + m.group(4)

    return BLOCK.sub(sub, text)


def doc_files(root: Path) -> list[Path]:
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


def report(root: str | Path = ".", records_path: str | Path | None = None, check: bool = False,
           plots: bool = True) -> list[str]:
    """Render docs/results.md and fill the report blocks; with ``check``, write nothing and
    return the files that differ from what the records render to."""
    root = Path(root)
    records = load_records(records_path or root / RECORDS)
    blocks = render(records)
    want: dict[Path, str] = {root / RESULTS_DOC: blocks["results"]}
    for f in doc_files(root):
        if f.exists() and f != root / RESULTS_DOC:
            text = f.read_text()
            new = fill_blocks(text, blocks, str(f))
            if new != text:
                want[f] = new
    differ = [str(f) for f, text in want.items() if not f.exists() or f.read_text() != text]
    if check:
        return differ
    for f, text in want.items():
        atomic_write(f, lambda p, t=text: Path(p).write_text(t))
    if plots:
        for ds in _datasets(records):
            plot_comparison(records, ds, root / "docs" / "results" / f"{ds}_comparison.png")
    return differ


def plot_comparison(records, dataset: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = group_runs(records, "comparison", dataset)
    if not rows:
        return
    names = list(rows)
    x = np.arange(len(HEAD_METRICS))
    w = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(HEAD_METRICS), 4))
    for n, name in enumerate(names):
        ms = [mean_std([r["test"][m] for r in rows[name]]) for m in HEAD_METRICS]
        ax.bar(x + n * w - 0.4 + w / 2, [a for a, _ in ms], w, yerr=[b for _, b in ms], capsize=3, label=name)
    ax.set_xticks(x, [m.replace("recall", "Recall").replace("ndcg", "NDCG") for m in HEAD_METRICS])
    ax.set_title(f"{dataset}: test metrics at the best-valid epoch (mean ± std over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)


__all__ = ["RecordError", "add_runs", "add_record", "bench_record", "content_record", "cold_table", "load_records", "mostpop_record", "study_record", "render",
           "report", "fill_blocks", "Staleness"]
