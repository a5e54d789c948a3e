"""Cold-start evaluation of a finished run (``siger evaluate --modes``, ``siger compare --modes``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from siger.config import ConfigError


def evaluate_run(run: Path, modes: list[str]) -> tuple[dict[str, dict[str, dict[str, float]]], list[int]]:
    """Valid and test metrics per mode of the run on its dataset's cold items; written to
    ``cold_metrics.json`` and into the run's ``record.json`` (``modes``). Returns them and the K list."""
    from siger.artifacts import write_json
    from siger.data.cold import load_cold
    from siger.data.graphs import GraphStore
    from siger.eval.cold import MODES, evaluate_modes
    from siger.models.newitems import NewItemsUnsupported
    from siger.train.trainer import load_model

    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ConfigError(f"--modes: unknown {bad} (any of warm, cold, all)")
    model, cfg, data = load_model(run)
    cold = load_cold(data.path, data.n_users, getattr(model, "modalities", None))
    u, i = model.embeddings()
    try:
        c = model.embed_new_items(cold.features, data, GraphStore(data, cfg.train.cache_dir))
    except NewItemsUnsupported as e:
        if any(m != "warm" for m in modes):
            raise ConfigError(f"{cfg.train.model}: {e}") from None
        c = None
    res: dict[str, Any] = {split: evaluate_modes(u, i, c, data, cold, split, cfg.train.topk, modes,
                                                 cfg.train.eval_chunk_users) for split in ("valid", "test")}
    write_json(run / "cold_metrics.json", res)
    rec_path = run / "record.json"
    if rec_path.exists():  # the record carries the modes, for `siger results add --table cold`
        rec = json.loads(rec_path.read_text())
        rec["modes"] = res
        write_json(rec_path, rec)
    return res, cfg.train.topk
