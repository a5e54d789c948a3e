"""Cold-start items: held-out items that training never sees, and the protocol around them.

A cold-start dataset is an ordinary MMRec-layout folder ``DIR/<name>/`` holding only the *warm*
items (the model trains on it as on any dataset), plus a ``cold/`` sub-folder with the held-out
items:

- ``cold/cold.inter``: tab-separated ``userID itemID rating timestamp x_label``; users share the
  warm dataset's ids, items are numbered ``0..n_cold-1``; ``x_label`` 1 (a *valid* cold item) or
  2 (a *test* cold item): each cold item, with all its interactions, is either a valid or a test
  item, so a test cold item is new at test time;
- ``cold/<modality>_feat.npy``: the cold items' features ``[n_cold, dim]`` (every modality of the
  warm dataset that has raw features);
- ``cold/i_id_mapping.csv`` (original id, cold index) and optional ``cold/items.tsv``.

Evaluation modes (:mod:`siger.eval.cold`): ``warm`` ranks the warm items for the warm held-out
interactions (the usual protocol); ``cold`` ranks only the cold items of the split, for users who
have one; ``all`` ranks warm and cold items together against all the user's held-out items of the
split. :func:`split_cold` derives such a dataset from interactions; ``siger prepare --cold-items``
and ``python -m benchmarks.cold_split`` use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from siger.data.dataset import read_mapping, read_titles, write_mapping
from siger.data.validate import DataError, check_features, read_inter
from siger.data.variants import COLD_USERS_FILE

COLD_DIR = "cold"


@dataclass
class ColdItems:
    """The held-out items of a cold-start dataset.

    Attributes:
        n_items: number of cold items.
        valid, test: int64 ``[n, 2]`` (user, cold item) pairs of the valid / test cold items.
        features: modality -> float32 ``[n_items, dim]``.
        ids: original item ids (``[n_items]`` strings; the cold index as a string when unknown).
        titles: display titles, or None.
    """

    n_items: int
    valid: np.ndarray
    test: np.ndarray
    features: dict[str, np.ndarray]
    ids: list[str]
    titles: list[str] | None = None
    split_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # 1 valid / 2 test, per item

    def items_of(self, split: str) -> np.ndarray:
        """Cold item indices that belong to ``split`` ('valid' or 'test')."""
        return np.flatnonzero(self.split_of == (1 if split == "valid" else 2))

    def matrix(self, split: str, n_users: int) -> sp.csr_matrix:
        pairs = self.valid if split == "valid" else self.test
        m = sp.csr_matrix((np.ones(len(pairs), np.float32), (pairs[:, 0], pairs[:, 1])),
                          shape=(n_users, self.n_items))
        m.sort_indices()
        return m


def load_cold(dataset_dir: str | Path, n_users: int, modalities: list[str] | None = None) -> ColdItems:
    """Read ``<dataset_dir>/cold/``; cold interactions of users unknown to the warm dataset (who
    have no training interaction, so are never evaluated) are dropped."""
    d = Path(dataset_dir) / COLD_DIR
    if not (d / "cold.inter").exists():
        raise DataError(d / "cold.inter", "no cold items here: a cold-start dataset holds its held-out items in "
                        f"{COLD_DIR}/ (siger prepare --cold-items F, or python -m benchmarks.cold_split)")
    cols = read_inter(d / "cold.inter", all_users=False, need_train=False)
    lab = cols["x_label"]
    if (lab == 0).any():
        raise DataError(d / "cold.inter", "cold items never enter train: x_label must be 1 (valid) or 2 (test)",
                        field="x_label")
    n = int(cols["item"].max()) + 1
    split_of = np.zeros(n, np.int64)
    for it, lb in zip(cols["item"], lab):
        if split_of[it] and split_of[it] != lb:
            raise DataError(d / "cold.inter", f"cold item {it} is both a valid and a test item", field="x_label")
        split_of[it] = lb
    pairs = np.stack([cols["user"], cols["item"]], axis=1)
    keep = pairs[:, 0] < n_users
    pairs, lab = pairs[keep], lab[keep]
    feats = {}
    for p in sorted(d.glob("*_feat.npy")):
        m = p.name[: -len("_feat.npy")]
        if modalities is None or m in modalities:
            feats[m] = check_features(p, np.load(p, allow_pickle=False), n)
    missing = [m for m in (modalities or []) if m not in feats]
    if missing:
        raise DataError(d, f"cold items need features of every modality the model uses; missing {missing}")
    ids = read_mapping(d / "i_id_mapping.csv") or [str(i) for i in range(n)]
    if len(ids) != n:
        raise DataError(d / "i_id_mapping.csv", f"maps {len(ids)} items; cold.inter has {n}")
    return ColdItems(n, pairs[lab == 1], pairs[lab == 2], feats, ids, read_titles(d, n), split_of)


def split_cold(users: np.ndarray, items: np.ndarray, labels: np.ndarray, n_items: int, fraction: float,
               seed: int) -> dict[str, np.ndarray]:
    """Choose a seeded ``fraction`` of items as cold and re-index the rest.

    Args:
        users, items, labels: one entry per interaction (labels 0/1/2 of the warm split to keep).
        n_items: item count (ids ``0..n_items-1``).
    Returns:
        ``cold`` (original ids of the cold items, sorted), ``cold_split`` (1/2 per cold item:
        half valid, half test, seeded), ``warm`` (original ids of the warm items, sorted),
        ``user_map`` (new user id per original user, -1 for users with no warm interaction),
        the rewritten interactions ``warm_rows`` ``[n, 3]`` (user, warm item, label) and
        ``cold_rows`` ``[n, 3]`` (user, cold item, 1|2), and their positions in the input
        (``warm_index``, ``cold_index``). Cold interactions of users with no warm one are dropped;
        a drawn item left with no cold interaction at all (every user of it has only cold items)
        stays warm, so every cold item can be evaluated and ``cold.inter`` names each of them.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--cold-items must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    present = np.unique(items)
    n_cold = max(2, int(round(fraction * len(present))))
    if n_cold >= len(present):
        raise ValueError(f"--cold-items {fraction}: would leave no warm item ({len(present)} items)")
    cold = np.sort(rng.choice(present, size=n_cold, replace=False))
    order = rng.permutation(n_cold)
    cold_split = np.full(n_cold, 2, np.int64)
    cold_split[order[: n_cold // 2]] = 1
    is_cold = np.zeros(n_items, bool)
    is_cold[cold] = True
    has_warm = np.zeros(int(users.max()) + 1, bool)
    has_warm[users[~is_cold[items]]] = True
    reached = np.zeros(n_items, bool)
    reached[items[is_cold[items] & has_warm[users]]] = True
    if not reached[cold].all():  # un-colding an item only adds warm users: one pass suffices
        keep = reached[cold]
        is_cold[cold[~keep]] = False
        cold, cold_split = cold[keep], cold_split[keep]
        n_cold = len(cold)
    warm = np.flatnonzero(~is_cold & np.isin(np.arange(n_items), present))
    item_new = np.full(n_items, -1, np.int64)
    item_new[warm] = np.arange(len(warm))
    cold_new = np.full(n_items, -1, np.int64)
    cold_new[cold] = np.arange(n_cold)
    w = ~is_cold[items]
    warm_index = np.flatnonzero(w)
    warm_users = np.unique(users[w])
    user_map = np.full(int(users.max()) + 1, -1, np.int64)
    user_map[warm_users] = np.arange(len(warm_users))
    warm_rows = np.stack([user_map[users[w]], item_new[items[w]], labels[w]], axis=1)
    c = is_cold[items] & (user_map[users] >= 0)
    cold_items = cold_new[items[c]]
    cold_rows = np.stack([user_map[users[c]], cold_items, cold_split[cold_items]], axis=1)
    return {"cold": cold, "cold_split": cold_split, "warm": warm, "user_map": user_map,
            "warm_rows": warm_rows, "cold_rows": cold_rows, "warm_index": warm_index,
            "cold_index": np.flatnonzero(c)}


def write_inter_rows(path: Path, rows: np.ndarray) -> None:
    with open(path, "w") as fh:
        fh.write("userID\titemID\trating\ttimestamp\tx_label\n")
        fh.writelines(f"{u}\t{i}\t1.0\t0\t{x}\n" for u, i, x in rows)


def derive_cold_dataset(src_dir: str | Path, name: str, out: str | Path, fraction: float, seed: int) -> dict:
    """A cold-start dataset ``out`` (a folder named like the new dataset) from the MMRec-layout
    dataset ``src_dir/name``: a seeded ``fraction`` of its items held out as cold items, the warm
    interactions keeping their train/valid/test labels, features split accordingly. Returns counts."""
    from siger.data.dataset import load_dataset

    data = load_dataset(name, src_dir)
    if not data.features:
        raise DataError(data.path, "a cold item needs raw features, and this dataset has none (graphs only)")
    pairs = np.concatenate([data.train, data.valid, data.test])
    labels = np.concatenate([np.zeros(len(data.train)), np.ones(len(data.valid)), np.full(len(data.test), 2)])
    s = split_cold(pairs[:, 0], pairs[:, 1], labels.astype(np.int64), data.n_items, fraction, seed)
    out = Path(out)
    new = out.name
    (out / COLD_DIR).mkdir(parents=True, exist_ok=True)
    write_inter_rows(out / f"{new}.inter", s["warm_rows"])
    write_inter_rows(out / COLD_DIR / "cold.inter", s["cold_rows"])
    for m, f in data.features.items():
        np.save(out / f"{m}_feat.npy", f[s["warm"]])
        np.save(out / COLD_DIR / f"{m}_feat.npy", f[s["cold"]])
    src_items = read_mapping(data.path / "i_id_mapping.csv") or [str(i) for i in range(data.n_items)]
    src_users = read_mapping(data.path / "u_id_mapping.csv") or [str(u) for u in range(data.n_users)]
    users = np.flatnonzero(s["user_map"] >= 0)
    write_mapping(out / "u_id_mapping.csv", [src_users[u] for u in users], "user_id", "userID")
    write_mapping(out / "i_id_mapping.csv", [src_items[i] for i in s["warm"]], "item_id", "itemID")
    write_mapping(out / COLD_DIR / "i_id_mapping.csv", [src_items[i] for i in s["cold"]], "item_id", "itemID")
    return {"warm_items": int(len(s["warm"])), "cold_items": int(len(s["cold"])),
            "cold_valid_items": int((s["cold_split"] == 1).sum()), "cold_test_items": int((s["cold_split"] == 2).sum()),
            "warm_interactions": int(len(s["warm_rows"])), "cold_interactions": int(len(s["cold_rows"])),
            "users": int((s["user_map"] >= 0).sum())}


# -- cold-start users -----------------------------------------------------------------------------
# A cold-user dataset is an ordinary MMRec-layout folder in which a held-out set of users has no
# train interaction (the model never sees them): their train-part interactions are in
# ``cold_users.inter`` (same layout, x_label 0), their valid / test interactions stay in the main
# file. The usual protocol skips them (no train items); the ``cold_users`` evaluation mode folds
# each of them in from that history and ranks as usual (siger.experiments.coldstart).
def load_cold_users(dataset_dir: str | Path, n_users: int, n_items: int) -> sp.csr_matrix | None:
    """The held-out users' histories ``[n_users, n_items]`` (binary; rows of warm users empty),
    or None for a dataset without cold users."""
    p = Path(dataset_dir) / COLD_USERS_FILE
    if not p.exists():
        return None
    cols = read_inter(p, all_users=False, all_items=False)
    u, i = cols["user"], cols["item"]
    if len(u) and (u.max() >= n_users or i.max() >= n_items):
        raise DataError(p, f"ids beyond the dataset's {n_users} users / {n_items} items")
    m = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(n_users, n_items))
    m.data[:] = 1.0
    return m
