"""The baselines every table is read against: MostPop, and the content-only cold-start baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

from siger.train.record import git_state, record_id


def _record(kind: str, model: str, data, data_dir: str | None, topk: tuple[int, ...], valid: dict, test: dict,
            table: str, label: str, modes: dict | None = None, id_kind: str | None = None) -> dict[str, Any]:
    """A baseline's run record: one per (``id_kind`` or ``kind``, dataset), so a rerun replaces it."""
    import datetime as dt

    rec = {"kind": kind, "model": model, "dataset": data.name, "seed": None,
           "config": {"data_dir": data_dir, "topk": list(topk)}, **({"modes": modes} if modes else {}),
           "valid": valid, "test": test, **git_state(), "table": table, "label": label,
           "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    rec["id"] = record_id({"kind": id_kind or kind, "dataset": data.name})
    return rec


def mostpop_record(dataset: str, data_dir: str | None, topk: tuple[int, ...] = (5, 10, 20, 50)) -> dict[str, Any]:
    """MostPop on the test split: every user gets the most-interacted train items (train masked)."""
    import torch

    from siger.data.dataset import load_dataset
    from siger.eval.ranking import evaluate

    data = load_dataset(dataset, data_dir)
    pop = np.bincount(data.train[:, 1], minlength=data.n_items).astype(np.float32)
    u = torch.ones(data.n_users, 1)
    i = torch.from_numpy(pop).unsqueeze(1)
    test = evaluate(u, i, data.train_matrix, data.matrix("test"), list(topk), 4096)
    valid = evaluate(u, i, data.train_matrix, data.matrix("valid"), list(topk), 4096)
    return _record("mostpop", "MostPop", data, data_dir, topk, valid, test, "comparison", "MostPop (for scale)")


def content_record(dataset: str, data_dir: str | None, topk: tuple[int, ...] = (5, 10, 20, 50)) -> dict[str, Any]:
    """The content-only cold-start baseline on a cold-start dataset: each user's mean train-item
    features, cosine to each item's features (see :func:`siger.eval.cold.content_embeddings`)."""
    from siger.data.cold import load_cold
    from siger.data.dataset import load_dataset
    from siger.eval.cold import content_embeddings, evaluate_modes
    data = load_dataset(dataset, data_dir)
    cold = load_cold(data.path, data.n_users)
    u, w, c = content_embeddings(data, cold)
    modes = {split: evaluate_modes(u, w, c, data, cold, split, list(topk)) for split in ("valid", "test")}
    return _record("content", "content", data, data_dir, topk, modes["valid"]["warm"], modes["test"]["warm"],
                   "cold", "content only (cosine)", modes=modes)


def mostpop_cold_users_record(dataset: str, data_dir: str | None,
                              topk: tuple[int, ...] = (5, 10, 20, 50)) -> dict[str, Any]:
    """MostPop on a cold-user dataset, by mode: ``warm`` as :func:`mostpop_record`, ``cold_users``
    the most popular train items each held-out user has not in its history (table ``cold_users``)."""
    import torch

    from siger.data.cold import load_cold_users
    from siger.data.dataset import load_dataset
    from siger.eval.cold import evaluate_cold_users
    from siger.eval.ranking import evaluate

    data = load_dataset(dataset, data_dir)
    history = load_cold_users(data.path, data.n_users, data.n_items)
    if history is None:
        raise ValueError(f"{data.path}: no cold users (siger derive --cold-users F)")
    pop = np.bincount(data.train[:, 1], minlength=data.n_items).astype(np.float32)
    u, i = torch.ones(data.n_users, 1), torch.from_numpy(pop).unsqueeze(1)
    modes = {split: {"warm": evaluate(u, i, data.train_matrix, data.matrix(split), list(topk), 4096),
                     "cold_users": evaluate_cold_users(u, i, history, data, split, list(topk))}
             for split in ("valid", "test")}
    return _record("mostpop", "MostPop", data, data_dir, topk, modes["valid"]["warm"], modes["test"]["warm"],
                   "cold_users", "MostPop", modes=modes, id_kind="mostpop_cold_users")
