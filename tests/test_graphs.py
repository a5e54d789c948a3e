"""Sparse graph builders against hand-computed cases and brute-force references."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from siger.data.dataset import load_dataset
from siger.data.graphs import (
    GraphStore,
    bipartite_norm,
    blend,
    cooccurrence_graph,
    knn_graph,
    sym_normalize,
    topk_per_row,
    ui_adjacency,
)

R = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0]], dtype=np.float32))  # 2 users x 3 items


def test_ui_adjacency_hand_case():
    a = ui_adjacency(R).toarray()
    assert a.shape == (5, 5)
    # degrees: u0 2, u1 1, i0 1, i1 2, i2 0 (isolated -> zero row, no NaN)
    assert a[0, 2] == pytest.approx(1 / math.sqrt(2 * 1))
    assert a[0, 3] == pytest.approx(1 / math.sqrt(2 * 2))
    assert a[1, 3] == pytest.approx(1 / math.sqrt(1 * 2))
    assert np.allclose(a, a.T) and np.all(a[4] == 0) and np.all(np.diag(a) == 0)
    assert np.allclose(bipartite_norm(R).toarray(), a[:2, 2:])


def test_knn_hand_case_and_sym_normalisation():
    f = np.array([[1, 0], [2, 1], [0, 1], [-1, 0.2]], dtype=np.float32)
    g = knn_graph(f, 2).toarray()
    c = lambda a, b: float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    # row 0: self (1.0) and item 1 (cos 0.894); row 2: self and item 1 (cos 0.447)
    assert g[0, 0] == pytest.approx(1.0) and g[0, 1] == pytest.approx(c(f[0], f[1]))
    assert np.count_nonzero(g[0]) == 2 and g[2, 1] == pytest.approx(c(f[2], f[1]))
    assert g[3, 3] == pytest.approx(1.0) and g[3, 2] == pytest.approx(c(f[3], f[2]))
    s = sym_normalize(sp.csr_matrix(g)).toarray()
    d = g.sum(1)
    assert s[0, 1] == pytest.approx(g[0, 1] / math.sqrt(d[0] * d[1]))


def test_knn_blocked_equals_brute_force():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(300, 16)).astype(np.float32)
    g = knn_graph(f, 7, block_bytes=4 * 300 * 13)  # 13 rows per block -> many blocks
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    sim = fn @ fn.T
    for i in range(300):
        ref = np.argsort(-sim[i])[:7]
        row = g[i]
        assert set(row.indices) == set(ref)
        assert np.allclose(row.data[np.argsort(row.indices)], sim[i, np.sort(row.indices)], atol=1e-5)


def _cooc_r():
    # u0: 0 1 2 ; u1: 0 1 ; u2: 1 3   ->  C01=2, C02=1, C12=1, C13=1
    return sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 1, 0, 0], [0, 1, 0, 1]], dtype=np.float32))


def test_cooccurrence_counts_topk_and_ties():
    c1 = cooccurrence_graph(_cooc_r(), 1).toarray()
    expect = np.zeros((4, 4))
    expect[0, 1], expect[1, 0], expect[2, 0], expect[3, 1] = 2, 2, 1, 1  # row 2: tie 0/1 -> 0
    assert np.array_equal(c1, expect)
    c2 = cooccurrence_graph(_cooc_r(), 2, block_rows=1).toarray()
    assert c2[1].tolist() == [2, 0, 1, 0]  # 0 (2), then tie 2/3 (1) -> 2
    assert np.all(np.diag(c2) == 0)
    cb = cooccurrence_graph(_cooc_r(), 2, "binary").toarray()
    assert set(np.unique(cb)) == {0.0, 1.0}
    cc = cooccurrence_graph(_cooc_r(), 1, "cosine").toarray()
    # deg = [2, 3, 1, 1]: row 1 -> cos(1,0)=2/sqrt6=0.816 > cos(1,2)=cos(1,3)=1/sqrt3 -> item 0
    assert cc[1, 0] == pytest.approx(2 / math.sqrt(6)) and np.count_nonzero(cc[1]) == 1
    # row 3 has the single neighbour 1: cos = 1/sqrt(3*1)
    assert cc[3, 1] == pytest.approx(1 / math.sqrt(3))


def test_cooccurrence_matches_dense_reference_on_real_slice():
    rng = np.random.default_rng(3)
    r = sp.random(200, 80, density=0.08, format="csr", random_state=4)
    r.data[:] = 1
    got = cooccurrence_graph(r, 5, block_rows=17).toarray()
    c = (r.T @ r).toarray()
    np.fill_diagonal(c, 0)
    for i in range(80):
        order = np.lexsort((np.arange(80), -c[i]))
        keep = [j for j in order[:5] if c[i, j] > 0]
        assert sorted(np.flatnonzero(got[i])) == sorted(keep)
    del rng


def test_topk_per_row_ties_go_to_smaller_column():
    m = sp.csr_matrix(np.array([[3, 5, 5, 1], [2, 2, 2, 2]], dtype=np.float32))
    t = topk_per_row(m, 2).toarray()
    assert t.tolist() == [[0, 5, 5, 0], [2, 2, 0, 0]]


def test_blend_beta_zero_is_exactly_first_graph():
    a = sp.random(30, 30, density=0.2, format="csr", random_state=1, dtype=np.float32)
    b = sp.random(30, 30, density=0.2, format="csr", random_state=2, dtype=np.float32)
    assert (blend(a, b, 0.0) != a).nnz == 0
    assert np.allclose(blend(a, b, 0.3).toarray(), 0.7 * a.toarray() + 0.3 * b.toarray())
    with pytest.raises(ValueError):
        blend(a, b, 1.5)


def test_store_caches_on_disk_keyed_by_inputs(tiny_dir, tmp_path):
    data = load_dataset("tiny", tiny_dir)
    store = GraphStore(data, tmp_path / "c")
    g1 = store.knn("image", 2)
    files = sorted((tmp_path / "c" / "graphs").glob("knn_image_2_sym-*.npz"))
    assert len(files) == 1
    assert (GraphStore(data, tmp_path / "c").knn("image", 2) != g1).nnz == 0  # read back
    store.knn("image", 3)
    assert len(list((tmp_path / "c" / "graphs").glob("knn_image_*.npz"))) == 2
    data.features["image"] = data.features["image"] + 1.0  # new inputs -> new key
    GraphStore(data, tmp_path / "c").knn("image", 2)
    assert len(list((tmp_path / "c" / "graphs").glob("knn_image_2_*.npz"))) == 2


def test_faiss_knn_returns_the_exact_neighbours_on_real_features():
    pytest.importorskip("faiss", reason="install siger[faiss]")
    from siger.data.dataset import load_dataset
    from siger.data.graphs import knn_graph

    data = load_dataset("tiktok")  # real 128-d image features, 6,710 items
    f = data.features["image"]
    exact, fast = knn_graph(f, 10), knn_graph(f, 10, backend="faiss")
    assert exact.shape == fast.shape and exact.nnz == fast.nnz == 10 * data.n_items
    differ = 0
    for r in range(data.n_items):
        a = set(exact.indices[exact.indptr[r]:exact.indptr[r + 1]])
        b = set(fast.indices[fast.indptr[r]:fast.indptr[r + 1]])
        if a != b:  # only a tie at the k-th similarity may swap a neighbour
            differ += 1
            kth = np.sort(exact.data[exact.indptr[r]:exact.indptr[r + 1]])[0]
            swapped = np.array(sorted(b - a))
            assert np.allclose(fast[r, swapped].toarray(), kth, atol=1e-5)
    assert differ <= data.n_items // 100
    both = exact.multiply(fast.astype(bool)) - fast.multiply(exact.astype(bool))
    assert abs(both).max() < 1e-5  # same weights where the neighbours agree
