"""FREEDOM (Zhou & Shen, ACM MM 2023), as in MMRec.

- Frozen mixed item graph S = sum_m w_m S^m: each S^m is the *binary* kNN graph of modality m
  (k = 10) normalised D^-1/2 A D^-1/2 with row degrees; weights w_image = 0.1 and the other
  modalities share 1 - 0.1 (one modality: weight 1). Amazon Baby ships MMRec's own mixed graph
  ``mm_adj_freedomdsp_10_1.npz``, used as is for the default k and weight.
- Degree-sensitive edge pruning: before each epoch, keep ``(1 - dropout)`` of the train edges,
  sampled without replacement with probability proportional to 1 / sqrt(d_u d_i); the training
  graph is the kept edges, re-normalised. Evaluation uses the full graph.
- Item representation: LightGCN over the (pruned) user-item graph + S^L e_item (L = 1 layer).
- Loss: BPR on the final embeddings + reg_weight * sum_m BPR(u, W_m f^m_pos, W_m f^m_neg).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from siger.data.graphs import binary_knn_sym, ui_adjacency
from siger.keys import NON_NEGATIVE, POSITIVE_INT, UNIT, UNIT_OPEN_TOP, key
from siger.models.base import Recommender, register
from siger.models.layers import (
    SparseGraph,
    frozen_inputs,
    id_embeddings,
    lightgcn_propagate,
    linear_maps,
)
from siger.models.losses import bpr_loss


def prune_edges(r: sp.csr_matrix, keep: float, generator: torch.Generator | None = None) -> sp.csr_matrix:
    """Degree-sensitive pruning: keep ``int(nnz * keep)`` train edges, drawn without replacement
    with probability proportional to ``1 / sqrt(d_u d_i)``. Returns the kept binary ``[n_u, n_i]``."""
    r = sp.csr_matrix(r)
    rows = np.repeat(np.arange(r.shape[0]), np.diff(r.indptr))
    cols = r.indices
    du = np.asarray(r.sum(axis=1)).ravel()
    di = np.asarray(r.sum(axis=0)).ravel()
    w = torch.from_numpy(1.0 / np.sqrt(du[rows] * di[cols]))
    n_keep = int(len(rows) * keep)
    idx = torch.multinomial(w, n_keep, replacement=False, generator=generator).numpy()
    return sp.csr_matrix((np.ones(n_keep, dtype=np.float32), (rows[idx], cols[idx])), shape=r.shape)


@register
class FREEDOM(Recommender):
    name = "FREEDOM"

    @dataclass
    class Config:
        embedding_dim: int = key(64, POSITIVE_INT)
        feat_embed_dim: int = key(64, POSITIVE_INT)
        knn_k: int = key(10, POSITIVE_INT)
        mm_image_weight: float = key(0.1, UNIT)
        n_mm_layers: int = key(1, NON_NEGATIVE)
        n_ui_layers: int = key(2, NON_NEGATIVE)
        dropout: float = key(0.8, UNIT_OPEN_TOP)  # fraction of train edges pruned each epoch
        reg_weight: float = key(0.0, NON_NEGATIVE)  # weight of the modality BPR terms (MMRec grid 0, 1e-5, 1e-4, 1e-3)
        graph_only_dim: int = key(64, POSITIVE_INT)

    def __init__(self, data, config, graphs, device="cpu"):
        super().__init__(data, config, graphs, device)
        c = config
        self.modalities = data.modalities
        d = c.embedding_dim
        self.user_emb, self.item_emb = id_embeddings(self.n_users, self.n_items, d)
        self.item_inputs = frozen_inputs(data, self.modalities, c.graph_only_dim)
        self.trs = linear_maps(self.item_inputs, c.feat_embed_dim)
        self.train_r = data.train_matrix
        self.full_adj = SparseGraph(graphs.ui_adjacency(), device, symmetric=True)
        self.train_adj = self.full_adj
        self.mm_adj = SparseGraph(self.mixed_graph(data, graphs), device) if self.modalities else None
        self.to(self.device_)

    def modality_weights(self) -> dict[str, float]:
        ms = self.modalities
        if len(ms) == 1:
            return {ms[0]: 1.0}
        if "image" in ms:
            w = self.config.mm_image_weight
            return {m: (w if m == "image" else (1.0 - w) / (len(ms) - 1)) for m in ms}
        return {m: 1.0 / len(ms) for m in ms}

    def mixed_graph(self, data, graphs) -> sp.csr_matrix:
        c = self.config
        provided = f"mm_adj_freedomdsp_{c.knn_k}_{int(10 * c.mm_image_weight)}"
        if provided in data.extra_graphs:
            return data.extra_graphs[provided]
        total = None
        for m, w in self.modality_weights().items():
            # provided modality graphs are already normalised kNN graphs: binarise + renormalise
            g = w * binary_knn_sym(graphs.knn(m, c.knn_k, "none") if m in data.features else graphs.knn(m, c.knn_k))
            total = g if total is None else total + g
        return sp.csr_matrix(total, dtype=np.float32)

    def pre_epoch(self) -> None:
        keep = 1.0 - self.config.dropout
        if keep >= 1.0:
            self.train_adj = self.full_adj
            return
        self.train_adj = SparseGraph(ui_adjacency(prune_edges(self.train_r, keep)), self.device_, symmetric=True)

    def forward(self):
        adj = self.train_adj if self.training else self.full_adj
        h = self.item_emb
        if self.mm_adj is not None:
            for _ in range(self.config.n_mm_layers):
                h = self.mm_adj @ h
        out = lightgcn_propagate(adj, torch.cat([self.user_emb, self.item_emb]), self.config.n_ui_layers)
        return out[: self.n_users], out[self.n_users :] + h

    def fold_in(self, data):
        """A new user's representation: FREEDOM's users are the LightGCN part alone (on the full
        graph at inference), folded in from the history (:mod:`siger.models.newusers`)."""
        from siger.models.newusers import LightGCNFoldIn, item_degrees

        return LightGCNFoldIn.build(self.full_adj, self.user_emb, self.item_emb, self.config.n_ui_layers,
                                    item_degrees(data.train_matrix))

    @torch.no_grad()
    def embed_new_items(self, features, data, graphs) -> torch.Tensor:
        """A new item's row of the mixed item graph: per modality its binary kNN row over the
        trained items (``knn_k - 1`` neighbours plus itself), normalised with its degree k and the
        trained rows' degrees, weighted by the modality weights; the ``n_mm_layers`` propagation
        of ID embeddings then runs through it. Its missing ID embedding and LightGCN part are the
        neighbour aggregates (see :mod:`siger.models.newitems`). ``[n_new, d]``."""
        from siger.models.newitems import NewItemsUnsupported, placement_rows, propagate_beside, spmm

        c = self.config
        provided = f"mm_adj_freedomdsp_{c.knn_k}_{int(10 * c.mm_image_weight)}"
        if provided in data.extra_graphs or not self.modalities:
            raise NewItemsUnsupported("FREEDOM on a provided mixed graph (no raw features) cannot place a new item")
        with self.evaluating():
            rows = placement_rows(features, data, self.modalities, c.knn_k)
            e_new = spmm(rows.agg, self.item_emb)
            lg = lightgcn_propagate(self.full_adj, torch.cat([self.user_emb, self.item_emb]), c.n_ui_layers)
            lg_new = spmm(rows.agg, lg[self.n_users:])
            off, diag = None, 0.0
            for m, w in self.modality_weights().items():
                b = rows.knn[m].copy()
                b.data[:] = 1.0
                d_new = 1.0 + np.asarray(b.sum(axis=1)).ravel() + 1e-7
                a = sp.csr_matrix(graphs.knn(m, c.knn_k, "none", "exact"), copy=True)
                a.data[:] = 1.0
                d_known = np.asarray(a.sum(axis=1)).ravel() + 1e-7
                part = w * sp.diags(d_new ** -0.5) @ b @ sp.diags(d_known ** -0.5)
                off = part if off is None else off + part
                diag = diag + w / d_new
            return lg_new + propagate_beside(off, diag, self.item_emb, e_new, c.n_mm_layers, self.mm_adj)

    def loss(self, users, pos, neg):
        u, i = self.forward()
        ub = u[users]
        out = {"bpr": bpr_loss(ub, i[pos], i[neg])}
        if self.config.reg_weight > 0 and self.modalities:
            mf = sum(bpr_loss(ub, self.trs[m](self.item_inputs[m][pos]), self.trs[m](self.item_inputs[m][neg]))
                     for m in self.modalities)
            out["modal_bpr"] = self.config.reg_weight * mf
        return out

