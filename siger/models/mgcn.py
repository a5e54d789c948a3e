"""MGCN (Yu et al., ACM MM 2023), SIGER's backbone, as in MMRec.

MGCN = behaviour LightGCN + per-modality behaviour-gated features propagated on frozen kNN item
graphs + attention fusion with preference gates + BPR + the behaviour<->fused InfoNCE
(``cl_loss`` 0.01, temperature 0.2), MMRec's values being the defaults. SIGER
(:mod:`siger.models.siger`) extends this class with its three mechanisms; without them it trains
exactly as MGCN (a test checks it on a fixed seed), and SIGER's own code is not MGCN's.

Training evaluates the objective at the batch's distinct users and items only (:meth:`MGCN.loss`
via ``encode(rows)``), the contrastive term at the distinct rows of the contrastive sub-batch:
the same objective, tested against the full tables. Ranking uses the full tables (``encode()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from siger.keys import NON_NEGATIVE, POSITIVE, POSITIVE_INT, RETIRED_ANY, key
from siger.models.base import Recommender, register
from siger.models.layers import AttentionFusion, GatedProjection, SparseGraph, item_input_table, lightgcn_propagate
from siger.models.losses import bpr_loss, counted_info_nce, l2_reg


class BatchRows(NamedTuple):
    """The rows a training batch reads: distinct ``users`` ``[U]``, distinct ``items`` ``[I]``
    (positives and negatives) and R_hat's rows for those users (a ``SparseGraph`` ``[U, n_i]``,
    or None where only the noise parts of views are computed at the rows)."""

    users: torch.Tensor
    items: torch.Tensor
    r_hat: SparseGraph | None



class ContrastiveRows(NamedTuple):
    """The rows the in-batch contrastive terms read: ``sel`` ``[C]``, positions in the batch's
    compact tables (the ``k`` distinct users of the contrastive sub-batch, then its distinct
    positive items), ``counts_u`` ``[k]`` / ``counts_p`` ``[C - k]`` how often each occurs there,
    and ``rows`` (:class:`BatchRows` of their ids, without R_hat's rows)."""

    sel: torch.Tensor
    k: int
    counts_u: torch.Tensor
    counts_p: torch.Tensor
    rows: BatchRows

    def nce(self, x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
        """In-batch InfoNCE(x, y) over the sub-batch's users plus over its positive items, each
        distinct row once with its multiplicity (``info_nce_rows``' identity); x, y ``[C, d]``."""
        k = self.k
        return counted_info_nce(x[:k], y[:k], self.counts_u, tau) + counted_info_nce(x[k:], y[k:], self.counts_p, tau)


@register
class MGCN(Recommender):
    """MGCN on any number (>= 1) of modalities, given as raw features or as provided graphs."""

    name = "MGCN"

    @dataclass
    class Config:
        embedding_dim: int = key(64, POSITIVE_INT)  # d, the width of every representation
        n_ui_layers: int = key(2, NON_NEGATIVE)  # L_b, behaviour LightGCN layers
        n_mm_layers: int = key(1, NON_NEGATIVE)  # L_s, semantic graph layers (last layer kept)
        knn_k: int = key(10, POSITIVE_INT)  # neighbours per item in S^m
        # normalisation of S^m (ignored for provided graphs: already normalised)
        knn_norm: str = key("sym", choices=("sym", "rw", "none"))
        knn_backend: str = key("exact", choices=("exact", "faiss"))  # faiss: faiss-cpu IndexFlatIP, same neighbours
        finetune_features: bool = True  # raw features are trainable, as in MGCN's MMRec code
        graph_only_dim: int = key(64, POSITIVE_INT)  # learnable item input dim for graph-only modalities
        detach_align: bool = False  # extension (not in MGCN): no L_align gradient into H^b
        tau_c: float = key(0.2, POSITIVE)  # temperature of the behaviour<->fused InfoNCE (MMRec MGCN)
        reg_weight: float = key(1e-4, NON_NEGATIVE)  # L2 on the batch's final embeddings (MMRec MGCN.yaml reg_weight)
        lambda_c: float = key(0.01, NON_NEGATIVE)  # weight of the behaviour<->fused InfoNCE (MMRec MGCN.yaml cl_loss)
        # extension: the contrastive terms read only the first cl_batch interactions of each
        # (shuffled) batch; 0 = the whole batch (MMRec's MGCN)
        cl_batch: int = key(0, NON_NEGATIVE)

        # Keys MGCN's config carried until 2026-12-02, when MGCN was SIGER with its mechanisms
        # switched off: configs saved then (run folders, tuner trials) still load. A key mapped
        # to a value must hold that value (what switched the mechanism off); a key mapped to
        # RETIRED_ANY only tuned a switched-off mechanism. Loading drops them with a warning.
        RETIRED: ClassVar[dict[str, object]] = {
            "beta": 0.0, "beta_learn": False, "infuse_at": "graph", "lambda_p": 0.0, "lambda_a": 0.0,
            **dict.fromkeys(("cooc_k", "cooc_weight", "cooc_norm", "perturb_mode", "perturb_target",
                             "perturb_at", "eps", "tau_p", "anchor_mode", "detach_anchor", "tau_a"),
                            RETIRED_ANY),
        }

    def __init__(self, data, config, graphs, device="cpu"):
        super().__init__(data, config, graphs, device)
        c = config
        self.modalities = self.require_modalities(data)
        d = c.embedding_dim
        self.user_emb = nn.Parameter(torch.empty(self.n_users, d))
        self.item_emb = nn.Parameter(torch.empty(self.n_items, d))
        self.adj = SparseGraph(graphs.ui_adjacency(), device, symmetric=True)  # [N, N]
        self.r_hat = SparseGraph(graphs.bipartite(), device, symmetric=False)  # [n_u, n_i]
        self.item_inputs = nn.ParameterDict()
        self.projections = nn.ModuleDict()
        self.item_graphs: dict[str, SparseGraph] = {}
        self.prepare_graphs(data, graphs)
        for m in self.modalities:
            self.item_inputs[m] = item_input_table(data, m, c.finetune_features, c.graph_only_dim)
            self.projections[m] = GatedProjection(self.item_inputs[m].shape[1], d)
            self.item_graphs[m] = SparseGraph(self.item_graph(m, data, graphs), device)
        self.fusion = AttentionFusion(d, len(self.modalities))
        nn.init.xavier_uniform_(self.user_emb)
        nn.init.xavier_uniform_(self.item_emb)
        self.to(self.device_)

    # -- graphs (hooks SIGER extends) -----------------------------------------------------------
    def prepare_graphs(self, data, graphs) -> None:
        """What the item graphs of every modality share (nothing for MGCN)."""

    def item_graph(self, m: str, data, graphs) -> sp.csr_matrix:
        """S^m ``[n_i, n_i]``: modality m's normalised kNN item graph (frozen)."""
        c = self.config
        return graphs.knn(m, c.knn_k, c.knn_norm, c.knn_backend)

    # -- encoders ---------------------------------------------------------------------------
    # -- encoders ---------------------------------------------------------------------------
    def behaviour(self) -> torch.Tensor:
        """H^b ``[n_u + n_i, d]``."""
        return lightgcn_propagate(self.adj, torch.cat([self.user_emb, self.item_emb]), self.config.n_ui_layers)

    def propagate(self, m: str, h: torch.Tensor) -> torch.Tensor:
        """S^m h ``[n_i, d]`` -> ``[n_i, d]``."""
        return self.item_graphs[m] @ h

    def item_input(self, m: str) -> torch.Tensor:
        """x^m ``[n_i, d]``: behaviour-gated projection of modality m's item input."""
        return self.projections[m](self.item_inputs[m], self.item_emb)

    def semantic(self, m: str, x: torch.Tensor, rows: BatchRows | None = None,
                 sx: torch.Tensor | None = None) -> torch.Tensor:
        """H^m ``[n_u + n_i, d]``: items propagate on the item graph, users aggregate through R_hat.

        With ``rows`` (:class:`BatchRows`) only those rows are returned, ``[U + I, d]`` (users
        first): the item propagation still covers every item (users aggregate over all of them),
        and only the chosen users are aggregated, via their rows of R_hat. ``sx`` ``[n_i, d]``:
        the first propagation of ``x`` if already computed; ``x`` is then not read.
        """
        h_i = x
        for layer in range(self.config.n_mm_layers):
            h_i = sx if layer == 0 and sx is not None else self.propagate(m, h_i)
        if rows is None:
            return torch.cat([self.r_hat @ h_i, h_i])
        return torch.cat([rows.r_hat @ h_i, h_i[rows.items]])

    def batch_rows(self, users: torch.Tensor, items: torch.Tensor, aggregate: bool = True) -> BatchRows:
        """The :class:`BatchRows` of distinct ``users`` ``[U]`` and ``items`` ``[I]`` (R_hat's rows
        for them only with ``aggregate``: the views' noise parts aggregate every user and do not
        read them)."""
        return BatchRows(users, items, self.r_hat.rows(users) if aggregate else None)

    def encode(self, rows: BatchRows | None = None) -> dict[str, object]:
        """Clean representations: "hb", "hm" (per m), "hs", "h", all ``[n_u + n_i, d]``; the item
        inputs "x" and their first propagations "sx" (S~^m x^m, per m) ``[n_i, d]``.

        With ``rows`` (:class:`BatchRows`, what the training loss reads) the ``[n_u + n_i, d]``
        entries are only those rows, ``[U + I, d]`` (users first), equal to the full tables' rows:
        the user aggregation R_hat H_I^m, LightGCN's last layer and the row-wise fusion are then
        not computed outside the batch.
        """
        nodes = None if rows is None else torch.cat([rows.users, rows.items + self.n_users])
        hb = lightgcn_propagate(self.adj, torch.cat([self.user_emb, self.item_emb]), self.config.n_ui_layers,
                                rows=nodes)
        xs = {m: self.item_input(m) for m in self.modalities}
        sx = {m: self.propagate(m, xs[m]) for m in self.modalities} if self.config.n_mm_layers else {}
        hm = {m: self.semantic(m, xs[m], rows=rows, sx=sx.get(m)) for m in self.modalities}
        hs = self.fusion([hm[m] for m in self.modalities], hb)
        return {"hb": hb, "x": xs, "sx": sx, "hm": hm, "hs": hs, "h": hb + hs}

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encode()["h"]
        return h[: self.n_users], h[self.n_users :]

    @torch.no_grad()
    def embed_new_items(self, features, data, graphs) -> torch.Tensor:
        """New items placed by the model's own equations, given a graph row each (see
        :mod:`siger.models.newitems`): per modality, the item's kNN row over the trained items
        (``knn_k - 1`` neighbours plus itself), normalised as the trained graph is; no
        co-occurrence row exists for it, so its row is the semantic one (the infusion share has
        nothing to blend). Its missing ID embedding e and behaviour representation H^b are the
        neighbour aggregates ``agg @ E`` and ``agg @ H^b``. Then x = e * gate(f), the semantic
        propagation over ``n_mm_layers``, the fusion with H^b, and H = H^b + H^s. ``[n_new, d]``."""
        from siger.models.newitems import normalised_row, placement_rows, propagate_beside, spmm

        c = self.config
        with self.evaluating():
            rows = placement_rows(features, data, self.modalities, c.knn_k)
            z = self.encode()
            e_new = spmm(rows.agg, self.item_emb)
            hb_new = spmm(rows.agg, z["hb"][self.n_users:])
            hm_new = []
            for m in self.modalities:
                f = torch.as_tensor(np.asarray(features[m], np.float32), device=self.item_emb.device)
                deg = np.asarray(graphs.knn(m, c.knn_k, "none", c.knn_backend).sum(axis=1)).ravel()
                off, diag = normalised_row(rows.knn[m], deg, c.knn_norm)
                hm_new.append(propagate_beside(off, diag, z["x"][m], self.projections[m](f, e_new), c.n_mm_layers,
                                               lambda h, m=m: self.propagate(m, h)))
            return hb_new + self.fusion(hm_new, hb_new)


    def fold_in(self, data):
        """New users from their histories (:mod:`siger.models.newusers`): the behaviour part as
        LightGCN folds a user in, each modality's semantic part the user aggregation R_hat H_I^m
        of the trained item tables, then the fusion, as for a trained user: H = H^b + H^s."""
        from siger.models.newusers import LightGCNFoldIn, item_degrees

        with self.evaluating(), torch.no_grad():
            z = self.encode()
            items = {m: z["hm"][m][self.n_users:] for m in self.modalities}
            lg = LightGCNFoldIn.build(self.adj, self.user_emb, self.item_emb, self.config.n_ui_layers,
                                      item_degrees(data.train_matrix))

        @torch.no_grad()
        def users(history, free=None):
            hb = lg(history, free)
            return hb + self.fusion([lg.aggregate(history, items[m]) for m in self.modalities], hb)

        return users

    # -- training objective -----------------------------------------------------------------
    def contrastive_weights(self) -> dict[str, float]:
        """The weight of each contrastive term (a term with weight 0 is not computed)."""
        return {"align": self.config.lambda_c}

    def contrastive_terms(self, z: dict[str, object], cl: ContrastiveRows) -> dict[str, torch.Tensor]:
        """The weighted contrastive terms at the rows ``cl`` (:class:`ContrastiveRows`): MGCN's
        behaviour<->fused InfoNCE, L_align = InfoNCE(H^s, H^b) over users and positive items."""
        c = self.config
        if c.lambda_c <= 0:
            return {}
        hb = z["hb"][cl.sel]
        return {"align": c.lambda_c * cl.nce(z["hs"][cl.sel], hb.detach() if c.detach_align else hb, c.tau_c)}

    def loss(self, users, pos, neg):
        c = self.config
        # Work on the batch's distinct rows only: compact tables [U + I, d] with users first.
        uu, users_c = torch.unique(users, return_inverse=True)
        ii, items_c = torch.unique(torch.cat([pos, neg]), return_inverse=True)
        nb = len(uu)
        pos_n, neg_n = items_c[: len(pos)] + nb, items_c[len(pos):] + nb
        z = self.encode(self.batch_rows(uu, ii))
        h = z["h"]
        u, p, q = h[users_c], h[pos_n], h[neg_n]
        out = {"bpr": bpr_loss(u, p, q), "reg": c.reg_weight * l2_reg(u, p, q)}
        if not any(w > 0 for w in self.contrastive_weights().values()):
            return out
        if c.cl_batch > 0:  # contrastive sub-batch: the batch is in random order, so its head is a random subset
            users_c, pos_n = users_c[: c.cl_batch], pos_n[: c.cl_batch]
        # The contrastive terms are in-batch InfoNCEs over these users and positive items: each
        # distinct row once with its multiplicity, so every table is needed only at those rows.
        sel_u, cnt_u = torch.unique(users_c, return_counts=True)
        sel_p, cnt_p = torch.unique(pos_n, return_counts=True)
        cl = ContrastiveRows(torch.cat([sel_u, sel_p]), len(sel_u), cnt_u, cnt_p,
                             self.batch_rows(uu[sel_u], ii[sel_p - nb], aggregate=False))
        out.update(self.contrastive_terms(z, cl))
        return out
