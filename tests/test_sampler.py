import numpy as np
import pytest
import scipy.sparse as sp

from siger.data.sampler import BPRSampler


def _train():
    rng = np.random.default_rng(0)
    m = sp.random(100, 30, density=0.3, format="csr", random_state=5)
    m.data[:] = 1
    del rng
    return m


def test_every_pair_once_and_negatives_never_positive():
    r = _train()
    s = BPRSampler(r, seed=1)
    u, p, n = s.epoch()
    assert len(u) == r.nnz
    assert set(zip(u.tolist(), p.tolist())) == set(zip(*r.nonzero()))
    dense = r.toarray()
    assert not dense[u, n].any()
    assert n.min() >= 0 and n.max() < 30


def test_deterministic_given_seed_and_state_roundtrip():
    r = _train()
    a, b = BPRSampler(r, seed=7), BPRSampler(r, seed=7)
    for x, y in zip(a.epoch(), b.epoch()):
        assert np.array_equal(x, y)
    st = a.state_dict()
    first = a.epoch()
    b.load_state_dict(st)
    for x, y in zip(first, b.epoch()):
        assert np.array_equal(x, y)


def test_user_with_every_item_is_an_error():
    with pytest.raises(ValueError, match="every item"):
        BPRSampler(sp.csr_matrix(np.ones((2, 3), np.float32)))


def _train_with_unseen_items():
    """6 users x 8 items; items 5, 6, 7 never occur in train (as TikTok's valid/test-only items)."""
    rows = [0, 0, 1, 1, 2, 3, 4, 5, 5]
    cols = [0, 1, 1, 2, 3, 4, 0, 2, 4]
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(6, 8))


def test_train_pool_draws_only_items_seen_in_train():
    r = _train_with_unseen_items()
    s = BPRSampler(r, seed=3, pool="train")
    assert s.candidates.tolist() == [0, 1, 2, 3, 4]
    negs = np.concatenate([s.epoch()[2] for _ in range(200)])
    assert set(negs.tolist()) == {0, 1, 2, 3, 4}  # every train item drawn, no unseen one


def test_all_pool_also_draws_unseen_items_and_is_the_default_of_nothing():
    r = _train_with_unseen_items()
    s = BPRSampler(r, seed=3, pool="all")
    negs = np.concatenate([s.epoch()[2] for _ in range(200)])
    assert {5, 6, 7} <= set(negs.tolist())
    assert BPRSampler(r, seed=3).pool == "train"  # MMRec's pool by default


def test_train_pool_uniform_over_candidates():
    # user 0 has items {0, 1}: its negatives are uniform over {2, 3, 4} (each 1/3)
    r = _train_with_unseen_items()
    s = BPRSampler(r, seed=0, pool="train")
    neg = s.sample_negatives(np.zeros(30000, dtype=np.int64))
    freq = np.bincount(neg, minlength=8) / len(neg)
    assert np.allclose(freq[[2, 3, 4]], 1 / 3, atol=0.015) and freq[[0, 1, 5, 6, 7]].sum() == 0


def test_user_with_every_train_item_is_an_error_in_the_train_pool_only():
    r = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0]], np.float32))  # item 2 never in train
    with pytest.raises(ValueError, match="every item of the negative pool"):
        BPRSampler(r, pool="train")
    BPRSampler(r, pool="all")  # item 2 is a valid negative there
    with pytest.raises(ValueError, match="neg_pool"):
        BPRSampler(r, pool="some")
