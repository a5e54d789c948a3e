"""`siger ablate`: train every ablation of SIGER (config overrides in ``siger.models.siger.ABLATIONS``)
over one or more seeds and write one Markdown table.

Each variant/seed trains into its own run folder; a finished run (metrics.json present) is
reused and an unfinished one resumes from its checkpoint, so a killed ablation picks up where it
stopped.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from siger.artifacts import atomic_write
from siger.config import Config, apply_overrides
from siger.experiments.runs import slug, train_or_load
from siger.experiments.summary import seeds_phrase, summarize, summary_table
from siger.models.siger import ABLATIONS


def resolve_variants(names: list[str] | None) -> list[str]:
    """Ablation names in table order; each given by its full name or its slug (``no_anchor_loss_lambda_a_0``)."""
    if not names:
        return list(ABLATIONS)
    by_slug = {slug(n): n for n in ABLATIONS}
    out = []
    for n in names:
        full = n if n in ABLATIONS else by_slug.get(slug(n))
        if full is None:
            raise ValueError(f"unknown ablation {n!r}; known: " + ", ".join(by_slug))
        out.append(full)
    return [n for n in ABLATIONS if n in out]


def run_ablation(cfg: Config, out: Path, seeds: int = 1, variants: list[str] | None = None, log=print) -> str:
    """Train each requested ablation variant for ``seeds`` seeds; write and return ``out/ablation.md``.

    The table holds every variant whose ``seeds`` runs have all finished in ``out`` (so training
    the variants one ``--variants`` call at a time builds up one table), in the canonical order, and
    names the variants not finished yet.
    """
    if cfg.train.model.lower() != "siger":
        raise ValueError(f"ablate runs SIGER's ablations; got --model {cfg.train.model}")
    first = next(iter(ABLATIONS))
    requested = resolve_variants(variants)

    def variant_cfg(name: str, s: int) -> Config:
        c = copy.deepcopy(cfg)
        apply_overrides(c, dict(ABLATIONS[name]))
        c.train.seed = cfg.train.seed + s
        return c

    def run_dir(name: str, s: int) -> Path:
        return out / slug(name) / f"seed{cfg.train.seed + s}"

    rows: dict[str, dict[str, Any]] = {}
    for name in requested:
        results = []
        for s in range(seeds):
            log(f"== {name}  seed {cfg.train.seed + s}")
            results.append(train_or_load(variant_cfg(name, s), run_dir(name, s), log))
        rows[name] = summarize(results)
    # the other variants are looked up after training, so one that another process finished in the
    # meantime is tabled too
    for name in ABLATIONS:
        if name not in rows and all((run_dir(name, s) / "metrics.json").exists() for s in range(seeds)):
            rows[name] = summarize([train_or_load(variant_cfg(name, s), run_dir(name, s), log) for s in range(seeds)])
    rows = {n: rows[n] for n in ABLATIONS if n in rows}  # canonical order
    missing = [n for n in ABLATIONS if n not in rows]
    t = cfg.train
    table = (f"# SIGER ablations on {t.dataset}\n\nTest metrics at the best-valid epoch (MMRec protocol, "
             f"full ranking), {seeds_phrase(t.seed, seeds)}. Base config: `{out}/*/seed*/config.yaml`.\n\n"
             + summary_table(rows, ref=first if first in rows else None, label="variant") + "\n"
             + (f"\nNot finished yet: {'; '.join(missing)}.\n" if missing else ""))
    atomic_write(out / "ablation.md", lambda p: Path(p).write_text(table))
    return table
