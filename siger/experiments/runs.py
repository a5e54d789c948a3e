"""The run helpers every experiment driver shares (compare, ablate, tune, records): a run folder
per (setting, seed) that is trained once, resumed if it was cut short, and reused once finished."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from siger.config import PLACE_KEYS, Config, ConfigError, config_mismatch


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def train_or_load(cfg: Config, out: Path, log=print, data=None) -> dict[str, Any]:
    """metrics.json of ``out`` if the run finished with this config, else train (resuming if possible)
    on ``data`` (default: loaded from ``cfg``; a caller holding the dataset passes it).

    A finished run whose config.yaml differs from ``cfg`` (beyond paths and evaluation chunking) is an
    error naming the keys, never reused. A symlinked run folder is the user's deliberate substitution
    (e.g. MGCN's run as SIGER's backbone ablation) and is taken as is.
    """
    import yaml

    from siger.train.trainer import Trainer, load_data

    done = out / "metrics.json"
    if done.exists():
        saved = out / "config.yaml"
        diff = []
        if saved.exists() and not out.is_symlink():
            diff = config_mismatch(yaml.safe_load(saved.read_text()) or {}, cfg, ignore=PLACE_KEYS)
        if diff:
            raise ConfigError(f"{out}: finished run has a different config ({', '.join(diff)}); "
                             "delete it or use another --out")
        metrics = json.loads(done.read_text())
        # a run stopped early at a best epoch inside the warm-up may have been stopped by the
        # earlier rule (patience counted from that peak): resuming lets the current rule decide
        # (it continues the run from its last checkpoint, or finds it stopped and changes nothing)
        warmup = metrics.get("warmup_epochs_effective", cfg.train.warmup_epochs)
        if not (metrics.get("stopped_early") and metrics.get("best_epoch", 0) < warmup
                and (out / "checkpoint.pt").exists() and not out.is_symlink()):
            return metrics
    trainer = Trainer(cfg, load_data(cfg) if data is None else data, out, log=log)
    return trainer.fit(resume=True)
