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
    """Fused -mean_n log softmax(x @ y^T)[n, n] with a hand-written backward.

    Forward keeps one ``[B, B]`` buffer (logits -> exp -> softmax in place, shifted by the known
    logit bound 1/tau rather than the row max); backward is
    ``G = (P - I) / B``, ``dx = G y``, ``dy = G^T x``. Equal to autograd through
    ``log_softmax`` (tested) with fewer passes over the ``[B, B]`` matrix.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, bound: float) -> torch.Tensor:  # type: ignore[override]
        # rows of x have norm 1/tau and rows of y norm 1, so every logit lies in [-bound, bound]
        # with bound = 1/tau: shifting by the bound instead of the row max is overflow-free
        # (exp of at most 0 and at least -2/tau) and skips a pass over the [B, B] matrix.
        p = x @ y.t()  # [B, B] logits
        p.sub_(bound).exp_()
        s = p.sum(dim=1, keepdim=True)
        loss = (bound + s.squeeze(1).log() - (x * y).sum(-1)).mean()
        p.div_(s)  # softmax
        ctx.save_for_backward(x, y, p)
        return loss

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, y, p = ctx.saved_tensors
        scale = grad / x.shape[0]
        g = p * scale  # not in place: backward may run more than once (retain_graph, gradcheck)
        g.diagonal().sub_(scale)
        dx = g @ y if ctx.needs_input_grad[0] else None
        dy = g.t() @ x if ctx.needs_input_grad[1] else None
        return dx, dy, None


def info_nce(x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE(X, Y) = -mean_n log softmax_j(cos(x_n, y_j) / tau)[n].

    The denominator includes the positive pair; negatives are the other rows of Y.
    Shapes: x, y ``[B, d]`` -> scalar.
    """
    x = F.normalize(x, dim=-1) / tau  # scale the [B, d] side, not the [B, B] logits
    y = F.normalize(y, dim=-1)
    return _InfoNCE.apply(x, y, 1.0 / tau)


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
