"""SMORE (Ong and Khong, "Spectrum-based Modality Representation Fusion Graph Convolutional
Network for Multimodal Recommendation", WSDM 2025), as in the authors' code (kennethorq/SMORE,
``src/models/smore.py``; the same file in MMRec).

1. Spectral fusion: per modality m, f^m = W^m x^m + b^m ``[n_i, d]`` from the (trainable) item
   features; F^m = rfft(f^m) along the embedding axis (orthonormal). Uni-modal denoising
   c^m = irfft(F^m * K^m) and cross-modal fusion c^f = irfft(prod_m F^m * K^f), with learnable
   complex filters K ``[d // 2 + 1]``.
2. Gated item views: e^m = E_i * sigmoid(G^m c^m + g^m) and e^f = E_i * sigmoid(G^f c^f + g^f).
3. Behaviour view: LightGCN on D^-1/2 A D^-1/2, mean of layers 0..``n_ui_layers``: H^b.
4. Item-item views: h^m = (S^m)^L e^m on the modality's frozen kNN graph (sym-normalised), and
   h^f = (S^f)^L e^f on the fusion graph S^f = the entry-wise maximum of the S^m (max-pooling over
   their union); users aggregate items through D_u^-1/2 R D_i^-1/2. L = ``n_layers``.
5. Modality-aware preferences: a^m = softmax_d(Q^m(h^f)) * h^m (Q^m: Linear, tanh, Linear, the
   softmax over the embedding axis), gated by p^m = dropout(sigmoid(P^m H^b)), the fusion view by
   p^f; H^s = mean(p^1 a^1, ..., p^M a^M, p^f h^f); H = H^b + H^s.
6. Loss: BPR + ``reg_weight`` * 1/2 (||u||^2 + ||i+||^2 + ||i-||^2) / B on H, plus ``cl_weight``
   * (InfoNCE(H^s_i, H^b_i) over the batch's positives + InfoNCE(H^s_u, H^b_u) over its users), at
   ``temperature``.

For M modalities (theirs: image and text): one filter, gate, query and preference gate per
modality; the fusion spectrum is the product of all M; one modality fuses with itself only through
its own filter K^f (its fusion graph is its graph). A graph-only modality (Amazon Baby here) gets a
learnable item table in place of features. Defaults: the authors' Baby row (4 behaviour layers, 1
item-graph layer, cl 0.01, reg 1e-4, dropout 0.1, lr 1e-3 decaying 0.96 per 50 epochs) with k = 10
for every modality (their Baby row uses 40 for images and 15 for text; Baby here ships k = 10 graphs
only; their Sports row uses 10 and 10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from siger.keys import NON_NEGATIVE, POSITIVE, POSITIVE_INT, UNIT, key
from siger.models.base import Recommender, register
from siger.models.layers import SparseGraph, id_embeddings, item_input_table, lightgcn_propagate
from siger.models.losses import bpr_loss, info_nce, l2_reg


def max_pool_graphs(graphs: list[sp.spmatrix]) -> sp.csr_matrix:
    """The entry-wise maximum of sparse matrices over the union of their stored entries (SMORE's
    fusion graph): an entry stored in one matrix only keeps its value, even a negative one (the
    authors fill the missing entries with -inf, not 0)."""
    coo = [sp.coo_matrix(g) for g in graphs]
    shape = coo[0].shape
    row = np.concatenate([c.row for c in coo]).astype(np.int64)
    col = np.concatenate([c.col for c in coo]).astype(np.int64)
    val = np.concatenate([c.data for c in coo]).astype(np.float32)
    key = row * shape[1] + col
    order = np.lexsort((-val, key))  # each entry's largest value first
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    keep = order[first]
    return sp.csr_matrix((val[keep], (row[keep], col[keep])), shape=shape)


class SpectralFusion(nn.Module):
    """Step 1: per-modality denoising filters and one cross-modal fusion filter in the frequency
    domain of the embedding axis. ``[n, d]`` per modality -> (list of ``[n, d]``, ``[n, d]``)."""

    def __init__(self, dim: int, n_modalities: int):
        super().__init__()
        self.dim = dim
        self.filters = nn.ParameterList(nn.Parameter(torch.randn(1, dim // 2 + 1, 2)) for _ in range(n_modalities))
        self.fusion_filter = nn.Parameter(torch.randn(1, dim // 2 + 1, 2))

    def forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        spectra = [torch.fft.rfft(f, dim=1, norm="ortho") for f in feats]
        conv = [torch.fft.irfft(s * torch.view_as_complex(k), n=self.dim, dim=1, norm="ortho")
                for s, k in zip(spectra, self.filters)]
        prod = spectra[0]
        for s in spectra[1:]:
            prod = prod * s
        fused = torch.fft.irfft(prod * torch.view_as_complex(self.fusion_filter), n=self.dim, dim=1, norm="ortho")
        return conv, fused


def gate(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.Sigmoid())


@register
class SMORE(Recommender):
    """SMORE on any number (>= 1) of modalities."""

    name = "SMORE"
    TRAIN_DEFAULTS = {"learning_rate": 1e-3, "lr_decay": 0.96, "lr_decay_epochs": 50}

    @dataclass
    class Config:
        embedding_dim: int = key(64, POSITIVE_INT)  # d
        n_ui_layers: int = key(4, NON_NEGATIVE)  # behaviour LightGCN layers (authors' Baby: 4)
        n_layers: int = key(1, NON_NEGATIVE)  # item-graph propagations of each view
        knn_k: int = key(10, POSITIVE_INT)  # neighbours per item in every modality's kNN graph
        reg_weight: float = key(1e-4, NON_NEGATIVE)  # L2 on the batch's final embeddings
        cl_weight: float = key(0.01, NON_NEGATIVE)  # the side <-> behaviour InfoNCE (authors' cl_loss)
        temperature: float = key(0.2, POSITIVE)  # of that InfoNCE
        dropout: float = key(0.1, UNIT)  # on the preference gates (authors' dropout_rate; Baby 0.1)
        finetune_features: bool = True  # the raw features train, as in the authors' code
        graph_only_dim: int = key(64, POSITIVE_INT)  # learnable item input dim for graph-only modalities

    def __init__(self, data, config, graphs, device="cpu"):
        super().__init__(data, config, graphs, device)
        c = config
        d = c.embedding_dim
        self.modalities = self.require_modalities(data)
        self.user_emb, self.item_emb = id_embeddings(self.n_users, self.n_items, d)
        self.adj = SparseGraph(graphs.ui_adjacency(), device, symmetric=True)
        self.r_hat = SparseGraph(graphs.bipartite(), device, symmetric=False)
        knn = {m: graphs.knn(m, c.knn_k) for m in self.modalities}
        self.item_graphs = {m: SparseGraph(knn[m], device) for m in self.modalities}
        self.fusion_graph = SparseGraph(max_pool_graphs(list(knn.values())), device)
        self.item_inputs = nn.ParameterDict({m: item_input_table(data, m, c.finetune_features, c.graph_only_dim)
                                             for m in self.modalities})
        self.projections = nn.ModuleDict({m: nn.Linear(self.item_inputs[m].shape[1], d) for m in self.modalities})
        self.spectral = SpectralFusion(d, len(self.modalities))
        self.gates = nn.ModuleDict({m: gate(d) for m in self.modalities})
        self.fusion_gate = gate(d)
        self.queries = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, d, bias=False))
                                      for m in self.modalities})
        self.prefer = nn.ModuleDict({m: gate(d) for m in self.modalities})
        self.fusion_prefer = gate(d)
        self.dropout = nn.Dropout(c.dropout)
        self.to(self.device_)

    def view(self, graph: SparseGraph, e: torch.Tensor) -> torch.Tensor:
        """Step 4 for one view: ``e`` ``[n_i, d]`` -> [users; items] ``[n_u + n_i, d]``."""
        for _ in range(self.config.n_layers):
            e = graph @ e
        return torch.cat([self.r_hat @ e, e])

    def gated(self, feats: list[torch.Tensor], ids: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Steps 1-2 for items with inputs ``feats`` (per modality, ``[n, f_m]``) and ID embeddings
        ``ids`` ``[n, d]``: the gated modality items e^m and the gated fusion items e^f."""
        conv, fused = self.spectral([self.projections[m](f) for m, f in zip(self.modalities, feats)])
        return [ids * self.gates[m](cm) for m, cm in zip(self.modalities, conv)], ids * self.fusion_gate(fused)

    def item_views(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Steps 1, 2 and 4 on the item side: each modality view's items (S^m)^L e^m and the fusion
        view's (S^f)^L e^f, ``[n_i, d]`` each."""
        es, ef = self.gated([self.item_inputs[m] for m in self.modalities], self.item_emb)
        views = []
        for m, e in zip(self.modalities, es):
            for _ in range(self.config.n_layers):
                e = self.item_graphs[m] @ e
            views.append(e)
        for _ in range(self.config.n_layers):
            ef = self.fusion_graph @ ef
        return views, ef

    def side(self, hb: torch.Tensor, hms: list[torch.Tensor], hf: torch.Tensor) -> torch.Tensor:
        """Step 5: H^s from H^b, the modality views and the fusion view (rows alike, ``[N, d]``)."""
        parts = [self.dropout(self.prefer[m](hb)) * torch.softmax(self.queries[m](hf), dim=-1) * hm
                 for m, hm in zip(self.modalities, hms)]
        parts.append(self.dropout(self.fusion_prefer(hb)) * hf)
        return torch.stack(parts).mean(dim=0)

    def encode(self) -> tuple[torch.Tensor, torch.Tensor]:
        """H^b and H^s, each ``[n_u + n_i, d]``."""
        hb = lightgcn_propagate(self.adj, torch.cat([self.user_emb, self.item_emb]), self.config.n_ui_layers)
        views, fused = self.item_views()
        hms = [torch.cat([self.r_hat @ v, v]) for v in views]
        hf = torch.cat([self.r_hat @ fused, fused])
        return hb, self.side(hb, hms, hf)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        hb, hs = self.encode()
        h = hb + hs
        return h[: self.n_users], h[self.n_users:]

    def loss(self, users, pos, neg):
        c = self.config
        hb, hs = self.encode()
        h = hb + hs
        u, p, q = h[users], h[self.n_users + pos], h[self.n_users + neg]
        cl = (info_nce(hs[self.n_users + pos], hb[self.n_users + pos], c.temperature)
              + info_nce(hs[users], hb[users], c.temperature))
        return {"bpr": bpr_loss(u, p, q), "reg": c.reg_weight * l2_reg(u, p, q), "cl": c.cl_weight * cl}

    @torch.no_grad()
    def embed_new_items(self, features, data, graphs) -> torch.Tensor:
        """New items placed by SMORE's own equations (see :mod:`siger.models.newitems`), as MGCN
        places them: per modality a kNN row over the trained items (``knn_k - 1`` neighbours plus
        itself, normalised as the trained graph), the fusion graph's row their entry-wise maximum;
        the missing ID embedding and behaviour representation are the neighbour aggregates
        ``agg @ E`` and ``agg @ H^b``; then the spectral gates from its features, the views'
        propagation, and the preference-gated mean: H = H^b + H^s. ``[n_new, d]``."""
        from siger.models.newitems import normalised_row, placement_rows, propagate_beside, spmm

        c = self.config
        with self.evaluating():
            rows = placement_rows(features, data, self.modalities, c.knn_k)
            hb = lightgcn_propagate(self.adj, torch.cat([self.user_emb, self.item_emb]), c.n_ui_layers)
            dev = self.item_emb.device
            e_new = spmm(rows.agg, self.item_emb)
            hb_new = spmm(rows.agg, hb[self.n_users:])
            new_f = [torch.as_tensor(np.asarray(features[m], np.float32), device=dev) for m in self.modalities]
            es_new, ef_new = self.gated(new_f, e_new)
            es_known, ef_known = self.gated([self.item_inputs[m] for m in self.modalities], self.item_emb)
            offs, diags, hms = [], [], []
            for m, h_new, h_known in zip(self.modalities, es_new, es_known):
                deg = np.asarray(graphs.knn(m, c.knn_k, "none").sum(axis=1)).ravel()
                off, diag = normalised_row(rows.knn[m], deg, "sym")
                offs.append(off)
                diags.append(diag)
                hms.append(propagate_beside(off, diag, h_known, h_new, c.n_layers, self.item_graphs[m]))
            f_off, f_diag = max_pool_graphs(offs), np.max(np.stack(diags), axis=0)
            hf = propagate_beside(f_off, f_diag, ef_known, ef_new, c.n_layers, self.fusion_graph)
            return hb_new + self.side(hb_new, hms, hf)

    def fold_in(self, data):
        """New users from their histories (:mod:`siger.models.newusers`): the behaviour part as
        LightGCN folds a user in, each view's user side the aggregation R_hat of the trained
        item views, then the attention and preference gates as for a trained user."""
        from siger.models.newusers import LightGCNFoldIn, item_degrees

        with self.evaluating(), torch.no_grad():
            views, fused = self.item_views()
            lg = LightGCNFoldIn.build(self.adj, self.user_emb, self.item_emb, self.config.n_ui_layers,
                                      item_degrees(data.train_matrix))

        @torch.no_grad()
        def users(history, free=None):
            hb = lg(history, free)
            return hb + self.side(hb, [lg.aggregate(history, v) for v in views], lg.aggregate(history, fused))

        return users
