"""SMORE: the spectral filters and the fusion graph by hand, the forward pass and the loss against
a dense reference of the authors' equations, a smoke run with the authors' defaults, and a 50k-item
catalogue without any n x n matrix."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from siger.data.graphs import GraphStore
from siger.models.smore import SMORE, SpectralFusion, max_pool_graphs
from tests.conftest import fit_tiny_with_authors_defaults
from tests.test_siger import _two_modal


def _set_filter(p: torch.nn.Parameter, values: torch.Tensor) -> None:
    with torch.no_grad():
        p.copy_(torch.view_as_real(values.to(torch.complex64)).reshape(p.shape))


def test_spectral_filters_by_hand():
    d = 6
    sf = SpectralFusion(d, 2)
    f1, f2 = torch.randn(3, d), torch.randn(3, d)
    k = torch.arange(d // 2 + 1)
    # an all-ones filter passes a modality through; a linear phase e^{-2 pi i k / d} delays it by one
    _set_filter(sf.filters[0], torch.ones(d // 2 + 1))
    _set_filter(sf.filters[1], torch.exp(-2j * math.pi * k / d))
    _set_filter(sf.fusion_filter, torch.ones(d // 2 + 1))
    (c1, c2), fused = sf([f1, f2])
    assert torch.allclose(c1, f1, atol=1e-5)
    assert torch.allclose(c2, torch.roll(f2, 1, dims=1), atol=1e-5)
    # the product of the two orthonormal spectra: their circular convolution / sqrt(d)
    conv = torch.zeros(3, d)
    for n in range(d):
        for j in range(d):
            conv[:, n] += f1[:, j] * f2[:, (n - j) % d]
    assert torch.allclose(fused, conv / math.sqrt(d), atol=1e-5)


def test_fusion_graph_is_the_entrywise_maximum_over_the_union():
    a = sp.csr_matrix(np.array([[0.5, 0.2, 0], [0, 0.7, 0], [0.1, 0, 0]], dtype=np.float32))
    b = sp.csr_matrix(np.array([[0.3, 0, 0.4], [0, 0.9, 0], [0.2, 0, 0.6]], dtype=np.float32))
    want = np.array([[0.5, 0.2, 0.4], [0, 0.9, 0], [0.2, 0, 0.6]], dtype=np.float32)
    assert np.array_equal(max_pool_graphs([a, b]).toarray(), want)
    assert np.array_equal(max_pool_graphs([a]).toarray(), a.toarray())
    # an entry only one graph stores keeps its value even when negative (the authors' -inf fill)
    c = sp.csr_matrix(np.array([[0, -0.2], [0.1, 0]], dtype=np.float32))
    d = sp.csr_matrix(np.array([[0.3, 0], [0.4, 0]], dtype=np.float32))
    pooled = max_pool_graphs([c, d])
    assert np.array_equal(pooled.toarray(), np.array([[0.3, -0.2], [0.4, 0]], dtype=np.float32)) and pooled.nnz == 3


def _dense(m):
    return torch.tensor(m.toarray(), dtype=torch.float32)


def test_forward_and_loss_match_a_dense_reference_of_the_authors_equations(tiny_dir):
    data = _two_modal(tiny_dir)
    torch.manual_seed(0)
    store = GraphStore(data, False)
    cfg = SMORE.Config(knn_k=3, embedding_dim=6, n_ui_layers=2, n_layers=2, reg_weight=0.1, cl_weight=0.5,
                       temperature=0.3)
    model = SMORE(data, cfg, store)
    n_u = data.n_users
    a, r = _dense(store.ui_adjacency()), _dense(store.bipartite())
    s = {m: _dense(store.knn(m, 3)) for m in model.modalities}
    # the authors' max-pooling: missing entries are -inf, so an entry of one graph keeps its value
    stored = {m: _dense((store.knn(m, 3) != 0).astype(np.float32)) > 0 for m in model.modalities}
    s_f = torch.maximum(*[torch.where(stored[m], s[m], torch.tensor(-torch.inf)) for m in model.modalities])
    s_f = torch.where(torch.isinf(s_f), torch.zeros(()), s_f)
    e_u, e_i = model.user_emb.detach(), model.item_emb.detach()
    with torch.no_grad():
        feats = [model.projections[m](model.item_inputs[m]) for m in model.modalities]
        ffts = [torch.fft.rfft(f, dim=1, norm="ortho") for f in feats]
        ks = [torch.view_as_complex(p) for p in model.spectral.filters]
        conv = [torch.fft.irfft(x * k, n=6, dim=1, norm="ortho") for x, k in zip(ffts, ks)]
        fused = torch.fft.irfft(ffts[0] * ffts[1] * torch.view_as_complex(model.spectral.fusion_filter), n=6, dim=1,
                                norm="ortho")
        ego = torch.cat([e_u, e_i])
        layers = [ego, a @ ego, a @ a @ ego]
        hb = torch.stack(layers).mean(0)

        def view(g, e):
            e = g @ (g @ e)
            return torch.cat([r @ e, e])

        hf = view(s_f, e_i * torch.sigmoid(model.fusion_gate[0](fused)))
        parts = []
        for m, cm in zip(model.modalities, conv):
            hm = view(s[m], e_i * torch.sigmoid(model.gates[m][0](cm)))
            att = torch.softmax(model.queries[m](hf), dim=-1)
            parts.append(torch.sigmoid(model.prefer[m][0](hb)) * att * hm)
        parts.append(torch.sigmoid(model.fusion_prefer[0](hb)) * hf)
        hs = sum(parts) / 3
        h = hb + hs
    u, i = model.embeddings()  # eval mode: no dropout
    assert torch.allclose(u, h[:n_u], atol=1e-5) and torch.allclose(i, h[n_u:], atol=1e-5)
    # the loss in eval mode (dropout off) against the authors' formulas
    model.eval()
    users, pos, neg = torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    out = model.loss(users, pos, neg)
    uu, pp, nn_ = h[users], h[n_u + pos], h[n_u + neg]
    bpr = -F.logsigmoid((uu * pp).sum(1) - (uu * nn_).sum(1)).mean()
    reg = 0.5 * (uu.pow(2).sum() + pp.pow(2).sum() + nn_.pow(2).sum()) / 3

    def nce(v1, v2, t):
        v1, v2 = F.normalize(v1, dim=1), F.normalize(v2, dim=1)
        return (-torch.log(torch.exp((v1 * v2).sum(-1) / t) / torch.exp(v1 @ v2.T / t).sum(1))).mean()

    cl = nce(hs[n_u + pos], hb[n_u + pos], 0.3) + nce(hs[users], hb[users], 0.3)
    assert torch.allclose(out["bpr"], bpr, atol=1e-5) and torch.allclose(out["reg"], 0.1 * reg, atol=1e-6)
    assert torch.allclose(out["cl"], 0.5 * cl, atol=1e-5)


def test_dropout_on_the_preference_gates_only_in_training(tiny_dir):
    data = _two_modal(tiny_dir)
    torch.manual_seed(0)
    model = SMORE(data, SMORE.Config(knn_k=3, dropout=0.5), GraphStore(data, False))
    a = model.embeddings()[1]
    assert torch.equal(a, model.embeddings()[1])  # evaluation is deterministic
    model.train()
    assert not torch.allclose(model.forward()[1], a)


def test_train_and_evaluate_with_the_authors_defaults(tiny_dir, tmp_path):
    cfg, _, _ = fit_tiny_with_authors_defaults("SMORE", tiny_dir, tmp_path / "r")
    m = cfg.model
    assert (cfg.train.learning_rate, cfg.train.lr_decay, m.n_ui_layers, m.reg_weight, m.cl_weight, m.dropout) == (
        1e-3, 0.96, 4, 1e-4, 0.01, 0.1)


def test_50k_items_stay_far_below_dense(tmp_path):
    from tests.conftest import peak_rss_50k_items

    peak = peak_rss_50k_items(tmp_path, "siger.models.smore", "SMORE")
    assert peak < 2048, f"peak RSS {peak:.0f} MB"


def test_one_modality_fuses_with_itself(tmp_path):
    from tests.conftest import write_planted

    write_planted(tmp_path, "p", seed=0)
    from siger.data.dataset import load_dataset

    data = load_dataset("p", tmp_path)
    model = SMORE(data, SMORE.Config(knn_k=3), GraphStore(data, False))
    assert len(model.modalities) == 1
    u, i = model.embeddings()
    assert torch.isfinite(u).all() and i.shape == (data.n_items, 64)
    assert np.array_equal(model.fusion_graph.a.to_dense().numpy(),
                          GraphStore(data, False).knn(model.modalities[0], 3).toarray())
    with pytest.raises(ValueError, match="at least one modality"):
        data.features.clear()
        data.graphs.clear()
        SMORE(data, SMORE.Config(knn_k=3), GraphStore(data, False))


def test_a_new_item_is_placed_by_hand(tiny_dir):
    """One modality, knn_k 3, one item-graph layer: the new item's row is its 2 nearest trained
    items (cosine weights) plus itself, sym-normalised with its own degree and theirs; its ID
    embedding and behaviour part are the neighbour aggregates; the fusion row is the same row."""
    from siger.data.dataset import load_dataset

    data = load_dataset("tiny", tiny_dir)
    store = GraphStore(data, False)
    torch.manual_seed(0)
    model = SMORE(data, SMORE.Config(knn_k=3, embedding_dim=6, n_ui_layers=2), store)
    new = np.array([[1.0, 0.5, -0.2], [-1.0, 0.1, 0.3]], np.float32)
    got = model.embed_new_items({"image": new}, data, store)

    f = data.features["image"].astype(np.float64)
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    c = fn @ fn.T
    deg = np.array([c[i, np.lexsort((np.arange(6), -c[i]))[:3]].sum() for i in range(6)])
    cos = (new / np.linalg.norm(new, axis=1, keepdims=True)) @ fn.T
    n_u = data.n_users
    with torch.no_grad():
        a_ui = _dense(store.ui_adjacency())
        ego = torch.cat([model.user_emb, model.item_emb])
        hb = ((ego + a_ui @ ego + a_ui @ a_ui @ ego) / 3)[n_u:].double().numpy()
        e = model.item_emb.double().numpy()

        def gates(x, ids):  # the spectral step and the gates, one modality
            spec = torch.fft.rfft(model.projections["image"](x), dim=1, norm="ortho")
            conv = torch.fft.irfft(spec * torch.view_as_complex(model.spectral.filters[0]), n=6, dim=1, norm="ortho")
            fused = torch.fft.irfft(spec * torch.view_as_complex(model.spectral.fusion_filter), n=6, dim=1,
                                    norm="ortho")
            return ids * torch.sigmoid(model.gates["image"][0](conv)), ids * torch.sigmoid(model.fusion_gate[0](fused))

        em_known, ef_known = gates(model.item_inputs["image"], model.item_emb)
        want = []
        for r in range(2):
            nb = np.lexsort((np.arange(6), -cos[r]))[:2]
            w = cos[r, nb]
            pos = np.maximum(w, 0)
            agg = pos / pos.sum() if pos.sum() > 0 else np.full(2, 0.5)
            e_new = torch.from_numpy(agg @ e[nb]).float()[None]
            hb_new = torch.from_numpy(agg @ hb[nb]).float()[None]
            em_new, ef_new = gates(torch.from_numpy(new[r:r + 1]), e_new)
            d_new = 1 + w.sum()
            off = torch.from_numpy(w / np.sqrt(d_new * deg[nb])).float()
            h_m = off @ em_known[nb] + em_new[0] / d_new
            h_f = off @ ef_known[nb] + ef_new[0] / d_new
            att = torch.softmax(model.queries["image"](h_f[None]), dim=-1)
            part_m = torch.sigmoid(model.prefer["image"][0](hb_new)) * att * h_m
            part_f = torch.sigmoid(model.fusion_prefer[0](hb_new)) * h_f
            want.append((hb_new + (part_m + part_f) / 2)[0])
    assert torch.allclose(got, torch.stack(want), atol=1e-5)
