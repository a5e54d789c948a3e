"""Placing a new (cold) item among the trained ones from its raw features alone.

A new item has no interactions and no trained parameters. The kNN-graph models place it the way
their semantic graphs place any item: by its feature-cosine neighbours among the *trained* items
(those that occur in train), computed in row blocks (never a dense new x all-items matrix beyond
one block). :class:`NewItemRows` holds, per modality, the new item's graph row (``k - 1`` trained
neighbours plus itself, as a trained item's kNN row holds ``k`` entries with itself), and one
aggregation matrix ``agg`` (the mean over modalities of the row-normalised positive neighbour
weights) that stands in for what only interactions could give (the ID embedding, the behaviour
representation): ``e_new = agg @ E``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from siger.data.validate import DataError


class NewItemsUnsupported(ValueError):
    """The model has no way to represent an item it was not trained on."""


@dataclass
class NewItemRows:
    """Neighbour rows of ``n_new`` new items over the ``n_items`` trained-model items.

    Attributes:
        knn: modality -> CSR ``[n_new, n_items]``, cosine weights of the ``k - 1`` nearest trained
            items (the new item itself is the k-th, weight 1, implicit).
        agg: CSR ``[n_new, n_items]``, rows summing to 1 (mean over modalities of the row-normalised
            positive cosine weights; uniform over the neighbours where no weight is positive).
    """

    knn: dict[str, sp.csr_matrix]
    agg: sp.csr_matrix


def trained_items(train: sp.spmatrix) -> np.ndarray:
    """Boolean ``[n_items]``: items that occur in train (the only ones with trained parameters)."""
    return np.asarray((sp.csr_matrix(train) != 0).sum(axis=0)).ravel() > 0


def check_new_features(new: dict[str, np.ndarray], known: dict[str, np.ndarray], modalities: list[str],
                       where: str = "new items") -> int:
    """Every modality the model uses, with the trained features' width, finite; returns n_new."""
    missing = [m for m in modalities if m not in new]
    if missing:
        raise DataError(where, f"features missing for modalities {missing} (the model uses {modalities})")
    n = None
    for m in modalities:
        if m not in known:
            raise NewItemsUnsupported(f"modality '{m}' has only a provided graph, no raw features: a new item "
                                      "cannot be placed in it")
        f = np.asarray(new[m])
        if f.ndim != 2 or f.shape[1] != known[m].shape[1]:
            raise DataError(where, f"modality '{m}': features must be [n_new, {known[m].shape[1]}], got "
                            f"{list(f.shape)}", field=m)
        if not np.isfinite(f).all():
            bad = int(np.argwhere(~np.isfinite(f))[0][0])
            raise DataError(where, f"modality '{m}': non-finite feature value in row {bad}", field=m)
        if n is not None and f.shape[0] != n:
            raise DataError(where, f"modality '{m}' has {f.shape[0]} rows, another modality {n}", field=m)
        n = f.shape[0]
    return int(n or 0)


def neighbour_rows(new: dict[str, np.ndarray], known: dict[str, np.ndarray], candidates: np.ndarray, k: int,
                   block: int = 2048) -> NewItemRows:
    """:class:`NewItemRows` for new features ``new[m]`` ``[n_new, dim]`` among the ``candidates``
    (boolean ``[n_items]``) of the trained items' raw features ``known[m]`` ``[n_items, dim]``."""
    n_items = len(candidates)
    cand = np.flatnonzero(candidates)
    kk = max(1, min(k - 1, len(cand)))
    knn: dict[str, sp.csr_matrix] = {}
    agg = None
    for m, f in new.items():
        kn = torch.nn.functional.normalize(torch.as_tensor(np.asarray(known[m], np.float32)[cand]), dim=1)
        nf = torch.nn.functional.normalize(torch.as_tensor(np.asarray(f, np.float32)), dim=1)
        vals, cols = [], []
        for s in range(0, len(nf), block):
            v, c = torch.topk(nf[s: s + block] @ kn.T, kk, dim=1)
            vals.append(v.numpy())
            cols.append(cand[c.numpy()])
        v, c = np.concatenate(vals).ravel(), np.concatenate(cols).ravel()
        rows = np.repeat(np.arange(len(nf)), kk)
        g = sp.csr_matrix((v, (rows, c)), shape=(len(nf), n_items), dtype=np.float32)
        g.sort_indices()
        knn[m] = g
        pos = g.copy()
        pos.data = np.maximum(pos.data, 0.0)
        s = np.asarray(pos.sum(axis=1)).ravel()
        flat = s <= 0
        if flat.any():  # no positive similarity: the neighbours count equally
            pos = pos.tolil()
            for r in np.flatnonzero(flat):
                pos[r, g.indices[g.indptr[r]:g.indptr[r + 1]]] = 1.0
            pos = pos.tocsr()
            s = np.asarray(pos.sum(axis=1)).ravel()
        norm = sp.diags(1.0 / s) @ pos
        agg = norm if agg is None else agg + norm
    agg = sp.csr_matrix(agg / len(new), dtype=np.float32)
    return NewItemRows(knn, agg)


def spmm(m: sp.spmatrix, x: torch.Tensor) -> torch.Tensor:
    """``m @ x`` for a scipy matrix ``[r, n]`` and a dense tensor ``[n, d]``."""
    from siger.data.graphs import to_torch

    return torch.sparse.mm(to_torch(m, x.device), x)


def normalised_row(w: sp.csr_matrix, deg_known: np.ndarray, how: str) -> tuple[sp.csr_matrix, np.ndarray]:
    """A new item's row of a kNN graph normalised as the trained graph was (``how``: sym | rw |
    none), with its self weight 1: the off-diagonal part ``[n_new, n_items]`` and the diagonal
    ``[n_new]``. ``deg_known``: the trained graph's raw row sums (its degrees)."""
    d_new = 1.0 + np.asarray(w.sum(axis=1)).ravel()
    if how == "sym":
        inv_known = np.divide(1.0, np.sqrt(deg_known), out=np.zeros_like(deg_known, dtype=np.float64),
                              where=deg_known > 0)
        off = sp.diags(1.0 / np.sqrt(d_new)) @ w @ sp.diags(inv_known)
        return sp.csr_matrix(off, dtype=np.float32), (1.0 / d_new).astype(np.float32)
    if how == "rw":
        return sp.csr_matrix(sp.diags(1.0 / d_new) @ w, dtype=np.float32), (1.0 / d_new).astype(np.float32)
    if how == "none":
        return sp.csr_matrix(w, dtype=np.float32), np.ones(w.shape[0], np.float32)
    raise ValueError(f"unknown normalisation {how!r}")


def placement_rows(features: dict[str, np.ndarray], data, modalities: list[str], k: int) -> NewItemRows:
    """Check the new items' ``features`` against the model's ``modalities`` and place them: their
    :class:`NewItemRows` among the trained items of ``data`` (an :class:`InteractionData`)."""
    check_new_features(features, data.features, modalities)
    return neighbour_rows({m: features[m] for m in modalities}, data.features, trained_items(data.train_matrix), k)


def propagate_beside(off: sp.spmatrix, diag: np.ndarray, h_known: torch.Tensor, h_new: torch.Tensor,
                     layers: int, graph) -> torch.Tensor:
    """``layers`` propagations of new items' rows beside the trained items' own: per layer
    ``h_new <- off @ h_known + diag * h_new`` and ``h_known <- graph @ h_known`` (``graph``: the
    trained item graph, anything with ``@``, or a function of ``h_known`` that propagates it). ``off`` ``[n_new, n_items]``, ``diag`` ``[n_new]``, ``h_known`` ``[n_items, d]``,
    ``h_new`` ``[n_new, d]``; returns ``[n_new, d]``."""
    from siger.data.graphs import to_torch

    a = to_torch(sp.csr_matrix(off, dtype=np.float32), h_new.device)
    d = torch.as_tensor(np.asarray(diag, np.float32), device=h_new.device).unsqueeze(1)
    for _ in range(layers):
        h_new = torch.sparse.mm(a, h_known) + d * h_new
        h_known = graph(h_known) if callable(graph) else graph @ h_known
    return h_new
