"""LGMRec (Guo et al., AAAI 2024: local and global graph learning), as in MMRec.

- CGE: LightGCN over the user-item graph (``n_ui_layers``).
- MGE per modality m: items f^m W^m, users the mean of their train items, then ``n_mm_layers``
  propagations on the normalised user-item graph; local = CGE + sum_m normalize(MGE^m).
- GHE per modality: ``hyper_num`` hyperedges; item memberships gumbel_softmax(f^m V^m, tau),
  user memberships gumbel_softmax(R f^m V^m, tau), dropout (1 - keep_rate); hypergraph layers
  lat = H_i^T E_items, E_items = H_i lat, E_users = H_u lat on the CGE item embeddings.
- Final = local + alpha * normalize(sum_m GHE^m); loss = BPR + cl_weight * hypergraph InfoNCE
  between modality pairs (users against all users, positive items against all items, summed
  over the batch) + reg_weight * (||u|| + ||p|| + ||n||) / B (Frobenius norms).

Generalised from MMRec's image+text code to any number of modalities (one modality: no
hypergraph contrast). At evaluation the memberships are the noise-free softmax(logits / tau)
(MMRec samples Gumbel noise at evaluation too, which makes its test metrics random).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from siger.keys import NON_NEGATIVE, POSITIVE, POSITIVE_INT, UNIT_OPEN_BOTTOM, key
from siger.models.base import Recommender, register
from siger.models.layers import SparseGraph, frozen_inputs, id_embeddings, lightgcn_propagate
from siger.models.losses import bpr_loss, emb_norm_loss, keyed_info_nce_rows


def hyper_info_nce(a: torch.Tensor, b: torch.Tensor, idx: torch.Tensor, tau: float) -> torch.Tensor:
    """-sum_n log( e^{cos(a_i, b_i)/tau} / sum_j e^{cos(a_i, b_j)/tau} ), i = idx_n, j over all rows of b.

    Shapes: a, b ``[N, d]`` (full tables), idx ``[B]`` -> scalar (a sum over the batch, as in
    MMRec; computed once per distinct index, weighted by its count).
    """
    return keyed_info_nce_rows(a, b, b, idx, tau, reduction="sum")


def hypergraph_layer(i_hyper: torch.Tensor, u_hyper: torch.Tensor, items: torch.Tensor, n_layers: int):
    """Hypergraph message passing. i_hyper ``[n_i, H]``, u_hyper ``[n_u, H]``, items ``[n_i, d]``
    -> (users ``[n_u, d]``, items ``[n_i, d]``)."""
    i_ret = items
    u_ret = None
    for _ in range(n_layers):
        lat = i_hyper.t() @ i_ret  # [H, d]
        i_ret = i_hyper @ lat
        u_ret = u_hyper @ lat
    return u_ret, i_ret


@register
class LGMRec(Recommender):
    name = "LGMRec"

    @dataclass
    class Config:
        embedding_dim: int = key(64, POSITIVE_INT)
        feat_embed_dim: int = key(64, POSITIVE_INT)
        n_ui_layers: int = key(2, NON_NEGATIVE)
        n_mm_layers: int = key(2, NON_NEGATIVE)
        n_hyper_layer: int = key(1, POSITIVE_INT)
        hyper_num: int = key(4, POSITIVE_INT)
        keep_rate: float = key(0.5, UNIT_OPEN_BOTTOM)
        alpha: float = key(0.3, NON_NEGATIVE)
        tau: float = key(0.2, POSITIVE)
        cl_weight: float = key(1e-4, NON_NEGATIVE)
        reg_weight: float = key(1e-6, NON_NEGATIVE)
        graph_only_dim: int = key(64, POSITIVE_INT)

    def __init__(self, data, config, graphs, device="cpu"):
        super().__init__(data, config, graphs, device)
        c = config
        if c.feat_embed_dim != c.embedding_dim:
            raise ValueError("LGMRec adds modality and ID embeddings: feat_embed_dim must equal embedding_dim")
        self.modalities = data.modalities
        d = c.embedding_dim
        self.user_emb, self.item_emb = id_embeddings(self.n_users, self.n_items, d)
        # raw features are frozen in LGMRec; graph-only modalities get a learnable table
        self.item_inputs = frozen_inputs(data, self.modalities, c.graph_only_dim)
        self.trs = nn.ParameterDict()
        self.hyper = nn.ParameterDict()
        for m in self.modalities:
            dim = self.item_inputs[m].shape[1]
            self.trs[m] = nn.Parameter(nn.init.xavier_uniform_(torch.empty(dim, d)))
            self.hyper[m] = nn.Parameter(nn.init.xavier_uniform_(torch.empty(dim, c.hyper_num)))
        self.adj = SparseGraph(graphs.ui_adjacency(), device, symmetric=True)
        r = data.train_matrix
        self.r = SparseGraph(r, device)  # binary [n_u, n_i]
        deg = np.asarray(r.sum(axis=1)).ravel()
        self.register_buffer("inv_deg", torch.as_tensor(1.0 / (deg + 1e-7), dtype=torch.float32)[:, None])
        self.to(self.device_)

    def _memberships(self, m: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Hyperedge memberships of items ``[n_i, H]`` and users ``[n_u, H]`` for modality m."""
        tau = self.config.tau
        i_logits = self.item_inputs[m] @ self.hyper[m]
        u_logits = self.r @ i_logits
        if self.training:
            return F.gumbel_softmax(i_logits, tau, dim=1), F.gumbel_softmax(u_logits, tau, dim=1)
        return F.softmax(i_logits / tau, dim=1), F.softmax(u_logits / tau, dim=1)

    def _mge(self, m: str) -> torch.Tensor:
        items = self.item_inputs[m] @ self.trs[m]  # [n_i, d]
        users = (self.r @ items) * self.inv_deg  # mean of the user's train items
        h = torch.cat([users, items])
        for _ in range(self.config.n_mm_layers):
            h = self.adj @ h
        return h

    def encode(self) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """Final embeddings ``[n_u + n_i, d]`` and per-modality hypergraph (users, items)."""
        c = self.config
        cge = lightgcn_propagate(self.adj, torch.cat([self.user_emb, self.item_emb]), c.n_ui_layers)
        if not self.modalities:
            return cge, {}
        local = cge + sum(F.normalize(self._mge(m), dim=-1) for m in self.modalities)
        drop = 1.0 - c.keep_rate
        ghe: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for m in self.modalities:
            ih, uh = self._memberships(m)
            ih, uh = F.dropout(ih, drop, self.training), F.dropout(uh, drop, self.training)
            ghe[m] = hypergraph_layer(ih, uh, cge[self.n_users:], c.n_hyper_layer)
        glob = sum(torch.cat(ghe[m]) for m in self.modalities)
        return local + c.alpha * F.normalize(glob, dim=-1), ghe

    def forward(self):
        h, _ = self.encode()
        return h[: self.n_users], h[self.n_users:]

    def loss(self, users, pos, neg):
        c = self.config
        h, ghe = self.encode()
        u, p, q = h[users], h[pos + self.n_users], h[neg + self.n_users]
        out = {"bpr": bpr_loss(u, p, q),
               "reg": c.reg_weight * emb_norm_loss(u, p, q)}
        ms = self.modalities
        pairs = [(ms[i], ms[j]) for i in range(len(ms)) for j in range(i + 1, len(ms))]
        if pairs and c.cl_weight > 0:
            hcl = sum(hyper_info_nce(ghe[a][0], ghe[b][0], users, c.tau)
                      + hyper_info_nce(ghe[a][1], ghe[b][1], pos, c.tau) for a, b in pairs)
            out["hcl"] = c.cl_weight * hcl
        return out
