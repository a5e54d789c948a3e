"""LATTICE (Zhang et al., "Mining Latent Structures for Multimedia Recommendation", ACM MM 2021).

Item-item graphs are *learned* from the modality features and kept close to the frozen kNN graphs:

1. Per modality m, the original graph O^m: the cosine kNN graph of the raw features (k = ``knn_k``,
   self included), sym-normalised (the same frozen graph MGCN and SIGER use).
2. Per modality, a projection p_i^m = W^m f_i^m + b^m of the (trainable) features; the learned
   graph's rows keep each item's ``knn_k`` most cosine-similar items under p, weighted by that
   cosine: S^m (not normalised). The modalities are mixed by softmax weights w = softmax(a):
   L = sym-normalise(sum_m w_m S^m), O = sum_m w_m O^m.
3. Item graph G = (1 - lambda) L + lambda O (``lambda_coeff``); h = G^L e (``n_layers``
   propagations of the item ID embeddings e).
4. Collaborative part: LightGCN on the random-walk normalised user-item graph with self loops,
   D^-1 (A + I), ``n_ui_layers`` layers, mean of layers 0..L.
5. Items: the collaborative item plus h / ||h||; users: the collaborative user. Loss: BPR +
   ``reg_weight`` * 1/2 (||u||^2 + ||i+||^2 + ||i-||^2) / B on those final representations.

As in the authors' code, the learned graph is rebuilt with gradient at the first batch of every
epoch (``pre_epoch``), used detached by the epoch's other batches, and rebuilt from the current
parameters for evaluation. Unlike it, nothing here is n_items x n_items: the learned graph's top-k
is found in row blocks without gradient and its weights recomputed, with gradient, at the kept
(row, column) pairs only; G is applied as (1 - lambda) L h + lambda O h, never summed.
Defaults: the authors' (lr 5e-4 decaying 0.96 per 50 epochs, reg 1e-5, lambda 0.9, k 10, one
item-graph layer, two LightGCN layers); the batch size is the protocol's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from siger.keys import NON_NEGATIVE, POSITIVE_INT, UNIT, key
from siger.models.base import Recommender, register
from siger.models.layers import SparseGraph, id_embeddings, item_input_table, lightgcn_propagate, spmm_pairs
from siger.models.losses import bpr_loss, l2_reg


def knn_pairs(x: torch.Tensor, k: int, block_bytes: int = 64 * 2**20) -> tuple[torch.Tensor, torch.Tensor]:
    """The (row, column) pairs of each row's ``k`` most cosine-similar rows of ``x`` ``[n, d]``
    (itself included), found in row blocks of at most ``block_bytes`` of scores, without
    gradient: two int64 tensors ``[n * k]``."""
    with torch.no_grad():
        xn = F.normalize(x, dim=1)
        n = xn.shape[0]
        k = min(k, n)
        block_rows = max(1, block_bytes // (4 * n))
        cols = [torch.topk(xn[s:s + block_rows] @ xn.T, k, dim=1).indices for s in range(0, n, block_rows)]
    col = torch.cat(cols).reshape(-1)
    row = torch.arange(n, device=x.device).repeat_interleave(k)
    return row, col


def sym_values(row: torch.Tensor, col: torch.Tensor, val: torch.Tensor, n: int) -> torch.Tensor:
    """D^-1/2 W D^-1/2 of a sparse W given as (row, col, val) ``[nnz]``, degrees = row sums;
    differentiable in ``val`` (a row with zero degree gives zeros)."""
    deg = torch.zeros(n, dtype=val.dtype, device=val.device).index_add(0, row, val)
    inv = torch.where(deg > 0, deg.clamp_min(1e-12).rsqrt(), torch.zeros_like(deg))
    return inv[row] * val * inv[col]


@register
class LATTICE(Recommender):
    """LATTICE on any number (>= 1) of modalities; a graph-only modality has a learnable input."""

    name = "LATTICE"
    TRAIN_DEFAULTS = {"learning_rate": 5e-4, "lr_decay": 0.96, "lr_decay_epochs": 50}

    @dataclass
    class Config:
        embedding_dim: int = key(64, POSITIVE_INT)  # d of the ID embeddings
        feat_embed_dim: int = key(64, POSITIVE_INT)  # width of the projected features the graph is learned on
        n_ui_layers: int = key(2, NON_NEGATIVE)  # LightGCN layers (authors: weight_size [64, 64])
        n_layers: int = key(1, NON_NEGATIVE)  # propagations of the item ID embeddings on the item graph
        knn_k: int = key(10, POSITIVE_INT)  # neighbours per item in the original and the learned graphs
        lambda_coeff: float = key(0.9, UNIT)  # share of the original (frozen kNN) graph in the item graph
        reg_weight: float = key(1e-5, NON_NEGATIVE)  # L2 on the batch's final embeddings (authors' decay)
        finetune_features: bool = True  # the raw features train, as in the authors' code
        graph_only_dim: int = key(64, POSITIVE_INT)  # learnable item input dim for graph-only modalities

    def __init__(self, data, config, graphs, device="cpu"):
        super().__init__(data, config, graphs, device)
        c = config
        self.modalities = self.require_modalities(data)
        self.user_emb, self.item_emb = id_embeddings(self.n_users, self.n_items, c.embedding_dim)
        self.adj = SparseGraph(graphs.ui_adjacency_rw_self(), device, symmetric=False)
        self.original = {m: SparseGraph(graphs.knn(m, c.knn_k), device) for m in self.modalities}
        self.item_inputs = nn.ParameterDict({m: item_input_table(data, m, c.finetune_features, c.graph_only_dim)
                                             for m in self.modalities})
        self.projections = nn.ModuleDict({m: nn.Linear(self.item_inputs[m].shape[1], c.feat_embed_dim)
                                          for m in self.modalities})
        self.modal_logits = nn.Parameter(torch.full((len(self.modalities),), 0.5))
        self._learned: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._rebuild = True
        self.to(self.device_)

    # -- the item graph ---------------------------------------------------------------------------
    def learned_graph(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """L as (row, col, val) ``[nnz]``: each modality's top-k cosine graph of the projected
        features, mixed by the softmax weights, sym-normalised (differentiable in the projections,
        the features and the weights)."""
        row, col, val = self.learned_pairs()
        return row, col, sym_values(row, col, val, self.n_items)

    def learned_pairs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """sum_m w_m S^m as (row, col, val) ``[nnz]``, before the normalisation."""
        w = torch.softmax(self.modal_logits, dim=0)
        rows, cols, vals = [], [], []
        for j, m in enumerate(self.modalities):
            p = F.normalize(self.projections[m](self.item_inputs[m]), dim=1)
            r, col = knn_pairs(p, self.config.knn_k)
            rows.append(r)
            cols.append(col)
            vals.append(w[j] * (p[r] * p[col]).sum(dim=1))
        return torch.cat(rows), torch.cat(cols), torch.cat(vals)

    def item_part(self, learned: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """h = G^L e ``[n_items, d]`` with G = (1 - lambda) L + lambda sum_m w_m O^m."""
        c = self.config
        w = torch.softmax(self.modal_logits, dim=0)
        h = self.item_emb
        for _ in range(c.n_layers):
            orig = sum(w[j] * (self.original[m] @ h) for j, m in enumerate(self.modalities))
            h = (1 - c.lambda_coeff) * spmm_pairs(*learned, h) + c.lambda_coeff * orig
        return h

    def pre_epoch(self) -> None:
        self._rebuild = True  # the first batch of the epoch learns the graph (the authors' schedule)

    # -- representations --------------------------------------------------------------------------
    def encode(self, learned) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_emb, self.item_emb])
        out = lightgcn_propagate(self.adj, ego, self.config.n_ui_layers)
        h = self.item_part(learned)
        return out[: self.n_users], out[self.n_users:] + F.normalize(h, dim=1)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(self.learned_graph())  # rebuilt from the current parameters

    def fold_in(self, data):
        """New users from their histories (:mod:`siger.models.newusers`): LATTICE's users are the
        LightGCN part on D^-1 (A + I), so a user's layer l + 1 is (e_u^(l) + sum_i E_i^(l)) /
        (n_u + 1) over its n_u items; layer 0 is the free vector, or its stand-in, the mean of
        the history's layer-0 item embeddings."""
        from siger.models.newusers import spmm

        with torch.no_grad():
            x = torch.cat([self.user_emb, self.item_emb]).detach()
            items = [x[self.n_users:]]
            for _ in range(self.config.n_ui_layers):
                x = self.adj @ x
                items.append(x[self.n_users:])

        @torch.no_grad()
        def users(history, free=None):
            n = torch.as_tensor(history.sum(axis=1), dtype=items[0].dtype).reshape(-1, 1)
            e = free if free is not None else spmm(history, items[0]) / n.clamp_min(1)
            layers = [e]
            for layer in range(self.config.n_ui_layers):
                e = (e + spmm(history, items[layer])) / (n + 1)
                layers.append(e)
            return torch.stack(layers).mean(dim=0)

        return users

    def loss(self, users, pos, neg):
        if self._rebuild or self._learned is None:
            learned = self.learned_graph()
            self._learned = tuple(t.detach() for t in learned)
            self._rebuild = False
        else:
            learned = self._learned
        u, i = self.encode(learned)
        u, p, q = u[users], i[pos], i[neg]
        return {"bpr": bpr_loss(u, p, q), "reg": self.config.reg_weight * l2_reg(u, p, q)}

    @torch.no_grad()
    def embed_new_items(self, features, data, graphs) -> torch.Tensor:
        """New items by LATTICE's own equations, the missing parts as MGCN's placement fills them
        (see :mod:`siger.models.newitems`): the ID embedding and the collaborative part are the
        neighbour aggregates ``agg @ E`` and ``agg @ H^cf`` over the trained items nearest in raw
        features. The item-graph rows come from the features as every item's do: per modality the
        original row (``knn_k - 1`` nearest trained items by raw-feature cosine plus itself,
        sym-normalised with its degree and theirs) and the learned row (the same under the
        projected features, cosine-weighted); the modalities mixed by w, the learned rows
        sym-normalised, G = (1 - lambda) L + lambda O; then ``n_layers`` propagations beside the
        trained items' own and the item is H^cf + h / ||h||. ``[n_new, d]``."""
        from siger.models.newitems import normalised_row, placement_rows, spmm, trained_items

        c = self.config
        with self.evaluating():
            cand = trained_items(data.train_matrix)
            rows = placement_rows(features, data, self.modalities, c.knn_k)
            dev = self.item_emb.device
            w = torch.softmax(self.modal_logits, dim=0).cpu().numpy().astype(np.float64)
            # the original graph's new rows, mixed
            o_off, o_diag = None, 0.0
            for j, m in enumerate(self.modalities):
                deg = np.asarray(graphs.knn(m, c.knn_k, "none").sum(axis=1)).ravel()
                off, diag = normalised_row(rows.knn[m], deg, "sym")
                o_off = w[j] * off if o_off is None else o_off + w[j] * off
                o_diag = o_diag + w[j] * diag
            # the learned graph's new rows: raw mixed cosine rows, sym-normalised with the trained degrees
            row, col, val = self.learned_pairs()
            deg_known = torch.zeros(self.n_items, dtype=val.dtype, device=dev).index_add(0, row, val).cpu().numpy()
            raw = None
            for j, m in enumerate(self.modalities):
                p_known = F.normalize(self.projections[m](self.item_inputs[m]), dim=1)
                p_new = F.normalize(self.projections[m](torch.as_tensor(np.asarray(features[m], np.float32),
                                                                        device=dev)), dim=1)
                g = _top_cosine_rows(p_new, p_known, cand, c.knn_k - 1)
                raw = w[j] * g if raw is None else raw + w[j] * g
            d_new = np.sum(w) + np.asarray(raw.sum(axis=1)).ravel()  # each modality's self entry is w_j * 1
            inv_known = np.divide(1.0, np.sqrt(deg_known), out=np.zeros_like(deg_known), where=deg_known > 0)
            l_off = sp.csr_matrix(sp.diags(1.0 / np.sqrt(d_new)) @ raw @ sp.diags(inv_known), dtype=np.float32)
            l_diag = (np.sum(w) / d_new).astype(np.float32)
            learned = (row, col, sym_values(row, col, val, self.n_items))

            def column(x):
                return torch.as_tensor(np.asarray(x, np.float32), device=dev).reshape(-1, 1)

            h_known, h_new = self.item_emb, spmm(rows.agg, self.item_emb)
            w_t = torch.softmax(self.modal_logits, dim=0)
            for _ in range(c.n_layers):
                h_new = ((1 - c.lambda_coeff) * (spmm(l_off, h_known) + column(l_diag) * h_new)
                         + c.lambda_coeff * (spmm(o_off, h_known) + column(o_diag) * h_new))
                orig = sum(w_t[j] * (self.original[m] @ h_known) for j, m in enumerate(self.modalities))
                h_known = (1 - c.lambda_coeff) * spmm_pairs(*learned, h_known) + c.lambda_coeff * orig
            cf = lightgcn_propagate(self.adj, torch.cat([self.user_emb, self.item_emb]), c.n_ui_layers)
            return spmm(rows.agg, cf[self.n_users:]) + F.normalize(h_new, dim=1)


def _top_cosine_rows(p_new: torch.Tensor, p_known: torch.Tensor, candidates: np.ndarray, k: int,
                     block: int = 2048) -> sp.csr_matrix:
    """The ``k`` largest cosines of each row of ``p_new`` ``[n_new, f]`` (unit rows) with the
    ``candidates`` (boolean ``[n_items]``) among ``p_known`` ``[n_items, f]`` (unit rows), as a
    CSR ``[n_new, n_items]`` of those cosines, found in row blocks."""
    cand = np.flatnonzero(candidates)
    kk = max(1, min(k, len(cand)))
    known = p_known[torch.as_tensor(cand, device=p_known.device)]
    vals, cols = [], []
    for s in range(0, p_new.shape[0], block):
        v, j = torch.topk(p_new[s:s + block] @ known.T, kk, dim=1)
        vals.append(v.cpu().numpy())
        cols.append(cand[j.cpu().numpy()])
    v, cidx = np.concatenate(vals).ravel(), np.concatenate(cols).ravel()
    r = np.repeat(np.arange(p_new.shape[0]), kk)
    return sp.csr_matrix((v.astype(np.float64), (r, cidx)), shape=(p_new.shape[0], len(candidates)))
