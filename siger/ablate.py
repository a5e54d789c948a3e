"""`siger ablate`: train every ablation of SIGER (config overrides in ``siger.models.siger.ABLATIONS``)
over one or more seeds and write one Markdown table.

Each variant/seed trains into its own run folder; a finished run (metrics.json present) is
reused and an unfinished one resumes from its checkpoint, so a killed ablation picks up where it
stopped.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from siger.config import Config, apply_overrides
from siger.models.siger import ABLATIONS
from siger.report import atomic_write

SUMMARY_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def train_or_load(cfg: Config, out: Path, log=print) -> dict[str, Any]:
    """metrics.json of ``out`` if the run finished, else train (resuming if possible)."""
    from siger.train.trainer import Trainer, load_data

    done = out / "metrics.json"
    if done.exists():
        return json.loads(done.read_text())
    trainer = Trainer(cfg, load_data(cfg), out, log=log)
    return trainer.fit(resume=True)


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std (over seeds) of the test metrics at the best-valid epoch, plus cost."""
    row: dict[str, Any] = {"seeds": len(results)}
    for m in SUMMARY_METRICS:
        if m not in results[0]["test"]:
            raise ValueError(f"summaries need {m}: run with topk including 10 and 20")
        vals = np.array([r["test"][m] for r in results])
        row[m] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)
    row["seconds_per_epoch"] = float(np.mean([r["seconds_per_epoch"] for r in results]))
    row["epochs"] = float(np.mean([r["epochs_run"] for r in results]))
    row["best_epoch"] = float(np.mean([r["best_epoch"] for r in results]))
    return row


def fmt(v: tuple[float, float], seeds: int) -> str:
    return f"{v[0]:.4f} ± {v[1]:.4f}" if seeds > 1 else f"{v[0]:.4f}"


def summary_table(rows: dict[str, dict[str, Any]], ref: str | None = None) -> str:
    """Markdown: one row per label; with ``ref``, a column of the Recall@20 change vs that row."""
    head = ["variant", *SUMMARY_METRICS]
    if ref:
        head.append("Δ R@20 vs full")
    head += ["s/epoch", "epochs (best)", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for label, r in rows.items():
        cells = [label] + [fmt(r[m], r["seeds"]) for m in SUMMARY_METRICS]
        if ref:
            d = r["recall@20"][0] - rows[ref]["recall@20"][0]
            cells.append(f"{d:+.4f} ({100 * d / rows[ref]['recall@20'][0]:+.1f}%)")
        cells += [f"{r['seconds_per_epoch']:.1f}", f"{r['epochs']:.0f} ({r['best_epoch']:.0f})", str(r["seeds"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_ablation(cfg: Config, out: Path, seeds: int = 1, variants: list[str] | None = None, log=print) -> str:
    """Train each ablation variant for ``seeds`` seeds; write and return ``out/ablation.md``."""
    if cfg.train.model.lower() != "siger":
        raise ValueError(f"ablate runs SIGER's ablations; got --model {cfg.train.model}")
    rows: dict[str, dict[str, Any]] = {}
    first = next(iter(ABLATIONS))
    for name in variants or list(ABLATIONS):
        results = []
        for s in range(seeds):
            c = copy.deepcopy(cfg)
            apply_overrides(c, dict(ABLATIONS[name]))
            c.train.seed = cfg.train.seed + s
            log(f"== {name}  seed {c.train.seed}")
            results.append(train_or_load(c, out / slug(name) / f"seed{c.train.seed}", log))
        rows[name] = summarize(results)
    t = cfg.train
    table = (f"# SIGER ablations on {t.dataset}\n\nTest metrics at the best-valid epoch (MMRec protocol, "
             f"full ranking), seeds {t.seed}..{t.seed + seeds - 1}" + (", mean ± std" if seeds > 1 else "")
             + f". Base config: `{out}/*/seed*/config.yaml`.\n\n"
             + summary_table(rows, ref=first if first in rows else None) + "\n")
    atomic_write(out / "ablation.md", lambda p: Path(p).write_text(table))
    return table
