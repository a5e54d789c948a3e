"""Synthetic datasets that scale a real dataset's degree distributions (``--scale 10`` -> 10x the
users and items, ~10x the interactions), written in the MMRec layout.

    python -m benchmarks.synth --dataset baby --data-dir ../shared/data --scale 10 --out /tmp/synth/baby_x10

- user degrees: drawn with replacement from the real users' interaction counts (all splits);
- item popularity: weights drawn with replacement from the real items' counts (+1);
- each user's items: drawn without repeats with probability proportional to popularity;
- features: for a modality with raw features, rows of the real feature matrix drawn at random plus
  Gaussian noise (0.1 x the feature std); for a graph-only modality (Amazon Baby), 64-d features
  from a 50-cluster Gaussian mixture, so kNN graphs are built as for a real feature matrix;
- items never drawn are dropped (ids stay contiguous), so there are slightly fewer than scale x items;
- split: the MMRec per-user random 8:1:1 of ``siger prepare``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from siger.data.dataset import load_dataset
from siger.data.prepare import random_split


def sample_interactions(user_deg: np.ndarray, item_w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unique (user, item) pairs ``[n, 2]``: user u gets ``min(user_deg[u], n_items)`` distinct
    items drawn with probability proportional to ``item_w``."""
    n_items = len(item_w)
    want = np.minimum(user_deg, n_items).astype(np.int64)
    cdf = np.cumsum(item_w / item_w.sum())
    have = np.zeros(len(want), dtype=np.int64)
    pairs = np.empty((0,), dtype=np.int64)  # encoded u * n_items + i
    for _ in range(50):
        need = want - have
        if not need.any():
            break
        users = np.repeat(np.arange(len(want)), need + (need + 1) // 2)  # oversample 1.5x
        items = np.minimum(np.searchsorted(cdf, rng.random(len(users))), n_items - 1)
        pairs = np.unique(np.concatenate([pairs, users * n_items + items]))
        u = pairs // n_items
        # drop each user's surplus (keep a random subset of size want)
        order = np.lexsort((rng.random(len(pairs)), u))
        pairs, u = pairs[order], u[order]
        rank = np.arange(len(u)) - np.searchsorted(u, u)
        keep = rank < want[u]
        pairs = np.sort(pairs[keep])
        have = np.bincount(pairs // n_items, minlength=len(want))
    short = np.flatnonzero(have < want)  # near-complete users: fill from the unseen items uniformly
    if len(short):
        extra = []
        for u in short:
            seen = pairs[(pairs // n_items) == u] % n_items
            free = np.setdiff1d(np.arange(n_items), seen)
            extra.append(u * n_items + rng.choice(free, want[u] - have[u], replace=False))
        pairs = np.sort(np.concatenate([pairs, *extra]))
    return np.stack([pairs // n_items, pairs % n_items], axis=1)


def synthesize(dataset: str, data_dir: str | None, scale: float, out: str | Path, seed: int = 0) -> dict:
    data = load_dataset(dataset, data_dir)
    rng = np.random.default_rng(seed)
    allp = np.concatenate([data.train, data.valid, data.test])
    udeg = np.bincount(allp[:, 0], minlength=data.n_users)
    udeg = udeg[udeg > 0]
    ideg = np.bincount(allp[:, 1], minlength=data.n_items)
    n_users, n_items = int(round(scale * data.n_users)), int(round(scale * data.n_items))
    user_deg = rng.choice(udeg, n_users, replace=True)
    item_w = rng.choice(ideg, n_items, replace=True).astype(np.float64) + 1.0
    pairs = sample_interactions(user_deg, item_w, rng)
    used, pairs[:, 1] = np.unique(pairs[:, 1], return_inverse=True)  # ids stay contiguous
    n_items = len(used)
    label = random_split(pairs[:, 0], seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = out.name
    with open(out / f"{name}.inter", "w") as fh:
        fh.write("userID\titemID\trating\ttimestamp\tx_label\n")
        np.savetxt(fh, np.column_stack([pairs, np.ones(len(pairs), int), np.zeros(len(pairs), int), label]),
                   fmt="%d", delimiter="\t")
    for m in data.modalities:
        if m in data.features:
            f = data.features[m]
            rows = f[rng.integers(0, len(f), n_items)]
            feat = rows + rng.normal(0, 0.1 * float(f.std()), rows.shape)
        else:
            centers = rng.normal(size=(50, 64))
            feat = centers[rng.integers(0, 50, n_items)] + 0.5 * rng.normal(size=(n_items, 64))
        np.save(out / f"{m}_feat.npy", feat.astype(np.float32))
    info = {"source": dataset, "scale": scale, "users": n_users, "items": n_items, "interactions": int(len(pairs)),
            "train": int((label == 0).sum()), "seed": seed}
    (out / "synth.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="baby")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--scale", type=float, required=True)
    ap.add_argument("--out", required=True, help="DIR/NAME")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps(synthesize(args.dataset, args.data_dir, args.scale, args.out, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
