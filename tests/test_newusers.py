"""New users folded in from their histories: a hand-computed LightGCN case, and every supported
model reproducing a trained user from its train history and its own layer-0 vector."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from siger.config import build_config
from siger.data.dataset import load_dataset
from siger.models.newusers import NewUsersUnsupported, history_matrix, normalised
from siger.train.trainer import Trainer, load_data

FAST = {"epochs": 2, "batch_size": 16, "progress": False, "topk": [5, 10, 20], "num_threads": 1, "warmup_epochs": 0, "warmup_steps": 0}


def test_history_matrix_and_normalisation_by_hand():
    h = history_matrix([[0, 2, 2], [1]], 3)
    assert h.toarray().tolist() == [[1, 0, 1], [0, 1, 0]]
    deg = np.array([1.0, 2.0, 0.0])  # item 2 never in train: no edge, weight 0
    n = normalised(h, deg).toarray()
    assert n[0].tolist() == pytest.approx([1 / np.sqrt(2 * 1), 0.0, 0.0])
    assert n[1].tolist() == pytest.approx([0.0, 1 / np.sqrt(1 * 2), 0.0])


def test_lightgcn_fold_in_by_hand(tiny_dir):
    """One layer, d = 1. tiny's train: item degrees d_0 = 2, d_2 = 3; a new user with history
    {0, 2} (n_u = 2) has layer 1 = E0_0 / sqrt(2 * 2) + E0_2 / sqrt(2 * 3); its final
    representation is the mean of layer 0 and layer 1, layer 0 being the stand-in (= layer 1) or a
    given free vector."""
    cfg = build_config("LightGCN", "tiny", {"data_dir": str(tiny_dir), "n_layers": 1, "embedding_dim": 1})
    data = load_data(cfg)
    from siger.data.graphs import GraphStore
    from siger.models.lightgcn import LightGCN

    model = LightGCN(data, cfg.model, GraphStore(data, False))
    deg = np.bincount(data.train[:, 1], minlength=data.n_items)
    assert (deg[0], deg[2]) == (2, 3)
    with torch.no_grad():
        model.item_emb.copy_(torch.tensor([[1.0], [2.0], [4.0], [8.0], [16.0], [32.0]]))
    users = model.fold_in(data)
    e1 = 1.0 / np.sqrt(2 * 2) + 4.0 / np.sqrt(2 * 3)
    h = history_matrix([[0, 2]], data.n_items)
    assert users(h).item() == pytest.approx(e1, rel=1e-6)  # mean(stand-in e1, e1)
    assert users(h, free=torch.tensor([[3.0]])).item() == pytest.approx((3.0 + e1) / 2, rel=1e-6)
    # scores against the items as the model ranks them
    _, items = model.embeddings()
    assert (users(h) @ items.T).squeeze().tolist() == pytest.approx((e1 * items.squeeze()).tolist(), rel=1e-6)


@pytest.mark.parametrize("name", ["LightGCN", "MGCN", "SIGER", "FREEDOM", "BM3", "LATTICE", "SMORE", "GUME"])
def test_a_trained_user_folded_in_from_its_train_history_is_the_trained_user(planted_dir, tmp_path, name):
    extra = {"knn_k": 3, "cooc_k": 3} if name == "SIGER" else {"knn_k": 3} if name in ("MGCN", "FREEDOM", "LATTICE", "SMORE", "GUME") else {}
    cfg = build_config(name, "planted", {**FAST, **extra, "data_dir": str(planted_dir)})
    trainer = Trainer(cfg, load_data(cfg), None, log=lambda s: None)
    trainer.fit()
    model, data = trainer.model, trainer.data
    model.eval()
    u_trained, items = model.embeddings()
    users = list(range(data.n_users))
    hist = sp.csr_matrix(data.train_matrix)[users]
    free = model.user_emb.detach()[users]
    folded = model.fold_in(data)(hist, free)
    assert torch.allclose(folded, u_trained[users], atol=1e-5, rtol=1e-4)
    # the same top-20 (train items masked) for every user
    def top(u):
        s = u @ items.T
        s[torch.from_numpy(hist.toarray() > 0)] = -np.inf
        return torch.topk(s, 20, dim=1).indices
    assert (top(folded) == top(u_trained[users])).float().mean() > 0.99  # ties at float precision aside
    # with the stand-in for the free vector it is an estimate: it agrees on much of the top 20
    standin = model.fold_in(data)(hist)
    overlap = np.mean([len(set(a.tolist()) & set(b.tolist())) / 20 for a, b in zip(top(standin), top(u_trained))])
    assert overlap > 0.5


def test_models_without_a_fold_in_say_why(planted_dir):
    for name in ("VBPR", "LGMRec"):
        cfg = build_config(name, "planted", {**FAST, "data_dir": str(planted_dir)})
        data = load_dataset("planted", planted_dir)
        from siger.data.graphs import GraphStore
        from siger.models import get_model_class

        model = get_model_class(name)(data, cfg.model, GraphStore(data, False))
        with pytest.raises(NewUsersUnsupported, match=name):
            model.fold_in(data)


def test_cold_user_protocol_holds_users_out_and_folds_them_in(planted_dir, tmp_path, capsys):
    import json

    from siger.cli import main
    from siger.data.cold import load_cold_users
    from siger.data.variants import derive

    derive(planted_dir / "planted", tmp_path / "d" / "cu", cold_users=0.2, seed=3)
    src, data = load_dataset("planted", planted_dir), load_dataset("cu", tmp_path / "d")
    hist = load_cold_users(tmp_path / "d" / "cu", data.n_users, data.n_items)
    cold = np.flatnonzero(np.diff(hist.indptr) > 0)
    assert len(cold) == 12  # 20 % of the 60 users
    assert not set(cold) & set(data.train[:, 0])  # never trained on
    assert len(data.train) + hist.nnz == len(src.train)  # their train rows moved, nothing lost
    assert (data.valid == src.valid).all() and (data.test == src.test).all()
    run = tmp_path / "run"
    assert main(["train", "--model", "LightGCN", "--dataset", "cu", "--data-dir", str(tmp_path / "d"), "--out",
                 str(run), "--epochs", "2", "--batch_size", "16", "--topk", "5,10,20", "--progress", "false"]) == 0
    assert main(["evaluate", "--run", str(run), "--modes", "warm,cold_users"]) == 0
    res = json.loads((run / "cold_metrics.json").read_text())
    assert res["test"]["cold_users"]["n_users"] == len(cold)  # every held-out user has a test item here
    assert res["test"]["warm"]["n_users"] == 60 - len(cold)  # the usual protocol skips them (no train item)
    # the mode is the fold-in ranking: recompute one cold user's top 5 by hand
    from siger.train.trainer import load_model

    model, cfg, d2 = load_model(run)
    _, items = model.embeddings()
    u = int(cold[0])
    vec = model.fold_in(d2)(hist[[u]])
    s = (vec @ items.T).squeeze(0)
    s[torch.as_tensor(hist[u].indices)] = -np.inf
    assert torch.isfinite(s).sum() > 5
    assert main(["evaluate", "--run", str(run), "--modes", "cold"]) == 2  # no cold items in this dataset
    assert "cold" in capsys.readouterr().err
    # a replay of the record evaluates the modes it was evaluated by (warm, cold_users)
    from siger.experiments.replay import Checkouts, record_modes, replay, verify_record
    from siger.train.record import REPO

    rec = json.loads((run / "record.json").read_text())
    assert record_modes(rec) == ["warm", "cold_users"]
    head = replay(rec["config"], 1, REPO, str(tmp_path / "d"), record_modes(rec))
    assert set(head["modes"]["test"]) == {"warm", "cold_users"}
    rec["modes_head"] = {"epochs": 1, "modes": head["modes"]}
    assert verify_record(rec, 1, Checkouts(), str(tmp_path / "d")).ok
