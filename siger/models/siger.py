"""SIGER: Semantic Item Graph Enhancement for Multimodal Recommendation (arXiv 2508.06154).

Follows ``docs/siger-spec.md`` (the project's reconstruction on the MGCN backbone). In order:

1. Behaviour encoder: H^b = LightGCN(A_hat, [E_u; E_i]) with ``n_ui_layers`` layers.
2. Semantic graphs: S^m = sym-normalised cosine kNN of modality m (frozen; or provided).
3. Collaborative graph: S^c = sym-normalised per-row top-``cooc_k`` of R^T R (train only).
4. Infusion: S~^m = (1 - beta) S^m + beta S^c.
5. Semantic encoder: x^m = e_i * sigmoid(W_g(W_p f^m + b_p) + b_g); H_I^m = S~^m x^m
   (``n_mm_layers`` times, last layer); H_U^m = R_hat H_I^m.
6. Fusion: attention common part + behaviour-gated specific parts -> H^s; H = H^b + H^s.
7. Perturbation: two noisy passes of step 5 (noise after each propagation and after the user
   aggregation) give views ' and ''; L_pert = sum_m InfoNCE(view', view'') on batch users and
   batch positive items.
8. L_anc = anchor InfoNCE between H^b (anchor) and each H^m; L_align = InfoNCE(H^s, H^b).
9. L = BPR + reg_weight * L2 + lambda_p L_pert + lambda_a L_anc + lambda_c L_align.

Setting beta = 0, lambda_p = 0 and lambda_a = 0 gives the MGCN backbone.

Training evaluates all of this at the batch's distinct users and items only (:meth:`SIGER.loss`
via ``encode(rows)``), and the contrastive terms (the noisy views included) at the distinct rows
of the contrastive sub-batch: the same objective, tested against the full tables. Ranking uses
the full tables (``encode()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from siger.data.graphs import blend, blend_weights
from siger.models.base import Recommender, register
from siger.models.layers import AttentionFusion, GatedProjection, SparseGraph, item_input_table, lightgcn_propagate
from siger.models.losses import anchor_info_nce, bpr_loss, counted_info_nce, l2_reg
from siger.models.perturb import MODES, ROW_LOCAL, mean_norm, noise, noise_basis, perturb

TARGETS = ("semantic", "fused", "final")  # what the perturbed views are (perturb_target)
PERTURB_AT = ("layers", "output")  # where the noise is injected (perturb_at)
INFUSE_AT = ("graph", "weights")  # where the co-occurrence blend happens (infuse_at)

# Each ablation of the spec is a set of config overrides (siger ablate runs them all).
ABLATIONS: dict[str, dict[str, object]] = {
    "SIGER (full)": {},
    "no infusion (beta=0)": {"beta": 0.0},
    "no perturbation (lambda_p=0)": {"lambda_p": 0.0},
    "uniform noise (SimGCL)": {"perturb_mode": "uniform"},
    "no anchor loss (lambda_a=0)": {"lambda_a": 0.0},
    "no behaviour<->fused loss (lambda_c=0)": {"lambda_c": 0.0},
    "anchor -> modality<->modality InfoNCE": {"anchor_mode": "pairwise"},
    "backbone (MGCN: beta=0, lambda_p=0, lambda_a=0)": {"beta": 0.0, "lambda_p": 0.0, "lambda_a": 0.0},
}


# The reconstruction exactly as first written in docs/siger-spec.md (`--preset spec`): every key
# that the spec fixes, whatever the defaults are now.
SPEC_PRESET: dict[str, object] = {
    "embedding_dim": 64, "n_ui_layers": 2, "n_mm_layers": 1, "knn_k": 10, "knn_norm": "sym",
    "cooc_k": 10, "cooc_weight": "count", "cooc_norm": "sym", "beta": 0.5, "infuse_at": "graph",
    "beta_learn": False, "finetune_features": True, "graph_only_dim": 64, "perturb_mode": "modulus",
    "perturb_target": "semantic", "perturb_at": "layers", "eps": 0.1, "tau_p": 0.2, "anchor_mode": "anchor",
    "detach_anchor": False, "detach_align": False, "tau_a": 0.2, "tau_c": 0.2, "reg_weight": 1e-4,
    "lambda_p": 0.01, "lambda_a": 0.01, "lambda_c": 0.01, "cl_batch": 0, "learning_rate": 1e-3,
}


class BatchRows(NamedTuple):
    """The rows a training batch reads: distinct ``users`` ``[U]``, distinct ``items`` ``[I]``
    (positives and negatives) and R_hat's rows for those users (a ``SparseGraph`` ``[U, n_i]``,
    or None where only the noise parts of views are computed at the rows)."""

    users: torch.Tensor
    items: torch.Tensor
    r_hat: SparseGraph | None


@register
class SIGER(Recommender):
    """SIGER on any number (>= 1) of modalities, given as raw features or as provided graphs."""

    name = "SIGER"
    PRESETS = {"spec": SPEC_PRESET}
    # Defaults: chosen on valid Recall@20 by the SIGER TikTok study (results/studies/siger_tiktok,
    # trial 43: the best trial with modulus-guided noise and the spec's semantic perturbation
    # target; values rounded to two digits). The spec's values are the preset "spec"; docs/siger.md
    # tabulates each choice against the spec's guess and the study evidence.
    TRAIN_DEFAULTS = {"learning_rate": 1.4e-3}

    @dataclass
    class Config:
        embedding_dim: int = 64  # d, the width of every representation
        n_ui_layers: int = 2  # L_b, behaviour LightGCN layers
        n_mm_layers: int = 1  # L_s, semantic graph layers (last layer kept)
        knn_k: int = 10  # neighbours per item in S^m
        knn_norm: str = "sym"  # sym | rw | none (ignored for provided graphs: already normalised)
        knn_backend: str = "exact"  # exact | faiss (faiss-cpu IndexFlatIP, same neighbours)
        cooc_k: int = 10  # k_c, neighbours per item in S^c
        cooc_weight: str = "count"  # CHOICE: count | binary | cosine
        cooc_norm: str = "sym"  # normalisation of S^c: sym | rw | none
        beta: float = 0.56  # CHOICE: infusion weight, 0 = backbone graphs (no infusion)
        # CHOICE: where the blend happens: graph = (1-beta) S^m + beta S^c of the normalised graphs;
        # weights = normalise((1-beta) W^m + beta C) of the row-max-scaled weights (union of both top-k lists)
        infuse_at: str = "graph"
        beta_learn: bool = True  # extension: beta per modality learned (sigmoid), starting at beta (needs infuse_at graph)
        finetune_features: bool = True  # raw features are trainable, as in MGCN's MMRec code
        graph_only_dim: int = 64  # CHOICE: learnable item input dim for graph-only modalities
        perturb_mode: str = "mean"  # CHOICE: modulus | uniform | mean | inverse
        # CHOICE: what the two noisy views are: semantic = each H^m (L_pert summed over m, the spec);
        # fused = H^s of the noisy H^m; final = H = H^b + H^s with noise also in every LightGCN layer (SimGCL)
        perturb_target: str = "semantic"
        # CHOICE: where the noise goes: layers = after each item propagation and after the user
        # aggregation (the spec; noise flows through the encoder); output = added once to the
        # target representation at the batch rows (cheapest; 'mean'/'inverse' scale by the batch's mean norm)
        perturb_at: str = "layers"
        eps: float = 0.89  # noise strength (its meaning per perturb_mode: see siger/models/perturb.py)
        tau_p: float = 0.27  # temperature of the perturbation InfoNCE
        anchor_mode: str = "anchor"  # CHOICE: anchor | multi_positive | pairwise
        detach_anchor: bool = False  # CHOICE: behaviour anchor as a fixed reference (no anchor-loss gradient into H^b)
        detach_align: bool = False  # extension (not in the spec): no L_align gradient into H^b
        tau_a: float = 0.13  # temperature of the anchor InfoNCE
        tau_c: float = 0.14  # temperature of the behaviour<->fused InfoNCE
        reg_weight: float = 2e-5  # lambda_reg, L2 on the batch's final embeddings
        lambda_p: float = 2.3e-3  # weight of the perturbation InfoNCE (0: no perturbation)
        lambda_a: float = 3.9e-4  # weight of the anchor InfoNCE (0: no anchor loss)
        lambda_c: float = 4.2e-3  # weight of the behaviour<->fused InfoNCE (0: none)
        # extension: the contrastive terms (pert, anchor, align) read only the first cl_batch
        # interactions of each (shuffled) batch; 0 = the whole batch (the spec, MMRec's MGCN)
        cl_batch: int = 256

    def __init__(self, data, config, graphs, device="cpu"):
        super().__init__(data, config, graphs, device)
        c = config
        if c.perturb_mode not in MODES:
            raise ValueError(f"perturb_mode must be one of {MODES}, got {c.perturb_mode!r}")
        for key, allowed in (("perturb_target", TARGETS), ("perturb_at", PERTURB_AT), ("infuse_at", INFUSE_AT)):
            if getattr(c, key) not in allowed:
                raise ValueError(f"{key} must be one of {' | '.join(allowed)}, got {getattr(c, key)!r}")
        if c.beta_learn and c.infuse_at != "graph":
            raise ValueError("beta_learn needs infuse_at graph (the blend of the normalised graphs is linear in beta)")
        if not 0.0 <= c.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {c.beta}")
        if c.cl_batch < 0:
            raise ValueError(f"cl_batch must be >= 0 (0 = the whole batch), got {c.cl_batch}")
        self.modalities = data.modalities
        if not self.modalities:
            raise ValueError(f"SIGER needs at least one modality; dataset {data.name} has none")
        d = c.embedding_dim
        self.user_emb = nn.Parameter(torch.empty(self.n_users, d))
        self.item_emb = nn.Parameter(torch.empty(self.n_items, d))
        self.adj = SparseGraph(graphs.ui_adjacency(), device, symmetric=True)  # [N, N]
        self.r_hat = SparseGraph(graphs.bipartite(), device, symmetric=False)  # [n_u, n_i]

        infuse = c.beta > 0
        learn = infuse and c.beta_learn
        by_weights = infuse and c.infuse_at == "weights"
        cooc = (graphs.cooccurrence(c.cooc_k, c.cooc_weight, "none" if by_weights else c.cooc_norm)
                if infuse else None)
        self.item_inputs = nn.ParameterDict()
        self.projections = nn.ModuleDict()
        self.item_graphs: dict[str, SparseGraph] = {}
        # learned infusion: S~^m x = (1 - b_m) S^m x + b_m S^c x, b_m = sigmoid(beta_logit[m])
        self.beta_logit = nn.ParameterDict()
        self.cooc_graph = SparseGraph(cooc, device) if learn else None
        for m in self.modalities:
            self.item_inputs[m] = item_input_table(data, m, c.finetune_features, c.graph_only_dim)
            self.projections[m] = GatedProjection(self.item_inputs[m].shape[1], d)
            if by_weights:
                raw = graphs.knn(m, c.knn_k, "none", c.knn_backend) if m in data.features else graphs.knn(m, c.knn_k)
                s_m = blend_weights(raw, cooc, c.beta, c.knn_norm if m in data.features else "sym")
            else:
                s_m = graphs.knn(m, c.knn_k, c.knn_norm, c.knn_backend)
                if infuse and not learn:
                    s_m = blend(s_m, cooc, c.beta)
            if learn:
                b0 = min(max(c.beta, 1e-3), 1 - 1e-3)
                self.beta_logit[m] = nn.Parameter(torch.tensor(float(torch.logit(torch.tensor(b0)))))
            self.item_graphs[m] = SparseGraph(s_m, device)
        self.fusion = AttentionFusion(d, len(self.modalities))
        nn.init.xavier_uniform_(self.user_emb)
        nn.init.xavier_uniform_(self.item_emb)
        self.to(self.device_)

    # -- encoders ---------------------------------------------------------------------------
    def behaviour(self) -> torch.Tensor:
        """H^b ``[n_u + n_i, d]``."""
        return lightgcn_propagate(self.adj, torch.cat([self.user_emb, self.item_emb]), self.config.n_ui_layers)

    def betas(self) -> dict[str, float]:
        """The infusion weight of each modality (learned ones at their current value)."""
        if self.beta_logit:
            return {m: float(torch.sigmoid(p.detach())) for m, p in self.beta_logit.items()}
        return {m: self.config.beta for m in self.modalities}

    def propagate(self, m: str, h: torch.Tensor) -> torch.Tensor:
        """S~^m h ``[n_i, d]`` -> ``[n_i, d]`` (with a learned beta: (1 - b) S^m h + b S^c h)."""
        if m in self.beta_logit:
            b = torch.sigmoid(self.beta_logit[m])
            return (1 - b) * (self.item_graphs[m] @ h) + b * (self.cooc_graph @ h)
        return self.item_graphs[m] @ h

    def item_input(self, m: str) -> torch.Tensor:
        """x^m ``[n_i, d]``: behaviour-gated projection of modality m's item input."""
        return self.projections[m](self.item_inputs[m], self.item_emb)

    def semantic(self, m: str, x: torch.Tensor, noisy: bool = False, rows: BatchRows | None = None,
                 sx: torch.Tensor | None = None) -> torch.Tensor:
        """H^m ``[n_u + n_i, d]``: items propagate on S~^m, users aggregate through R_hat.

        With ``noisy``, perturbation is added after each propagation and after the aggregation.
        With ``rows`` (:class:`BatchRows`) only those rows are returned, ``[U + I, d]`` (users
        first): the item propagation still covers every item (users aggregate over all of them).
        Only the chosen users are aggregated, via their rows of R_hat; noisy, the result is the
        clean rows plus :meth:`view_noise` (each row's noise at the scale the full tables give).
        ``sx`` ``[n_i, d]``: the first propagation S~^m x if already computed (noise comes after
        it, so the clean pass and both perturbed views share it); ``x`` is then not read.
        """
        c = self.config
        h_i = x
        for layer in range(c.n_mm_layers):
            h_i = sx if layer == 0 and sx is not None else self.propagate(m, h_i)
            if noisy and rows is None:
                h_i = perturb(h_i, c.eps, c.perturb_mode)
        if rows is None:
            h_u = self.r_hat @ h_i
            if noisy:
                h_u = perturb(h_u, c.eps, c.perturb_mode)
            return torch.cat([h_u, h_i])
        clean = torch.cat([rows.r_hat @ h_i, h_i[rows.items]])
        return clean + self.view_noise(m, x, sx, rows, 1)[0] if noisy else clean

    @torch.no_grad()
    def view_noise(self, m: str, x: torch.Tensor | None, sx: torch.Tensor | None, rows: BatchRows,
                   n: int) -> list[torch.Tensor]:
        """What ``n`` independent noisy passes of H^m add to the clean H^m at ``rows``:
        ``n`` tensors ``[U + I, d]`` (users first), without gradient.

        The noise never carries gradient and S~^m and R_hat are linear, so a noisy pass is the
        clean pass plus a noise part that propagates on its own: n^(1) = delta_1, n^(l) = S~^m
        n^(l-1) + delta_l, each delta_l drawn for the noisy value c^(l) + n^(l) (c the clean
        layer; 'mean'/'inverse' scale by every item's norm), then users add R_hat n^(L) and their
        own noise, drawn for the chosen users only, at the scale the whole user table gives
        (R_hat (c^(L) + n^(L)) for every user). The clean pass is computed once and shared by
        every view, and no gradient flows through any view's own work. ``x`` / ``sx`` as in
        :meth:`semantic`.
        """
        c = self.config
        chain, h = [], None if x is None else x.detach()
        for layer in range(c.n_mm_layers):  # the clean item layers c^(1..L)
            h = sx.detach() if layer == 0 and sx is not None else self.propagate(m, h)
            chain.append(h)
        last = chain[-1] if chain else h
        users_clean = self.r_hat @ last  # [n_u, d]
        row_local = c.perturb_mode in ROW_LOCAL
        first = noise_basis(chain[0], c.eps, c.perturb_mode) if chain else None  # c^(1): the same in every view
        out = []
        for _ in range(n):
            n_i = None
            for c_l in chain:
                if n_i is None:
                    n_i = noise(None, c.eps, c.perturb_mode, basis=first)
                else:
                    n_i = self.propagate(m, n_i)
                    n_i = n_i + noise(c_l + n_i, c.eps, c.perturb_mode)
            n_u = None if n_i is None else self.r_hat @ n_i
            h_u = users_clean if n_u is None else users_clean + n_u
            table = None if row_local else mean_norm(h_u)
            d_u = noise(h_u[rows.users], c.eps, c.perturb_mode, table_mean=table)
            out.append(torch.cat([d_u if n_u is None else n_u[rows.users] + d_u,
                                  torch.zeros(len(rows.items), h_u.shape[1], dtype=h_u.dtype, device=h_u.device)
                                  if n_i is None else n_i[rows.items]]))
        return out

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
        from siger.models.newitems import check_new_features, neighbour_rows, normalised_row, spmm, trained_items

        c = self.config
        was = self.training
        self.eval()
        try:
            check_new_features(features, data.features, self.modalities)
            known = trained_items(data.train_matrix)
            rows = neighbour_rows({m: features[m] for m in self.modalities}, data.features, known, c.knn_k)
            z = self.encode()
            hb_items = z["hb"][self.n_users:]
            e_new = spmm(rows.agg, self.item_emb)
            hb_new = spmm(rows.agg, hb_items)
            hm_new = []
            for m in self.modalities:
                f = torch.as_tensor(np.asarray(features[m], np.float32), device=self.item_emb.device)
                x_new = self.projections[m](f, e_new)
                deg = np.asarray(graphs.knn(m, c.knn_k, "none", c.knn_backend).sum(axis=1)).ravel()
                off, diag = normalised_row(rows.knn[m], deg, c.knn_norm)
                diag_t = torch.as_tensor(diag, device=x_new.device).unsqueeze(1)
                h_known, h_new = z["x"][m], x_new
                for _ in range(c.n_mm_layers):
                    h_new = spmm(off, h_known) + diag_t * h_new
                    h_known = self.propagate(m, h_known)
                hm_new.append(h_new)
            return hb_new + self.fusion(hm_new, hb_new)
        finally:
            self.train(was)

    # -- training objective -----------------------------------------------------------------
    def noisy_view(self, z: dict[str, object], rows: BatchRows, sel: torch.Tensor) -> torch.Tensor:
        """One perturbed view at the contrastive rows ``rows`` ``[C, d]`` (users first) for the
        'fused' target (H^s of the noisy H^m) or the 'final' one (H^b' + H^s', with noise also
        after every LightGCN layer). ``sel`` ``[C]``: those rows' positions in the clean tables of
        ``z``, whose item inputs and first propagations are reused (the noise comes after them)."""
        c = self.config
        hm = [z["hm"][m][sel] + self.view_noise(m, z["x"][m], z["sx"].get(m), rows, 1)[0] for m in self.modalities]
        if c.perturb_target == "fused":
            return self.fusion(hm, z["hb"][sel])
        nodes = torch.cat([rows.users, rows.items + self.n_users])
        hb = lightgcn_propagate(self.adj, torch.cat([self.user_emb, self.item_emb]), c.n_ui_layers, rows=nodes,
                                noise=lambda h: perturb(h, c.eps, c.perturb_mode),
                                row_local_noise=c.perturb_mode in ROW_LOCAL)
        return hb + self.fusion(hm, hb)

    def perturbation_loss(self, z: dict[str, object], rows: BatchRows, sel: torch.Tensor,
                          nce) -> torch.Tensor:
        """InfoNCE between two independent noisy views, on the batch users and positive items;
        for the 'semantic' target (the spec) one pair of views per modality, summed over m.

        The views are computed at the contrastive rows only: ``rows`` (:class:`BatchRows`),
        ``sel`` ``[C]`` their positions in the clean tables of ``z``; ``nce``
        the InfoNCE over those rows (users and items, each with its multiplicity)."""
        c = self.config
        if c.perturb_at == "output":  # two noisy copies of the clean target at the contrastive rows
            clean = {"semantic": [z["hm"][m] for m in self.modalities], "fused": [z["hs"]], "final": [z["h"]]}
            pairs = []
            for h in clean[c.perturb_target]:  # 'mean'/'inverse': the scale of the whole batch table
                table = None if c.perturb_mode in ROW_LOCAL else mean_norm(h)
                pairs.append(tuple(perturb(h[sel], c.eps, c.perturb_mode, table_mean=table) for _ in range(2)))
        elif c.perturb_target == "semantic":
            pairs = []
            for m in self.modalities:  # clean rows + each view's noise part (no gradient of its own)
                clean = z["hm"][m][sel]
                pairs.append(tuple(clean + d for d in self.view_noise(m, z["x"][m], z["sx"].get(m), rows, 2)))
        else:
            pairs = [(self.noisy_view(z, rows, sel), self.noisy_view(z, rows, sel))]
        return sum(nce(a, b, c.tau_p) for a, b in pairs)

    def loss(self, users, pos, neg):
        c = self.config
        # Work on the batch's distinct rows only: compact tables [U + I, d] with users first.
        uu, users_c = torch.unique(users, return_inverse=True)
        ii, items_c = torch.unique(torch.cat([pos, neg]), return_inverse=True)
        nb = len(uu)
        pos_n, neg_n = items_c[: len(pos)] + nb, items_c[len(pos):] + nb
        rows = self.batch_rows(uu, ii)
        z = self.encode(rows)
        h, hb, hs = z["h"], z["hb"], z["hs"]
        u, p, q = h[users_c], h[pos_n], h[neg_n]
        out = {"bpr": bpr_loss(u, p, q), "reg": c.reg_weight * l2_reg(u, p, q)}
        if not (c.lambda_p > 0 or c.lambda_a > 0 or c.lambda_c > 0):
            return out
        if c.cl_batch > 0:  # contrastive sub-batch: the batch is in random order, so its head is a random subset
            users_c, pos_n = users_c[: c.cl_batch], pos_n[: c.cl_batch]
        # The contrastive terms are in-batch InfoNCEs over these users and positive items: each
        # distinct row once with its multiplicity (info_nce_rows' identity), so every table is
        # needed only at those rows, sel [C] = [k users; items] (same values and gradients).
        sel_u, cnt_u = torch.unique(users_c, return_counts=True)
        sel_p, cnt_p = torch.unique(pos_n, return_counts=True)
        sel, k = torch.cat([sel_u, sel_p]), len(sel_u)

        def nce(x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:  # x, y [C, d]
            return counted_info_nce(x[:k], y[:k], cnt_u, tau) + counted_info_nce(x[k:], y[k:], cnt_p, tau)

        if c.lambda_p > 0:
            rows_cl = self.batch_rows(uu[sel_u], ii[sel_p - nb], aggregate=False)
            out["pert"] = c.lambda_p * self.perturbation_loss(z, rows_cl, sel, nce)
        hb_s = hb[sel]
        if c.lambda_a > 0:
            hm_s = [z["hm"][m][sel] for m in self.modalities]
            anc = sum(anchor_info_nce(hb_s[part], [v[part] for v in hm_s], c.tau_a, c.anchor_mode,
                                      c.detach_anchor, counts=cnt)
                      for part, cnt in ((slice(0, k), cnt_u), (slice(k, None), cnt_p)))
            out["anchor"] = c.lambda_a * anc
        if c.lambda_c > 0:
            hb_c = hb_s.detach() if c.detach_align else hb_s
            out["align"] = c.lambda_c * nce(hs[sel], hb_c, c.tau_c)
        return out
