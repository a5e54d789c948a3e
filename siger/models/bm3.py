"""BM3 (Zhou et al., WWW 2023: bootstrap latent representations for multimodal recommendation),
as in MMRec.

No negative sampling: for each batch (user, positive item) the online view (a shared linear
predictor over LightGCN embeddings + item ID embeddings, and over projected modality features)
is pulled towards a dropout-perturbed, stop-gradient target view by cosine losses:
L = (1 - cos(p(u), i~)) + (1 - cos(p(i), u~)) + reg_weight * (||U|| + ||I||) / n_items
  + cl_weight * sum_m [(1 - cos(p(f^m_i), i~)) + (1 - cos(p(f^m_i), f~^m_i))],
means over the batch, ||.|| the Frobenius norm (MMRec's EmbLoss). Scores: <p(u), p(i)>.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from siger.keys import NON_NEGATIVE, POSITIVE_INT, UNIT_OPEN_TOP, key
from siger.models.base import Recommender, register
from siger.models.layers import (
    SparseGraph,
    frozen_inputs,
    id_embeddings,
    lightgcn_propagate,
    linear_maps,
)
from siger.models.losses import emb_norm_loss


def _cos_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - mean_n cos(a_n, b_n); ``[B, d]`` each -> scalar."""
    return 1.0 - F.cosine_similarity(a, b, dim=-1).mean()


@register
class BM3(Recommender):
    name = "BM3"

    @dataclass
    class Config:
        embedding_dim: int = key(64, POSITIVE_INT)
        feat_embed_dim: int = key(64, POSITIVE_INT)
        n_layers: int = key(1, NON_NEGATIVE)
        dropout: float = key(0.5, UNIT_OPEN_TOP)  # target-view dropout
        reg_weight: float = key(0.1, NON_NEGATIVE)
        cl_weight: float = key(2.0, NON_NEGATIVE)
        graph_only_dim: int = key(64, POSITIVE_INT)

    def __init__(self, data, config, graphs, device="cpu"):
        super().__init__(data, config, graphs, device)
        c = config
        if c.feat_embed_dim != c.embedding_dim:
            raise ValueError("BM3 shares one predictor: feat_embed_dim must equal embedding_dim")
        self.modalities = data.modalities
        d = c.embedding_dim
        self.user_emb, self.item_emb = id_embeddings(self.n_users, self.n_items, d)
        self.predictor = nn.Linear(d, d)
        nn.init.xavier_normal_(self.predictor.weight)
        self.item_inputs = frozen_inputs(data, self.modalities, c.graph_only_dim)
        self.trs = linear_maps(self.item_inputs, d)
        self.adj = SparseGraph(graphs.ui_adjacency(), device, symmetric=True)
        self.to(self.device_)

    def encode(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Online (pre-predictor) embeddings ``[n_u, d]``, ``[n_i, d]``."""
        out = lightgcn_propagate(self.adj, torch.cat([self.user_emb, self.item_emb]), self.config.n_layers)
        return out[: self.n_users], out[self.n_users :] + self.item_emb

    def forward(self):
        u, i = self.encode()
        return self.predictor(u), self.predictor(i)

    def fold_in(self, data):
        """A new user's representation: the predictor over BM3's online LightGCN user, folded in
        from the history (:mod:`siger.models.newusers`)."""
        from siger.models.newusers import LightGCNFoldIn, item_degrees

        lg = LightGCNFoldIn.build(self.adj, self.user_emb, self.item_emb, self.config.n_layers,
                                  item_degrees(data.train_matrix))

        @torch.no_grad()
        def users(history, free=None):
            return self.predictor(lg(history, free))

        return users

    def loss(self, users, pos, neg):
        c = self.config
        u_all, i_all = self.encode()
        with torch.no_grad():
            u_t = F.dropout(u_all[users], c.dropout)
            i_t = F.dropout(i_all[pos], c.dropout)
        u_on, i_on = self.predictor(u_all[users]), self.predictor(i_all[pos])
        out = {
            "bootstrap": _cos_loss(u_on, i_t) + _cos_loss(i_on, u_t),
            "reg": c.reg_weight * emb_norm_loss(u_all, i_all),
        }
        if self.modalities:
            cl = u_all.new_zeros(())
            for m in self.modalities:
                f = self.trs[m](self.item_inputs[m][pos])  # [B, d]
                with torch.no_grad():
                    f_t = F.dropout(f, c.dropout)
                f_on = self.predictor(f)
                cl = cl + _cos_loss(f_on, i_t) + _cos_loss(f_on, f_t)
            out["cl"] = c.cl_weight * cl
        return out
