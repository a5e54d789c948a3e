"""`siger compare`: train several models (in sequence, resumable) over seeds on one dataset and
write ``comparison.md`` (mean ± std of Recall/NDCG@10/20, seconds per epoch, peak memory) and
``comparison.png`` (bars with error bars)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from siger.ablate import train_or_load
from siger.config import Config, apply_overrides, build_config
from siger.report import SUMMARY_METRICS, atomic_write, summarize, summary_table


def run_compare(models: list[str], dataset: str, overrides: dict[str, Any], out: Path, seeds: int = 1,
                yaml_path: str | None = None, log=print) -> str:
    cfgs: dict[str, Config] = {m: build_config(m, dataset, overrides, yaml_path) for m in models}  # fail early
    rows: dict[str, dict[str, Any]] = {}
    for name, cfg in cfgs.items():
        results = []
        for s in range(seeds):
            c = copy.deepcopy(cfg)
            apply_overrides(c, {"seed": cfg.train.seed + s})
            log(f"== {cfg.train.model} seed {c.train.seed}")
            results.append(train_or_load(c, out / cfg.train.model / f"seed{c.train.seed}", log))
        rows[cfg.train.model] = summarize(results)
        _write(rows, cfgs, dataset, out, seeds)  # partial tables survive an interruption
    return _write(rows, cfgs, dataset, out, seeds)


def _write(rows, cfgs, dataset: str, out: Path, seeds: int) -> str:
    seed0 = next(iter(cfgs.values())).train.seed
    text = (f"# Model comparison on {dataset}\n\nTest metrics at the best-valid epoch (MMRec protocol, full "
            f"ranking), seeds {seed0}..{seed0 + seeds - 1}" + (", mean ± std" if seeds > 1 else "")
            + f"; each model at its defaults (configs: `{out}/<model>/seed*/config.yaml`).\n\n"
            + summary_table(rows, label="model") + "\n")
    atomic_write(out / "comparison.md", lambda p: Path(p).write_text(text))
    plot_comparison(rows, out / "comparison.png", f"{dataset}: test metrics")
    return text


def plot_comparison(rows: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(rows)
    x = np.arange(len(SUMMARY_METRICS))
    w = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(SUMMARY_METRICS), 4))
    for n, name in enumerate(names):
        means = [rows[name][m][0] for m in SUMMARY_METRICS]
        stds = [rows[name][m][1] for m in SUMMARY_METRICS]
        ax.bar(x + n * w - 0.4 + w / 2, means, w, yerr=stds, capsize=3, label=name)
    ax.set_xticks(x, [m.replace("recall", "Recall").replace("ndcg", "NDCG") for m in SUMMARY_METRICS])
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()

    def save(p: str) -> None:
        fig.savefig(p, format="png", dpi=110)

    atomic_write(path, save)
    plt.close(fig)
