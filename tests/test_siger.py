"""SIGER against a dense, hand-built reference of the spec's equations, plus its switches."""

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from siger.data.dataset import load_dataset
from siger.data.graphs import GraphStore, sym_normalize
from siger.models.siger import ABLATIONS, SIGER, SPEC_PRESET

_MODEL_KEYS = {f.name for f in dataclasses.fields(SIGER.Config)}


def spec_config(**kw) -> SIGER.Config:
    """SIGER's config at the spec's values (the maths below is checked on the spec's forms)."""
    return SIGER.Config(**{**{k: v for k, v in SPEC_PRESET.items() if k in _MODEL_KEYS}, **kw})


def _two_modal(tiny_dir):
    rng = np.random.default_rng(1)
    np.save(tiny_dir / "tiny" / "audio_feat.npy", rng.normal(size=(6, 4)).astype(np.float32))
    return load_dataset("tiny", tiny_dir)


def _dense_topk(w, k):
    out = np.zeros_like(w)
    for i in range(len(w)):
        order = np.lexsort((np.arange(w.shape[1]), -w[i]))[:k]
        keep = [j for j in order if w[i, j] != 0]
        out[i, keep] = w[i, keep]
    return out


def _sym(w):
    d = w.sum(1)
    inv = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
    return inv[:, None] * w * inv[None, :]


def reference_forward(model, data, beta, knn_k, cooc_k):
    """The spec's equations with dense numpy matrices (tiny sizes only)."""
    r = data.train_matrix.toarray().astype(np.float64)
    du, di = r.sum(1), r.sum(0)
    rh = r / np.sqrt(np.where(du > 0, du, 1))[:, None] / np.sqrt(np.where(di > 0, di, 1))[None, :]
    nu = r.shape[0]
    a = np.block([[np.zeros((nu, nu)), rh], [rh.T, np.zeros((r.shape[1], r.shape[1]))]])
    e0 = torch.cat([model.user_emb, model.item_emb]).detach().double().numpy()
    hb = (e0 + a @ e0 + a @ a @ e0) / 3
    c = r.T @ r
    np.fill_diagonal(c, 0)
    sc = _sym(_dense_topk(c, cooc_k))
    hms = []
    for m in model.modalities:
        f = data.features[m].astype(np.float64)
        fn = f / np.linalg.norm(f, axis=1, keepdims=True)
        s = _sym(_dense_topk(fn @ fn.T, knn_k))
        st = (1 - beta) * s + beta * sc
        proj, gate = model.projections[m].proj, model.projections[m].gate
        with torch.no_grad():
            x = model.item_emb * torch.sigmoid(gate(proj(torch.from_numpy(f).float())))
        hi = st @ x.double().numpy()
        hms.append(np.vstack([rh @ hi, hi]))
    with torch.no_grad():
        q = [model.fusion.query(torch.from_numpy(h).float()).double().numpy() for h in hms]
        alpha = np.exp(np.hstack(q)) / np.exp(np.hstack(q)).sum(1, keepdims=True)
        common = sum(alpha[:, [j]] * hms[j] for j in range(len(hms)))
        hbt = torch.from_numpy(hb).float()
        gates = [torch.sigmoid(g(hbt)).double().numpy() for g in model.fusion.prefer]
    spec = sum((hms[j] - common) * gates[j] for j in range(len(hms)))
    hs = (spec + common) / (len(hms) + 1)
    return hb + hs


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_forward_matches_dense_reference(tiny_dir, beta):
    data = _two_modal(tiny_dir)
    cfg = spec_config(knn_k=2, cooc_k=2, beta=beta)
    torch.manual_seed(0)
    model = SIGER(data, cfg, GraphStore(data, False))
    u, i = model.embeddings()
    ref = reference_forward(model, data, beta, 2, 2)
    assert np.allclose(torch.cat([u, i]).numpy(), ref, atol=1e-5)


def test_infusion_beta_zero_is_exactly_the_semantic_graph(tiny_dir):
    data = _two_modal(tiny_dir)
    store = GraphStore(data, False)
    for beta in (0.0, 0.3):
        model = SIGER(data, spec_config(knn_k=2, cooc_k=2, beta=beta), store)
        for m in model.modalities:
            got = model.item_graphs[m].a.to_dense().numpy()
            s = store.knn(m, 2).toarray()
            sc = store.cooccurrence(2).toarray()
            if beta == 0:
                assert np.array_equal(got, s)
            else:
                assert np.allclose(got, 0.7 * s + 0.3 * sc, atol=1e-7)


def test_graph_only_modality_gets_a_learnable_input(tiny_dir):
    d = tiny_dir / "tiny"
    (d / "image_feat.npy").unlink()
    g = sp.random(6, 6, density=0.5, random_state=0, format="csr", dtype=np.float32) + sp.identity(6)
    sp.save_npz(d / "text_adj_2_True.npz", sym_normalize(g))
    data = load_dataset("tiny", tiny_dir)
    assert data.modalities == ["text"] and "text" not in data.features
    model = SIGER(data, spec_config(knn_k=2, cooc_k=2, graph_only_dim=8), GraphStore(data, False))
    inp = model.item_inputs["text"]
    assert inp.shape == (6, 8) and inp.requires_grad
    assert np.allclose(model.item_graphs["text"].a.to_dense().numpy(),
                       0.5 * data.graphs["text"][2].toarray() + 0.5 * GraphStore(data, False).cooccurrence(2).toarray(),
                       atol=1e-7)
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([3, 3])
    terms = model.loss(users, pos, neg)
    sum(terms.values()).backward()
    assert inp.grad is not None and inp.grad.abs().sum() > 0
    with pytest.raises(KeyError, match="knn_k=10"):
        SIGER(data, spec_config(), GraphStore(data, False))


def test_loss_terms_follow_the_switches(tiny_dir):
    data = _two_modal(tiny_dir)
    store = GraphStore(data, False)
    b = (torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), torch.tensor([5, 0, 0]))
    full = SIGER(data, spec_config(knn_k=2, cooc_k=2), store).loss(*b)
    assert set(full) == {"bpr", "reg", "pert", "anchor", "align"}
    for name, ov in ABLATIONS.items():
        terms = SIGER(data, spec_config(knn_k=2, cooc_k=2, **ov), store).loss(*b)
        for key, lam in (("pert", "lambda_p"), ("anchor", "lambda_a"), ("align", "lambda_c")):
            assert (key in terms) == (ov.get(lam, 0.01) > 0), name


@pytest.mark.parametrize("detach", [False, True])
def test_detach_align_stops_only_the_behaviour_side_gradient(tiny_dir, detach):
    from siger.models.losses import info_nce

    data = _two_modal(tiny_dir)
    store = GraphStore(data, False)
    torch.manual_seed(0)
    model = SIGER(data, spec_config(knn_k=2, cooc_k=2, lambda_p=0.0, lambda_a=0.0, lambda_c=1.0,
                                     detach_align=detach), store)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), torch.tensor([5, 0, 0])
    params = [model.user_emb, model.item_emb]
    got = torch.autograd.grad(model.loss(users, pos, neg)["align"], params)
    z = model.encode()
    hb, hs, p = z["hb"], z["hs"], pos + model.n_users
    for ref_detach in (False, True):
        b = hb.detach() if ref_detach else hb
        ref = torch.autograd.grad(info_nce(hs[p], b[p], 0.2) + info_nce(hs[users], b[users], 0.2), params,
                                  retain_graph=True)
        same = all(torch.allclose(g, r, atol=1e-7) for g, r in zip(got, ref))
        assert same == (ref_detach == detach)


def test_perturbed_views_differ_and_clean_pass_is_deterministic(tiny_dir):
    data = _two_modal(tiny_dir)
    model = SIGER(data, spec_config(knn_k=2, cooc_k=2), GraphStore(data, False))
    x = model.item_input("image")
    assert torch.equal(model.semantic("image", x), model.semantic("image", x))
    assert not torch.equal(model.semantic("image", x, noisy=True), model.semantic("image", x, noisy=True))


class _MaxTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.max_numel, self.shape = 0, None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.layout == torch.strided and t.numel() > self.max_numel:
                self.max_numel, self.shape = t.numel(), tuple(t.shape)
        return out


def _synthetic(tmp_path, n_users, n_items, per_user, dim, seed=0):
    rng = np.random.default_rng(seed)
    d = tmp_path / "syn"
    d.mkdir()
    rows = []
    for u in range(n_users):
        its = rng.choice(n_items, size=per_user, replace=False)
        rows += [(u, int(i), 0 if j < per_user - 2 else j - per_user + 3) for j, i in enumerate(its)]
    users, its, labs = (np.array(c) for c in zip(*rows))
    seen = np.zeros(n_items, bool)
    seen[its] = True
    missing = np.flatnonzero(~seen)  # give unseen items to user 0 as train so ids are contiguous
    have0 = set(its[users == 0].tolist())
    extra = [i for i in missing if i not in have0]
    users = np.concatenate([users, np.zeros(len(extra), int)])
    its = np.concatenate([its, extra]).astype(int)
    labs = np.concatenate([labs, np.zeros(len(extra), int)])
    with open(d / "syn.inter", "w") as fh:
        fh.write("userID\titemID\trating\ttimestamp\tx_label\n")
        fh.writelines(f"{u}\t{i}\t1\t0\t{x}\n" for u, i, x in zip(users, its, labs))
    np.save(d / "image_feat.npy", rng.normal(size=(n_items, dim)).astype(np.float32))
    return tmp_path


def test_no_dense_item_by_item_tensor_in_training_or_evaluation(tmp_path):
    from siger.eval.ranking import evaluate

    data = load_dataset("syn", _synthetic(tmp_path, 3000, 5000, 8, 16))
    model = SIGER(data, spec_config(), GraphStore(data, False))
    batch = [torch.from_numpy(a[:512]) for a in (data.train[:, 0], data.train[:, 1], data.train[::-1, 1].copy())]
    with _MaxTensor() as mode:
        sum(model.loss(*batch).values()).backward()
        u, i = model.embeddings()
        evaluate(u, i, data.train_matrix, data.matrix("test"), [20], chunk=256)
    n = data.n_items
    assert mode.max_numel < n * n / 4, f"largest tensor {mode.shape} vs n_items^2 = {n * n}"


def test_memory_50k_items_stays_far_below_dense(tmp_path):
    """Build graphs, one training step and a full evaluation on 50k items in a fresh process.

    A dense 50k x 50k float32 matrix alone is 10 GB; the whole process must stay under 2 GB.
    """
    from tests.conftest import peak_rss_50k_items

    peak = peak_rss_50k_items(tmp_path, "siger.models.siger", "SIGER")
    assert peak < 2048, f"peak RSS {peak:.0f} MB"


def test_encode_at_batch_rows_equals_rows_of_the_full_tables(tiny_dir):
    data = _two_modal(tiny_dir)
    torch.manual_seed(0)
    model = SIGER(data, spec_config(knn_k=2, cooc_k=2, n_ui_layers=2), GraphStore(data, False))
    users, items = torch.tensor([2, 0, 3]), torch.tensor([5, 1, 3])
    part = model.encode(model.batch_rows(users, items))
    full = model.encode()
    rows = torch.cat([users, items + model.n_users])
    for key in ("hb", "hs", "h"):
        assert torch.allclose(part[key], full[key][rows], atol=1e-6), key
    for m in model.modalities:
        assert torch.allclose(part["hm"][m], full["hm"][m][rows], atol=1e-6), m


def _full_table_loss(model, users, pos, neg):
    """SIGER's objective computed on the full [n_u + n_i, d] tables (the plain reading of the spec)."""
    from siger.models.losses import anchor_info_nce, bpr_loss, info_nce, l2_reg

    c = model.config
    z = model.encode()
    h, hb, hs = z["h"], z["hb"], z["hs"]
    pn, qn = pos + model.n_users, neg + model.n_users
    u, p, q = h[users], h[pn], h[qn]
    out = {"bpr": bpr_loss(u, p, q), "reg": c.reg_weight * l2_reg(u, p, q)}
    if c.cl_batch:  # the contrastive terms read the batch's first cl_batch interactions
        users, pn = users[: c.cl_batch], pn[: c.cl_batch]
    pert = 0
    for m in model.modalities:
        v1, v2 = model.semantic(m, z["x"][m], noisy=True), model.semantic(m, z["x"][m], noisy=True)
        pert = pert + info_nce(v1[users], v2[users], c.tau_p) + info_nce(v1[pn], v2[pn], c.tau_p)
    out["pert"] = c.lambda_p * pert
    out["anchor"] = c.lambda_a * sum(anchor_info_nce(hb[i], [z["hm"][m][i] for m in model.modalities], c.tau_a)
                                     for i in (users, pn))
    out["align"] = c.lambda_c * (info_nce(hs[pn], hb[pn], c.tau_c) + info_nce(hs[users], hb[users], c.tau_c))
    return out


def _deterministic_noise(monkeypatch, siger_mod):
    """A deterministic, row-local stand-in for the noise (eps * sign(h) * ||h_n||, without
    gradient, as the real noise), patched into both forms the model uses (perturb = h + noise)."""
    def basis(h, eps, mode, **kw):
        return (eps * h.norm(dim=-1, keepdim=True)).detach(), torch.sign(h)

    def delta(h, eps, mode, **kw):
        scale, sign = kw["basis"] if kw.get("basis") is not None else basis(h, eps, mode)
        return scale * sign

    monkeypatch.setattr(siger_mod, "noise_basis", basis)
    monkeypatch.setattr(siger_mod, "noise", delta)
    monkeypatch.setattr(siger_mod, "perturb", lambda h, eps, mode, **kw: h + delta(h, eps, mode))


@pytest.mark.parametrize("n_mm_layers,cl_batch", [(0, 0), (1, 0), (2, 0), (1, 3)])
def test_batch_row_loss_equals_the_full_table_loss(tiny_dir, monkeypatch, n_mm_layers, cl_batch):
    """The training loss works on the batch's distinct rows only; with a deterministic, row-local
    stand-in for the noise it must give the full-table objective's values and gradients."""
    import siger.models.siger as siger_mod

    _deterministic_noise(monkeypatch, siger_mod)
    data = _two_modal(tiny_dir)
    torch.manual_seed(0)
    model = SIGER(data, spec_config(knn_k=2, cooc_k=2, n_mm_layers=n_mm_layers, lambda_p=0.5, lambda_a=0.3,
                                     lambda_c=0.2, cl_batch=cl_batch), GraphStore(data, False))
    users, pos, neg = torch.tensor([3, 0, 3, 1, 0]), torch.tensor([1, 2, 4, 1, 5]), torch.tensor([5, 0, 2, 2, 3])
    params = [p for p in model.parameters() if p.requires_grad]
    got, ref = model.loss(users, pos, neg), _full_table_loss(model, users, pos, neg)
    assert set(got) == set(ref)
    for k in got:
        assert torch.allclose(got[k], ref[k], atol=1e-6), (k, got[k], ref[k])
        ga = torch.autograd.grad(got[k], params, allow_unused=True, retain_graph=True)
        gb = torch.autograd.grad(ref[k], params, allow_unused=True, retain_graph=True)
        for a, b in zip(ga, gb):
            assert (a is None) == (b is None) or torch.count_nonzero(a if a is not None else b) == 0, k
            if a is not None and b is not None:
                assert torch.allclose(a, b, atol=1e-6), k


@pytest.mark.parametrize("mode", ["mean", "inverse"])
def test_table_wide_noise_modes_use_every_user_for_the_scale(tiny_dir, mode):
    """'mean' / 'inverse' scale by a mean over all users: the batch-row view draws noise for its
    own users only, but each gets the noise norm the full view gives it (not a batch mean)."""
    data = _two_modal(tiny_dir)
    model = SIGER(data, spec_config(knn_k=2, cooc_k=2, perturb_mode=mode, eps=0.3), GraphStore(data, False))
    users, items = torch.tensor([1, 3]), torch.tensor([0, 5])
    nu = model.n_users
    x = model.item_input("image")
    torch.manual_seed(3)  # the item noise is drawn first, over every item, in both views
    full = model.semantic("image", x, noisy=True)
    torch.manual_seed(3)
    part = model.semantic("image", x, noisy=True, rows=model.batch_rows(users, items))
    assert torch.allclose(part[len(users):], full[nu + items], atol=1e-7)  # same noisy items
    pre = model.r_hat @ full[nu:]  # every user's aggregation of the noisy items, before its noise
    d_full, d_part = full[:nu][users] - pre[users], part[: len(users)] - pre[users]
    assert torch.allclose(d_part.norm(dim=1), d_full.norm(dim=1), rtol=1e-4)
    norms = pre[users].norm(dim=1)
    batch_mean = norms.mean()  # what a batch-only mean would give instead
    wrong = 0.3 * norms / batch_mean if mode == "mean" else 0.3 * batch_mean / norms
    assert not torch.allclose(d_part.norm(dim=1), wrong, rtol=1e-3)
    assert bool(((d_part * pre[users]) >= 0).all())  # the noise keeps each coordinate's sign


def test_infusion_before_normalisation_blends_row_max_scaled_weights(tiny_dir):
    data = _two_modal(tiny_dir)
    store = GraphStore(data, False)
    beta = 0.4
    model = SIGER(data, spec_config(knn_k=2, cooc_k=2, beta=beta, infuse_at="weights"), store)
    r = data.train_matrix.toarray().astype(np.float64)
    c = r.T @ r
    np.fill_diagonal(c, 0)
    c = _dense_topk(c, 2)
    cmax = c.max(1, keepdims=True)
    c = np.where(cmax > 0, c / np.where(cmax > 0, cmax, 1), 0)
    for m in model.modalities:
        f = data.features[m].astype(np.float64)
        fn = f / np.linalg.norm(f, axis=1, keepdims=True)
        w = _dense_topk(fn @ fn.T, 2)  # self included: each row's maximum is its own cosine, 1
        want = _sym((1 - beta) * w + beta * c)
        assert np.allclose(model.item_graphs[m].a.to_dense().numpy(), want, atol=1e-6), m
        # the edge set is the union of both top-k lists
        assert set(zip(*np.nonzero(want))) == set(zip(*np.nonzero(w))) | set(zip(*np.nonzero(c)))


def test_learned_beta_starts_equal_to_the_fixed_blend_and_is_trained(tiny_dir):
    data = _two_modal(tiny_dir)
    store = GraphStore(data, False)
    torch.manual_seed(0)
    fixed = SIGER(data, spec_config(knn_k=2, cooc_k=2, beta=0.3), store)
    torch.manual_seed(0)
    learned = SIGER(data, spec_config(knn_k=2, cooc_k=2, beta=0.3, beta_learn=True), store)
    assert set(learned.beta_logit) == set(data.modalities)
    assert all(abs(b - 0.3) < 1e-6 for b in learned.betas().values())
    learned.load_state_dict({**fixed.state_dict(), **{f"beta_logit.{m}": p for m, p in learned.beta_logit.items()}})
    for a, b in zip(fixed.embeddings(), learned.embeddings()):
        assert torch.allclose(a, b, atol=1e-6)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), torch.tensor([5, 0, 0])
    sum(learned.loss(users, pos, neg).values()).backward()
    assert all(p.grad is not None and p.grad.abs() > 0 for p in learned.beta_logit.values())
    # beta = 0 still means no infusion at all; a learned beta needs the graph-level blend
    assert not SIGER(data, spec_config(knn_k=2, cooc_k=2, beta=0.0, beta_learn=True), store).beta_logit
    with pytest.raises(ValueError, match="beta_learn needs infuse_at graph"):
        SIGER(data, spec_config(knn_k=2, cooc_k=2, beta_learn=True, infuse_at="weights"), store)
    with pytest.raises(ValueError, match="perturb_target"):
        SIGER(data, spec_config(knn_k=2, cooc_k=2, perturb_target="everything"), store)


def test_lightgcn_noise_goes_after_every_propagated_layer():
    from siger.models.layers import SparseGraph, lightgcn_propagate

    a = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32) * 0.5
    e0 = torch.tensor([[1.0], [2.0], [3.0]])
    g = SparseGraph(sp.csr_matrix(a))
    l1 = torch.from_numpy(a) @ e0 + 1
    l2 = torch.from_numpy(a) @ l1 + 1
    want = (e0 + l1 + l2) / 3
    got = lightgcn_propagate(g, e0, 2, noise=lambda h: h + 1)
    assert torch.allclose(got, want)
    rows = torch.tensor([2, 0])
    for local in (True, False):
        assert torch.allclose(lightgcn_propagate(g, e0, 2, rows=rows, noise=lambda h: h + 1, row_local_noise=local),
                              want[rows])


def _full_table_pert(model, users, pn, target):
    """The 'fused' / 'final' perturbation loss on the full tables (plain reading)."""
    import siger.models.siger as siger_mod
    from siger.models.layers import lightgcn_propagate
    from siger.models.losses import info_nce

    c = model.config
    z = model.encode()

    def view():
        hm = [model.semantic(m, z["x"][m], noisy=True) for m in model.modalities]
        if target == "fused":
            return model.fusion(hm, z["hb"])
        hb = lightgcn_propagate(model.adj, torch.cat([model.user_emb, model.item_emb]), c.n_ui_layers,
                                noise=lambda h: siger_mod.perturb(h, c.eps, c.perturb_mode))
        return hb + model.fusion(hm, hb)

    v1, v2 = view(), view()
    return c.lambda_p * (info_nce(v1[users], v2[users], c.tau_p) + info_nce(v1[pn], v2[pn], c.tau_p))


@pytest.mark.parametrize("target", ["fused", "final"])
def test_fused_and_final_perturbation_targets_equal_their_full_table_form(tiny_dir, monkeypatch, target):
    import siger.models.siger as siger_mod

    _deterministic_noise(monkeypatch, siger_mod)
    data = _two_modal(tiny_dir)
    torch.manual_seed(0)
    model = SIGER(data, spec_config(knn_k=2, cooc_k=2, lambda_p=0.5, eps=0.3, perturb_target=target),
                  GraphStore(data, False))
    users, pos, neg = torch.tensor([3, 0, 3, 1, 0]), torch.tensor([1, 2, 4, 1, 5]), torch.tensor([5, 0, 2, 2, 3])
    got = model.loss(users, pos, neg)["pert"]
    ref = _full_table_pert(model, users, pos + model.n_users, target)
    assert torch.allclose(got, ref, atol=1e-6)
    params = [p for p in model.parameters() if p.requires_grad]
    for a, b in zip(torch.autograd.grad(got, params, allow_unused=True, retain_graph=True),
                    torch.autograd.grad(ref, params, allow_unused=True)):
        if a is not None and b is not None:
            assert torch.allclose(a, b, atol=1e-6)
        else:
            assert (a if a is not None else b) is None or torch.count_nonzero(a if a is not None else b) == 0
    if target == "final":  # the behaviour embeddings get a gradient from the views, not only via BPR
        g = torch.autograd.grad(model.loss(users, pos, neg)["pert"], model.user_emb)[0]
        assert g.abs().sum() > 0


def _det_noise(monkeypatch):
    import siger.models.siger as siger_mod

    _deterministic_noise(monkeypatch, siger_mod)


@pytest.mark.parametrize("target", ["semantic", "fused", "final"])
def test_output_noise_is_added_once_to_the_clean_target(tiny_dir, monkeypatch, target):
    from siger.models.losses import info_nce

    _det_noise(monkeypatch)
    data = _two_modal(tiny_dir)
    torch.manual_seed(0)
    model = SIGER(data, spec_config(knn_k=2, cooc_k=2, lambda_p=0.5, eps=0.3, perturb_target=target,
                                     perturb_at="output"), GraphStore(data, False))
    users, pos, neg = torch.tensor([3, 0, 3, 1]), torch.tensor([1, 2, 4, 1]), torch.tensor([5, 0, 2, 2])
    z = model.encode()
    clean = {"semantic": [z["hm"][m] for m in model.modalities], "fused": [z["hs"]], "final": [z["h"]]}[target]
    pn = pos + model.n_users
    noisy = [h + 0.3 * torch.sign(h) * h.norm(dim=-1, keepdim=True) for h in clean]
    want = 0.5 * sum(info_nce(v[users], v[users], 0.2) + info_nce(v[pn], v[pn], 0.2) for v in noisy)
    assert torch.allclose(model.loss(users, pos, neg)["pert"], want, atol=1e-6)


def test_cl_batch_computes_contrastive_terms_on_the_batch_head_only(tiny_dir, monkeypatch):
    _det_noise(monkeypatch)
    data = _two_modal(tiny_dir)
    store = GraphStore(data, False)
    torch.manual_seed(0)
    full = SIGER(data, spec_config(knn_k=2, cooc_k=2, lambda_p=0.5, lambda_a=0.3, lambda_c=0.2), store)
    sub = SIGER(data, spec_config(knn_k=2, cooc_k=2, lambda_p=0.5, lambda_a=0.3, lambda_c=0.2, cl_batch=3), store)
    sub.load_state_dict(full.state_dict())
    users, pos, neg = torch.tensor([3, 0, 3, 1, 0]), torch.tensor([1, 2, 4, 1, 5]), torch.tensor([5, 0, 2, 2, 3])
    got = sub.loss(users, pos, neg)
    head = full.loss(users[:3], pos[:3], neg[:3])
    whole = full.loss(users, pos, neg)
    for k in ("pert", "anchor", "align"):
        assert torch.allclose(got[k], head[k], atol=1e-6), k
    assert torch.allclose(got["bpr"], whole["bpr"]) and not torch.allclose(got["bpr"], head["bpr"])
    with pytest.raises(ValueError, match="cl_batch"):
        SIGER(data, spec_config(knn_k=2, cooc_k=2, cl_batch=-1), store)
