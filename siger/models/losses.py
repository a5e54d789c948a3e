"""Loss terms shared by the models. All reduce by a mean over the batch (no double scaling)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """-mean_n log sigmoid(<u_n, p_n> - <u_n, q_n>). Shapes: ``[B, d]`` each -> scalar."""
    return -F.logsigmoid((u * pos).sum(-1) - (u * neg).sum(-1)).mean()


def l2_reg(*embs: torch.Tensor) -> torch.Tensor:
    """0.5 * sum of squared L2 norms / B. ``[B, d]`` each.

    The squared form is MMRec's MGCN's regulariser (and SIGER's, on the MGCN backbone). MMRec's
    LightGCN uses ``EmbLoss``, plain (not squared) L2 norms; measured on TikTok to make no
    difference for our LightGCN, which uses this form too.
    """
    b = embs[0].shape[0]
    return 0.5 * sum(e.pow(2).sum() for e in embs) / b


class _InfoNCE(torch.autograd.Function):
    """Fused ``sum_n w_n [log sum_j c_j exp(x_n . k_j) - x_n . p_n]`` with a hand-written backward.

    ``x`` ``[U, d]`` (rows of norm 1/tau), positives ``p`` ``[U, d]`` and keys ``k`` ``[N, d]``
    (rows of norm 1); optional row weights ``w`` ``[U, 1]`` and key weights ``c`` ``[N, 1]``
    (multiplicities: a batch with repeated rows is computed once per distinct row, see
    :func:`info_nce_rows`; ``None`` = all ones). Forward keeps one ``[U, N]`` buffer (logits -> exp
    in place, shifted by the known logit bound 1/tau rather than the row max); with
    ``P = diag(1/s) E diag(c)`` the softmax and ``r = w g / s``, the backward is
    ``dx = r * (E (c k)) - w g p``, ``dk = c * (E^T (r x))``, ``dp = -w g x``: the weights and the
    softmax's row normaliser are applied on the ``[U, d]`` sides, never as a second pass over the
    ``[U, N]`` matrix. Equal to autograd through ``log_softmax`` (tested).
    """

    @staticmethod
    def forward(ctx, x, pos, keys, bound, row_w, key_w):  # type: ignore[override]
        # |x_n . k_j| <= |x_n| |k_j| = 1/tau = bound, so shifting by the bound instead of the row
        # max is overflow-free (exp of at most 0 and at least -2/tau) and skips a pass.
        e = x @ keys.t()  # [U, N] logits
        e.sub_(bound).exp_()
        s = e.sum(dim=1, keepdim=True) if key_w is None else e @ key_w  # [U, 1]
        rows = bound + s.squeeze(1).log() - (x * pos).sum(-1)  # [U]
        loss = rows.sum() if row_w is None else rows @ row_w.squeeze(1)
        ctx.save_for_backward(x, pos, keys, e, s, row_w, key_w)
        return loss

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, pos, keys, e, s, row_w, key_w = ctx.saved_tensors
        wg = grad if row_w is None else row_w * grad  # [U, 1] or scalar
        r = wg / s  # [U, 1]
        dx = dp = dk = None
        if ctx.needs_input_grad[0]:
            dx = (e @ (keys if key_w is None else keys * key_w)) * r - pos * wg
        if ctx.needs_input_grad[1]:
            dp = -x * wg
        if ctx.needs_input_grad[2]:
            dk = e.t() @ (x * r)
            if key_w is not None:
                dk = dk * key_w
        return dx, dp, dk, None, None, None


def keyed_info_nce(x: torch.Tensor, pos: torch.Tensor, keys: torch.Tensor, tau: float,
                   reduction: str = "mean", row_weight: torch.Tensor | None = None,
                   key_weight: torch.Tensor | None = None) -> torch.Tensor:
    """-log( e^{cos(x_n, p_n)/tau} / sum_j c_j e^{cos(x_n, k_j)/tau} ), summed with weights w_n.

    ``keys`` are the candidates of the denominator (e.g. every user, with ``p_n`` among them).
    Shapes: x, pos ``[U, d]``, keys ``[N, d]``, optional multiplicities ``row_weight`` ``[U]``
    (default ones) and ``key_weight`` ``[N]`` (default ones) -> scalar. "mean" divides by
    ``sum(w)``, the number of rows the weights stand for.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    x = F.normalize(x, dim=-1) / tau  # scale the [U, d] side, not the [U, N] logits
    pos_n = F.normalize(pos, dim=-1)
    keys_n = pos_n if keys is pos else F.normalize(keys, dim=-1)  # in-batch InfoNCE: normalise once
    w = None if row_weight is None else row_weight.to(x.dtype).unsqueeze(1)
    c = None if key_weight is None else key_weight.to(x.dtype).unsqueeze(1)
    total = _InfoNCE.apply(x, pos_n, keys_n, 1.0 / tau, w, c)
    if reduction == "sum":
        return total
    return total / (x.shape[0] if w is None else w.sum())


def info_nce(x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE(X, Y) = -mean_n log softmax_j(cos(x_n, y_j) / tau)[n].

    The denominator includes the positive pair; negatives are the other rows of Y.
    Shapes: x, y ``[B, d]`` -> scalar.
    """
    return keyed_info_nce(x, y, y, tau)


def distinct_rows(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct values of ``idx`` ``[B]`` and how often each occurs (``[U]`` each)."""
    uniq, counts = torch.unique(idx, return_counts=True)
    return uniq, counts


def keyed_info_nce_rows(x: torch.Tensor, pos: torch.Tensor, keys: torch.Tensor, idx: torch.Tensor,
                        tau: float, reduction: str = "mean") -> torch.Tensor:
    """``keyed_info_nce(x[idx], pos[idx], keys, tau, reduction)``, computed once per distinct row.

    Repeated indices give identical rows, so each distinct row counts with its multiplicity
    (the ``[B, N]`` product shrinks to ``[U, N]``). Shapes: x, pos ``[n, d]``, keys ``[N, d]``,
    idx ``[B]`` -> scalar.
    """
    uniq, counts = distinct_rows(idx)
    if len(uniq) == len(idx):
        return keyed_info_nce(x[idx], pos[idx], keys, tau, reduction)
    return keyed_info_nce(x[uniq], pos[uniq], keys, tau, reduction, row_weight=counts)


def counted_info_nce(x: torch.Tensor, y: torch.Tensor, counts: torch.Tensor, tau: float) -> torch.Tensor:
    """The in-batch ``info_nce`` of a batch whose distinct rows are ``x``, ``y`` ``[U, d]``, row
    u standing for ``counts[u]`` ``[U]`` identical rows (see :func:`info_nce_rows`). -> scalar."""
    return keyed_info_nce(x, y, y, tau, row_weight=counts, key_weight=counts)


def info_nce_rows(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, tau: float) -> torch.Tensor:
    """``info_nce(x[idx], y[idx], tau)``, computed once per distinct row of ``idx``.

    A BPR batch repeats users and items (a batch of 2048 interactions holds ~1,900 distinct users
    and ~1,460 distinct items on Amazon Baby, ~690 users on TikTok), and repeated indices give
    identical rows in both the anchors and the keys. With multiplicities c_u the in-batch loss is
    exactly ``(1/B) sum_u c_u [log sum_v c_v e^{x_u . y_v / tau} - x_u . y_u / tau]`` (cosines),
    so the ``[B, B]`` products shrink to ``[U, U]``. Same value and gradients (tested); fewer FLOPs.

    Shapes: x, y ``[n, d]`` (full tables), idx ``[B]`` -> scalar.
    """
    uniq, counts = distinct_rows(idx)
    if len(uniq) == len(idx):  # nothing repeated: the plain path, no weights
        return info_nce(x[idx], y[idx], tau)
    return counted_info_nce(x[uniq], y[uniq], counts, tau)


def emb_norm_loss(*embs: torch.Tensor) -> torch.Tensor:
    """MMRec's ``EmbLoss``: sum of the (not squared) Frobenius norms / rows of the last tensor."""
    return sum(e.norm() for e in embs) / embs[-1].shape[0]


ANCHOR_MODES = ("anchor", "multi_positive", "pairwise")  # the forms of :func:`anchor_info_nce`


def anchor_info_nce(
    anchor: torch.Tensor,
    views: list[torch.Tensor],
    tau: float,
    mode: str = "anchor",
    detach_anchor: bool = False,
    idx: torch.Tensor | None = None,
    counts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Anchor-based InfoNCE aligning several semantic views through a behaviour anchor.

    Args:
        anchor: ``[B, d]`` behaviour representations, or the full table ``[n, d]`` with ``idx``.
        views: |M| tensors ``[B, d]`` (or ``[n, d]`` with ``idx``), one per modality.
        tau: temperature.
        mode: 'anchor' = sum_m InfoNCE(anchor, view_m);
            'multi_positive' = -mean_n log( sum_m e^{cos(a_n, v^m_n)/tau} / sum_m sum_j e^{cos(a_n, v^m_j)/tau} );
            'pairwise' = sum over modality pairs m < m' of InfoNCE(view_m, view_m') (no anchor;
            zero with one modality).
        detach_anchor: stop gradients into the anchor.
        idx: ``[B]`` rows of the full tables forming the batch; the 'anchor' and 'pairwise'
            terms are then computed once per distinct row (:func:`info_nce_rows`, same value).
        counts: ``[U]`` instead of ``idx``: the inputs are a batch's distinct rows ``[U, d]``, row
            u standing for ``counts[u]`` identical rows (:func:`counted_info_nce`).
    Returns:
        scalar.
    """
    a = anchor.detach() if detach_anchor else anchor
    if mode not in ANCHOR_MODES:
        raise ValueError(f"unknown anchor mode {mode!r} ({' | '.join(ANCHOR_MODES)})")

    if idx is not None and counts is not None:
        raise ValueError("give idx or counts, not both")

    def nce(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if counts is not None:
            return counted_info_nce(x, y, counts, tau)
        return info_nce(x, y, tau) if idx is None else info_nce_rows(x, y, idx, tau)

    if mode == "anchor":
        return sum(nce(a, v) for v in views)
    if mode == "multi_positive":
        if idx is not None:
            a, views = a[idx], [v[idx] for v in views]
        elif counts is not None:  # back to the batch's rows (the multi-positive sum is not row-weighted)
            a, views = a.repeat_interleave(counts, dim=0), [v.repeat_interleave(counts, dim=0) for v in views]
        an = F.normalize(a, dim=-1) / tau
        logits = torch.stack([an @ F.normalize(v, dim=-1).t() for v in views], dim=0)  # [M, B, B]
        pos = torch.logsumexp(torch.diagonal(logits, dim1=1, dim2=2), dim=0)  # [B]
        total = torch.logsumexp(logits.permute(1, 0, 2).reshape(a.shape[0], -1), dim=1)  # [B]
        return (total - pos).mean()
    terms = [nce(views[i], views[j]) for i in range(len(views)) for j in range(i + 1, len(views))]
    return sum(terms) if terms else anchor.new_zeros(())
