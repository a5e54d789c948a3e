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


class _InfoNCE(torch.autograd.Function):
    """Fused ``sum_n [log sum_j exp(x_n . k_j) - x_n . p_n]`` with a hand-written backward.

    ``x`` ``[B, d]`` (rows of norm 1/tau), positives ``p`` ``[B, d]`` and keys ``k`` ``[N, d]``
    (rows of norm 1). Forward keeps one ``[B, N]`` buffer (logits -> exp in place, shifted by the
    known logit bound 1/tau rather than the row max); with ``P = softmax(x k^T)`` the backward is
    ``dx = (P k - p) g``, ``dk = P^T x g``, ``dp = -x g``, computed without a second ``[B, N]``
    pass (the softmax's row normaliser is applied on the ``[B, d]`` side). Equal to autograd through
    ``log_softmax`` (tested) with fewer passes over the ``[B, N]`` matrix.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, pos: torch.Tensor, keys: torch.Tensor, bound: float) -> torch.Tensor:  # type: ignore[override]
        # |x_n . k_j| <= |x_n| |k_j| = 1/tau = bound, so shifting by the bound instead of the row
        # max is overflow-free (exp of at most 0 and at least -2/tau) and skips a pass.
        e = x @ keys.t()  # [B, N] logits
        e.sub_(bound).exp_()
        s = e.sum(dim=1, keepdim=True)  # [B, 1]
        loss = (bound + s.squeeze(1).log() - (x * pos).sum(-1)).sum()
        ctx.save_for_backward(x, pos, keys, e, s)
        return loss

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, pos, keys, e, s = ctx.saved_tensors
        # P g = diag(r) e with r = g / s: the row scale is applied to the [B, d] and [B, 1] sides,
        # never to the [B, N] buffer (which is also left intact, so the backward may rerun).
        r = grad / s  # [B, 1]
        dx = (e @ keys) * r - pos * grad if ctx.needs_input_grad[0] else None
        dp = -x * grad if ctx.needs_input_grad[1] else None
        dk = e.t() @ (x * r) if ctx.needs_input_grad[2] else None
        return dx, dp, dk, None


def keyed_info_nce(x: torch.Tensor, pos: torch.Tensor, keys: torch.Tensor, tau: float,
                   reduction: str = "mean") -> torch.Tensor:
    """-log( e^{cos(x_n, p_n)/tau} / sum_j e^{cos(x_n, k_j)/tau} ), reduced over n.

    ``keys`` are the candidates of the denominator (e.g. every user, with ``p_n`` among them).
    Shapes: x, pos ``[B, d]``, keys ``[N, d]`` -> scalar (``reduction`` "mean" or "sum").
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    x = F.normalize(x, dim=-1) / tau  # scale the [B, d] side, not the [B, N] logits
    pos_n = F.normalize(pos, dim=-1)
    keys_n = pos_n if keys is pos else F.normalize(keys, dim=-1)  # in-batch InfoNCE: normalise once
    total = _InfoNCE.apply(x, pos_n, keys_n, 1.0 / tau)
    return total / x.shape[0] if reduction == "mean" else total


def info_nce(x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE(X, Y) = -mean_n log softmax_j(cos(x_n, y_j) / tau)[n].

    The denominator includes the positive pair; negatives are the other rows of Y.
    Shapes: x, y ``[B, d]`` -> scalar.
    """
    return keyed_info_nce(x, y, y, tau)


def emb_norm_loss(*embs: torch.Tensor) -> torch.Tensor:
    """MMRec's ``EmbLoss``: sum of the (not squared) Frobenius norms / rows of the last tensor."""
    return sum(e.norm() for e in embs) / embs[-1].shape[0]


def info_nce_reference(x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """Plain-autograd InfoNCE (log_softmax); the fused :func:`info_nce` must equal it."""
    x = F.normalize(x, dim=-1) / tau
    y = F.normalize(y, dim=-1)
    return -torch.diagonal(torch.log_softmax(x @ y.t(), dim=1)).mean()


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
