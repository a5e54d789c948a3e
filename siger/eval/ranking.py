"""Full-ranking evaluation (MMRec protocol): score every item for every evaluated user, mask the
user's train items, take the top K, match hits against the held-out split.

Embeddings are computed once by the caller; users are scored in chunks so memory is
``chunk x n_items`` floats at a time, never ``n_users x n_items``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from siger.eval.metrics import hit_matrix, metrics_from_hits

SCORE_BUDGET_BYTES = 256 * 2**20  # at most this much of scores in memory at once


def eval_users(train: sp.csr_matrix, target: sp.csr_matrix) -> np.ndarray:
    """Users with at least one target item and at least one train item (others are skipped)."""
    has_target = np.diff(target.indptr) > 0
    has_train = np.diff(train.indptr) > 0
    return np.flatnonzero(has_target & has_train)


@torch.no_grad()
def topk_items(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    users: np.ndarray,
    mask: sp.csr_matrix | None,
    k: int,
    chunk: int = 4096,
    return_scores: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Top-k item ids by inner product, masked items excluded.

    Args:
        user_emb: ``[n_users, d]``; item_emb: ``[n_items, d]``.
        users: int ``[n]`` the users to rank for.
        mask: CSR ``[n_users, n_items]`` of items never to recommend (the train items), or None.
        k: list length.
    Returns:
        int64 ``[n, k]``, best first (and float32 ``[n, k]`` scores with ``return_scores``).
    """
    n_items = item_emb.shape[0]
    k = min(k, n_items)
    chunk = max(1, min(chunk, SCORE_BUDGET_BYTES // (4 * n_items)))  # bound the [chunk, n_items] block
    item_t = item_emb.t().contiguous()
    out = np.empty((len(users), k), dtype=np.int64)
    vals = np.empty((len(users), k), dtype=np.float32) if return_scores else None
    for s in range(0, len(users), chunk):
        batch = users[s : s + chunk]
        scores = user_emb[torch.from_numpy(batch).to(user_emb.device)] @ item_t  # [b, n_items]
        if mask is not None:
            sub = mask[batch]
            rows = np.repeat(np.arange(len(batch)), np.diff(sub.indptr))
            scores[torch.from_numpy(rows), torch.from_numpy(sub.indices.astype(np.int64))] = -torch.inf
        top = torch.topk(scores, k, dim=1)
        out[s : s + len(batch)] = top.indices.cpu().numpy()
        if vals is not None:
            vals[s : s + len(batch)] = top.values.float().cpu().numpy()
    return (out, vals) if return_scores else out


def evaluate(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    train: sp.csr_matrix,
    target: sp.csr_matrix,
    ks: list[int],
    chunk: int = 4096,
    dist=None,
    users: np.ndarray | None = None,
) -> dict[str, float]:
    """Mean Recall/NDCG/Precision/MAP@K over users with target and train items.

    Args:
        user_emb, item_emb: final embeddings ``[n_users, d]``, ``[n_items, d]``.
        train: CSR of train items (masked from the ranking).
        target: CSR of the held-out items (valid or test).
        dist: a ``DistContext``; when enabled each rank ranks a contiguous share of the users and
            the hit rows are gathered, so every rank returns exactly the single-process metrics.
        users: the users to evaluate (default :func:`eval_users` of ``train`` and ``target``;
            cold-item evaluation, whose mask is empty, passes the users with warm train items).
    """
    users = eval_users(train, target) if users is None else users
    if dist is not None and dist.enabled:
        from siger.distributed import gather_rows, rank_bounds

        bounds = [rank_bounds(len(users), r, dist.world) for r in range(dist.world)]
        lo, hi = bounds[dist.rank]
        top = topk_items(user_emb, item_emb, users[lo:hi], train, max(ks), chunk)
        local = hit_matrix(top, users[lo:hi], target).astype(np.int32)  # [n_local, K']
        hits = gather_rows(local, [b - a for a, b in bounds], user_emb.device).astype(bool)
    else:
        top = topk_items(user_emb, item_emb, users, train, max(ks), chunk)
        hits = hit_matrix(top, users, target)
    if hits.shape[1] < max(ks):  # fewer items than K: the missing ranks are misses
        hits = np.pad(hits, ((0, 0), (0, max(ks) - hits.shape[1])))
    n_pos = np.diff(target.indptr)[users]
    res = metrics_from_hits(hits, n_pos, ks)
    res["n_users"] = int(len(users))
    return res
