"""Loss terms shared by the models. All reduce by a mean over the batch (no double scaling)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """-mean_n log sigmoid(<u_n, p_n> - <u_n, q_n>). Shapes: ``[B, d]`` each -> scalar."""
    return -F.logsigmoid((u * pos).sum(-1) - (u * neg).sum(-1)).mean()


def l2_reg(*embs: torch.Tensor) -> torch.Tensor:
    """0.5 * sum of squared L2 norms / B (MMRec's BPR embedding regulariser). ``[B, d]`` each."""
    b = embs[0].shape[0]
    return 0.5 * sum(e.pow(2).sum() for e in embs) / b


def info_nce(x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE(X, Y) = -mean_n log softmax_j(cos(x_n, y_j) / tau)[n].

    The denominator includes the positive pair; negatives are the other rows of Y.
    Shapes: x, y ``[B, d]`` -> scalar.
    """
    x = F.normalize(x, dim=-1) / tau  # scale the [B, d] side, not the [B, B] logits
    y = F.normalize(y, dim=-1)
    logits = x @ y.t()  # [B, B]
    return -torch.diagonal(torch.log_softmax(logits, dim=1)).mean()


def anchor_info_nce(
    anchor: torch.Tensor,
    views: list[torch.Tensor],
    tau: float,
    mode: str = "anchor",
    detach_anchor: bool = False,
) -> torch.Tensor:
    """Anchor-based InfoNCE aligning several semantic views through a behaviour anchor.

    Args:
        anchor: ``[B, d]`` behaviour representations.
        views: |M| tensors ``[B, d]``, one per modality.
        tau: temperature.
        mode: 'anchor' = sum_m InfoNCE(anchor, view_m);
            'multi_positive' = -mean_n log( sum_m e^{cos(a_n, v^m_n)/tau} / sum_m sum_j e^{cos(a_n, v^m_j)/tau} );
            'pairwise' = sum over modality pairs m < m' of InfoNCE(view_m, view_m') (no anchor;
            zero with one modality).
        detach_anchor: stop gradients into the anchor.
    Returns:
        scalar.
    """
    a = anchor.detach() if detach_anchor else anchor
    if mode == "anchor":
        return sum(info_nce(a, v, tau) for v in views)
    if mode == "multi_positive":
        an = F.normalize(a, dim=-1) / tau
        logits = torch.stack([an @ F.normalize(v, dim=-1).t() for v in views], dim=0)  # [M, B, B]
        pos = torch.logsumexp(torch.diagonal(logits, dim1=1, dim2=2), dim=0)  # [B]
        total = torch.logsumexp(logits.permute(1, 0, 2).reshape(a.shape[0], -1), dim=1)  # [B]
        return (total - pos).mean()
    if mode == "pairwise":
        terms = [info_nce(views[i], views[j], tau) for i in range(len(views)) for j in range(i + 1, len(views))]
        return sum(terms) if terms else anchor.new_zeros(())
    raise ValueError(f"unknown anchor mode {mode!r} (anchor | multi_positive | pairwise)")
