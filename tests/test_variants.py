"""Derived datasets (siger derive): thinned train, feature noise, corrupted kNN graphs."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from siger.cli import main
from siger.data.dataset import load_dataset
from siger.data.graphs import GraphStore, knn_graph
from siger.data.variants import corrupt_knn, derive
from tests.conftest import write_planted


def test_corrupt_knn_moves_the_asked_share_of_each_rows_neighbours_and_keeps_weights():
    rng = np.random.default_rng(0)
    g = knn_graph(rng.normal(size=(30, 5)).astype(np.float32), 5)  # 5 per row, self included
    out = corrupt_knn(g, 0.5, seed=1)
    assert (corrupt_knn(g, 0.0, 1) != g).nnz == 0
    for i in range(30):
        before = dict(zip(g[i].indices, g[i].data))
        after = dict(zip(out[i].indices, out[i].data))
        assert len(after) == 5 and after[i] == before[i]  # the item's own entry never moves
        moved = set(before) - set(after)
        assert len(moved) == 2  # round(0.5 * 4 off-diagonal neighbours)
        assert sorted(after.values()) == pytest.approx(sorted(before.values()))  # weights travel with the move
    assert (corrupt_knn(g, 0.5, seed=1) != out).nnz == 0  # seeded
    full = corrupt_knn(g, 1.0, seed=2)
    assert all(set(full[i].indices) & set(g[i].indices) == {i} for i in range(30))


def test_thinning_keeps_valid_test_and_everyone_who_had_train(tmp_path):
    root = write_planted(tmp_path / "d")
    rec = derive(root / "planted", tmp_path / "v" / "thin", per_item=2.0, seed=0)
    a, b = load_dataset("planted", root), load_dataset("thin", tmp_path / "v")
    op = rec["operations"][0]
    assert op["train_before"] == len(a.train) == 480 and op["train_after"] == len(b.train)
    assert 80 <= len(b.train) < 200  # ~2 per item for 40 items, plus the kept minimum per user / item
    assert (b.valid == a.valid).all() and (b.test == a.test).all()
    assert set(map(tuple, b.train)) <= set(map(tuple, a.train))
    assert set(b.train[:, 0]) == set(a.train[:, 0]) and set(b.train[:, 1]) == set(a.train[:, 1])
    assert (b.features["image"] == a.features["image"]).all()
    with pytest.raises(Exception, match="already exists"):
        derive(root / "planted", tmp_path / "v" / "thin", per_item=2.0)


def test_feature_noise_at_the_asked_snr_and_graph_noise_applied_where_graphs_are_built(tmp_path):
    root = write_planted(tmp_path / "d")
    derive(root / "planted", tmp_path / "v" / "noisy", snr_db=0.0, seed=0)
    a, b = load_dataset("planted", root), load_dataset("noisy", tmp_path / "v")
    f = a.features["image"].astype(np.float64)
    signal = ((f - f.mean(0)) ** 2).mean()
    noise = ((b.features["image"] - f) ** 2).mean()
    assert noise == pytest.approx(signal, rel=0.2)  # 0 dB: noise power = signal power
    assert main(["derive", "--from", str(root / "planted"), "--out", str(tmp_path / "v" / "g50"),
                 "--graph-noise", "0.5"]) == 0
    g = load_dataset("g50", tmp_path / "v")
    assert g.graph_noise == {"p": 0.5, "seed": 0}
    clean = GraphStore(a, False).knn("image", 5)
    noisy = GraphStore(g, False).knn("image", 5)
    shared = [len(set(clean[i].indices) & set(noisy[i].indices)) for i in range(40)]
    assert all(s == 3 for s in shared)  # self + 2 of 4 neighbours kept
    doc = json.loads((tmp_path / "v" / "g50" / "variant.json").read_text())
    assert doc["graph_noise"] == {"p": 0.5, "seed": 0}
    # a provided graph (no raw features) is corrupted the same way
    d = tmp_path / "v2" / "prov"
    d.mkdir(parents=True)
    (d / "prov.inter").write_text((root / "planted" / "planted.inter").read_text())
    sp.save_npz(d / "image_adj_5.npz", clean)
    (d / "variant.json").write_text(json.dumps({"graph_noise": {"p": 0.5, "seed": 0}}))
    prov = GraphStore(load_dataset("prov", tmp_path / "v2"), False).knn("image", 5)
    assert all(len(set(clean[i].indices) & set(prov[i].indices)) == 3 for i in range(40))
    (d / "variant.json").write_text(json.dumps({"graph_noise": {"p": 3}}))
    with pytest.raises(Exception, match="graph_noise"):
        load_dataset("prov", tmp_path / "v2")
