"""VBPR (He & McAuley, AAAI 2016), as in MMRec.

Item vector = [ID embedding (d) ; W [f^1 ; ... ; f^M] + b (d)], user vector 2d; score = inner
product; loss = BPR + reg_weight * (||u|| + ||p|| + ||n||) / B (MMRec's EmbLoss, Frobenius norms
of the batch vectors; MMRec grid-searches reg_weight over 2.0 .. 1e-5). W xavier-normal, b = 0.
A graph-only modality (no raw features in the dataset) contributes a learnable table instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from siger.keys import NON_NEGATIVE, POSITIVE_INT, UNIT_OPEN_TOP, key
from siger.models.base import Recommender, register
from siger.models.layers import item_input_table
from siger.models.losses import bpr_loss, emb_norm_loss


@register
class VBPR(Recommender):
    name = "VBPR"

    @dataclass
    class Config:
        embedding_dim: int = key(64, POSITIVE_INT)
        reg_weight: float = key(1e-4, NON_NEGATIVE)
        dropout: float = key(0.0, UNIT_OPEN_TOP)
        graph_only_dim: int = key(64, POSITIVE_INT)

    def __init__(self, data, config, graphs, device="cpu"):
        super().__init__(data, config, graphs, device)
        d = config.embedding_dim
        self.modalities = data.modalities
        self.user_emb = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, 2 * d)))
        self.item_emb = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_items, d)))
        # raw features are fixed inputs in VBPR; graph-only modalities get a learnable table
        self.item_inputs = nn.ParameterDict(
            {m: item_input_table(data, m, trainable=False, graph_only_dim=config.graph_only_dim)
             for m in self.modalities})
        in_dim = sum(p.shape[1] for p in self.item_inputs.values())
        self.item_linear = nn.Linear(in_dim, d) if in_dim else None
        if self.item_linear is not None:
            nn.init.xavier_normal_(self.item_linear.weight)
            nn.init.zeros_(self.item_linear.bias)
        self.to(self.device_)

    def _items(self) -> torch.Tensor:
        """``[n_items, 2d]`` (``[n_items, d]`` without modalities)."""
        if self.item_linear is None:
            return self.item_emb
        feats = torch.cat([self.item_inputs[m] for m in self.modalities], dim=1)
        return torch.cat([self.item_emb, self.item_linear(feats)], dim=1)

    @torch.no_grad()
    def embed_new_items(self, features, data, graphs, k: int = 10) -> torch.Tensor:
        """A new item's content part is exact (the linear map of its features); its missing ID
        embedding is the aggregate of its ``k - 1`` feature-cosine neighbours among the trained
        items' ID embeddings (see :mod:`siger.models.newitems`). ``[n_new, 2d]``."""
        from siger.models.newitems import check_new_features, neighbour_rows, spmm, trained_items

        if self.item_linear is None:
            from siger.models.newitems import NewItemsUnsupported

            raise NewItemsUnsupported("VBPR without modalities has no content to place a new item by")
        check_new_features(features, data.features, self.modalities)
        rows = neighbour_rows({m: features[m] for m in self.modalities}, data.features,
                              trained_items(data.train_matrix), k)
        feats = torch.cat([torch.as_tensor(np.asarray(features[m], np.float32), device=self.item_emb.device)
                           for m in self.modalities], dim=1)
        return torch.cat([spmm(rows.agg, self.item_emb), self.item_linear(feats)], dim=1)

    def forward(self):
        items = self._items()
        users = self.user_emb if self.item_linear is not None else self.user_emb[:, : items.shape[1]]
        return F.dropout(users, self.config.dropout, self.training), F.dropout(items, self.config.dropout, self.training)

    def loss(self, users, pos, neg):
        u, i = self.forward()
        ub, pb, nb = u[users], i[pos], i[neg]
        return {"bpr": bpr_loss(ub, pb, nb), "reg": self.config.reg_weight * emb_norm_loss(ub, pb, nb)}
