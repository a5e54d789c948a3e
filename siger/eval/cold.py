"""Cold-start evaluation: warm, cold and all modes (see :mod:`siger.data.cold`).

- ``warm``: the usual protocol on the warm items (the split's warm interactions, train masked);
- ``cold``: only the split's cold items are ranked, for users who have one of them as a target;
- ``all``: warm and the split's cold items ranked together against all the user's held-out items
  of the split (the realistic one: a new item competes with the catalogue).

Every mode evaluates only users with at least one warm train interaction (as the MMRec protocol
skips users without one); cold items are never masked (no one has trained on them).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from siger.data.cold import ColdItems
from siger.eval.ranking import eval_users, evaluate

MODES = ("warm", "cold", "all")


def evaluate_modes(user_emb: torch.Tensor, item_emb: torch.Tensor, cold_emb: torch.Tensor | None, data, cold: ColdItems,
                   split: str, ks: list[int], modes=MODES, chunk: int = 4096) -> dict[str, dict[str, float]]:
    """Metrics per mode. ``item_emb`` ``[n_items, d]`` (warm), ``cold_emb`` ``[n_cold, d]`` (None: the
    model cannot represent cold items, only ``warm`` is computed)."""
    train = data.train_matrix
    target_warm = data.matrix(split)
    idx = cold.items_of(split)
    target_cold = cold.matrix(split, data.n_users)[:, idx].tocsr()
    has_train = np.diff(train.indptr) > 0
    out: dict[str, dict[str, float]] = {}
    for mode in modes:
        if mode == "warm":
            out[mode] = evaluate(user_emb, item_emb, train, target_warm, ks, chunk)
        elif cold_emb is None:
            continue
        elif mode == "cold":
            empty = sp.csr_matrix((data.n_users, len(idx)), dtype=np.float32)
            users = np.flatnonzero(has_train & (np.diff(target_cold.indptr) > 0))
            out[mode] = evaluate(user_emb, cold_emb[torch.as_tensor(idx, dtype=torch.long)], empty, target_cold, ks,
                                 chunk, users=users)
        elif mode == "all":
            items = torch.cat([item_emb, cold_emb[torch.as_tensor(idx, dtype=torch.long)]])
            mask = sp.hstack([train, sp.csr_matrix((data.n_users, len(idx)), dtype=np.float32)]).tocsr()
            target = sp.hstack([target_warm, target_cold]).tocsr()
            out[mode] = evaluate(user_emb, items, mask, target, ks, chunk, users=eval_users(mask, target))
        else:
            raise ValueError(f"unknown evaluation mode {mode!r} ({' | '.join(MODES)})")
    return out


def content_embeddings(data, cold: ColdItems) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The content-only baseline as embeddings: score(u, i) = mean over modalities of the cosine
    between the mean of u's train items' normalised features and item i's features.

    Returns user ``[n_users, D]``, warm item ``[n_items, D]`` and cold item ``[n_cold, D]`` tables
    (D = the summed feature widths), so the usual ranking code ranks it.
    """
    mods = sorted(m for m in data.features if m in cold.features)
    if not mods:
        raise ValueError("the content baseline needs raw features shared by the warm and cold items")
    train = data.train_matrix
    deg = np.asarray(train.sum(axis=1)).ravel()
    users, warm, new = [], [], []
    for m in mods:
        f = torch.nn.functional.normalize(torch.as_tensor(np.asarray(data.features[m], np.float32)), dim=1)
        g = torch.nn.functional.normalize(torch.as_tensor(np.asarray(cold.features[m], np.float32)), dim=1)
        inv = np.divide(1.0, deg, out=np.zeros_like(deg, dtype=np.float64), where=deg > 0)
        prof = torch.as_tensor((sp.diags(inv) @ train @ f.numpy()).astype(np.float32))
        users.append(torch.nn.functional.normalize(prof, dim=1) / len(mods))
        warm.append(f)
        new.append(g)
    return torch.cat(users, 1), torch.cat(warm, 1), torch.cat(new, 1)


def evaluate_cold_users(folded: torch.Tensor, item_emb: torch.Tensor, history: sp.csr_matrix, data, split: str,
                        ks: list[int], chunk: int = 4096) -> dict[str, float]:
    """The ``cold_users`` mode: users held out of training (:data:`siger.data.variants.COLD_USERS_FILE`),
    each represented by ``folded`` (its row folded in from its history, ``[n_users, d]``; rows of
    other users unused), ranked over every item with its history masked, against its held-out
    items of ``split``. Only users with a history and a target are evaluated."""
    target = data.matrix(split)
    return evaluate(folded, item_emb, history, target, ks, chunk, users=eval_users(history, target))
