"""DRAGON (Zhou et al., "Enhancing Dyadic Relations with Homogeneous Graphs for Multimodal
Recommendation", ECAI 2023), as in the authors' code (hongyurain/DRAGON, the same file in MMRec).

Heterogeneous part, per modality m (M modalities):

1. x^m = normalise_rows([P^m ; MLP^m(f^m)]) ``[n_u + n_i, d]``: the users' free preference table
   P^m and the items' frozen features through Linear(f, 4d) -> leaky ReLU -> Linear(4d, d).
2. H^m = x^m + A x^m + A^2 x^m with A = D^-1/2 [[0, R], [R^T, 0]] D^-1/2 (no self loops).

Homogeneous part:

3. Items: h_i = [H^1_i, ..., H^M_i] (concatenated, ``[n_i, M d]``), then h_i + S^L h_i, S = the
   modalities' frozen binary kNN graphs (weight 1 per neighbour, D^-1/2 A D^-1/2) mixed with weight ``mm_image_weight`` for the image modality and
   the rest shared equally by the others (the authors' two modalities: image 0.1, text 0.9);
   L = ``n_mm_layers``.
4. Users: u = [w_u1 H^1_u, ..., w_uM H^M_u] with a learned weight per user and modality (softmax-
   initialised; one modality: no weight), then u + sum_v g_uv u_v over the user's ``user_k`` most
   co-occurring users (most shared train items), g_u = softmax of those counts. A user with fewer
   neighbours than ``user_k`` has its list padded, every epoch, by neighbours drawn again at random
   (the authors' ``topk_sample``; ``pad_user_graph``), which weights the drawn ones more.

Loss: -mean log2 sigmoid(s_pos - s_neg) (the authors' base-2 BPR) + ``reg_weight`` * (sum_m
mean(P^m[users]^2) + mean(w^2)). Scores: u . h_i over the M d columns.

Unlike the authors' code, the user graph is built by our graph builder from the train interactions
(no ``user_graph_dict.npy`` to make first), sparse and in row blocks, and applied as a sparse
product; the padding multiplicities
are a buffer, so a saved model is evaluated with the graph it was trained with. Not ported (dead in
the authors' code): the dropped-edge indices it builds but never uses, ``weight_i``, ``MLP_user``,
``MLP_v/t``, the unused ``result_embed`` parameter.
Defaults: the authors' (lr 1e-4 and reg 1e-3 for Baby and Sports, k 10, user_k 40, image 0.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from siger.data.graphs import binary_knn_sym
from siger.keys import NON_NEGATIVE, POSITIVE_INT, UNIT, key
from siger.models.base import Recommender, register
from siger.models.layers import SparseGraph, frozen_inputs
from siger.models.losses import bpr_loss


def mixing_weights(modalities: list[str], image_weight: float) -> dict[str, float]:
    """Each modality's share of the item graph: the image modality ``image_weight`` and the others
    an equal share of the rest when there are others; one modality takes everything."""
    if len(modalities) == 1:
        return {modalities[0]: 1.0}
    if "image" not in modalities:
        return {m: 1.0 / len(modalities) for m in modalities}
    rest = (1.0 - image_weight) / (len(modalities) - 1)
    return {m: image_weight if m == "image" else rest for m in modalities}


def padded_multiplicity(indptr: torch.Tensor, k: int, pad: bool) -> torch.Tensor:
    """How often each stored neighbour appears in its user's list of ``k`` ``[nnz]``: once, plus
    the times it is drawn (uniformly, with replacement, from torch's global generator) to pad a
    list shorter than ``k``; empty lists stay empty."""
    counts = indptr[1:] - indptr[:-1]
    mult = torch.ones(int(indptr[-1]), dtype=torch.float32)
    if not pad:
        return mult
    short = torch.nonzero((counts > 0) & (counts < k)).squeeze(1)
    if len(short) == 0:
        return mult
    need = k - counts[short]
    owner = torch.repeat_interleave(short, need)
    draw = (torch.rand(len(owner)) * counts[owner]).long().clamp_max(counts[owner] - 1)
    return mult.index_add(0, indptr[owner] + draw, torch.ones(len(owner)))


def user_graph_weights(indptr: torch.Tensor, counts: torch.Tensor, mult: torch.Tensor) -> torch.Tensor:
    """Softmax of each user's neighbour counts over its list, a neighbour listed ``mult`` times
    weighing ``mult`` times (``[nnz]``; each non-empty row sums to 1)."""
    n = len(indptr) - 1
    row = torch.repeat_interleave(torch.arange(n), indptr[1:] - indptr[:-1])
    top = torch.full((n,), -math.inf).scatter_reduce(0, row, counts, "amax")
    e = mult * torch.exp(counts - top[row])
    return e / torch.zeros(n).index_add(0, row, e)[row]


class ModalityEncoder(nn.Module):
    """Step 1-2 for one modality: ``P`` ``[n_u, d]`` and the item MLP, ``H = x + A x + A^2 x``."""

    def __init__(self, n_users: int, feat_dim: int, dim: int):
        super().__init__()
        self.preference = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, dim)))
        self.mlp = nn.Sequential(nn.Linear(feat_dim, 4 * dim), nn.LeakyReLU(), nn.Linear(4 * dim, dim))

    def forward(self, adj: SparseGraph, features: torch.Tensor) -> torch.Tensor:
        """``features`` ``[n_i, f]`` -> H ``[n_u + n_i, d]``."""
        x = F.normalize(torch.cat([self.preference, self.mlp(features)]), dim=1)
        h1 = adj @ x
        return x + h1 + adj @ h1


@register
class DRAGON(Recommender):
    """DRAGON on any number (>= 1) of modalities; a graph-only modality has a learnable input."""

    name = "DRAGON"
    TRAIN_DEFAULTS = {"learning_rate": 1e-4}

    @dataclass
    class Config:
        embedding_dim: int = key(64, POSITIVE_INT)  # d per modality (authors' dim_latent); scores use M d
        n_mm_layers: int = key(1, NON_NEGATIVE)  # item-graph propagations of the concatenated items
        knn_k: int = key(10, POSITIVE_INT)  # neighbours per item in each modality's kNN graph
        mm_image_weight: float = key(0.1, UNIT)  # the image modality's share of the item graph
        user_k: int = key(40, POSITIVE_INT)  # co-occurring users each user aggregates (authors' k)
        pad_user_graph: bool = True  # pad shorter lists by random repeats each epoch (authors' code)
        reg_weight: float = key(1e-3, NON_NEGATIVE)  # on the batch users' P^m and the modality weights
        graph_only_dim: int = key(64, POSITIVE_INT)  # learnable item input dim for graph-only modalities

    def __init__(self, data, config, graphs, device="cpu"):
        super().__init__(data, config, graphs, device)
        c = config
        self.modalities = self.require_modalities(data)
        self.adj = SparseGraph(graphs.ui_adjacency(), device, symmetric=True)
        share = mixing_weights(self.modalities, c.mm_image_weight)
        self.item_graph = SparseGraph(sum(share[m] * binary_knn_sym(self.knn_neighbours(m, data, graphs))
                                          for m in self.modalities), device)
        self.item_inputs = frozen_inputs(data, self.modalities, c.graph_only_dim)
        self.encoders = nn.ModuleDict({m: ModalityEncoder(self.n_users, self.item_inputs[m].shape[1], c.embedding_dim)
                                       for m in self.modalities})
        m = len(self.modalities)
        self.modal_weight = (nn.Parameter(torch.softmax(nn.init.xavier_normal_(torch.empty(self.n_users, m, 1)), dim=1))
                             if m > 1 else None)
        ug = graphs.user_cooccurrence(c.user_k)
        self._ug = ug  # counts [n_u, n_u], at most user_k per row
        self._ug_indptr = torch.from_numpy(ug.indptr.astype(np.int64))
        self._ug_counts = torch.from_numpy(ug.data.astype(np.float32))
        # how often each neighbour is listed (padding); saved with the model
        self.register_buffer("user_mult", padded_multiplicity(self._ug_indptr, c.user_k, c.pad_user_graph))
        self._ug_graph: SparseGraph | None = None
        self.to(self.device_)

    def knn_neighbours(self, m: str, data, graphs) -> sp.csr_matrix:
        """Modality m's kNN neighbours (built from features, or the dataset's provided graph)."""
        k = self.config.knn_k
        return graphs.knn(m, k, "none") if m in data.features else graphs.knn(m, k)

    def pre_epoch(self) -> None:
        """The authors' ``topk_sample``: the padding of short neighbour lists is drawn again."""
        self.user_mult.copy_(padded_multiplicity(self._ug_indptr, self.config.user_k, self.config.pad_user_graph))
        self._ug_graph = None

    def user_graph(self) -> SparseGraph:
        """G ``[n_u, n_u]``: each user's softmax weights over its (padded) neighbour list; fixed
        within an epoch (no gradient into it)."""
        if self._ug_graph is None:
            w = user_graph_weights(self._ug_indptr, self._ug_counts, self.user_mult.cpu()).numpy()
            g = sp.csr_matrix((w, self._ug.indices, self._ug.indptr), shape=self._ug.shape)
            self._ug_graph = SparseGraph(g, self.device_, symmetric=False)
        return self._ug_graph

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._ug_graph = None  # a loaded multiplicity: rebuild the weights

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Users ``[n_u, M d]``, items ``[n_i, M d]``."""
        hs = [self.encoders[m](self.adj, self.item_inputs[m]) for m in self.modalities]
        users = [h[: self.n_users] for h in hs]
        if self.modal_weight is not None:
            users = [self.modal_weight[:, j] * u for j, u in enumerate(users)]
        u = torch.cat(users, dim=1)
        i = torch.cat([h[self.n_users:] for h in hs], dim=1)
        h = i
        for _ in range(self.config.n_mm_layers):
            h = self.item_graph @ h
        u = u + self.user_graph() @ u
        return u, i + h

    def loss(self, users, pos, neg):
        u, i = self.forward()
        bpr = bpr_loss(u[users], i[pos], i[neg]) / math.log(2.0)  # the authors' log2
        reg = sum(self.encoders[m].preference[users].pow(2).mean() for m in self.modalities)
        if self.modal_weight is not None:
            reg = reg + self.modal_weight.pow(2).mean()
        return {"bpr": bpr, "reg": self.config.reg_weight * reg}

    @torch.no_grad()
    def embed_new_items(self, features, data, graphs) -> torch.Tensor:
        """New items by DRAGON's own equations (see :mod:`siger.models.newitems`): an item's
        representation comes from its features (x^m = normalise(MLP^m(f^m))); with no
        interaction its user-item hops add nothing, so H^m = x^m; its item-graph row per modality
        is its ``knn_k - 1`` nearest trained items plus itself, weight 1 each, normalised by the
        degrees (its own and theirs) as the trained binary graph is, the modalities mixed by
        their shares; then h + S^L h. ``[n_new, M d]``."""
        from siger.models.newitems import normalised_row, placement_rows, propagate_beside

        c = self.config
        with self.evaluating():
            rows = placement_rows(features, data, self.modalities, c.knn_k)
            i_known = torch.cat([self.encoders[m](self.adj, self.item_inputs[m])[self.n_users:]
                                 for m in self.modalities], dim=1)
            i_new = torch.cat([F.normalize(self.encoders[m].mlp(torch.as_tensor(np.asarray(features[m], np.float32),
                                                                                 device=i_known.device)), dim=1)
                               for m in self.modalities], dim=1)
            share = mixing_weights(self.modalities, c.mm_image_weight)
            off, diag = None, 0.0
            for m in self.modalities:
                b = rows.knn[m].copy()
                b.data[:] = 1.0
                deg = self.knn_neighbours(m, data, graphs).getnnz(axis=1).astype(np.float64)  # binary degrees
                o, d = normalised_row(b, deg, "sym")
                off = share[m] * o if off is None else off + share[m] * o
                diag = diag + share[m] * d
            return i_new + propagate_beside(off, diag, i_known, i_new, c.n_mm_layers, self.item_graph)

    def summary(self) -> dict[str, object]:
        counts = self._ug_indptr.diff()
        return {"item_graph_shares": mixing_weights(self.modalities, self.config.mm_image_weight),
                "user_graph": {"users_without_neighbours": int((counts == 0).sum()),
                               "users_padded": int(((counts > 0) & (counts < self.config.user_k)).sum())}}

    def fold_in(self, data):
        from siger.models.newusers import NewUsersUnsupported

        raise NewUsersUnsupported("DRAGON cannot fold in a new user: its users are free preference vectors per "
                                  "modality, learned modality weights and the representations of the users they "
                                  "co-occur with; a history gives none of them")
