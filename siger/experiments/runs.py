"""The run helpers every experiment driver shares (compare, ablate, tune, records): a run folder
per (setting, seed) that is trained once, resumed if it was cut short, and reused once finished."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from siger.config import PLACE_KEYS, Config, ConfigError, config_mismatch
from siger.train.stopping import STOP_KEYS, eval_epochs, patience_used


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _stopped_by_current_rule(metrics: dict[str, Any], warmup: int, train) -> bool:
    """Whether today's stop rule ends a finished run where it ended (its best epoch and epoch
    count, as :func:`siger.train.record.stop_check` reads a record): such a run, with a best epoch
    inside its warm-up, is the current rule's and is reused untouched. Without this check it was
    handed to the trainer on every load, which found it stopped and rewrote metrics.json with the
    loading process's peak RSS and graph build time instead of the training's."""
    last = metrics.get("epochs_run", 0) - 1
    evals = eval_epochs(last, train.eval_every, train.epochs)
    return patience_used(evals, metrics.get("best_epoch", -1), warmup) >= train.patience


def train_or_load(cfg: Config, out: Path, log=print, data=None) -> dict[str, Any]:
    """metrics.json of ``out`` if the run finished with this config, else train (resuming if possible)
    on ``data`` (default: loaded from ``cfg``; a caller holding the dataset passes it).

    A finished run whose config.yaml differs from ``cfg`` (beyond paths and evaluation chunking) is an
    error naming the keys, never reused, except where only the stop keys differ
    (:data:`~siger.train.stopping.STOP_KEYS`): the trainer continues it under the current rule
    from its checkpoint, or refuses it where that rule would have ended it earlier. A symlinked
    run folder is the user's deliberate substitution (e.g. MGCN's run as SIGER's backbone
    ablation) and is taken as is.
    """
    import yaml

    from siger.train.trainer import Trainer, load_data

    done = out / "metrics.json"
    if done.exists():
        saved = out / "config.yaml"
        diff = []
        if saved.exists() and not out.is_symlink():
            diff = config_mismatch(yaml.safe_load(saved.read_text()) or {}, cfg, ignore=PLACE_KEYS)
        if [k for k in diff if k not in STOP_KEYS]:
            raise ConfigError(f"{out}: finished run has a different config ({', '.join(diff)}); "
                             "delete it or use another --out")
        metrics = json.loads(done.read_text())
        # the trainer decides (it continues the run from its last checkpoint under the current
        # rule, or finds it stopped and changes nothing but the config it is the run of) when:
        # - the stop keys changed (e.g. a new warmup_steps default): the epochs are the same;
        # - it stopped early at a best epoch inside the warm-up: the rule before 2026-12-05
        #   counted patience from that peak
        warmup = metrics.get("warmup_epochs_effective", cfg.train.warmup_epochs)
        again = diff or (metrics.get("stopped_early") and metrics.get("best_epoch", 0) < warmup
                         and not _stopped_by_current_rule(metrics, warmup, cfg.train))
        if not again or out.is_symlink():
            return metrics
        if not (out / "checkpoint.pt").exists():
            if diff:
                raise ConfigError(f"{out}: finished run has other stop keys ({', '.join(diff)}) and no checkpoint "
                                  "to continue it from under the current rule; delete it or use another --out")
            return metrics
    trainer = Trainer(cfg, load_data(cfg) if data is None else data, out, log=log)
    return trainer.fit(resume=True)
