"""The held-out graph measure behind SIGER's infusion weights, against hand-computed cases."""

import numpy as np
import pytest
import scipy.sparse as sp

from siger.data.holdout import graph_recall, holdout_infusion, infusion_weight, split_train


def test_split_train_partitions_the_interactions_by_a_seeded_draw():
    rng = np.random.default_rng(0)
    r = sp.csr_matrix((rng.random((50, 40)) < 0.2).astype(np.float32))
    fit, held = split_train(r, 0.25, seed=3)
    assert (fit + held != r).nnz == 0 and fit.multiply(held).nnz == 0  # a partition of r
    assert 0.15 < held.nnz / r.nnz < 0.35
    fit2, held2 = split_train(r, 0.25, seed=3)
    assert (held2 != held).nnz == 0  # same seed, same split
    with pytest.raises(ValueError):
        split_train(r, 1.0, 0)


def test_graph_recall_by_hand():
    # 3 users x 4 items. graph: item 0 -> item 1 (weight 1), item 2 -> item 3 (weight 2), item 2 -> item 1 (1)
    g = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0], [0, 1, 0, 2], [0, 0, 0, 0]], dtype=np.float32))
    fit = sp.csr_matrix(np.array([[1, 0, 0, 0],    # u0 scores: item 1 = 1 -> top-1 is item 1
                                  [0, 0, 1, 0],    # u1 scores: item 3 = 2, item 1 = 1 -> top-1 item 3
                                  [0, 0, 0, 0]]))  # u2 has no fit items: not counted
    held = sp.csr_matrix(np.array([[0, 1, 0, 1],   # u0 holds out 1 and 3: top-1 hits 1 of 2
                                   [0, 1, 0, 0],   # u1 holds out 1: top-1 (item 3) misses
                                   [1, 0, 0, 0]]))
    assert graph_recall(fit, held, g, k=1) == pytest.approx((0.5 + 0.0) / 2)
    # top-2 (fit items masked): u0 gets 1, then the zero-score tie goes to the smaller id, 2 -> 1 of 2;
    # u1 gets 3 and 1 -> 1 of 1
    assert graph_recall(fit, held, g, k=2) == pytest.approx((0.5 + 1.0) / 2)
    # the chunking does not change the answer
    assert graph_recall(fit, held, g, k=2, max_scores=4) == pytest.approx(0.75)


def test_infusion_weight_is_the_collaborative_graphs_relative_advantage():
    assert infusion_weight(0.02, 0.05) == pytest.approx(0.6)
    assert infusion_weight(0.05, 0.05) == 0.0  # a semantic graph as good as the co-occurrence keeps its structure
    assert infusion_weight(0.08, 0.05) == 0.0
    assert infusion_weight(0.0, 0.05) == 1.0
    assert infusion_weight(0.01, 0.0) == 0.0  # nothing to infuse


def test_holdout_infusion_follows_which_graph_predicts_held_out_interactions():
    # two item groups; users stay inside their group. The "good" semantic graph links items of the
    # same group, the "bad" one links items across groups; co-occurrence learns the groups too.
    rng = np.random.default_rng(0)
    n_u, n_i = 200, 20
    rows, cols = [], []
    for u in range(n_u):
        lo = 0 if u < n_u // 2 else 10
        for i in rng.choice(np.arange(lo, lo + 10), size=5, replace=False):
            rows.append(u)
            cols.append(int(i))
    r = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_u, n_i))
    same = np.zeros((n_i, n_i), np.float32)
    cross = np.zeros((n_i, n_i), np.float32)
    for i in range(n_i):
        grp = range(0, 10) if i < 10 else range(10, 20)
        other = range(10, 20) if i < 10 else range(0, 10)
        same[i, list(grp)] = 1.0
        cross[i, list(other)] = 1.0
    rep = holdout_infusion(r, {"good": sp.csr_matrix(same), "bad": sp.csr_matrix(cross)}, 5, "count", "sym", k=5)
    assert rep["bad"]["q_s"] == 0.0 and rep["bad"]["beta"] == 1.0  # predicts nothing: replaced by S^c
    assert rep["good"]["q_s"] > 0 and rep["good"]["beta"] < 0.5
    assert rep["good"]["q_c"] == rep["bad"]["q_c"] > 0
