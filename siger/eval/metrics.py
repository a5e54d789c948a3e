"""Top-K metrics of the MMRec protocol, vectorised over users.

Given a hit matrix ``hits[u, r]`` (1 if the item ranked r+1 for user u is relevant) and the number
of relevant items per user ``n_pos[u]``:

- Recall@K    = sum_{r<K} hits / n_pos
- Precision@K = sum_{r<K} hits / K
- NDCG@K      = sum_{r<K} hits / log2(r+2)  /  sum_{r<min(n_pos, K)} 1 / log2(r+2)
- MAP@K       = sum_{r<K} P@(r+1) * hits[r] / min(n_pos, K)

Each is averaged over users.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

METRICS = ("recall", "ndcg", "precision", "map")


def hit_matrix(topk: np.ndarray, users: np.ndarray, target: sp.csr_matrix) -> np.ndarray:
    """hits[u, r] = 1 if item ``topk[u, r]`` is in ``target[users[u]]``; vectorised lookup.

    Args:
        topk: int ``[n, K]`` ranked item ids.
        users: int ``[n]`` user ids (rows of ``target``).
        target: CSR ``[n_users, n_items]`` with sorted indices.
    Returns:
        bool ``[n, K]``.
    """
    n_items = target.shape[1]
    rows = np.repeat(np.arange(target.shape[0], dtype=np.int64), np.diff(target.indptr))
    keys = rows * n_items + target.indices.astype(np.int64)  # sorted: CSR rows, sorted indices
    q = users.astype(np.int64)[:, None] * n_items + topk.astype(np.int64)
    pos = np.minimum(np.searchsorted(keys, q), max(len(keys) - 1, 0))
    return keys[pos] == q if len(keys) else np.zeros(q.shape, dtype=bool)


def metrics_from_hits(hits: np.ndarray, n_pos: np.ndarray, ks: list[int]) -> dict[str, float]:
    """Mean Recall/NDCG/Precision/MAP@K over users (rows of ``hits``), for each K in ``ks``.

    Args:
        hits: bool ``[n, max(ks)]``.
        n_pos: int ``[n]`` relevant items per user (> 0).
    Returns:
        ``{'recall@20': ..., 'ndcg@20': ..., ...}``.
    """
    kmax = max(ks)
    if hits.shape[1] < kmax:
        raise ValueError(f"hits has {hits.shape[1]} columns, need {kmax}")
    h = hits[:, :kmax].astype(np.float64)
    n_pos = n_pos.astype(np.float64)
    ranks = np.arange(1, kmax + 1, dtype=np.float64)
    cum_hits = np.cumsum(h, axis=1)  # [n, kmax]
    disc = 1.0 / np.log2(ranks + 1.0)
    dcg = np.cumsum(h * disc, axis=1)
    idcg_table = np.cumsum(disc)  # idcg_table[j-1] = ideal DCG with j relevant items
    prec_at = cum_hits / ranks
    ap_num = np.cumsum(prec_at * h, axis=1)
    out: dict[str, float] = {}
    for k in ks:
        denom = np.minimum(n_pos, k)
        idcg = idcg_table[denom.astype(np.int64) - 1]
        out[f"recall@{k}"] = float(np.mean(cum_hits[:, k - 1] / n_pos))
        out[f"ndcg@{k}"] = float(np.mean(dcg[:, k - 1] / idcg))
        out[f"precision@{k}"] = float(np.mean(cum_hits[:, k - 1] / k))
        out[f"map@{k}"] = float(np.mean(ap_num[:, k - 1] / denom))
    return out
