"""Every result table of the docs, rendered from the records alone.

``siger report`` renders ``docs/results.md`` and the comparison PNGs, and rewrites every
``<!-- report:NAME -->`` ... ``<!-- /report -->`` block of README.md and docs/*.md with the
rendered block ``NAME``; ``siger report --check`` says whether the committed files are what the
records render to (a CI test runs it). A record the code has moved past is marked in every table
(:mod:`siger.experiments.staleness`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from siger.artifacts import atomic_write, plot_bars
from siger.experiments.records import RECORDS, RecordError, load_records, setting_key
from siger.experiments.staleness import MARKS, Staleness
from siger.experiments.stats import fmt_paired, mean_std, paired_diff
from siger.experiments.summary import SUMMARY_METRICS as HEAD_METRICS

RESULTS_DOC = Path("docs/results.md")


ABLATION_REF = "SIGER (full)"  # the row an ablation table's deltas are taken against


COMPARISON_REF = "SIGER (defaults)"  # the row a comparison table's deltas are taken against


BACKBONE_REF = "MGCN (MMRec defaults)"  # SIGER's backbone at MMRec's values: the headline's second column


# the depth table: SIGER and its backbone at 2 and 4 behaviour layers, deltas against the backbone at 4
DEPTH_REF = "MGCN (MMRec defaults, 4 behaviour layers)"


def ref_label(table: str) -> str | None:
    """The row a table's paired deltas are taken against (None: a table without deltas)."""
    if table.startswith("ablation"):
        return ABLATION_REF
    return {"comparison": COMPARISON_REF, "depth": DEPTH_REF}.get(table)


DELTA_METRICS = ("recall@20", "ndcg@20")  # the paired differences a table shows




# -- rendering -------------------------------------------------------------------------------
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
        if len({setting_key(r) for r in runs}) > 1:
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
        if s.get("datasets"):  # multi-dataset: the aggregate relative score, and the best trial's worst test one
            worst_test = min(v["rel_test"] for v in b["per_dataset"].values()) if b.get("per_dataset") else float("nan")
            lines.append(f"| {s['model']} | {', '.join(s['datasets'])} | {s['trials']} ({s['complete']} / "
                         f"{s['pruned']}) | {s['sampler']}, {s['pruner']} | {s['select_by']} {s['metric']} "
                         f"({s['aggregate']} relative to {s['reference']}) | {b['number']} | {b['value']:.3f} | "
                         f"worst {worst_test:.3f} (relative) | "
                         + (f"top {len(c['rows'])} x {c['seeds']} seeds: trial {c['best']['number']}, "
                            f"{s['aggregate']} of the mean relative scores {c['best']['value']:.3f}"
                            + (f" (tied within the seeds' noise with the best worst case, trial {c['best_by_value']}; "
                               "the better mean over the datasets)"
                               if c.get("best_by_value", c["best"]["number"]) != c["best"]["number"] else "")
                            if c else "—")
                         + f" | `{s['folder']}` |")
            continue
        conf = (f"top {len(c['rows'])} x {c['seeds']} seeds: trial {c['best']['number']}, "
                f"{c['best']['valid_mean']:.4f} ± {c['best']['valid_std']:.4f}" if c else "—")
        lines.append(f"| {s['model']} | {s['dataset']} | {s['trials']} ({s['complete']} / {s['pruned']}) | "
                     f"{s['sampler']}, {s['pruner']} | {s['select_by']} {s['metric']} | {b['number']} | "
                     f"{b['valid'][s['metric']]:.4f} | {b['test']['recall@20']:.4f} / {b['test']['ndcg@20']:.4f} | "
                     f"{conf} | `{s['folder']}` |")
    return "\n".join(lines)


def infusion_table(records) -> str:
    """The infusion weights SIGER's default runs measured (``model_summary``: beta_m with the
    held-out recall of the semantic and co-occurrence graphs), one row per dataset and modality."""
    lines = ["| dataset | modality | q_s (semantic graph) | q_c (co-occurrence) | beta |", "|---|---|---:|---:|---:|"]
    seen = set()
    for r in records:
        hold = (r.get("model_summary") or {}).get("holdout")
        if r.get("kind") != "run" or r.get("table") != "comparison" or not hold or r["dataset"] in seen:
            continue
        seen.add(r["dataset"])
        for m, v in hold.items():
            lines.append(f"| {r['dataset']} | {m} | {v['q_s']:.4f} | {v['q_c']:.4f} | {v['beta']:.2f} |")
    return "\n".join(lines) if seen else ""


def lodo_table(study: dict[str, Any]) -> str:
    """A multi-dataset study's leave-one-dataset-out choice (from its record)."""
    lines = ["| left out | chosen trial | its score on the others | valid on the left-out | test on the left-out |",
             "|---|---:|---:|---:|---:|"]
    for x in study.get("lodo") or []:
        lines.append(f"| {x['left_out']} | {x['trial']} | {x['chosen_on']:.3f} | {x['rel']:.3f} | {x['rel_test']:.3f} |")
    return "\n".join(lines)


COLD_MODES = ("warm", "cold", "all", "cold_users")  # the evaluation modes, in the order tables show them
COLD_SECTIONS = (  # tables of runs evaluated by mode, and their sections in docs/results.md: table, title, what the modes mean
    ("cold", "Cold-start items",
     "warm: the usual protocol on the items trained on; cold: only the held-out (never trained) items ranked, "
     "for users with one; all: both ranked together. See docs/cold_start.md."),
    ("cold_users", "Cold-start users",
     "warm: the usual protocol (the held-out users have no train item, so it skips them); cold_users: the users "
     "held out of training, each folded in from its history (no retraining) and ranked over every item. "
     "See docs/serving.md."),
)
COLD_TABLES = tuple(table for table, _, _ in COLD_SECTIONS)  # ("cold", "cold_users")


def cold_table(records, dataset: str, stale: Staleness, table: str = "cold") -> str:
    """Test Recall@20 / NDCG@20 per evaluation mode for the records of ``table`` (the modes its
    records have)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("table") == table and r["dataset"] == dataset and r.get("modes"):
            rows.setdefault(r["label"], []).append(r)
    if not rows:
        return ""
    present = {m for rs in rows.values() for r in rs for m in r["modes"]["test"]}
    modes = [m for m in COLD_MODES if m in present]
    head = ["", "seeds"] + [f"{m} {k}" for m in modes for k in ("R@20", "N@20")]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for label, rs in rows.items():
        runs = [r for r in rs if r["kind"] == "run"]
        if len({setting_key(r) for r in runs}) > 1:
            raise RecordError(f"table {table!r} on {dataset}: row {label!r} mixes settings")
        marks = "".join(sorted({MARKS[m] for m in (stale(r) for r in rs) if m}))
        n = len(rs)
        cells = [label + (f" {marks}" if marks else ""), str(n) if runs else "—"]
        for mode in modes:
            for metric in ("recall@20", "ndcg@20"):
                vals = [r["modes"]["test"][mode][metric] for r in rs if mode in r["modes"]["test"]]
                cells.append(_fmt(mean_std(vals), len(vals)) if len(vals) == n else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench_table(records, prefix: str = "", contains: str = "") -> str:
    """The benchmark records (those whose label starts with ``prefix`` and holds ``contains``) as
    one table."""
    benches = [r for r in records if r.get("kind") == "bench" and r["label"].startswith(prefix)
               and contains in r["label"]]
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


def robustness_runs(records) -> dict[tuple[str, str], dict[str, dict[float, list[dict[str, Any]]]]]:
    """The robustness benchmark's run records: (base dataset, noise kind) -> setting -> level -> runs."""
    out: dict[tuple[str, str], dict[str, dict[float, list[dict[str, Any]]]]] = {}
    for r in records:
        if r.get("kind") == "run" and r.get("table") == "robustness" and r.get("noise"):
            nz = r["noise"]
            out.setdefault((nz["base"], nz["kind"]), {}).setdefault(r["label"], {}).setdefault(
                float(nz["level"]), []).append(r)
    return out


ROBUSTNESS_REF = "SIGER (full)"


def robustness_table(by_setting: dict[str, dict[float, list[dict[str, Any]]]], kind: str) -> str:
    """Test Recall@20 per noise level (rows) and setting (columns, mean ± std over seeds), and each
    setting's paired difference to SIGER (full) at that level with its 95 % interval."""
    settings = list(by_setting)
    levels = sorted({lv for s in by_setting.values() for lv in s}, reverse=(kind == "features"))
    others = [s for s in settings if s != ROBUSTNESS_REF]
    head = ["noise" if kind == "graph" else "SNR (dB)", *settings, *(f"Δ {s}" for s in others)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for lv in levels:
        cells = [f"{lv:g}"]
        for s in settings:
            rs = by_setting[s].get(lv, [])
            cells.append(_fmt(mean_std([r["test"]["recall@20"] for r in rs]), len(rs)) if rs else "—")
        ref = by_setting.get(ROBUSTNESS_REF, {}).get(lv, [])
        for s in others:
            rs = by_setting[s].get(lv, [])
            cells.append(fmt_paired(paired_diff(_by_seed(rs, "recall@20"), _by_seed(ref, "recall@20")))
                         if rs and ref else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_robustness(by_setting: dict[str, dict[float, list[dict[str, Any]]]], base: str, kind: str,
                    path: Path) -> None:
    """Test Recall@20 against the noise level, one line per setting (mean ± std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for s, by_level in by_setting.items():
        lv = sorted(by_level)
        ms = [mean_std([r["test"]["recall@20"] for r in by_level[x]]) for x in lv]
        xs = [x if math.isfinite(x) else max((v for v in lv if math.isfinite(v)), default=0) + 10 for x in lv]
        ax.errorbar(xs, [m for m, _ in ms], yerr=[e for _, e in ms], marker="o", capsize=3, label=s)
    ax.set_xlabel("share of kNN neighbours replaced" if kind == "graph" else "feature SNR (dB; right: clean)")
    ax.set_ylabel("test Recall@20")
    ax.set_title(f"{base}: robustness to {'graph' if kind == 'graph' else 'feature'} noise")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)


def headline_table(records, stale: Staleness) -> str:
    """README's table: per dataset with a comparison row for SIGER at its defaults, test
    Recall@20 of SIGER (defaults), of MGCN at MMRec's values and of the strongest other run row
    (highest mean over at least 3 seeds, SIGER's own rows and the MGCN reference left out: a pick
    on test that can only favour the competitor), each paired difference to SIGER with its 95 %
    interval, and MostPop for scale."""
    head = ["| dataset | SIGER (defaults) | MGCN (MMRec defaults) | SIGER − MGCN (paired, 95 % CI) "
            "| strongest other row | SIGER − it (paired, 95 % CI) | MostPop |",
            "|---|---:|---:|---:|---|---:|---:|"]

    def cell(rs: list[dict[str, Any]]) -> str:
        marks = "".join(sorted({MARKS[m] for m in (stale(r) for r in rs) if m}))
        n = len(rs)
        seeds = f" ({n} seeds)" if rs[0]["kind"] == "run" else ""
        return _fmt(mean_std([r["test"]["recall@20"] for r in rs]), n) + seeds + (f" {marks}" if marks else "")

    def diff(rs: list[dict[str, Any]], ref: list[dict[str, Any]]) -> str:
        return fmt_paired(paired_diff(_by_seed(ref, "recall@20"), _by_seed(rs, "recall@20")))

    for ds in _datasets(records):
        rows = group_runs(records, "comparison", ds)
        ours = rows.get(COMPARISON_REF)
        if not ours:
            continue
        mgcn = rows.get(BACKBONE_REF)
        others = {label: rs for label, rs in rows.items()
                  if rs[0]["kind"] == "run" and len(rs) >= 3 and not label.startswith("SIGER")
                  and label != BACKBONE_REF}
        best = max(others, key=lambda lb: mean_std([r["test"]["recall@20"] for r in others[lb]])[0], default=None)
        pop = next((rs for rs in rows.values() if rs[0]["kind"] == "mostpop"), None)
        head.append(f"| {ds} | {cell(ours)} | {cell(mgcn) if mgcn else '—'} | {diff(mgcn, ours) if mgcn else '—'} "
                    f"| {best + ': ' + cell(others[best]) if best else '—'} "
                    f"| {diff(others[best], ours) if best else '—'} | {cell(pop) if pop else '—'} |")
    return "\n".join(head) if len(head) > 2 else "No results recorded yet."


def _datasets(records) -> list[str]:
    seen: list[str] = []
    for r in records:
        if r.get("table") == "robustness":  # rendered by noise level, not as a dataset of its own
            continue
        if r.get("kind") in ("run", "mostpop", "content") and r["dataset"] not in seen:
            seen.append(r["dataset"])
    return seen


def _tables(records) -> list[str]:
    seen: list[str] = []
    for r in records:
        if r.get("table") == "robustness":
            continue
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
        for ctable in COLD_TABLES:
            ct = cold_table(records, ds, stale, ctable)
            if ct:
                blocks[f"{ctable}:{ds}"] = ct
        for table in _tables(records):
            if table in COLD_TABLES:
                continue
            t = run_table(records, table, ds, stale, ref_label=ref_label(table))
            if t:
                blocks[f"{table}:{ds}"] = t
    blocks["studies"] = study_table(records)
    if infusion_table(records):
        blocks["infusion"] = infusion_table(records)
    from siger.experiments.tune.report import confirm_multi_table

    for st in records:
        if st.get("kind") == "study" and st.get("lodo"):
            blocks[f"lodo:{st['model'].lower()}"] = lodo_table(st)
        if st.get("kind") == "study" and st.get("datasets") and (st.get("confirmed") or {}).get("rows"):
            blocks[f"confirm:{st['model'].lower()}"] = "\n".join(confirm_multi_table(st["confirmed"]))
    blocks["siger_choices"] = choices_table(records)
    blocks["benchmarks"] = bench_table(records)
    for name, prefix in (("bench_serving", "serving load"), ("bench_catalogue", "top-")):
        if bench_table(records, prefix):
            blocks[name] = bench_table(records, prefix)
    if bench_table(records, contains="beside its authors' code"):
        blocks["bench_authors"] = bench_table(records, contains="beside its authors' code")
    for (base, kind), by_setting in robustness_runs(records).items():
        blocks[f"robustness:{base}:{kind}"] = (robustness_table(by_setting, kind) + "\n\n"
                                               f"![robustness on {base}](results/robustness_{base}_{kind}.png)")
    main_job = [r for r in records if r.get("kind") == "bench" and r["label"].startswith("main job")]
    blocks["main_job"] = (f"How long it takes: {main_job[-1]['summary']} ({main_job[-1]['machine']}; "
                          f"measured {main_job[-1]['date'][:10]} by `python -m benchmarks.main_job --record`)."
                          if main_job else "How long it takes: not measured yet (`python -m benchmarks.main_job`).")
    blocks["headline"] = headline_table(records, stale)
    lines = ["# Results", "",
             "Rendered by `siger report` from `results/records.jsonl` "
             f"({len(records)} records); do not edit by hand. Protocol: MMRec (full ranking over all items, "
             "the user's train items masked, test metrics at the best-valid epoch); mean ± sample std over "
             "seeds; s/epoch is training time per epoch on the machine of each record. "
             f"Δ columns: the row minus the reference row ({COMPARISON_REF} in a comparison, {DEPTH_REF} in the "
             f"depth table, {ABLATION_REF} in an "
             "ablation), seed by seed over the seeds both have, mean and 95 % interval (Student's t). "
             "Marks: † the model, training, evaluation or data code changed since the record's commit and no "
             "replay on the current code has matched it since (`siger results verify`); "
             "‡ trained with uncommitted code changes.", ""]
    for ds in _datasets(records):
        lines += [f"## {ds}", ""]
        for table in _tables(records):
            key = f"{table}:{ds}"
            if table in COLD_TABLES or key not in blocks:  # the cold blocks have their own sections below
                continue
            lines += [f"### {_title(table)} (seeds {_seeds(records, table, ds)})", "",
                      blocks[key], ""]
            notes = _notes(records, table, ds)
            if notes:
                lines += notes + [""]
            if table == "comparison":
                lines += [f"![{ds} comparison](results/{ds}_comparison.png)", ""]
        for table, title, intro in COLD_SECTIONS:
            if f"{table}:{ds}" in blocks:
                lines += [f"### {title} (test, by evaluation mode)", "", intro, "", blocks[f"{table}:{ds}"], ""]
                notes = _notes(records, table, ds)
                if notes:
                    lines += notes + [""]
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
        for (base, kind), by_setting in robustness_runs(records).items():
            plot_robustness(by_setting, base, kind, root / "docs" / "results" / f"robustness_{base}_{kind}.png")
    return differ


def plot_comparison(records, dataset: str, path: Path) -> None:
    """The comparison table of ``dataset`` as bars (mean ± std over seeds per metric)."""
    rows = group_runs(records, "comparison", dataset)
    if rows:
        plot_bars({name: {m: mean_std([r["test"][m] for r in rs]) for m in HEAD_METRICS} for name, rs in rows.items()},
                  HEAD_METRICS, path, f"{dataset}: test metrics at the best-valid epoch (mean ± std over seeds)")
