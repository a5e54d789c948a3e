"""Metrics against hand-computed values (3 users, K in {2, 3}; a 3-user x 5-item score matrix)."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from siger.eval.metrics import hit_matrix, metrics_from_hits
from siger.eval.ranking import eval_users, evaluate, topk_items

L2, L3, L4 = math.log2(2), math.log2(3), math.log2(4)


def test_metrics_hand_computed():
    hits = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=bool)
    n_pos = np.array([2, 1, 3])
    m = metrics_from_hits(hits, n_pos, [2, 3])
    assert m["recall@2"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert m["recall@3"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["precision@2"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert m["precision@3"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    ndcg2_u0 = (1 / L2) / (1 / L2 + 1 / L3)
    ndcg2_u1 = (1 / L3) / (1 / L2)
    assert m["ndcg@2"] == pytest.approx((ndcg2_u0 + ndcg2_u1) / 3)
    ndcg3_u0 = (1 / L2 + 1 / L4) / (1 / L2 + 1 / L3)  # IDCG over min(|test|=2, K=3) ranks
    assert m["ndcg@3"] == pytest.approx((ndcg3_u0 + ndcg2_u1) / 3)
    assert m["map@2"] == pytest.approx((1 / 2 + (1 / 2) / 1 + 0) / 3)
    assert m["map@3"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2 + 0) / 3)


def test_full_ranking_3_users_5_items_with_masking():
    # scores[u, i] = <user_emb[u], item_emb[i]>
    scores = np.array([
        [0.9, 0.8, 0.7, 0.6, 0.5],   # u0 ranks 0 1 2 3 4
        [0.1, 0.2, 0.3, 0.4, 0.5],   # u1 ranks 4 3 2 1 0
        [0.5, 0.9, 0.1, 0.7, 0.3],   # u2 ranks 1 3 0 4 2
    ], dtype=np.float32)
    # embed exactly: users = scores, items = identity
    user_emb, item_emb = torch.from_numpy(scores), torch.eye(5)
    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 1, 0, 0, 0]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[0, 0, 1, 0, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32))
    # masked rankings: u0 -> 1 2 3 4 ; u1 -> 3 2 1 0 ; u2 has no test item -> skipped
    assert list(eval_users(train, test)) == [0, 1]
    top = topk_items(user_emb, item_emb, np.array([0, 1]), train, 4, chunk=1)
    assert top.tolist() == [[1, 2, 3, 4], [3, 2, 1, 0]]
    m = evaluate(user_emb, item_emb, train, test, [2, 4], chunk=1)
    # u0 hits [0,1,0,1], |test|=2; u1 hits [0,0,0,1], |test|=1
    assert m["n_users"] == 2
    assert m["recall@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["recall@4"] == pytest.approx((1 + 1) / 2)
    assert m["precision@4"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    ndcg4_u0 = (1 / L3 + 1 / math.log2(5)) / (1 / L2 + 1 / L3)
    ndcg4_u1 = (1 / math.log2(5)) / 1
    assert m["ndcg@4"] == pytest.approx((ndcg4_u0 + ndcg4_u1) / 2)
    map4_u0 = (1 / 2 + 2 / 4) / 2
    map4_u1 = (1 / 4) / 1
    assert m["map@4"] == pytest.approx((map4_u0 + map4_u1) / 2)


def test_users_without_train_items_are_skipped():
    train = sp.csr_matrix(np.array([[0, 0, 0], [1, 0, 0]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    assert list(eval_users(train, test)) == [1]


def test_hit_matrix_vectorised_matches_sets():
    rng = np.random.default_rng(1)
    target = sp.random(50, 40, density=0.1, format="csr", random_state=2)
    target.data[:] = 1
    target.sort_indices()
    users = rng.integers(0, 50, size=30)
    top = rng.integers(0, 40, size=(30, 7))
    hits = hit_matrix(top, users, target)
    for r, u in enumerate(users):
        s = set(target[u].indices)
        assert hits[r].tolist() == [i in s for i in top[r]]


def test_fewer_items_than_k_counts_missing_ranks_as_misses():
    train = sp.csr_matrix(np.array([[1, 0, 0]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[0, 1, 0]], dtype=np.float32))
    m = evaluate(torch.ones(1, 1), torch.tensor([[3.0], [2.0], [1.0]]), train, test, [5])
    assert m["recall@5"] == 1.0 and m["precision@5"] == pytest.approx(1 / 5)
