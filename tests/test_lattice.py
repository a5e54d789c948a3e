"""LATTICE against a dense reference of the authors' item-graph update, its training schedule, a
smoke run, and a 50k-item catalogue without any n x n matrix."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from siger.data.dataset import load_dataset
from siger.data.graphs import GraphStore, ui_adjacency_rw_self
from siger.models.lattice import LATTICE
from tests.conftest import fit_tiny_with_authors_defaults
from tests.test_siger import _two_modal


def _dense_learned(feats: list[torch.Tensor], w: torch.Tensor, k: int) -> torch.Tensor:
    """The authors' dense construction: cosine similarity, top-k per row (values kept), the
    modalities mixed by w, then D^-1/2 A D^-1/2."""
    total = 0
    for wm, f in zip(w, feats):
        fn = f / f.norm(dim=-1, keepdim=True)
        sim = fn @ fn.T
        v, i = torch.topk(sim, k, dim=-1)
        total = total + wm * torch.zeros_like(sim).scatter_(-1, i, v)
    d = total.sum(-1).pow(-0.5)
    d[torch.isinf(d)] = 0
    return torch.diag(d) @ total @ torch.diag(d)


def test_learned_item_graph_and_item_part_match_the_dense_reference(tiny_dir):
    data = _two_modal(tiny_dir)  # 6 items, image 3-d and audio 4-d features
    torch.manual_seed(0)
    model = LATTICE(data, LATTICE.Config(knn_k=3, lambda_coeff=0.7, n_layers=2), GraphStore(data, False))
    with torch.no_grad():
        model.modal_logits.copy_(torch.tensor([0.2, -0.4]))
    row, col, val = model.learned_graph()
    sparse = torch.zeros(6, 6).index_put_((row, col), val, accumulate=True)
    w = torch.softmax(model.modal_logits.detach(), 0)
    proj = [model.projections[m](model.item_inputs[m]).detach() for m in model.modalities]
    want = _dense_learned(proj, w, 3)
    assert torch.allclose(sparse.detach(), want, atol=1e-6)
    # item part: G = (1 - lambda) L + lambda sum_m w_m O^m, applied n_layers times to the ID embeddings
    orig = sum(wm * torch.from_numpy(GraphStore(data, False).knn(m, 3).toarray()) for wm, m in zip(w, model.modalities))
    g = 0.3 * want + 0.7 * orig
    h = model.item_part((row, col, val)).detach()
    assert torch.allclose(h, g @ (g @ model.item_emb.detach()), atol=1e-5)
    # gradient reaches the projections, the features and the modality weights through L
    h.requires_grad_(False)
    model.item_part(model.learned_graph()).sum().backward()
    assert model.projections["image"].weight.grad.abs().sum() > 0 and model.modal_logits.grad.abs().sum() > 0
    assert model.item_inputs["audio"].grad.abs().sum() > 0


def test_user_item_graph_is_random_walk_with_self_loops(tiny_dir):
    data = load_dataset("tiny", tiny_dir)
    a = ui_adjacency_rw_self(data.train_matrix).toarray()
    r = data.train_matrix.toarray()
    full = np.block([[np.zeros((4, 4)), r], [r.T, np.zeros((6, 6))]]) + np.eye(10)
    assert np.allclose(a, full / full.sum(1, keepdims=True))


def test_the_graph_learns_at_an_epochs_first_batch_and_is_rebuilt_for_evaluation(tiny_dir):
    data = _two_modal(tiny_dir)
    torch.manual_seed(0)
    model = LATTICE(data, LATTICE.Config(knn_k=3), GraphStore(data, False))
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([3, 4])
    model.pre_epoch()
    sum(model.loss(users, pos, neg).values()).backward()
    first = model.projections["image"].weight.grad.abs().sum()
    assert first > 0  # the epoch's first batch trains the graph
    model.zero_grad()
    sum(model.loss(users, pos, neg).values()).backward()
    later = model.projections["image"].weight.grad
    assert later is None or later.abs().sum() == 0  # the other batches use it detached
    with torch.no_grad():
        model.projections["image"].weight.mul_(-1.0)  # a changed projection changes the evaluated graph
    u, i = model.embeddings()
    stale_items = model.encode(model._learned)[1].detach()
    assert not torch.allclose(i, stale_items)


def test_train_and_evaluate_with_the_authors_schedule(tiny_dir, tmp_path):
    cfg, trainer, _ = fit_tiny_with_authors_defaults("LATTICE", tiny_dir, tmp_path / "r")
    assert (cfg.train.learning_rate, cfg.train.lr_decay, cfg.model.reg_weight) == (5e-4, 0.96, 1e-5)
    # the step size decays as lr * 0.96 ** (epoch / 50)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4 * 0.96 ** (3 / 50))


def test_50k_items_stay_far_below_dense(tmp_path):
    """Graphs, one training step and a full evaluation on 50k items in a fresh process: a dense
    50k x 50k float32 matrix alone is 10 GB; the process must stay under 2 GB."""
    from tests.conftest import peak_rss_50k_items

    peak = peak_rss_50k_items(tmp_path, "siger.models.lattice", "LATTICE")
    assert peak < 2048, f"peak RSS {peak:.0f} MB"


def test_projected_cosine_is_what_the_knn_pairs_rank():
    from siger.models.lattice import knn_pairs

    x = torch.randn(30, 5)
    row, col = knn_pairs(x, 4, block_bytes=4 * 30 * 7)  # several blocks
    xn = F.normalize(x, dim=1)
    top = torch.topk(xn @ xn.T, 4, dim=1).indices
    assert torch.equal(col.reshape(30, 4), top) and torch.equal(row, torch.arange(30).repeat_interleave(4))


def _top(c: np.ndarray, cand: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` candidates with the largest ``c``, ties to the lower index."""
    idx = np.flatnonzero(cand)
    return idx[np.lexsort((idx, -c[idx]))[:k]]


def test_a_new_item_is_placed_by_hand(tiny_dir):
    """Two modalities, knn_k 3, two item-graph layers: per modality the original row (2 nearest
    trained items by raw cosine plus itself, sym-normalised) and the learned row (the same under the
    projections, cosine-weighted, mixed by w, sym-normalised with the trained learned degrees); the
    ID embedding and the collaborative part are the neighbour aggregates; item = H^cf + h/||h||."""
    data = _two_modal(tiny_dir)  # 6 items, image 3-d and audio 4-d features
    store = GraphStore(data, False)
    torch.manual_seed(0)
    model = LATTICE(data, LATTICE.Config(knn_k=3, lambda_coeff=0.7, n_layers=2, embedding_dim=5), store)
    with torch.no_grad():
        model.modal_logits.copy_(torch.tensor([0.3, -0.2]))
    new = {"image": np.array([[1.0, 0.5, -0.2], [-1.0, 0.1, 0.3]], np.float32),
           "audio": np.array([[0.2, -0.1, 0.4, 1.0], [0.3, 0.3, -0.5, 0.1]], np.float32)}
    got = model.embed_new_items(new, data, store).double().numpy()

    mods = model.modalities
    cand = np.asarray(data.train_matrix.sum(axis=0)).ravel() > 0
    w = torch.softmax(model.modal_logits.detach(), 0).double().numpy()
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    with torch.no_grad():
        e = model.item_emb.double().numpy()
        proj = {m: model.projections[m](model.item_inputs[m]).double().numpy() for m in mods}
        proj_new = {m: model.projections[m](torch.from_numpy(new[m])).double().numpy() for m in mods}
        a = torch.from_numpy(ui_adjacency_rw_self(data.train_matrix).toarray()).double()
        x = torch.cat([model.user_emb, model.item_emb]).double()
        cf = ((x + a @ x + a @ (a @ x)) / 3)[data.n_users:].numpy()
    # the trained graphs, dense: original per modality (raw degrees), learned (raw degrees), G
    orig_deg, orig = {}, 0
    for j, m in enumerate(mods):
        f = unit(data.features[m].astype(np.float64))
        c = f @ f.T
        raw = np.zeros((6, 6))
        for i in range(6):
            nb = np.lexsort((np.arange(6), -c[i]))[:3]
            raw[i, nb] = c[i, nb]
        orig_deg[m] = raw.sum(1)
        orig = orig + w[j] * raw / np.sqrt(np.outer(orig_deg[m], orig_deg[m]))
    learned_raw = 0
    for j, m in enumerate(mods):
        p = unit(proj[m])
        c = p @ p.T
        raw = np.zeros((6, 6))
        for i in range(6):
            nb = np.lexsort((np.arange(6), -c[i]))[:3]
            raw[i, nb] = c[i, nb]
        learned_raw = learned_raw + w[j] * raw
    l_deg = learned_raw.sum(1)
    g = 0.3 * learned_raw / np.sqrt(np.outer(l_deg, l_deg)) + 0.7 * orig
    for r in range(2):
        agg, o_off, o_diag, l_row = 0, np.zeros(6), 0.0, np.zeros(6)
        for j, m in enumerate(mods):
            cos = unit(new[m][r:r + 1].astype(np.float64)) @ unit(data.features[m].astype(np.float64)).T
            nb = _top(cos[0], cand, 2)
            pos = np.maximum(cos[0, nb], 0)
            a_m = np.zeros(6)
            a_m[nb] = pos / pos.sum() if pos.sum() > 0 else 0.5
            agg = agg + a_m / len(mods)
            d_new = 1 + cos[0, nb].sum()
            o_off[nb] += w[j] * cos[0, nb] / np.sqrt(d_new * orig_deg[m][nb])
            o_diag += w[j] / d_new
            pc = unit(proj_new[m][r:r + 1]) @ unit(proj[m]).T
            nbl = _top(pc[0], cand, 2)
            l_row[nbl] += w[j] * pc[0, nbl]
        ld_new = w.sum() + l_row.sum()
        l_off, l_diag = l_row / np.sqrt(ld_new * l_deg), w.sum() / ld_new
        h_known, h_new = e, agg @ e
        for _ in range(2):
            h_new = 0.3 * (l_off @ h_known + l_diag * h_new) + 0.7 * (o_off @ h_known + o_diag * h_new)
            h_known = g @ h_known
        want = agg @ cf + h_new / np.linalg.norm(h_new)
        assert np.allclose(got[r], want, atol=1e-5), (r, got[r], want)
