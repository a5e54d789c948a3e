"""Summaries of finished runs: mean ± std over seeds, Markdown tables, grouping run folders."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from siger.config import PLACE_KEYS
from siger.experiments.stats import mean_std

SUMMARY_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std (over seeds) of the test metrics at the best-valid epoch, plus cost."""
    row: dict[str, Any] = {"seeds": len(results)}
    for m in SUMMARY_METRICS:
        if m not in results[0]["test"]:
            raise ValueError(f"summaries need {m}: run with topk including 10 and 20")
        vals = np.array([r["test"][m] for r in results])
        row[m] = mean_std(vals)
    row["seconds_per_epoch"] = float(np.mean([r["seconds_per_epoch"] for r in results]))
    row["epochs"] = float(np.mean([r["epochs_run"] for r in results]))
    row["best_epoch"] = float(np.mean([r["best_epoch"] for r in results]))
    rss = [r.get("peak_rss_mb") for r in results if r.get("peak_rss_mb") is not None]
    row["peak_rss_mb"] = float(max(rss)) if rss else None
    return row


def seeds_phrase(first: int, seeds: int) -> str:
    """'seed 999' for one seed, 'seeds 999..1001, mean ± std' for several."""
    return f"seed {first}" if seeds == 1 else f"seeds {first}..{first + seeds - 1}, mean ± std"


def fmt(v: tuple[float, float], seeds: int) -> str:
    return f"{v[0]:.4f} ± {v[1]:.4f}" if seeds > 1 else f"{v[0]:.4f}"


def summary_table(rows: dict[str, dict[str, Any]], ref: str | None = None, label: str = "run") -> str:
    """Markdown: one row per label; with ``ref``, a column of the Recall@20 change vs that row."""
    head = [label, *SUMMARY_METRICS]
    if ref:
        head.append("Δ R@20 vs full")
    head += ["s/epoch", "epochs (best)", "peak RSS MB", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for label, r in rows.items():
        cells = [label] + [fmt(r[m], r["seeds"]) for m in SUMMARY_METRICS]
        if ref:
            d = r["recall@20"][0] - rows[ref]["recall@20"][0]
            cells.append(f"{d:+.4f} ({100 * d / rows[ref]['recall@20'][0]:+.1f}%)")
        rss = r.get("peak_rss_mb")
        cells += [f"{r['seconds_per_epoch']:.1f}", f"{r['epochs']:.0f} ({r['best_epoch']:.0f})",
                  f"{rss:.0f}" if rss is not None else "-", str(r["seeds"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# config keys that do not change what a run measures (where it ran, how it logged, its seed)
INCIDENTAL_KEYS = frozenset(f"train.{k}" for k in ("seed", *PLACE_KEYS, "num_threads", "progress", "device"))


def _run_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.yaml flattened to ``section.key`` (empty when the run has none)."""
    path = run_dir / "config.yaml"
    if not path.exists():
        return {}
    import yaml

    doc = yaml.safe_load(path.read_text()) or {}
    return {f"{sec}.{k}": json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v
            for sec, body in doc.items() if isinstance(body, dict) for k, v in body.items()}


def collect_runs(paths: list[str | Path]) -> dict[str, list[dict[str, Any]]]:
    """Every finished run (a metrics.json) under ``paths``, grouped as 'model on dataset'.

    Runs of one model and dataset whose configs differ in more than the seed (or where and how
    they ran: ``INCIDENTAL_KEYS``) are split into one group per setting, labelled with the
    differing keys, e.g. 'SIGER on ml100k (lambda_a=0.001)', so a mean over seeds never mixes
    settings. Only keys recorded by every run of the group are compared.
    """
    found: list[tuple[dict[str, Any], dict[str, Any]]] = []
    seen: set[Path] = set()
    for p in paths:
        p = Path(p)
        if p.name == "metrics.json":
            files = [p]
        else:  # follows symlinked run folders (a comparison may link runs made elsewhere)
            files = sorted(Path(root) / "metrics.json" for root, _, names in os.walk(p, followlinks=True)
                           if "metrics.json" in names)
        for f in files:
            if f.resolve() in seen:  # the same run reached twice counts once
                continue
            seen.add(f.resolve())
            m = json.loads(f.read_text())
            if m.get("test") is None:
                continue
            found.append((m, _run_config(f.parent)))
    by_base: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for m, cfg in found:
        by_base.setdefault(f"{m['model']} on {m['dataset']}", []).append((m, cfg))
    groups: dict[str, list[dict[str, Any]]] = {}
    for base, runs in by_base.items():
        # keys every run records (a key added to the schema later is absent from older runs,
        # which ran with its default behaviour, so it does not split them)
        keys = sorted(set.intersection(*(set(cfg) for _, cfg in runs)) - INCIDENTAL_KEYS)
        varying = [k for k in keys if len({repr(cfg.get(k)) for _, cfg in runs}) > 1]
        for m, cfg in runs:
            diff = ", ".join(f"{k.split('.', 1)[1]}={cfg.get(k)}" for k in varying)
            groups.setdefault(f"{base} ({diff})" if diff else base, []).append(m)
    return groups
