"""Cold-start evaluation of a finished run (``siger evaluate --modes``, ``siger compare --modes``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siger.config import ConfigError


def evaluate_run(run: Path, modes: list[str]) -> tuple[dict[str, dict[str, dict[str, float]]], list[int]]:
    """Valid and test metrics per mode of the run on its dataset's cold items; written to
    ``cold_metrics.json`` and into the run's ``record.json`` (``modes``). Returns them and the K list."""
    from siger.artifacts import write_json
    from siger.data.cold import load_cold
    from siger.data.graphs import GraphStore
    from siger.eval.cold import MODES, evaluate_modes
    from siger.eval.ranking import evaluate
    from siger.models.newitems import NewItemsUnsupported
    from siger.train.trainer import load_model

    bad = [m for m in modes if m not in (*MODES, "cold_users")]
    if bad or not modes:
        raise ConfigError(f"--modes: unknown {bad} (any of warm, cold, all, cold_users)")
    model, cfg, data = load_model(run)
    u, i = model.embeddings()
    item_modes = [m for m in modes if m in MODES]
    res: dict[str, Any] = {"valid": {}, "test": {}}
    if any(m != "warm" for m in item_modes):  # cold items: a cold/ folder of held-out items
        cold = load_cold(data.path, data.n_users, getattr(model, "modalities", None))
        try:
            c = model.embed_new_items(cold.features, data, GraphStore(data, cfg.train.cache_dir))
        except NewItemsUnsupported as e:
            raise ConfigError(f"{cfg.train.model}: {e}") from None
        for split in res:
            res[split].update(evaluate_modes(u, i, c, data, cold, split, cfg.train.topk, item_modes,
                                             cfg.train.eval_chunk_users))
    elif "warm" in item_modes:
        for split in res:
            res[split]["warm"] = evaluate(u, i, data.train_matrix, data.matrix(split), cfg.train.topk,
                                          cfg.train.eval_chunk_users)
    if "cold_users" in modes:  # users held out of training, folded in from their histories
        from siger.data.cold import load_cold_users
        from siger.eval.cold import evaluate_cold_users
        from siger.models.newusers import NewUsersUnsupported

        history = load_cold_users(data.path, data.n_users, data.n_items)
        if history is None:
            raise ConfigError(f"--modes cold_users: {data.path} has no cold users (siger derive --cold-users F)")
        try:
            fold = model.fold_in(data)
        except NewUsersUnsupported as e:
            raise ConfigError(f"{cfg.train.model}: {e}") from None
        rows = np.flatnonzero(np.diff(history.indptr) > 0)
        folded = u.clone()
        folded[torch.as_tensor(rows)] = fold(history[rows]).to(u.dtype)
        for split in res:
            res[split]["cold_users"] = evaluate_cold_users(folded, i, history, data, split, cfg.train.topk,
                                                           cfg.train.eval_chunk_users)
    write_json(run / "cold_metrics.json", res)
    rec_path = run / "record.json"
    if rec_path.exists():  # the record carries the modes, for `siger results add --table cold`
        rec = json.loads(rec_path.read_text())
        rec["modes"] = res
        write_json(rec_path, rec)
    return res, cfg.train.topk
