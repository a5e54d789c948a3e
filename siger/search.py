"""Hyper-parameter grid search: list values for scalar keys (``--knn_k 5,10,20`` on the command
line, or a YAML list) form a grid; every combination trains into its own run folder (finished
ones are reused, unfinished ones resume), and the winner is chosen on *valid* Recall@20 (the
trainer's ``valid_metric``). ``select_by='test'`` reproduces MMRec's choice by test metric and is
labelled as such. Writes ``search.md``, ``search.json`` and ``best_config.yaml`` in the output
folder.
"""

from __future__ import annotations

import itertools
import shutil
import typing
from pathlib import Path
from typing import Any

from siger.config import ConfigError, _field_types, _strip_optional, build_config
from siger.report import atomic_write, write_json


def split_grid(model: str, dataset: str | None, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Separate grid keys (several values for a scalar field) from fixed overrides."""
    base = build_config(model, dataset)
    types = {**_field_types(base.train), **_field_types(base.model)}
    fixed: dict[str, Any] = {}
    grid: dict[str, list[str]] = {}
    for key, raw in overrides.items():
        k = key.replace("-", "_")
        tp, _ = _strip_optional(types.get(k, str))
        scalar = typing.get_origin(tp) is not list
        if scalar and k in types and isinstance(raw, (list, tuple)):
            grid[k] = [str(v) for v in raw]
        elif scalar and k in types and isinstance(raw, str) and "," in raw:
            grid[k] = [v.strip() for v in raw.split(",") if v.strip()]
        else:
            fixed[key] = raw
    for k, vals in grid.items():
        if len(vals) != len(set(vals)):
            raise ConfigError(f"--{k}: repeated values in the grid {vals}")
    return fixed, grid


def _slug(combo: dict[str, str]) -> str:
    return "_".join(f"{k}={v}" for k, v in combo.items()).replace("/", "-")


def run_search(model: str, dataset: str | None, fixed: dict[str, Any], grid: dict[str, list[str]], out: Path,
               select_by: str = "valid", yaml_path: str | None = None, log=print) -> dict[str, Any]:
    """Train every combination; return ``{'best': combo, 'rows': [...]}`` and write the reports."""
    from siger.ablate import train_or_load

    if select_by not in ("valid", "test"):
        raise ConfigError(f"--select-by must be valid or test, got {select_by!r}")
    keys = list(grid)
    combos = [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]
    # check every combination is a valid config before training anything
    cfgs = [build_config(model, dataset, {**fixed, **c}, yaml_path) for c in combos]
    metric = cfgs[0].train.valid_metric
    rows = []
    for n, (combo, cfg) in enumerate(zip(combos, cfgs), start=1):
        run = out / "grid" / _slug(combo)
        log(f"== [{n}/{len(combos)}] {combo}")
        res = train_or_load(cfg, run, log)
        rows.append({"params": combo, "run": str(run), "valid": res["valid"], "test": res["test"],
                     "best_epoch": res["best_epoch"], "seconds_per_epoch": res["seconds_per_epoch"]})
    best = max(rows, key=lambda r: r[select_by][metric])
    shutil.copyfile(Path(best["run"]) / "config.yaml", out / "best_config.yaml")
    write_json(out / "search.json", {"select_by": select_by, "metric": metric, "grid": grid, "best": best, "rows": rows})
    head = keys + [f"valid {metric}", "test recall@20", "test ndcg@20", "best epoch", "s/epoch", ""]
    lines = [
        f"# Grid search: {cfgs[0].train.model} on {cfgs[0].train.dataset}",
        "",
        f"Selected by **{select_by}** {metric}"
        + (" (MMRec's behaviour: the choice has seen the test set)" if select_by == "test" else "")
        + f". Winning config: `{out / 'best_config.yaml'}`.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(keys) + "---:|" * 5 + "---|",
    ]
    for r in rows:
        mark = "**best**" if r is best else ""
        lines.append("| " + " | ".join([r["params"][k] for k in keys]
                                        + [f"{r['valid'][metric]:.4f}", f"{r['test']['recall@20']:.4f}",
                                           f"{r['test']['ndcg@20']:.4f}", str(r["best_epoch"]),
                                           f"{r['seconds_per_epoch']:.1f}", mark]) + " |")
    text = "\n".join(lines) + "\n"
    atomic_write(out / "search.md", lambda p: Path(p).write_text(text))
    log(text)
    return {"best": best, "rows": rows}
