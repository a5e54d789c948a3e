"""Derived datasets: a real dataset changed in one controlled way, written in the MMRec layout.

- **thin** (``per_item``): keep a seeded random share of the *train* interactions so that items
  have ``per_item`` train interactions on average (valid and test are kept as they are; every user
  and every item with a train interaction keeps at least one). It moves a dataset into the sparse
  regime, where the semantic graphs carry more of the signal, without changing its features.
- **feature noise** (``snr_db``): Gaussian noise added to every raw feature at a signal-to-noise
  ratio in dB (signal power: the mean squared deviation of the features from their mean).
- **cold users** (``cold_users``): a seeded fraction of the users held out of training
  entirely: their train-part interactions move to ``cold_users.inter`` (the history a served
  model folds them in from), their valid / test interactions stay (:mod:`siger.data.cold`).
- **graph noise** (``graph_noise``): a fraction p of each item's semantic kNN neighbours (itself
  excluded) replaced by random items, weights kept. It is written as ``variant.json`` and applied
  where the graph is built (:func:`corrupt_knn` in :class:`siger.data.graphs.GraphStore`), so
  raw-feature modalities and provided graphs are corrupted the same way.

Every variant folder holds ``variant.json``: the source folder, each operation with its
parameters and seed, so a variant is reproducible from its source.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from siger.data.validate import DataError, read_inter

VARIANT_FILE = "variant.json"
COLD_USERS_FILE = "cold_users.inter"


def corrupt_knn(g: sp.spmatrix, p: float, seed: int) -> sp.csr_matrix:
    """Replace a fraction ``p`` of each row's off-diagonal neighbours by random items.

    Per row with ``n`` off-diagonal entries, ``round(p * n)`` of them (chosen at random) move to
    columns drawn uniformly from the items not already in the row and not the row itself; each
    moved entry keeps its weight. The diagonal (an item's own entry) is never moved. ``p = 0``
    returns the graph unchanged.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"graph noise must be in [0, 1], got {p}")
    g = sp.csr_matrix(g, copy=True)
    g.sort_indices()
    if p == 0.0:
        return g
    n = g.shape[1]
    rng = np.random.default_rng(seed)
    indices = g.indices.copy()
    for i in range(g.shape[0]):
        lo, hi = g.indptr[i], g.indptr[i + 1]
        cols = indices[lo:hi]
        off = np.flatnonzero(cols != i)
        m = int(round(p * len(off)))
        if m == 0:
            continue
        move = rng.choice(off, size=m, replace=False)
        taken = set(cols.tolist()) | {i}
        if n - len(taken) < m:  # not enough free columns (a tiny catalogue): move what fits
            move = move[: n - len(taken)]
        new = []
        while len(new) < len(move):
            c = int(rng.integers(n))
            if c not in taken:
                taken.add(c)
                new.append(c)
        cols[move] = new
    out = sp.csr_matrix((g.data, indices, g.indptr), shape=g.shape)
    out.sum_duplicates()
    out.sort_indices()
    return out


def split_cold_users(users: np.ndarray, items: np.ndarray, labels: np.ndarray, fraction: float,
                     seed: int) -> np.ndarray:
    """The rows to move out of training: the train rows (label 0) of a seeded ``fraction`` of the
    users that have train and held-out (valid or test) rows. A drawn user whose move would leave
    an item with no interaction at all stays warm (the catalogue keeps every item)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--cold-users must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    train = labels == 0
    eligible = np.intersect1d(np.unique(users[train]), np.unique(users[~train]))
    n = int(round(fraction * len(eligible)))
    if n < 1:
        raise ValueError(f"--cold-users {fraction}: no user to hold out ({len(eligible)} eligible)")
    cold = np.zeros(int(users.max()) + 1, bool)
    cold[rng.choice(eligible, size=n, replace=False)] = True
    for u in rng.permutation(np.flatnonzero(cold)):  # keep every item in the catalogue
        moved = train & cold[users]
        kept_items = np.unique(items[~moved])
        if len(kept_items) == int(items.max()) + 1:
            break
        lost = np.setdiff1d(np.arange(int(items.max()) + 1), kept_items)
        if np.isin(items[(users == u) & train], lost).any():
            cold[u] = False
    moved = train & cold[users]
    if len(np.unique(items[~moved])) != int(items.max()) + 1:  # the loop above ends only once this holds
        raise ValueError("cannot hold these users out without emptying an item")
    return moved


def read_variant(folder: Path) -> dict[str, Any]:
    """The ``variant.json`` of a dataset folder ({} for a dataset that is not a variant)."""
    p = Path(folder) / VARIANT_FILE
    if not p.exists():
        return {}
    try:
        doc = json.loads(p.read_text())
    except ValueError as e:
        raise DataError(p, f"not JSON: {e}") from None
    noise = doc.get("graph_noise")
    if noise is not None:
        if not isinstance(noise, dict) or not 0.0 <= float(noise.get("p", -1)) <= 1.0 or "seed" not in noise:
            raise DataError(p, f"field 'graph_noise': expected {{p: 0..1, seed: int}}, got {noise!r}")
    return doc


def _thin_keep(users: np.ndarray, items: np.ndarray, train: np.ndarray, per_item: float,
               rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Which rows to keep (all valid / test rows; a random share of train rows) and that share."""
    n_items = int(items.max()) + 1
    n_train = int(train.sum())
    share = min(1.0, per_item * n_items / max(n_train, 1))
    keep = ~train | (rng.random(len(users)) < share)
    tr = np.flatnonzero(train)
    for ids in (users, items):  # everyone who had a train row keeps one
        had = np.unique(ids[tr])
        kept = np.zeros(int(ids.max()) + 1, dtype=bool)
        kept[ids[keep & train]] = True
        lost = had[~kept[had]]
        if len(lost):
            order = rng.permutation(tr)
            first = {}
            for r in order[np.isin(ids[order], lost)]:
                first.setdefault(int(ids[r]), r)
            keep[list(first.values())] = True
    return keep, share


def derive(src: str | Path, out: str | Path, per_item: float | None = None, snr_db: float | None = None,
           graph_noise: float | None = None, seed: int = 0, cold_users: float | None = None) -> dict[str, Any]:
    """Write a variant of the dataset folder ``src`` to ``out`` (the dataset's name is the
    folder's name). Returns the variant record written to ``out/variant.json``."""
    src, out = Path(src), Path(out)
    name = src.name
    inter = src / f"{name}.inter"
    if not inter.exists():
        raise DataError(inter, "not found (a variant is derived from a dataset folder in the MMRec layout)")
    if out.exists():
        raise DataError(out, "already exists; derive into a new folder")
    if per_item is None and snr_db is None and graph_noise is None and cold_users is None:
        raise ValueError("nothing to derive: give per_item, snr_db, graph_noise and/or cold_users")
    if per_item is not None and per_item <= 0:
        raise ValueError(f"per_item must be > 0, got {per_item}")
    record: dict[str, Any] = {"source": str(src), "operations": []}
    base = read_variant(src)
    if base:
        record["source_variant"] = base
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    lines = inter.read_text().splitlines()
    if per_item is not None:
        cols = read_inter(inter)
        keep, share = _thin_keep(cols["user"], cols["item"], cols["x_label"] == 0, per_item, rng)
        body = [ln for ln, k in zip(lines[1:], keep) if k]
        record["operations"].append({"op": "thin", "per_item": per_item, "seed": seed, "share": round(share, 6),
                                     "train_before": int((cols["x_label"] == 0).sum()),
                                     "train_after": int((keep & (cols["x_label"] == 0)).sum())})
        lines = [lines[0]] + body
    if cold_users is not None:  # a held-out set of users: their train rows move to cold_users.inter
        body = lines[1:]
        tmp = out / f"{out.name}.inter"
        tmp.write_text("\n".join(lines) + "\n")
        cols = read_inter(tmp)
        moved = split_cold_users(cols["user"], cols["item"], cols["x_label"], cold_users, seed)
        (out / COLD_USERS_FILE).write_text("\n".join([lines[0]] + [b for b, m in zip(body, moved) if m]) + "\n")
        lines = [lines[0]] + [b for b, m in zip(body, moved) if not m]
        record["operations"].append({"op": "cold_users", "fraction": cold_users, "seed": seed,
                                     "users": int(len(np.unique(cols["user"][moved]))),
                                     "history_interactions": int(moved.sum())})
    (out / f"{out.name}.inter").write_text("\n".join(lines) + "\n")
    for p in sorted(src.iterdir()):
        if p.is_file() and p.name not in (inter.name, VARIANT_FILE, "NOTES.md") and not (
                cold_users is not None and p.name == "cold_users.inter"):
            shutil.copyfile(p, out / p.name)
    if snr_db is not None:
        for p in sorted(out.glob("*_feat.npy")):
            f = np.load(p).astype(np.float64)
            power = float(((f - f.mean(axis=0)) ** 2).mean())
            sigma = float(np.sqrt(power / 10 ** (snr_db / 10)))
            np.save(p, (f + rng.normal(0.0, sigma, size=f.shape)).astype(np.float32))
        record["operations"].append({"op": "feature_noise", "snr_db": snr_db, "seed": seed})
    if graph_noise is None and base.get("graph_noise"):
        record["graph_noise"] = base["graph_noise"]  # a variant of a noisy variant stays noisy
    if graph_noise is not None:
        record["graph_noise"] = {"p": float(graph_noise), "seed": seed}
        record["operations"].append({"op": "graph_noise", "p": float(graph_noise), "seed": seed})
    (out / VARIANT_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return record
