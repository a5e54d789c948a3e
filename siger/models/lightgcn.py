"""LightGCN (He et al., SIGIR 2020), trained with BPR.

E^(l+1) = A_hat E^(l), A_hat = D^-1/2 A D^-1/2 on the user-item graph, final E = mean_l E^(l),
score(u, i) = <e_u, e_i>. Loss: BPR + reg_weight * 0.5 * ||layer-0 batch embeddings||^2 / B.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from siger.keys import NON_NEGATIVE, POSITIVE_INT, key
from siger.models.base import Recommender, register
from siger.models.layers import SparseGraph, lightgcn_propagate
from siger.models.losses import bpr_loss, l2_reg


@register
class LightGCN(Recommender):
    """LightGCN over interactions only (ignores modalities)."""

    name = "LightGCN"

    @dataclass
    class Config:
        embedding_dim: int = key(64, POSITIVE_INT)
        n_layers: int = key(2, NON_NEGATIVE)
        reg_weight: float = key(1e-4, NON_NEGATIVE)

    def __init__(self, data, config, graphs, device="cpu"):
        super().__init__(data, config, graphs, device)
        d = config.embedding_dim
        self.user_emb = nn.Parameter(torch.empty(self.n_users, d))
        self.item_emb = nn.Parameter(torch.empty(self.n_items, d))
        self.adj = SparseGraph(graphs.ui_adjacency(), device, symmetric=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_emb)
        nn.init.xavier_uniform_(self.item_emb)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_emb, self.item_emb], dim=0)  # [n_u + n_i, d]
        out = lightgcn_propagate(self.adj, ego, self.config.n_layers)
        return out[: self.n_users], out[self.n_users :]

    def fold_in(self, data):
        """A new user's LightGCN representation from its history (:mod:`siger.models.newusers`)."""
        from siger.models.newusers import LightGCNFoldIn, item_degrees

        return LightGCNFoldIn.build(self.adj, self.user_emb, self.item_emb, self.config.n_layers,
                                    item_degrees(data.train_matrix))

    def loss(self, users, pos, neg):
        u, i = self.forward()
        reg = l2_reg(self.user_emb[users], self.item_emb[pos], self.item_emb[neg])
        return {"bpr": bpr_loss(u[users], i[pos], i[neg]), "reg": self.config.reg_weight * reg}
