"""Loss terms and perturbation against hand values and direct loop implementations."""

import math

import pytest
import torch
import torch.nn.functional as F

from siger.models.losses import (
    anchor_info_nce,
    bpr_loss,
    info_nce,
    info_nce_rows,
    keyed_info_nce,
    keyed_info_nce_rows,
    l2_reg,
)
from siger.models.perturb import noise_scale, perturb


def _cos(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def loop_info_nce(x, y, tau):
    total = 0.0
    for n in range(len(x)):
        num = math.exp(_cos(x[n], y[n]) / tau)
        den = sum(math.exp(_cos(x[n], y[j]) / tau) for j in range(len(y)))
        total += -math.log(num / den)
    return total / len(x)



def info_nce_reference(x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """Plain-autograd InfoNCE (log_softmax); the fused ``info_nce`` must equal it."""
    x = F.normalize(x, dim=-1) / tau
    y = F.normalize(y, dim=-1)
    return -torch.diagonal(torch.log_softmax(x @ y.t(), dim=1)).mean()

def test_bpr_hand_value_and_no_double_scaling():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    n = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    # diffs: 1 and 2 -> mean of -log sigmoid
    expect = (math.log1p(math.exp(-1)) + math.log1p(math.exp(-2))) / 2
    assert bpr_loss(u, p, n).item() == pytest.approx(expect, rel=1e-6)


def test_l2_reg_hand_value():
    a = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    assert l2_reg(a, a).item() == pytest.approx(0.5 * 2 * (1 + 4 + 1) / 2)


def test_info_nce_matches_loop():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    for tau in (0.2, 1.0):
        assert info_nce(x, y, tau).item() == pytest.approx(loop_info_nce(x, y, tau), rel=1e-5)


def test_fused_info_nce_gradient_matches_autograd_reference():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 4, generator=g, dtype=torch.double, requires_grad=True)
    y = torch.randn(9, 4, generator=g, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, 0.2), (x, y))
    (3.0 * info_nce(x, y, 0.2)).backward()
    gx, gy = x.grad.clone(), y.grad.clone()
    x.grad = y.grad = None
    (3.0 * info_nce_reference(x, y, 0.2)).backward()
    assert torch.allclose(gx, x.grad, atol=1e-12) and torch.allclose(gy, y.grad, atol=1e-12)
    # one input without grad: only the other gets a gradient
    z = y.detach()
    x.grad = None
    info_nce(x, z, 0.5).backward()
    assert x.grad is not None and z.grad is None


def test_keyed_info_nce_value_and_gradients_match_autograd():
    """Denominator over a separate key set (LGMRec: all users), positives among the keys."""
    g = torch.Generator().manual_seed(2)
    keys = torch.randn(11, 4, generator=g, dtype=torch.double, requires_grad=True)
    x = torch.randn(5, 4, generator=g, dtype=torch.double, requires_grad=True)
    idx = torch.tensor([0, 3, 3, 7, 10])

    def reference(x, keys):
        xn = torch.nn.functional.normalize(x, dim=-1) / 0.2
        kn = torch.nn.functional.normalize(keys, dim=-1)
        return -torch.log_softmax(xn @ kn.t(), dim=1)[torch.arange(5), idx].sum()

    xd, kd = x.detach(), keys.detach()
    expect = sum(-math.log(math.exp(_cos(xd[n], kd[idx[n]]) / 0.2)
                           / sum(math.exp(_cos(xd[n], kd[j]) / 0.2) for j in range(11))) for n in range(5))
    assert keyed_info_nce(x, keys[idx], keys, 0.2, "sum").item() == pytest.approx(expect, rel=1e-10)
    assert keyed_info_nce(x, keys[idx], keys, 0.2).item() == pytest.approx(expect / 5, rel=1e-10)
    assert torch.autograd.gradcheck(lambda a, k: keyed_info_nce(a, k[idx], k, 0.2, "sum"), (x, keys))
    (2.0 * keyed_info_nce(x, keys[idx], keys, 0.2, "sum")).backward()
    gx, gk = x.grad.clone(), keys.grad.clone()
    x.grad = keys.grad = None
    (2.0 * reference(x, keys)).backward()
    assert torch.allclose(gx, x.grad, atol=1e-12) and torch.allclose(gk, keys.grad, atol=1e-12)
    with pytest.raises(ValueError, match="reduction"):
        keyed_info_nce(x, keys[idx], keys, 0.2, "none")


def test_info_nce_on_distinct_rows_equals_the_full_batch():
    """A batch with repeated indices: the [U, U] weighted form equals the [B, B] loss and gradients."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(9, 5, generator=g, dtype=torch.double, requires_grad=True)
    y = torch.randn(9, 5, generator=g, dtype=torch.double, requires_grad=True)
    idx = torch.tensor([4, 1, 4, 8, 1, 4, 0, 2])  # 8 rows, 5 distinct (4 three times, 1 twice)
    xd, yd = x.detach(), y.detach()
    assert info_nce_rows(x, y, idx, 0.3).item() == pytest.approx(loop_info_nce(xd[idx], yd[idx], 0.3), rel=1e-10)
    assert torch.autograd.gradcheck(lambda a, b: info_nce_rows(a, b, idx, 0.3), (x, y))
    (1.7 * info_nce_rows(x, y, idx, 0.3)).backward()
    gx, gy = x.grad.clone(), y.grad.clone()
    x.grad = y.grad = None
    (1.7 * info_nce_reference(x[idx], y[idx], 0.3)).backward()
    assert torch.allclose(gx, x.grad, atol=1e-12) and torch.allclose(gy, y.grad, atol=1e-12)
    # all distinct: the unweighted path, same value as indexing first
    perm = torch.tensor([3, 0, 7])
    assert info_nce_rows(xd, yd, perm, 0.3).item() == pytest.approx(info_nce(xd[perm], yd[perm], 0.3).item(), rel=1e-12)
    # the same for a separate key set (LGMRec: every user is a key)
    keys = torch.randn(6, 5, generator=g, dtype=torch.double, requires_grad=True)
    j = torch.tensor([2, 2, 5, 0, 2])
    full = keyed_info_nce(x[:6][j], keys[j], keys, 0.3, "sum")
    rows = keyed_info_nce_rows(x[:6], keys, keys, j, 0.3, "sum")
    assert rows.item() == pytest.approx(full.item(), rel=1e-12)
    assert keyed_info_nce_rows(x[:6], keys, keys, j, 0.3).item() == pytest.approx(full.item() / 5, rel=1e-12)
    assert torch.autograd.gradcheck(lambda a, k: keyed_info_nce_rows(a, k, k, j, 0.3, "sum"), (x[:6].detach().requires_grad_(), keys))


def test_anchor_info_nce_modes_match_loops():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(6, 4, generator=g)
    views = [torch.randn(6, 4, generator=g) for _ in range(3)]
    tau = 0.3
    assert anchor_info_nce(a, views, tau, "anchor").item() == pytest.approx(
        sum(loop_info_nce(a, v, tau) for v in views), rel=1e-5)
    pair = sum(loop_info_nce(views[i], views[j], tau) for i in range(3) for j in range(i + 1, 3))
    assert anchor_info_nce(a, views, tau, "pairwise").item() == pytest.approx(pair, rel=1e-5)
    mp = 0.0
    for n in range(6):
        num = sum(math.exp(_cos(a[n], v[n]) / tau) for v in views)
        den = sum(math.exp(_cos(a[n], v[j]) / tau) for v in views for j in range(6))
        mp += -math.log(num / den)
    assert anchor_info_nce(a, views, tau, "multi_positive").item() == pytest.approx(mp / 6, rel=1e-5)
    assert anchor_info_nce(a, views[:1], tau, "pairwise").item() == 0.0
    with pytest.raises(ValueError):
        anchor_info_nce(a, views, tau, "nope")
    # full tables + batch rows (repeats computed once, weighted) == indexing first, in every mode
    idx = torch.tensor([5, 2, 5, 0, 2, 5])
    for mode in ("anchor", "pairwise", "multi_positive"):
        assert anchor_info_nce(a, views, tau, mode, idx=idx).item() == pytest.approx(
            anchor_info_nce(a[idx], [v[idx] for v in views], tau, mode).item(), rel=1e-5)
    with pytest.raises(ValueError):
        anchor_info_nce(a, views, tau, "nope", idx=idx)


def test_detach_anchor_controls_gradient_flow():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(5, 3, generator=g, requires_grad=True)
    v = torch.randn(5, 3, generator=g, requires_grad=True)
    anchor_info_nce(a, [v], 0.2, detach_anchor=True).backward()
    assert a.grad is None and v.grad is not None and v.grad.abs().sum() > 0
    a2 = a.detach().clone().requires_grad_(True)
    anchor_info_nce(a2, [v], 0.2, detach_anchor=False).backward()
    assert a2.grad is not None and a2.grad.abs().sum() > 0
    a3 = a.detach().clone().requires_grad_(True)
    v.grad = None
    anchor_info_nce(a3, [v], 0.2, detach_anchor=True, idx=torch.tensor([1, 1, 3])).backward()
    assert a3.grad is None and v.grad is not None and v.grad[[1, 3]].abs().sum() > 0


def test_modulus_noise_norm_is_eps_times_node_norm():
    g = torch.Generator().manual_seed(3)
    h = torch.randn(50, 16, generator=g) * torch.linspace(0.1, 10, 50)[:, None]
    out = perturb(h, 0.1, "modulus", generator=g)
    delta = out - h
    assert torch.allclose(delta.norm(dim=1), 0.1 * h.norm(dim=1), rtol=1e-5)
    # the noise keeps the sign of each coordinate (sign(h) * r, r >= 0)
    assert bool(((delta * h) >= 0).all())


def test_uniform_noise_norm_is_constant_and_mean_inverse_scales():
    g = torch.Generator().manual_seed(4)
    h = torch.randn(40, 8, generator=g) * torch.linspace(0.5, 4, 40)[:, None]
    d = perturb(h, 0.2, "uniform", generator=g) - h
    assert torch.allclose(d.norm(dim=1), torch.full((40,), 0.2), rtol=1e-5)
    norms = h.norm(dim=1, keepdim=True)
    assert torch.allclose(noise_scale(h, 0.2, "mean"), 0.2 * norms / norms.mean())
    assert torch.allclose(noise_scale(h, 0.2, "inverse"), 0.2 * norms.mean() / norms)
    # rows of a larger table: the table's mean norm replaces the rows' own
    t = torch.tensor(3.0)
    assert torch.allclose(noise_scale(h, 0.2, "mean", table_mean=t), 0.2 * norms / 3.0)
    assert torch.allclose(noise_scale(h, 0.2, "inverse", table_mean=t), 0.2 * 3.0 / norms)
    assert torch.allclose(noise_scale(h, 0.2, "modulus", table_mean=t), 0.2 * norms)
    with pytest.raises(ValueError):
        noise_scale(h, 0.2, "gaussian")


def test_noise_norm_carries_no_gradient():
    h = torch.randn(10, 4, requires_grad=True)
    perturb(h, 0.5, "modulus").sum().backward()
    assert torch.allclose(h.grad, torch.ones_like(h))


def test_emb_norm_loss_hand_value():
    from siger.models.losses import emb_norm_loss

    a = torch.tensor([[3.0, 4.0], [0.0, 0.0]])  # Frobenius norm 5
    b = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # norm 1, 4 rows
    assert emb_norm_loss(a, b).item() == pytest.approx((5 + 1) / 4)


def test_uniform16_is_uniform_on_its_grid_and_seeded():
    from siger.models.perturb import uniform16

    g = torch.Generator().manual_seed(5)
    r = uniform16((4001, 7), generator=g)  # an odd count: the last integer is cut
    assert r.shape == (4001, 7) and r.dtype == torch.float32
    assert float(r.min()) > 0 and float(r.max()) < 1
    k = r * 65536 - 0.5  # grid index
    assert torch.allclose(k, k.round(), atol=1e-3)
    assert abs(float(r.mean()) - 0.5) < 0.01 and abs(float(r.var()) - 1 / 12) < 0.005
    lanes = r.reshape(-1)[: 4 * 7000].reshape(-1, 4)  # every 16-bit lane of the integers is uniform
    assert torch.all((lanes.mean(0) - 0.5).abs() < 0.01)
    assert torch.equal(uniform16((3, 5), generator=torch.Generator().manual_seed(1)),
                       uniform16((3, 5), generator=torch.Generator().manual_seed(1)))
