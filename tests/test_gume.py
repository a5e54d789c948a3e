"""GUME: the graph enhancement by hand, the forward pass and every loss term against a dense
reference of the authors' equations, a smoke run with the authors' defaults, and a 50k-item
catalogue without any n x n matrix."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from siger.data.graphs import GraphStore, shared_neighbours, ui_adjacency_with_items
from siger.models.gume import GUME, moment_gap, sign_noise
from tests.conftest import fit_tiny_with_authors_defaults
from tests.test_siger import _two_modal


def test_enhancement_keeps_the_neighbours_every_modality_shares():
    img = sp.csr_matrix(np.array([[.5, .3, .2, 0], [.1, .6, 0, .3], [0, .2, .4, .4], [.3, 0, .3, .4]]))
    txt = sp.csr_matrix(np.array([[.4, 0, .3, .3], [.2, .5, .3, 0], [.1, .1, .8, 0], [0, .5, .2, .3]]))
    want = np.array([[0, 0, 1, 0],   # 0: image {0, 1, 2}, text {0, 2, 3}: 2 (itself dropped)
                     [1, 0, 0, 0],   # 1: {0, 1, 3} & {0, 1, 2}: 0
                     [0, 1, 0, 0],   # 2: {1, 2, 3} & {0, 1, 2}: 1 (directed: 1 does not get 2)
                     [0, 0, 1, 0]])  # 3: {0, 2, 3} & {1, 2, 3}: 2
    assert np.array_equal(shared_neighbours([img, txt]).toarray(), want)
    one = shared_neighbours([img]).toarray()
    assert np.array_equal(one, (img.toarray() > 0) & ~np.eye(4, dtype=bool))


def test_enhanced_user_item_graph_by_hand():
    r = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0]], dtype=np.float32))
    edges = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 0], [1, 1, 0]], dtype=np.float32))
    norm, r_hat = ui_adjacency_with_items(r, edges)
    a = np.zeros((5, 5))
    a[:2, 2:] = r.toarray()
    a[2:, :2] = r.toarray().T
    a[2:, 2:] = edges.toarray()
    d = a.sum(1)  # users 2, 1; items: 1 + 1, 1 + 0, 1 + 2
    assert d.tolist() == [2, 1, 2, 1, 3]
    want = a / np.sqrt(d[:, None]) / np.sqrt(d[None, :])
    assert np.allclose(norm.toarray(), want) and np.allclose(r_hat.toarray(), want[:2, 2:])


def test_moment_gap_and_the_perturbation():
    a, b = torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    # var(a) = 2, mean 2; var(b) = 4/3, mean 1
    assert moment_gap(a, b).item() == pytest.approx(2 - 4 / 3 + 1)
    x = torch.randn(5, 4)
    y = sign_noise(x, 0.1)
    delta = y - x
    assert torch.allclose(delta.abs().norm(dim=1), torch.full((5,), 0.1), atol=1e-6)
    assert torch.all(torch.sign(delta) == torch.sign(x))


def _dense(m):
    return torch.tensor(m.toarray(), dtype=torch.float32)


def test_forward_and_loss_match_a_dense_reference_of_the_authors_equations(tiny_dir):
    data = _two_modal(tiny_dir)
    torch.manual_seed(0)
    store = GraphStore(data, False)
    cfg = GUME.Config(knn_k=3, embedding_dim=6, n_ui_layers=2, n_layers=2, reg_weight=0.2, reg_it=0.3,
                      vt_weight=0.5, bm_weight=0.7, um_weight=0.9, bm_temp=0.4, um_temp=0.3, noise_eps=0.1)
    model = GUME(data, cfg, store)
    n_u = data.n_users
    s = {m: _dense(store.knn(m, 3)) for m in model.modalities}
    adj, r_hat = ui_adjacency_with_items(data.train_matrix, shared_neighbours([store.knn(m, 3) for m in model.modalities]))
    a, r = _dense(adj), _dense(r_hat)

    def lgcn(x):
        return (x + a @ x + a @ a @ x) / 3

    with torch.no_grad():
        h_id = lgcn(torch.cat([model.user_emb, model.item_emb]))
        xs, ext = [], []
        for m in model.modalities:
            lin1, lin2 = model.space[m][0], model.space[m][1]
            e = model.item_emb * torch.sigmoid(lin2(lin1(model.item_inputs[m])))
            h = s[m] @ (s[m] @ e)
            xs.append(torch.cat([r @ h, h]))
            ext.append(lgcn(torch.cat([model.ext_users[m], h])))
        h_it = sum(ext) / 2
        logits = torch.cat([model.fusion.query(x) for x in xs], dim=-1)
        w = torch.softmax(logits, dim=-1)
        coarse = w[:, :1] * xs[0] + w[:, 1:] * xs[1]
        fine = [torch.sigmoid(g(h_id)) * (x - coarse) for g, x in zip(model.fusion.prefer, xs)]
        h_int = (fine[0] + fine[1] + coarse) / 3
        h = h_id + h_int
    u, i = model.embeddings()
    assert torch.allclose(u, h[:n_u], atol=1e-5) and torch.allclose(i, h[n_u:], atol=1e-5)

    users, pos, neg = torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    torch.manual_seed(7)
    out = model.loss(users, pos, neg)

    def nce(v1, v2, t):
        v1, v2 = F.normalize(v1, dim=1), F.normalize(v2, dim=1)
        return (-torch.log(torch.exp((v1 * v2).sum(-1) / t) / torch.exp(v1 @ v2.T / t).sum(1))).mean()

    def noisy(x):
        return x + torch.sign(x) * F.normalize(torch.rand_like(x), dim=-1) * 0.1

    with torch.no_grad():
        uu, pp, qq = h[users], h[n_u + pos], h[n_u + neg]
        bpr = -F.logsigmoid((uu * pp).sum(1) - (uu * qq).sum(1)).mean()
        reg = 0.2 * 0.5 * (uu.pow(2).sum() + pp.pow(2).sum() + qq.pow(2).sum()) / 3 \
            + 0.3 * 0.5 * h_it[n_u + pos].pow(2).sum() / 3
        vt = (torch.var(xs[0]) - torch.var(xs[1])).abs() + (xs[0].mean() - xs[1].mean()).abs()
        bm = nce(h_int[users], h_id[users], 0.4) + nce(h_int[n_u + pos], h_id[n_u + pos], 0.4)
        torch.manual_seed(7)
        iu, tu = h_int[users], h_it[users]
        n1 = nce(noisy(iu), noisy(iu), 0.3)
        n2 = nce(noisy(tu), noisy(tu), 0.3)
        um = nce(tu, iu, 0.3) + n1 + n2
    assert torch.allclose(out["bpr"], bpr, atol=1e-5) and torch.allclose(out["reg"], reg, atol=1e-6)
    assert torch.allclose(out["vt"], 0.5 * vt, atol=1e-6) and torch.allclose(out["bm"], 0.7 * bm, atol=1e-5)
    assert torch.allclose(out["um"], 0.9 * um, atol=1e-5)


def test_train_and_evaluate_with_the_authors_defaults(tiny_dir, tmp_path):
    cfg, _, _ = fit_tiny_with_authors_defaults("GUME", tiny_dir, tmp_path / "r")
    m = cfg.model
    assert (cfg.train.learning_rate, m.n_ui_layers, m.n_layers, m.reg_weight, m.reg_it, m.bm_temp, m.um_temp,
            m.vt_weight) == (1e-3, 3, 2, 1e-5, 0.1, 0.4, 0.1, 0.1)


def test_50k_items_stay_far_below_dense(tmp_path):
    from tests.conftest import peak_rss_50k_items

    peak = peak_rss_50k_items(tmp_path, "siger.models.gume", "GUME")
    assert peak < 2048, f"peak RSS {peak:.0f} MB"


def test_a_new_item_is_placed_by_hand(tiny_dir):
    """One modality, knn_k 3, two kNN hops: the new item's row is its 2 nearest trained items
    (cosine weights) plus itself, sym-normalised with its own degree and theirs; its ID embedding
    and H^id are the neighbour aggregates; then the gate, two hops, MGCN's fusion."""
    from siger.data.dataset import load_dataset

    data = load_dataset("tiny", tiny_dir)
    store = GraphStore(data, False)
    torch.manual_seed(0)
    model = GUME(data, GUME.Config(knn_k=3, embedding_dim=6, n_ui_layers=2, n_layers=2), store)
    new = np.array([[1.0, 0.5, -0.2], [-1.0, 0.1, 0.3]], np.float32)
    got = model.embed_new_items({"image": new}, data, store)

    f = data.features["image"].astype(np.float64)
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    c = fn @ fn.T
    deg = np.array([c[i, np.lexsort((np.arange(6), -c[i]))[:3]].sum() for i in range(6)])
    cos = (new / np.linalg.norm(new, axis=1, keepdims=True)) @ fn.T
    n_u = data.n_users
    s = _dense(store.knn("image", 3))
    adj, _ = ui_adjacency_with_items(data.train_matrix, shared_neighbours([store.knn("image", 3)]))
    a = _dense(adj)
    with torch.no_grad():
        ego = torch.cat([model.user_emb, model.item_emb])
        h_id = ((ego + a @ ego + a @ a @ ego) / 3)[n_u:]
        gate = model.space["image"]
        hk0 = model.item_emb * gate(model.item_inputs["image"])
        want = []
        for r in range(2):
            nb = np.lexsort((np.arange(6), -cos[r]))[:2]
            w = cos[r, nb]
            pos = np.maximum(w, 0)
            agg = torch.from_numpy(pos / pos.sum() if pos.sum() > 0 else np.full(2, 0.5)).float()
            e_new, id_new = agg @ model.item_emb[nb], agg @ h_id[nb]
            d_new = 1 + w.sum()
            off = torch.from_numpy(w / np.sqrt(d_new * deg[nb])).float()
            h0 = e_new * gate(torch.from_numpy(new[r:r + 1]))[0]
            h1 = off @ hk0[nb] + h0 / d_new
            h2 = off @ (s @ hk0)[nb] + h1 / d_new
            want.append(id_new + model.fusion([h2[None]], id_new[None])[0])
    assert torch.allclose(got, torch.stack(want), atol=1e-5)
