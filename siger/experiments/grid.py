"""A grid of runs: ``siger train`` with list values (``--knn_k 5,10 --beta 0.3,0.5``).

Every combination (:func:`siger.config.expand_grid`) trains into ``<out>/<key>=<value>,...``
(finished runs are reused, unfinished ones resume), and the winner is the best valid metric
(``select_by="test"``: MMRec's choice by test, labelled as having seen the test set). Writes
``grid.md`` (every combination, best first), ``grid.json`` and ``best_config.yaml`` (the winner's
resolved config: ``siger train --config`` / ``siger compare --model-config`` take it).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from siger.artifacts import atomic_write, write_json
from siger.config import Config, expand_grid
from siger.experiments.runs import train_or_load


def _folder(combo: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in combo.items())


def run_grid(configs: list[tuple[dict[str, str], Config]], out: Path, select_by: str = "valid",
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train each (combination, config) into ``out``; write the reports; return the rows and the best."""
    rows = []
    for combo, cfg in configs:
        log(f"== grid {_folder(combo)}")
        res = train_or_load(cfg, out / _folder(combo), log=log)
        rows.append({"params": combo, "folder": _folder(combo), "valid": res["valid"], "test": res["test"],
                     "best_epoch": res["best_epoch"], "epochs_run": res["epochs_run"],
                     "seconds_per_epoch": res["seconds_per_epoch"]})
    metric = configs[0][1].train.valid_metric
    rows.sort(key=lambda r: -(r[select_by] or {}).get(metric, -1.0))
    best = rows[0]
    shutil.copyfile(out / best["folder"] / "config.yaml", out / "best_config.yaml")
    keys = list(configs[0][0])
    lines = [f"# Grid: {configs[0][1].train.model} on {configs[0][1].train.dataset}", "",
             (f"{len(rows)} combinations, chosen on **valid {metric}** (test recorded, not used to choose)."
              if select_by == "valid" else
              f"{len(rows)} combinations, chosen on **test {metric}** (MMRec's behaviour): **this choice has seen "
              "the test set**.") + f" Best: `{best['folder']}` (`best_config.yaml`).", "",
             "| " + " | ".join(keys) + f" | valid {metric} | test {metric} | test ndcg@20 | best epoch (run) | s/epoch |",
             "|" + "---|" * len(keys) + "---:|---:|---:|---:|---:|"]
    for r in rows:
        mark = "**" if r is best else ""
        lines.append("| " + " | ".join(r["params"][k] for k in keys)
                     + f" | {mark}{r['valid'][metric]:.4f}{mark} | {r['test'][metric]:.4f} | {r['test']['ndcg@20']:.4f}"
                     f" | {r['best_epoch']} ({r['epochs_run']}) | {r['seconds_per_epoch']:.2f} |")
    text = "\n".join(lines) + "\n"
    atomic_write(out / "grid.md", lambda p: Path(p).write_text(text))
    write_json(out / "grid.json", {"metric": metric, "select_by": select_by, "rows": rows, "best": best})
    log(text)
    return {"rows": rows, "best": best}


def grid_configs(grid: dict[str, list[str]], build: Callable[[dict[str, str]], Config]) -> list[tuple[dict, Config]]:
    """Each combination of ``grid`` with its config (``build``: combination -> resolved config);
    every config is built before any run starts, so a bad value fails at once."""
    return [(combo, build(combo)) for combo in expand_grid(grid)]
