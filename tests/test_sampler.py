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
