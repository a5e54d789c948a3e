"""GUME (Lin et al., "GUME: Graphs and User Modalities Enhancement for Long-Tail Multimodal
Recommendation", CIKM 2024), as in the authors' code (NanGongNingYi/GUME, ``src/models/gume.py``).

1. Graph enhancement: an item-item edge i -> j wherever j is among i's ``knn_k`` neighbours in
   every modality's kNN graph (j != i); these edges fill the item block of the user-item graph,
   A = [[0, R], [R^T, I]], normalised D^-1/2 A D^-1/2 (Â), whose user-item block is R̂.
2. Modalities: e^m = E_i * sigmoid(W2^m (W1^m f^m + b1) + b2) from the (trainable) features;
   explicit views X^m = [R̂ h^m; h^m] with h^m = (S^m)^L e^m on the frozen kNN graph (L =
   ``n_layers``).
3. Extended views: H^id = LightGCN(Â; E_u, E_i) and, per modality, H^m_ext = LightGCN(Â; U^m,
   h^m) with a free user table U^m (the user modality enhancement); H^it = mean_m H^m_ext. Each
   LightGCN averages layers 0..``n_ui_layers``.
4. Attribute separation: MGCN's fusion of the X^m with behaviour gates from H^id
   (:class:`siger.models.layers.AttentionFusion`): H^int; final H = H^id + H^int.
5. Loss: BPR + ``reg_weight`` 1/2 (||u||^2 + ||i+||^2 + ||i-||^2) / B on H
   + ``vt_weight`` * sum over modality pairs of |var(X^a) - var(X^b)| + |mean(X^a) - mean(X^b)|
   + ``bm_weight`` * (InfoNCE(H^int_u, H^id_u) + InfoNCE(H^int_i+, H^id_i+)) at ``bm_temp``
   + ``um_weight`` * (InfoNCE(H^it_u, H^int_u) + N(H^int_u) + N(H^it_u)) at ``um_temp``, where N is
     the InfoNCE between two noisy copies x + sign(x) * normalise(uniform noise) * ``noise_eps``
   + ``reg_it`` * 1/2 ||H^it_i+||^2 / B.

For M modalities (theirs: image and text): the enhancement intersects all M kNN neighbour sets
(one modality: its own graph's edges), the alignment sums over modality pairs (none for one).
A graph-only modality (Amazon Baby here) gets a learnable item table. Defaults: the authors' Baby
values (lr 1e-3 decaying 0.96 per 50 epochs, 3 + 2 layers, reg 1e-5 and 0.1, bm 0.01 at 0.4,
um 0.01 at 0.1, vt 0.1, k 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from siger.data.graphs import shared_neighbours, ui_adjacency_with_items
from siger.keys import NON_NEGATIVE, POSITIVE, POSITIVE_INT, key
from siger.models.base import Recommender, register
from siger.models.layers import AttentionFusion, SparseGraph, id_embeddings, item_input_table, lightgcn_propagate
from siger.models.losses import bpr_loss, info_nce, l2_reg


def moment_gap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|var(a) - var(b)| + |mean(a) - mean(b)| over all entries (unbiased variance)."""
    return (torch.var(a) - torch.var(b)).abs() + (a.mean() - b.mean()).abs()


def sign_noise(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x + sign(x) * normalise_rows(U[0, 1) noise) * eps ``[n, d]`` (GUME's perturbation)."""
    return x + torch.sign(x) * F.normalize(torch.rand_like(x), dim=-1) * eps


@register
class GUME(Recommender):
    """GUME on any number (>= 1) of modalities."""

    name = "GUME"
    TRAIN_DEFAULTS = {"learning_rate": 1e-3, "lr_decay": 0.96, "lr_decay_epochs": 50}

    @dataclass
    class Config:
        embedding_dim: int = key(64, POSITIVE_INT)  # d
        n_ui_layers: int = key(3, NON_NEGATIVE)  # LightGCN layers on the enhanced graph
        n_layers: int = key(2, NON_NEGATIVE)  # kNN propagations of each modality's items (Baby: 2)
        knn_k: int = key(10, POSITIVE_INT)  # neighbours per item in each modality's kNN graph
        reg_weight: float = key(1e-5, NON_NEGATIVE)  # L2 on the batch's final embeddings (reg_weight_1)
        reg_it: float = key(0.1, NON_NEGATIVE)  # L2 on the positives' H^it (reg_weight_2)
        vt_weight: float = key(0.1, NON_NEGATIVE)  # moment alignment of the explicit views (vt_loss)
        bm_weight: float = key(0.01, NON_NEGATIVE)  # integration <-> behaviour InfoNCE (bm_loss)
        bm_temp: float = key(0.4, POSITIVE)
        um_weight: float = key(0.01, NON_NEGATIVE)  # user modality enhancement (um_loss)
        um_temp: float = key(0.1, POSITIVE)
        noise_eps: float = key(0.1, NON_NEGATIVE)  # size of the perturbation in the um terms
        finetune_features: bool = True  # the raw features train, as in the authors' code
        graph_only_dim: int = key(64, POSITIVE_INT)  # learnable item input dim for graph-only modalities

    def __init__(self, data, config, graphs, device="cpu"):
        super().__init__(data, config, graphs, device)
        c = config
        d = c.embedding_dim
        self.modalities = self.require_modalities(data)
        self.user_emb, self.item_emb = id_embeddings(self.n_users, self.n_items, d)
        self.ext_users = nn.ParameterDict({m: nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, d)))
                                           for m in self.modalities})
        knn = {m: graphs.knn(m, c.knn_k) for m in self.modalities}
        self.item_edges = shared_neighbours(list(knn.values()))
        adj, r_hat = ui_adjacency_with_items(data.train_matrix, self.item_edges)
        self.adj = SparseGraph(adj, device)
        self.r_hat = SparseGraph(r_hat, device, symmetric=False)
        self.item_graphs = {m: SparseGraph(knn[m], device) for m in self.modalities}
        self.item_inputs = nn.ParameterDict({m: item_input_table(data, m, c.finetune_features, c.graph_only_dim)
                                             for m in self.modalities})
        self.space = nn.ModuleDict({m: nn.Sequential(nn.Linear(self.item_inputs[m].shape[1], d), nn.Linear(d, d),
                                                     nn.Sigmoid()) for m in self.modalities})
        self.fusion = AttentionFusion(d, len(self.modalities))
        self.to(self.device_)

    def item_views(self) -> dict[str, torch.Tensor]:
        """Per modality the items' explicit view h^m = (S^m)^L (E_i * gate^m(f^m)) ``[n_i, d]``."""
        views = {}
        for m in self.modalities:
            h = self.item_emb * self.space[m](self.item_inputs[m])
            for _ in range(self.config.n_layers):
                h = self.item_graphs[m] @ h
            views[m] = h
        return views

    def encode(self) -> dict[str, object]:
        """"id" (H^id), "x" (X^m per m), "it" (H^it), "int" (H^int): ``[n_u + n_i, d]`` each."""
        c = self.config
        h_id = lightgcn_propagate(self.adj, torch.cat([self.user_emb, self.item_emb]), c.n_ui_layers)
        xs, ext = {}, []
        for m, h in self.item_views().items():
            xs[m] = torch.cat([self.r_hat @ h, h])
            ext.append(lightgcn_propagate(self.adj, torch.cat([self.ext_users[m], h]), c.n_ui_layers))
        h_it = torch.stack(ext).mean(dim=0)
        h_int = self.fusion([xs[m] for m in self.modalities], h_id)
        return {"id": h_id, "x": xs, "it": h_it, "int": h_int}

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.encode()
        h = e["id"] + e["int"]
        return h[: self.n_users], h[self.n_users:]

    def loss(self, users, pos, neg):
        c = self.config
        e = self.encode()
        h, n_u = e["id"] + e["int"], self.n_users
        u, p, q = h[users], h[n_u + pos], h[n_u + neg]
        xs = [e["x"][m] for m in self.modalities]
        vt = sum((moment_gap(a, b) for a, b in combinations(xs, 2)), torch.zeros((), device=h.device))
        bm = (info_nce(e["int"][users], e["id"][users], c.bm_temp)
              + info_nce(e["int"][n_u + pos], e["id"][n_u + pos], c.bm_temp))
        it_u, int_u = e["it"][users], e["int"][users]
        um = (info_nce(it_u, int_u, c.um_temp)
              + info_nce(sign_noise(int_u, c.noise_eps), sign_noise(int_u, c.noise_eps), c.um_temp)
              + info_nce(sign_noise(it_u, c.noise_eps), sign_noise(it_u, c.noise_eps), c.um_temp))
        it_p = e["it"][n_u + pos]
        return {"bpr": bpr_loss(u, p, q), "reg": c.reg_weight * l2_reg(u, p, q) + c.reg_it * l2_reg(it_p),
                "vt": c.vt_weight * vt, "bm": c.bm_weight * bm, "um": c.um_weight * um}

    def summary(self) -> dict[str, object]:
        return {"item_edges": int(self.item_edges.nnz)}

    @torch.no_grad()
    def embed_new_items(self, features, data, graphs) -> torch.Tensor:
        """New items placed by GUME's own equations (see :mod:`siger.models.newitems`), as MGCN
        places them: per modality a kNN row over the trained items (``knn_k - 1`` neighbours plus
        itself, normalised as the trained graph); the missing ID embedding and H^id (its place in
        the enhanced user-item graph, which only training interactions give) are the neighbour
        aggregates ``agg @ E`` and ``agg @ H^id``; then the feature gates, ``n_layers``
        propagations of the explicit views, and the fusion: H = H^id + H^int. ``[n_new, d]``."""
        from siger.models.newitems import normalised_row, placement_rows, propagate_beside, spmm

        c = self.config
        with self.evaluating():
            rows = placement_rows(features, data, self.modalities, c.knn_k)
            h_id = lightgcn_propagate(self.adj, torch.cat([self.user_emb, self.item_emb]), c.n_ui_layers)
            e_new = spmm(rows.agg, self.item_emb)
            id_new = spmm(rows.agg, h_id[self.n_users:])
            views = []
            for m in self.modalities:
                f = torch.as_tensor(np.asarray(features[m], np.float32), device=e_new.device)
                deg = np.asarray(graphs.knn(m, c.knn_k, "none").sum(axis=1)).ravel()
                off, diag = normalised_row(rows.knn[m], deg, "sym")
                views.append(propagate_beside(off, diag, self.item_emb * self.space[m](self.item_inputs[m]),
                                              e_new * self.space[m](f), c.n_layers, self.item_graphs[m]))
            return id_new + self.fusion(views, id_new)

    def fold_in(self, data):
        """New users from their histories (:mod:`siger.models.newusers`): a user's final
        representation is H^id + H^int (the per-modality user tables U^m feed only the H^it loss
        terms), so as MGCN: H^id as LightGCN folds a user into the enhanced graph (its items'
        degrees there: their train users plus their enhancement edges), each explicit view the
        user aggregation R̂ h^m of the trained item views, then the fusion."""
        from siger.models.newusers import LightGCNFoldIn, item_degrees

        with self.evaluating(), torch.no_grad():
            views = self.item_views()  # the explicit views only: H^it and H^int are not needed here
            deg = item_degrees(data.train_matrix) + np.asarray(self.item_edges.sum(axis=1)).ravel()
            lg = LightGCNFoldIn.build(self.adj, self.user_emb, self.item_emb, self.config.n_ui_layers, deg)

        @torch.no_grad()
        def users(history, free=None):
            h_id = lg(history, free)
            return h_id + self.fusion([lg.aggregate(history, views[m]) for m in self.modalities], h_id)

        return users
