"""DRAGON: the user co-occurrence graph and its padded softmax weights by hand, the forward pass
against a dense reference of the authors' equations, a smoke run with the authors' defaults, and
a 50k-item catalogue without any n x n matrix."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from siger.data.graphs import GraphStore, cooccurrence_graph
from siger.models.dragon import DRAGON, mixing_weights, padded_multiplicity, user_graph_weights
from tests.conftest import fit_tiny_with_authors_defaults
from tests.test_siger import _two_modal


def test_user_graph_counts_shared_items_and_keeps_the_top_k():
    # users x items; shared items: (0,1) 2, (0,2) 1, (1,2) 1, (2,3) 1, user 4 shares nothing
    r = sp.csr_matrix(np.array([[1, 1, 0, 0, 0],
                                [1, 1, 1, 0, 0],
                                [0, 1, 0, 1, 0],
                                [0, 0, 0, 1, 0],
                                [0, 0, 0, 0, 1]], dtype=np.float32))
    g = cooccurrence_graph(r.T, 2, "count").toarray()
    want = np.array([[0, 2, 1, 0, 0],
                     [2, 0, 1, 0, 0],
                     [1, 1, 0, 0, 0],  # users 0, 1 and 3 tied at 1: the two smallest ids are kept
                     [0, 0, 1, 0, 0],
                     [0, 0, 0, 0, 0]])
    assert np.array_equal(g, want)


def test_padding_and_softmax_weights_by_hand():
    # three users: no neighbour, two neighbours (counts 2, 1), three neighbours (1, 1, 3); k = 3
    indptr = torch.tensor([0, 0, 2, 5])
    counts = torch.tensor([2.0, 1.0, 1.0, 1.0, 3.0])
    plain = padded_multiplicity(indptr, 3, pad=False)
    assert torch.equal(plain, torch.ones(5))
    w = user_graph_weights(indptr, counts, plain)
    e2, e1 = math.exp(2), math.exp(1)
    assert torch.allclose(w[:2], torch.tensor([e2 / (e2 + e1), e1 / (e2 + e1)]))
    assert torch.allclose(w[2:], torch.tensor([e1, e1, math.exp(3)]) / (2 * e1 + math.exp(3)))
    torch.manual_seed(0)
    for _ in range(20):  # user 1's list is padded by one more draw of one of its two neighbours
        mult = padded_multiplicity(indptr, 3, pad=True)
        assert mult[2:].tolist() == [1, 1, 1] and sorted(mult[:2].tolist()) == [1.0, 2.0]
        w = user_graph_weights(indptr, counts, mult)
        # the authors' softmax over the padded list of three: the repeated neighbour counts twice
        listed = [2.0, 1.0] + ([2.0] if mult[0] == 2 else [1.0])
        soft = torch.softmax(torch.tensor(listed), 0)
        want = torch.tensor([soft[0] + (soft[2] if mult[0] == 2 else 0), soft[1] + (soft[2] if mult[1] == 2 else 0)])
        assert torch.allclose(w[:2], want)


def test_item_graph_shares():
    assert mixing_weights(["image", "text"], 0.1) == {"image": 0.1, "text": 0.9}
    assert mixing_weights(["text"], 0.1) == {"text": 1.0}
    assert mixing_weights(["audio", "image", "text"], 0.1) == pytest.approx({"image": 0.1, "audio": 0.45, "text": 0.45})


def test_forward_matches_a_dense_reference_of_the_authors_equations(tiny_dir):
    data = _two_modal(tiny_dir)  # 4 users, 6 items, image 3-d and audio 4-d
    torch.manual_seed(0)
    cfg = DRAGON.Config(knn_k=3, user_k=2, embedding_dim=5, n_mm_layers=2)
    store = GraphStore(data, False)
    model = DRAGON(data, cfg, store)
    u, i = model.embeddings()
    n_u = data.n_users
    r = data.train_matrix.toarray()
    a = np.block([[np.zeros((n_u, n_u)), r], [r.T, np.zeros((6, 6))]])
    d = a.sum(1)
    inv = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1e-12)), 0)
    a = torch.tensor(inv[:, None] * a * inv[None, :], dtype=torch.float32)
    hs = []
    mods = model.modalities
    assert sorted(mods) == ["audio", "image"]
    for m in mods:
        enc = model.encoders[m]
        f = torch.tensor(data.features[m])
        x = torch.cat([enc.preference, enc.mlp[2](F.leaky_relu(enc.mlp[0](f)))])
        x = x / x.norm(dim=1, keepdim=True)
        hs.append(x + a @ x + a @ a @ x)
    w = model.modal_weight.detach()
    users = torch.cat([w[:, 0] * hs[0][:n_u], w[:, 1] * hs[1][:n_u]], dim=1)
    items = torch.cat([hs[0][n_u:], hs[1][n_u:]], dim=1)
    share = mixing_weights(mods, 0.1)
    assert share == {"image": 0.1, "audio": pytest.approx(0.9)}
    def binary(m):  # the authors' get_knn_adj_mat: ones at the top-k (self included), sym-normalised
        f = torch.tensor(data.features[m])
        f = f / f.norm(dim=1, keepdim=True)
        a = torch.zeros(6, 6).scatter_(1, torch.topk(f @ f.T, 3, dim=1).indices, 1.0)
        d = (a.sum(1) + 1e-7).pow(-0.5)
        return d[:, None] * a * d[None, :]

    s = share["image"] * binary("image") + share["audio"] * binary("audio")
    want_i = items + s @ (s @ items)
    # user graph: softmax over each user's top-2 co-occurring users' counts (padded lists: counted twice)
    c = (r @ r.T).astype(np.float64)
    np.fill_diagonal(c, 0)
    g = torch.zeros(n_u, n_u)
    mult = model.user_mult
    ug = store.user_cooccurrence(2)
    for uu in range(n_u):
        cols, vals = ug.indices[ug.indptr[uu]:ug.indptr[uu + 1]], ug.data[ug.indptr[uu]:ug.indptr[uu + 1]]
        assert all(c[uu, v] == val for v, val in zip(cols, vals))
        mm = mult[ug.indptr[uu]:ug.indptr[uu + 1]]
        if len(cols):
            e = mm * torch.exp(torch.tensor(vals) - vals.max())
            g[uu, cols] = (e / e.sum()).float()
    want_u = users + g @ users
    assert torch.allclose(i, want_i, atol=1e-5) and torch.allclose(u, want_u, atol=1e-5)
    assert u.shape == (n_u, 10) and i.shape == (6, 10)


def test_loss_terms_and_the_saved_padding(tiny_dir, tmp_path):
    data = _two_modal(tiny_dir)
    torch.manual_seed(0)
    model = DRAGON(data, DRAGON.Config(knn_k=3, user_k=3, reg_weight=0.5), GraphStore(data, False))
    users, pos, neg = torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    out = model.loss(users, pos, neg)
    u, i = model.forward()
    s = (u[users] * i[pos]).sum(1) - (u[users] * i[neg]).sum(1)
    assert torch.allclose(out["bpr"], -torch.log2(torch.sigmoid(s)).mean(), atol=1e-6)
    reg = sum(model.encoders[m].preference[users].pow(2).mean() for m in ("image", "audio"))
    assert torch.allclose(out["reg"], 0.5 * (reg + model.modal_weight.pow(2).mean()))
    # the padding drawn for the last epoch is part of the saved model: a reload ranks the same
    model.pre_epoch()
    u1, i1 = model.embeddings()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    torch.manual_seed(123)
    other = DRAGON(data, DRAGON.Config(knn_k=3, user_k=3, reg_weight=0.5), GraphStore(data, False))
    other.load_state_dict(torch.load(tmp_path / "m.pt"))
    u2, i2 = other.embeddings()
    assert torch.allclose(u1, u2) and torch.allclose(i1, i2)


def test_train_and_evaluate_with_the_authors_defaults(tiny_dir, tmp_path):
    cfg, _, _ = fit_tiny_with_authors_defaults("DRAGON", tiny_dir, tmp_path / "r")
    assert (cfg.train.learning_rate, cfg.model.reg_weight, cfg.model.user_k) == (1e-4, 1e-3, 40)


def test_50k_items_stay_far_below_dense(tmp_path):
    from tests.conftest import peak_rss_50k_items

    peak = peak_rss_50k_items(tmp_path, "siger.models.dragon", "DRAGON")
    assert peak < 2048, f"peak RSS {peak:.0f} MB"


def test_a_new_item_is_placed_from_its_features_by_hand(tiny_dir):
    """Two modalities, knn_k 3: the new item's row in each binary graph is its 2 nearest trained
    items plus itself, each 1 / sqrt(3 * 3) (every row has 3 entries); mixed 0.1 image, 0.9 audio;
    its representation is x + S x over the concatenated modality parts."""
    data = _two_modal(tiny_dir)
    store = GraphStore(data, False)
    torch.manual_seed(0)
    model = DRAGON(data, DRAGON.Config(knn_k=3, user_k=2), store)
    rng = np.random.default_rng(5)
    new = {"image": rng.normal(size=(2, 3)).astype(np.float32), "audio": rng.normal(size=(2, 4)).astype(np.float32)}
    got = model.embed_new_items(new, data, store)
    with torch.no_grad():
        known = torch.cat([model.encoders[m](model.adj, model.item_inputs[m])[data.n_users:] for m in model.modalities],
                          dim=1)
        x_new = torch.cat([F.normalize(model.encoders[m].mlp(torch.from_numpy(new[m])), dim=1)
                           for m in model.modalities], dim=1)
    share = mixing_weights(model.modalities, 0.1)
    want = []
    for r in range(2):
        h = torch.zeros(known.shape[1])
        for m in model.modalities:
            f = data.features[m] / np.linalg.norm(data.features[m], axis=1, keepdims=True)
            q = new[m][r] / np.linalg.norm(new[m][r])
            nb = np.lexsort((np.arange(6), -(f @ q)))[:2]
            h += share[m] * (known[nb].sum(0) / 3 + x_new[r] / 3)
        want.append(x_new[r] + h)
    assert torch.allclose(got, torch.stack(want), atol=1e-5)
    u, _ = model.embeddings()
    assert (u @ got.T).shape == (data.n_users, 2)


def test_dragon_says_why_it_cannot_fold_in_a_new_user(tiny_dir):
    from siger.models.newusers import NewUsersUnsupported

    data = _two_modal(tiny_dir)
    model = DRAGON(data, DRAGON.Config(knn_k=3), GraphStore(data, False))
    with pytest.raises(NewUsersUnsupported, match="free preference vectors"):
        model.fold_in(data)
