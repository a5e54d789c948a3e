"""New users from their histories (fold-in): a user not seen in training gets a representation
from the trained parameters alone, by the propagation the model itself applies to users.

For the graph models every user representation is built from its items through the normalised
user-item graph: LightGCN's layer l + 1 of a user is ``sum_i E_i^(l) / sqrt(n_u d_i)`` over its
items (n_u its number of items, d_i an item's number of train users), MGCN's semantic user side
is ``R_hat H_I^m`` with the same weights. A new user's history gives exactly those sums, over the
trained item tables (the new user does not change the items: they keep the representations they
were trained with). What a history cannot give is a **free user embedding**: LightGCN, MGCN,
SIGER, FREEDOM and BM3 all learn a layer-0 vector per trained user. Its stand-in here is the
user's layer-1 aggregate (the normalised sum of the history's layer-0 item embeddings), the
representation the model's own propagation gives a user from its items. With a trained user's own
layer-0 vector passed as ``free``, fold-in from exactly its train history reproduces the trained
user's representation (tested); with the stand-in it is an estimate.

Items of the history that never occur in train have no edges in the trained graph (d_i = 0) and
add nothing; they still count in n_u and are never recommended back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from siger.models.layers import SparseGraph


class NewUsersUnsupported(ValueError):
    """The model has no way to represent a user it was not trained on from a history alone."""


def history_matrix(histories: list[list[int]], n_items: int) -> sp.csr_matrix:
    """Binary ``[n_users_new, n_items]`` of item indices (each history's repeats counted once)."""
    rows = [np.unique(np.asarray(h, dtype=np.int64)) for h in histories]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    return sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(len(histories), n_items))


def normalised(history: sp.csr_matrix, item_deg: np.ndarray) -> sp.csr_matrix:
    """``D_new^-1/2 H D_i^-1/2``: each history item weighted 1 / sqrt(n_u d_i) (0 where d_i = 0).
    Built on the CSR arrays directly (a request folds in a few rows: no diagonal matrices)."""
    h = sp.csr_matrix(history)
    n_u = np.diff(h.indptr).astype(np.float64)  # binary rows: the row lengths are the degrees
    inv_u = np.divide(1.0, np.sqrt(n_u), out=np.zeros_like(n_u), where=n_u > 0)
    deg = np.asarray(item_deg, dtype=np.float64)[h.indices]
    inv_i = np.divide(1.0, np.sqrt(deg), out=np.zeros_like(deg), where=deg > 0)
    data = (np.repeat(inv_u, np.diff(h.indptr)) * inv_i).astype(np.float32)
    return sp.csr_matrix((data, h.indices, h.indptr), shape=h.shape)


@dataclass
class LightGCNFoldIn:
    """LightGCN's user side for new users: the trained item layers ``E_items^(0..L-1)`` and the
    items' train degrees, computed once; a call folds in a batch of histories."""

    item_layers: list[torch.Tensor]  # L + 1 tables [n_items, d] (layer 0 .. L; the last unused but for L = 0)
    item_deg: np.ndarray  # [n_items] train users per item
    n_layers: int

    @classmethod
    @torch.no_grad()
    def build(cls, adj: SparseGraph, user_emb: torch.Tensor, item_emb: torch.Tensor, n_layers: int,
              item_deg: np.ndarray) -> "LightGCNFoldIn":
        n_users = user_emb.shape[0]
        x = torch.cat([user_emb, item_emb]).detach()
        layers = [x[n_users:]]
        for _ in range(n_layers):
            x = adj @ x
            layers.append(x[n_users:])
        return cls(layers, np.asarray(item_deg, dtype=np.float64), n_layers)

    @torch.no_grad()
    def __call__(self, history: sp.csr_matrix, free: torch.Tensor | None = None) -> torch.Tensor:
        """Final LightGCN user representations ``[n, d]``: the mean of layer 0 (``free``, else the
        stand-in: the layer-1 aggregate) and layers 1..L (aggregates of the trained item layers)."""
        hn = normalised(history, self.item_deg)
        agg = [spmm(hn, self.item_layers[layer]) for layer in range(self.n_layers)]  # user layers 1..L
        e0 = free if free is not None else (agg[0] if agg else spmm(hn, self.item_layers[0]))
        return torch.stack([e0, *agg], dim=0).mean(dim=0)

    def aggregate(self, history: sp.csr_matrix, table: torch.Tensor) -> torch.Tensor:
        """``D_new^-1/2 H D_i^-1/2 table``: a user-side aggregation of any item table ``[n_items, d]``."""
        return spmm(normalised(history, self.item_deg), table)


def spmm(m: sp.csr_matrix, x: torch.Tensor) -> torch.Tensor:
    """``m @ x`` for a scipy matrix ``[r, n]`` and a dense tensor ``[n, d]``: on the CPU by scipy
    (a history touches few rows: no tensor conversion of the whole matrix), elsewhere by torch."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.asarray(m @ x.numpy(), dtype=np.float32))
    from siger.data.graphs import to_torch

    return torch.sparse.mm(to_torch(m, x.device), x)


def item_degrees(train: sp.spmatrix) -> np.ndarray:
    """Train users per item ``[n_items]``."""
    t = sp.csr_matrix(train)
    return np.bincount(t.indices, minlength=t.shape[1]).astype(np.float64)
