"""Cold-start items: the protocol (split, modes), the models' new-item path, add-items, POST /items."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from siger.cli import main
from siger.data.cold import derive_cold_dataset, load_cold, split_cold
from siger.data.dataset import load_dataset
from siger.data.graphs import GraphStore
from siger.eval.cold import content_embeddings, evaluate_modes
from siger.models.newitems import NewItemsUnsupported
from siger.models.siger import SIGER
from tests.conftest import write_planted

FAST = ["--batch_size", "16", "--patience", "100", "--progress", "false", "--topk", "5,10,20",
        "--knn_k", "3", "--cooc_k", "3"]


def _sym_knn_dense(f, k):
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    c = fn @ fn.T
    w = np.zeros_like(c)
    for i in range(len(c)):
        order = np.lexsort((np.arange(len(c)), -c[i]))[:k]
        w[i, order] = c[i, order]
    return w


def test_new_item_embedding_matches_a_hand_computation(tiny_dir):
    """SIGER, one modality, knn_k 3, no infusion: the new item's row is its 2 nearest trained
    items plus itself, sym-normalised with its own degree and the trained rows' degrees; e and H^b
    are neighbour aggregates; then the gated projection, one propagation, the fusion."""
    data = load_dataset("tiny", tiny_dir)
    store = GraphStore(data, False)
    torch.manual_seed(0)
    model = SIGER(data, SIGER.Config(knn_k=3, cooc_k=2, beta=0.0), store)
    new = np.array([[1.0, 0.5, -0.2], [-1.0, 0.1, 0.3]], np.float32)
    got = model.embed_new_items({"image": new}, data, store)

    f = data.features["image"].astype(np.float64)
    w_known = _sym_knn_dense(f, 3)
    deg = w_known.sum(1)
    cos = (new / np.linalg.norm(new, axis=1, keepdims=True)) @ (f / np.linalg.norm(f, axis=1, keepdims=True)).T
    z = model.encode()
    hb = z["hb"][model.n_users:].detach().double().numpy()
    e = model.item_emb.detach().double().numpy()
    x_known = z["x"]["image"].detach().double().numpy()
    want = []
    for r in range(len(new)):
        nb = np.lexsort((np.arange(6), -cos[r]))[:2]  # every tiny item is in train
        w = cos[r, nb]
        pos = np.maximum(w, 0)
        a = pos / pos.sum() if pos.sum() > 0 else np.full(2, 0.5)
        e_new = a @ e[nb]
        hb_new = a @ hb[nb]
        with torch.no_grad():
            gate = torch.sigmoid(model.projections["image"].gate(model.projections["image"].proj(
                torch.from_numpy(new[r:r + 1])))).double().numpy()[0]
        x_new = e_new * gate
        d_new = 1 + w.sum()
        h = (w / np.sqrt(d_new * deg[nb])) @ x_known[nb] + x_new / d_new
        with torch.no_grad():
            hs = model.fusion([torch.from_numpy(h[None]).float()], torch.from_numpy(hb_new[None]).float())
        want.append(hb_new + hs.double().numpy()[0])
    assert np.allclose(got.numpy(), np.array(want), atol=1e-5)
    # and its score for a user is the inner product with the user's (unchanged) embedding
    u, _ = model.embeddings()
    assert torch.allclose(u @ got.T, torch.from_numpy((u.double().numpy() @ np.array(want).T)).float(), atol=1e-5)


def test_models_that_cannot_place_a_new_item_say_so(tiny_dir):
    from siger.models.lightgcn import LightGCN

    data = load_dataset("tiny", tiny_dir)
    store = GraphStore(data, False)
    with pytest.raises(NewItemsUnsupported, match="LightGCN"):
        LightGCN(data, LightGCN.Config(), store).embed_new_items({"image": np.zeros((1, 3))}, data, store)
    model = SIGER(data, SIGER.Config(knn_k=3, cooc_k=2), store)
    with pytest.raises(Exception, match=r"\[n_new, 3\]"):
        model.embed_new_items({"image": np.zeros((1, 4), np.float32)}, data, store)
    with pytest.raises(Exception, match="non-finite"):
        model.embed_new_items({"image": np.array([[np.nan, 0, 0]], np.float32)}, data, store)


@pytest.mark.parametrize("name", ["FREEDOM", "VBPR", "MGCN"])
def test_baselines_place_new_items(tiny_dir, name):
    from siger.models import get_model_class

    data = load_dataset("tiny", tiny_dir)
    store = GraphStore(data, False)
    cls = get_model_class(name)
    torch.manual_seed(0)
    extra = {"knn_k": 3} if name != "VBPR" else {}
    model = cls(data, cls.Config(**extra), store)
    emb = model.embed_new_items({"image": np.ones((2, 3), np.float32)}, data, store)
    assert emb.shape == (2, model.embeddings()[1].shape[1]) and torch.isfinite(emb).all()
    if name == "VBPR":  # the content half is exactly the linear map of the features
        d = model.config.embedding_dim
        assert torch.allclose(emb[:, d:], model.item_linear(torch.ones(2, 3)), atol=1e-6)


def test_split_cold_holds_items_out_entirely():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(30), 6)
    items = np.concatenate([rng.choice(20, 6, replace=False) for _ in range(30)])
    labels = np.zeros(len(users), np.int64)
    s = split_cold(users, items, labels, 20, 0.25, seed=3)
    assert len(s["cold"]) == 5 and set(s["cold"]).isdisjoint(s["warm"]) and len(s["warm"]) == 15
    assert sorted((s["cold_split"] == 1).nonzero()[0].tolist() + (s["cold_split"] == 2).nonzero()[0].tolist()) == \
        list(range(5))
    # every interaction with a cold item is in cold_rows with its item's split, none in warm_rows
    n_cold = np.isin(items, s["cold"]).sum()
    assert len(s["cold_rows"]) == n_cold and len(s["warm_rows"]) == len(users) - n_cold
    assert (s["cold_rows"][:, 2] == s["cold_split"][s["cold_rows"][:, 1]]).all()
    again = split_cold(users, items, labels, 20, 0.25, seed=3)
    assert np.array_equal(again["cold"], s["cold"])  # seeded


def test_split_cold_keeps_warm_an_item_no_evaluable_user_has():
    # users 0-3 have items 0-3 (one each) and item 4; user 4 has only item 5.
    users = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4])
    items = np.array([0, 4, 1, 4, 2, 4, 3, 4, 5])
    labels = np.zeros(len(users), np.int64)
    for seed in range(40):  # some seed draws item 5 (and every draw of 2 of 6 items is seen)
        s = split_cold(users, items, labels, 6, 0.34, seed=seed)
        # item 5's only user has no warm item when 5 is cold: it would be a cold item nobody can
        # be evaluated on (and missing from cold.inter), so it stays warm
        assert 5 not in s["cold"] and 5 in s["warm"]
        assert set(s["cold_rows"][:, 1].tolist()) == set(range(len(s["cold"])))  # every cold item has a row
        assert len(s["cold_split"]) == len(s["cold"]) >= 1


def _cold_dataset(root: Path):
    """A planted cold-start dataset: two tastes; items 0-19 (taste A, feature +e1) and 20-39
    (taste B, feature +e2); users 0-29 take A items, 30-59 B items."""
    d = write_planted(root / "src", "taste") / "taste"  # the planted interactions (tests/conftest.py)
    f = 0.1 * np.load(d / "image_feat.npy")
    f[:20, 0] += 1.0
    f[20:, 1] += 1.0
    np.save(d / "image_feat.npy", f)
    return derive_cold_dataset(root / "src", "taste", root / "data" / "taste_cold", fraction=0.2, seed=1)


def test_derived_cold_dataset_and_the_three_modes(tmp_path):
    counts = _cold_dataset(tmp_path)
    assert counts["cold_items"] == 8 and counts["warm_items"] == 32
    data = load_dataset("taste_cold", tmp_path / "data")
    cold = load_cold(data.path, data.n_users, ["image"])
    assert data.n_items == 32 and cold.n_items == 8 and len(cold.items_of("valid")) == 4
    assert (cold.features["image"].shape == (8, 4)) and len(cold.ids) == 8
    # by hand: users are 2-d one-hots of their taste, items the same: a perfect ranker
    u_taste = np.array([0 if int(o) < 30 else 1 for o in range(data.n_users)])
    src_users = [line.split("\t")[0] for line in (data.path / "u_id_mapping.csv").read_text().splitlines()[1:]]
    u_taste = np.array([0 if int(o) < 30 else 1 for o in src_users])
    f = data.features["image"]
    user_emb = torch.from_numpy(np.eye(2, dtype=np.float32)[u_taste])
    item_emb = torch.from_numpy((f[:, :2] > 0.5).astype(np.float32))
    cold_emb = torch.from_numpy((cold.features["image"][:, :2] > 0.5).astype(np.float32))
    res = evaluate_modes(user_emb, item_emb, cold_emb, data, cold, "test", [5, 10, 20])
    assert set(res) == {"warm", "cold", "all"}
    # cold mode ranks only the 4 test cold items: each user's cold test items are all in the top 5
    assert res["cold"]["recall@5"] == 1.0
    tc = cold.matrix("test", data.n_users)
    assert res["cold"]["n_users"] == int((np.diff(tc.tocsr().indptr) > 0).sum())
    # all mode ranks 32 warm + 4 cold items; same-taste items tie, so some fall past K
    assert 0 < res["all"]["recall@20"] <= 1.0 and res["all"]["n_users"] >= res["cold"]["n_users"]
    # the content baseline is a mean of cosines: check one user-item score by hand
    cu, cw, cc = content_embeddings(data, cold)
    tr = data.train_matrix.toarray()
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    prof = fn[tr[0] > 0].mean(0)
    g = cold.features["image"][0]
    assert np.isclose(float(cu[0] @ cc[0]), prof @ g / np.linalg.norm(prof) / np.linalg.norm(g), atol=1e-5)


def _train(data_dir, out):
    assert main(["train", "--model", "SIGER", "--dataset", "taste_cold", "--data-dir", str(data_dir), "--out",
                 str(out), "--epochs", "8", "--learning_rate", "0.01", *FAST]) == 0


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_add_items_then_recommend_and_failures_leave_the_run_untouched(tmp_path, capsys):
    _cold_dataset(tmp_path)
    run = tmp_path / "run"
    _train(tmp_path / "data", run)
    assert main(["evaluate", "--run", str(run), "--modes", "warm,cold,all"]) == 0
    cm = json.loads((run / "cold_metrics.json").read_text())
    assert set(cm["test"]) == {"warm", "cold", "all"} and "modes" in json.loads((run / "record.json").read_text())
    # two new items, one of each taste; a taste-A user must get the taste-A item first among the new ones
    feats = np.zeros((2, 4), np.float32)
    feats[0, 0], feats[1, 1] = 1.0, 1.0
    np.save(tmp_path / "image_feat.npy", feats)
    (tmp_path / "new.csv").write_text("item_id\nnewA\nnewB\n")
    (tmp_path / "titles.csv").write_text("item_id,title\nnewA,Item A\nnewB,Item B\n")
    bad_cases = [
        (np.ones((2, 5), np.float32), "new.csv", "[n_new, 4]"),            # wrong width
        (np.array([[np.nan] * 4, [0] * 4], np.float32), "new.csv", "non-finite"),
        (feats, "dup.csv", "appears twice"),
        (feats, "old.csv", "already in the run"),
    ]
    (tmp_path / "dup.csv").write_text("item_id\nx\nx\n")
    first_item = (tmp_path / "data" / "taste_cold" / "i_id_mapping.csv").read_text().splitlines()[1].split("\t")[0]
    (tmp_path / "old.csv").write_text(f"item_id\n{first_item}\nnew\n")
    before = _digest(run)
    (tmp_path / "bad").mkdir()
    for arr, mapping, msg in bad_cases:
        np.save(tmp_path / "bad" / "image_feat.npy", arr)
        assert main(["add-items", "--run", str(run), "--features", str(tmp_path / "bad" / "image_feat.npy"),
                     "--mapping", str(tmp_path / mapping)]) == 2
        assert msg in capsys.readouterr().err, msg
        assert _digest(run) == before, msg  # byte-identical after a failed add
    assert main(["add-items", "--run", str(run), "--features", str(tmp_path / "image_feat.npy"), "--mapping",
                 str(tmp_path / "new.csv"), "--items", str(tmp_path / "titles.csv")]) == 0
    assert "added 2 items" in capsys.readouterr().out
    import siger

    rec = siger.load_run(run)
    assert rec.n_items == 34 and rec.item_ids[-2:] == ["newA", "newB"] and rec.titles[-2:] == ["Item A", "Item B"]
    users = [line.split("\t")[0] for line in (tmp_path / "data" / "taste_cold" / "u_id_mapping.csv").read_text()
             .splitlines()[1:]]
    a_user = next(u for u in users if int(u) < 30)
    top = [it["item"] for it in rec.recommend([a_user], k=34)[0]["items"]]
    assert top.index("newA") < top.index("newB")
    # the CLI sees them too
    assert main(["recommend", "--run", str(run), "--users", a_user, "--k", "34"]) == 0
    assert "newA" in capsys.readouterr().out
    # adding the same ids again is refused
    assert main(["add-items", "--run", str(run), "--features", str(tmp_path / "image_feat.npy"), "--mapping",
                 str(tmp_path / "new.csv")]) == 2


def test_post_items_is_guarded_by_the_flag(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    import siger
    from siger.serve.api import create_app

    _cold_dataset(tmp_path)
    run = tmp_path / "run"
    _train(tmp_path / "data", run)
    body = {"items": [{"id": "n1", "features": {"image": [1.0, 0.0, 0.0, 0.0]}, "title": "N1"}]}
    closed = TestClient(create_app(siger.load_run(run)))
    assert closed.post("/items", json=body).status_code == 403
    rec = siger.load_run(run)
    client = TestClient(create_app(rec, allow_add_items=True))
    r = client.post("/items", json=body)
    assert r.status_code == 200 and r.json() == {"added": 1, "items": 33}
    assert client.post("/items", json=body).status_code == 422  # the id exists now
    bad = {"items": [{"id": "n2", "features": {"image": [1.0, 0.0]}}]}
    assert client.post("/items", json=bad).status_code == 422
    assert siger.load_run(run).n_items == 33  # persisted in the run folder


def test_prepare_cold_items(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = ["user_id,item_id,timestamp"]
    for u in range(40):
        for i in rng.choice(30, size=12, replace=False):
            lines.append(f"u{u},i{i},{rng.integers(100)}")
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "items.csv").write_text("item_id,title\n" + "".join(f"i{i},T{i}\n" for i in range(30)))
    out = tmp_path / "data" / "shop"
    assert main(["prepare", "--interactions", str(tmp_path / "r.csv"), "--items", str(tmp_path / "items.csv"),
                 "--out", str(out), "--k-core", "2", "--cold-items", "0.2"]) == 0
    assert "cold items (never in train" in capsys.readouterr().out
    data = load_dataset("shop", tmp_path / "data")
    cold = load_cold(out, data.n_users)
    assert cold.n_items == 6 and data.n_items == 24
    warm_ids = [r.split("\t")[0] for r in (out / "i_id_mapping.csv").read_text().splitlines()[1:]]
    assert set(warm_ids).isdisjoint(cold.ids) and len(set(warm_ids) | set(cold.ids)) == 30
    assert cold.titles is not None and all(t == "T" + i[1:] for t, i in zip(cold.titles, cold.ids))
    rep = json.loads((out / "prepare_report.json").read_text())
    assert rep["cold_items"] == 6 and rep["cold_interactions"] == len(cold.valid) + len(cold.test)


def test_propagate_beside_equals_the_joint_graph():
    """Two layers of new rows beside a trained graph A are the new rows of the joint graph
    [[A, 0], [off, diag]] applied twice (new items feed no trained row); the trained graph may be
    a matrix or a function."""
    import scipy.sparse as sp

    from siger.models.newitems import propagate_beside

    rng = np.random.default_rng(0)
    a = rng.random((4, 4)) * (rng.random((4, 4)) < 0.6)
    off = rng.random((2, 4)) * (rng.random((2, 4)) < 0.7)
    diag = np.array([0.5, 0.25])
    h_known, h_new = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    joint = np.block([[a, np.zeros((4, 2))], [off, np.diag(diag)]])
    want = (joint @ joint @ np.vstack([h_known, h_new]))[4:]
    t = torch.from_numpy
    a_t = t(a).float()
    for graph in (a_t, lambda h: a_t @ h):
        got = propagate_beside(sp.csr_matrix(off), diag, t(h_known).float(), t(h_new).float(), 2, graph)
        assert np.allclose(got.numpy(), want, atol=1e-5)
