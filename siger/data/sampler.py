"""Vectorised BPR sampling: every train pair once per epoch, in random order, each with one
uniform negative item that is not in the user's train set.

The negative pool is a choice (``neg_pool``): ``"train"`` draws negatives only from the items that
occur in train, as MMRec does (``TrainDataLoader.all_items`` is the train split's item ids), so an
item seen only in valid or test is never pushed down; ``"all"`` draws from every item.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

NEG_POOLS = ("train", "all")


class BPRSampler:
    """Uniform negative sampler over the train matrix.

    Args:
        train: binary train matrix ``[n_users, n_items]``.
        seed: seed of the sampler's own numpy generator (no global state).
        pool: ``"train"`` (items occurring in train, MMRec's pool) or ``"all"`` (every item).
    """

    def __init__(self, train: sp.csr_matrix, seed: int = 0, pool: str = "train"):
        if pool not in NEG_POOLS:
            raise ValueError(f"neg_pool must be one of {' | '.join(NEG_POOLS)}, got {pool!r}")
        train = sp.csr_matrix(train)
        train.sort_indices()
        self.n_users, self.n_items = train.shape
        self.pool = pool
        # candidate negatives [P]: sorted item ids; None stands for every item (no lookup needed)
        self.candidates = np.unique(train.indices).astype(np.int64) if pool == "train" else None
        n_cand = self.n_items if self.candidates is None else len(self.candidates)
        counts = np.diff(train.indptr)
        full = np.flatnonzero(counts >= n_cand)
        if len(full):
            raise ValueError(f"user {full[0]} has interacted with every item of the negative pool "
                             f"({pool}: {n_cand} items): no negative exists")
        self.users = np.repeat(np.arange(self.n_users, dtype=np.int64), counts)
        self.items = train.indices.astype(np.int64)
        self._keys = self.users * self.n_items + self.items  # sorted (CSR order)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.users)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean mask: is (users[n], items[n]) a train pair?"""
        keys = users * self.n_items + items
        pos = np.searchsorted(self._keys, keys)
        pos = np.minimum(pos, len(self._keys) - 1)
        return self._keys[pos] == keys

    def _draw(self, n: int) -> np.ndarray:
        if self.candidates is None:
            return self.rng.integers(0, self.n_items, size=n)
        return self.candidates[self.rng.integers(0, len(self.candidates), size=n)]

    def sample_negatives(self, users: np.ndarray) -> np.ndarray:
        neg = self._draw(len(users))
        bad = np.flatnonzero(self.is_positive(users, neg))
        while len(bad):
            neg[bad] = self._draw(len(bad))
            bad = bad[self.is_positive(users[bad], neg[bad])]
        return neg

    def epoch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, positives, negatives), each int64 ``[n_train]``, in a fresh random order."""
        perm = self.rng.permutation(len(self.users))
        u, p = self.users[perm], self.items[perm]
        return u, p, self.sample_negatives(u)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
