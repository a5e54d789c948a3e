"""Top-k recommendations from a finished run, in the dataset's original ids.

    rec = siger.load_run("runs/siger_tiktok")
    rec.recommend(["12", "34"], k=10)   # -> [{"user": "12", "items": [...], "fallback": None}, ...]

Embeddings are computed once at load. Items the user interacted with in any split are never
recommended. A known user with no training interactions (a cold user) gets the most popular unseen items
(train counts), flagged ``"fallback": "popularity"``; those items carry ``"score": None`` (a model
score would be meaningless for them) and ``"popularity"``, the item's number of train
interactions. An unknown user raises :class:`UnknownUserError`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.sparse as sp
import torch

from siger.eval.ranking import topk_items

TITLE_COLUMNS = ("title", "movie_title", "name", "text")


class UnknownUserError(KeyError):
    """A user id that is not in the run's dataset."""


@dataclass
class Recommendation:
    user: str
    items: list[dict[str, object]]
    fallback: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"user": self.user, "items": self.items, "fallback": self.fallback}


def _read_mapping(path: Path) -> list[str] | None:
    """Original ids indexed by contiguous id, from ``*_id_mapping.csv`` (tab-separated)."""
    if not path.exists():
        return None
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    ids: dict[int, str] = {}
    for n, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            raise ValueError(f"{path}:{n}: expected 'original_id<TAB>contiguous_id'")
        ids[int(row[1])] = row[0]
    return [ids[i] for i in range(len(ids))]


def _read_titles(folder: Path, n_items: int) -> list[str] | None:
    for name in ("items.tsv", "item_text.tsv"):
        p = folder / name
        if not p.exists():
            continue
        with open(p, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t"))
        header = [h.split(":", 1)[0].lower() for h in rows[0]]
        col = next((header.index(c) for c in TITLE_COLUMNS if c in header), None)
        if col is None or "itemid" not in header:
            continue
        idc = header.index("itemid")
        titles = [""] * n_items
        for row in rows[1:]:
            i = int(row[idc])
            if 0 <= i < n_items:
                titles[i] = row[col]
        return titles
    return None


class RunRecommender:
    """Serve a trained model. Args: user/item embeddings ``[n_users, d]``/``[n_items, d]``,
    ``seen`` CSR ``[n_users, n_items]`` (never recommended), train popularity ``[n_items]``,
    original ids (or None for ``0..n-1``), item titles (or None), train interactions per user
    ``[n_users]`` (None: counted from ``seen``); users with none get the popularity fallback."""

    def __init__(self, user_emb: torch.Tensor, item_emb: torch.Tensor, seen: sp.csr_matrix,
                 popularity: np.ndarray, user_ids: list[str] | None = None, item_ids: list[str] | None = None,
                 titles: list[str] | None = None, model_name: str = "", dataset: str = "",
                 history: np.ndarray | None = None):
        self.user_emb, self.item_emb = user_emb, item_emb
        self.n_users, self.n_items = user_emb.shape[0], item_emb.shape[0]
        self.seen = seen.tocsr()
        self.popularity = popularity
        self.user_ids = user_ids or [str(i) for i in range(self.n_users)]
        self.item_ids = item_ids or [str(i) for i in range(self.n_items)]
        if len(self.user_ids) != self.n_users or len(self.item_ids) != self.n_items:
            raise ValueError(f"id mappings ({len(self.user_ids)} users, {len(self.item_ids)} items) do not match "
                             f"the model ({self.n_users} users, {self.n_items} items)")
        self.user_index = {u: i for i, u in enumerate(self.user_ids)}
        self.titles = titles
        self.model_name, self.dataset = model_name, dataset
        # interactions the model learned from per user (train); 0 = cold user -> popularity
        self.history = np.diff(self.seen.indptr) if history is None else np.asarray(history)
        self._pop_order = np.argsort(-popularity, kind="stable")

    def index_of(self, user: str | int) -> int:
        key = str(user)
        if key not in self.user_index:
            raise UnknownUserError(f"unknown user {key!r}")
        return self.user_index[key]

    def _item(self, i: int, score: float | None) -> dict[str, object]:
        d: dict[str, object] = {"item": self.item_ids[i], "score": None if score is None else round(float(score), 6)}
        if self.titles is not None:
            d["title"] = self.titles[i]
        return d

    def _popular(self, u: int, k: int) -> list[dict[str, object]]:
        seen = set(self.seen.indices[self.seen.indptr[u]:self.seen.indptr[u + 1]].tolist())
        items = [int(i) for i in self._pop_order if int(i) not in seen][:k]
        return [{**self._item(i, None), "popularity": int(self.popularity[i])} for i in items]

    def recommend(self, users: Iterable[str | int], k: int = 10) -> list[dict[str, object]]:
        """Top-k unseen items per user (original ids in and out), best first."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        idx = np.array([self.index_of(u) for u in users], dtype=np.int64)
        return [r.as_dict() for r in self._recommend_idx(idx, k)]

    def _recommend_idx(self, idx: np.ndarray, k: int, chunk: int = 4096) -> list[Recommendation]:
        warm = idx[self.history[idx] > 0]
        out: dict[int, Recommendation] = {}
        if len(warm):
            top, scores = topk_items(self.user_emb, self.item_emb, warm, self.seen, k, chunk, return_scores=True)
            for u, items, vals in zip(warm, top, scores):
                keep = np.isfinite(vals)  # fewer than k unseen items left
                out[int(u)] = Recommendation(self.user_ids[u], [self._item(i, s) for i, s in zip(items[keep], vals[keep])])
        for u in idx[self.history[idx] == 0]:
            out[int(u)] = Recommendation(self.user_ids[u], self._popular(int(u), k), "popularity")
        return [out[int(u)] for u in idx]

    def export_all(self, path: str | Path, k: int = 10, chunk: int = 4096) -> int:
        """Write ``user, rank, item, score[, title], fallback`` rows for every user; returns rows."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        rows = 0
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, delimiter="\t", lineterminator="\n")
            w.writerow(["user", "rank", "item", "score"] + (["title"] if self.titles else []) + ["fallback"])
            for s in range(0, self.n_users, chunk):
                for r in self._recommend_idx(np.arange(s, min(s + chunk, self.n_users)), k, chunk):
                    for rank, it in enumerate(r.items, start=1):
                        w.writerow([r.user, rank, it["item"], it["score"]] + ([it["title"]] if self.titles else [])
                                   + [r.fallback or ""])
                        rows += 1
        tmp.replace(path)
        return rows


def load_run(run_dir: str | Path, device: str | None = None) -> RunRecommender:
    """A :class:`RunRecommender` for a finished training run folder."""
    from siger.train.trainer import load_model

    model, cfg, data = load_model(run_dir, device=device)  # device None: the run's own, else the CPU
    with torch.no_grad():
        u, i = model.embeddings()
    seen = (data.matrix("train") + data.matrix("valid") + data.matrix("test")).tocsr()
    seen.data[:] = 1.0
    popularity = np.bincount(data.train[:, 1], minlength=data.n_items).astype(np.float64)
    return RunRecommender(
        u.detach(), i.detach(), seen, popularity,
        _read_mapping(data.path / "u_id_mapping.csv"), _read_mapping(data.path / "i_id_mapping.csv"),
        _read_titles(data.path, data.n_items), cfg.train.model, cfg.train.dataset,
        history=np.bincount(data.train[:, 0], minlength=data.n_users),
    )
