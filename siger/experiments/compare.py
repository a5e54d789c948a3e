"""`siger compare`: train several models (in sequence, resumable) over seeds on one dataset and
write ``comparison.md`` (mean ± std of Recall/NDCG@10/20, seconds per epoch, peak memory) and
``comparison.png`` (bars with error bars)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from siger.artifacts import atomic_write, plot_bars
from siger.config import (
    PLACE_KEYS,
    RUN_ONLY_KEYS,
    Config,
    ConfigError,
    ConfigFile,
    apply_overrides,
    build_config,
    load_yaml,
)
from siger.experiments.runs import train_or_load
from siger.experiments.summary import SUMMARY_METRICS, seeds_phrase, summarize, summary_table

# keys of a per-model YAML (e.g. a grid's best_config.yaml) that describe the run, not the model's setting
RUN_IDENTITY_KEYS = ("model", "dataset", "seed", *PLACE_KEYS, *(k for k in RUN_ONLY_KEYS if k != "epochs"))


def model_settings(path: str | Path) -> dict[str, Any]:
    """The keys of a per-model YAML that set hyper-parameters (run identity keys dropped)."""
    return {k: v for k, v in load_yaml(path).items() if k not in RUN_IDENTITY_KEYS}


def run_compare(models: list[str], dataset: str, overrides: dict[str, Any], out: Path, seeds: int = 1,
                yaml_path: str | ConfigFile | None = None, log=print, model_configs: dict[str, str] | None = None,
                modes: list[str] | None = None) -> str:
    """Train ``models`` over ``seeds`` seeds into ``out/<model>/seed<S>`` and write the report.

    ``model_configs`` maps a model name to a YAML of its own settings (e.g. a grid search's
    ``best_config.yaml``), applied after ``yaml_path`` and before the command-line ``overrides``.
    ``modes`` (e.g. ``["warm", "cold", "all"]``): also evaluate each run on the dataset's cold items.
    """
    model_configs = dict(model_configs or {})
    unknown = sorted(set(model_configs) - set(models))
    if unknown:
        raise ConfigError(f"--model-config for {', '.join(unknown)}, which is not in --models {','.join(models)}")
    cfgs: dict[str, Config] = {}
    for m in models:  # build every config first: fail early
        own = model_settings(model_configs[m]) if m in model_configs else {}
        cfgs[m] = build_config(m, dataset, own | overrides, yaml_path)
    rows: dict[str, dict[str, Any]] = {}
    for name, cfg in cfgs.items():
        results = []
        for s in range(seeds):
            c = copy.deepcopy(cfg)
            apply_overrides(c, {"seed": cfg.train.seed + s})
            log(f"== {cfg.train.model} seed {c.train.seed}")
            run = out / cfg.train.model / f"seed{c.train.seed}"
            results.append(train_or_load(c, run, log))
            if modes and not (run / "cold_metrics.json").exists():  # cold-start modes, once per run
                from siger.experiments.coldstart import evaluate_run

                evaluate_run(run, modes)
        rows[cfg.train.model] = summarize(results)
        _write(rows, cfgs, dataset, out, seeds, model_configs)  # partial tables survive an interruption
    return _write(rows, cfgs, dataset, out, seeds, model_configs)


def _write(rows, cfgs, dataset: str, out: Path, seeds: int, model_configs: dict[str, str]) -> str:
    seed0 = next(iter(cfgs.values())).train.seed
    tuned = "; ".join(f"{m} with `{p}`" for m, p in model_configs.items())
    setting = (f"other models at their defaults, {tuned}" if tuned else "each model at its defaults")
    text = (f"# Model comparison on {dataset}\n\nTest metrics at the best-valid epoch (MMRec protocol, full "
            f"ranking), {seeds_phrase(seed0, seeds)}; {setting} (configs: `{out}/<model>/seed*/config.yaml`).\n\n"
            + summary_table(rows, label="model") + "\n")
    atomic_write(out / "comparison.md", lambda p: Path(p).write_text(text))
    plot_bars(rows, SUMMARY_METRICS, out / "comparison.png", f"{dataset}: test metrics")
    return text
