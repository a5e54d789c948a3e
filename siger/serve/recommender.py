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

from siger.data.dataset import read_mapping, read_titles


class UnknownUserError(KeyError):
    """A user id that is not in the run's dataset."""


class HistoryError(ValueError):
    """A history that cannot be used: unknown item ids (``unknown``), or too long."""

    def __init__(self, message: str, unknown: list[str] | None = None):
        super().__init__(message)
        self.unknown = unknown or []


MAX_HISTORY = 5000  # items in one history (a longer one is refused, not truncated)


@dataclass
class Recommendation:
    user: str
    items: list[dict[str, object]]
    fallback: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"user": self.user, "items": self.items, "fallback": self.fallback}


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
        self.item_index = {i: n for n, i in enumerate(self.item_ids)}
        self.fold = None  # new users: the model's fold-in (siger.models.newusers), set by load_run
        self.fold_error = "this recommender was not loaded from a run folder (siger.load_run)"
        self.free = None  # trained users' layer-0 vectors, for appended histories
        self.appended: dict[int, list[int]] = {}  # user -> items appended since load

    # -- new users ------------------------------------------------------------------------------
    def _history(self, items: Iterable[str], where: str = "history") -> list[int]:
        """Item indices of original ids; unknown ids are a :class:`HistoryError` naming them."""
        items = [str(i).strip() for i in items]
        if len(items) > MAX_HISTORY:
            raise HistoryError(f"{where}: {len(items)} items; at most {MAX_HISTORY}")
        unknown = [i for i in items if i not in self.item_index]
        if unknown:
            raise HistoryError(f"{where}: unknown item ids {unknown[:20]}" + (" ..." if len(unknown) > 20 else ""),
                               unknown)
        return list(dict.fromkeys(self.item_index[i] for i in items))

    def _fold(self, histories: list[list[int]], free: torch.Tensor | None = None) -> torch.Tensor:
        from siger.models.newusers import NewUsersUnsupported, history_matrix

        if self.fold is None:
            raise NewUsersUnsupported(self.fold_error)
        n = self.n_trained_items or self.n_items  # items added after training have no edges: they add nothing
        h = history_matrix([[i for i in hist if i < n] for hist in histories], n)
        return self.fold(h, free).to(self.item_emb.dtype)

    def _rank(self, user_vec: torch.Tensor, exclude: list[int], k: int) -> list[dict[str, object]]:
        if self._item_t is None or self._item_t.shape[1] != self.n_items:
            self._item_t = self.item_emb.T.contiguous()
        scores = (user_vec @ self._item_t).squeeze(0)
        if exclude:
            scores[torch.as_tensor(exclude)] = -torch.inf
        k = min(k, self.n_items)
        vals, top = torch.topk(scores, k)
        keep = torch.isfinite(vals)
        return [self._item(int(i), float(s)) for i, s in zip(top[keep], vals[keep])]

    def recommend_history(self, items: Iterable[str], k: int = 10) -> dict[str, object]:
        """Top-k for a user the model was not trained on, from the original ids of the items it
        interacted with (fold-in: its representation from the trained parameters alone); the
        history's items are not recommended. An empty history gets popularity, flagged as for a
        cold user. Unknown ids: :class:`HistoryError`; a model without fold-in:
        :class:`siger.models.newusers.NewUsersUnsupported`."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        hist = self._history(items)
        if not hist:
            pop = [int(i) for i in self._pop_order][:k]
            return {"user": None, "items": [{**self._item(i, None), "popularity": int(self.popularity[i])}
                                            for i in pop], "fallback": "popularity"}
        return {"user": None, "items": self._rank(self._fold([hist]), hist, k), "fallback": None}

    def append_history(self, user: str | int, items: Iterable[str]) -> int:
        """Add interactions to a known user's history (kept in memory, not in the run folder): the
        user's representation is folded in again from its train items plus everything appended,
        with its own trained layer-0 vector, and the items are not recommended to it again.
        Returns the user's number of history items."""
        u = self.index_of(user)
        new = self._history(items, f"history of user {user!r}")
        if self.free is None:
            from siger.models.newusers import NewUsersUnsupported

            raise NewUsersUnsupported(self.fold_error)
        self.appended[u] = list(dict.fromkeys(self.appended.get(u, []) + new))
        train = self.train_items(u)
        hist = list(dict.fromkeys(train + self.appended[u]))
        self.user_emb[u] = self._fold([hist], self.free[u:u + 1])[0]
        extra = [i for i in self.appended[u] if not self.seen[u, i]]
        if extra:
            row = sp.csr_matrix((np.ones(len(extra)), ([u] * len(extra), extra)), shape=self.seen.shape)
            self.seen = (self.seen + row).tocsr()
        self.history[u] = len(hist)
        return len(hist)

    def train_items(self, u: int) -> list[int]:
        """A trained user's train items (what the model learned from), as item indices."""
        if self.train is None:
            return []
        return self.train.indices[self.train.indptr[u]:self.train.indptr[u + 1]].tolist()

    train: sp.csr_matrix | None = None

    # -- new items ------------------------------------------------------------------------------
    run_dir: Path | None = None
    model = data = graphs = None
    n_trained_items: int = 0

    def _extend(self, ids: list[str], emb: torch.Tensor, titles: list[str] | None) -> None:
        """Append items (no one has seen them; popularity 0) to the ranked catalogue."""
        n = len(ids)
        self.item_emb = torch.cat([self.item_emb, emb.to(self.item_emb.device, self.item_emb.dtype)])
        self.item_ids = list(self.item_ids) + list(ids)
        if titles is not None or self.titles is not None:
            self.titles = list(self.titles or [""] * self.n_items) + list(titles or [""] * n)
        self.seen = sp.hstack([self.seen, sp.csr_matrix((self.n_users, n), dtype=self.seen.dtype)]).tocsr()
        self.popularity = np.concatenate([self.popularity, np.zeros(n)])
        self._pop_order = np.argsort(-self.popularity, kind="stable")
        self.n_items += n

    def add_items(self, ids: list[str], features: dict[str, np.ndarray], titles: list[str] | None = None,
                  where: str = "new items") -> int:
        """Add new items from their features (no retraining), persist them in the run folder
        (``added_items.npz``, replaced atomically: a failure leaves the run as it was) and rank
        them from now on. Returns the catalogue size. Bad input is a :class:`DataError`."""
        from siger.artifacts import atomic_write
        from siger.data.validate import DataError

        if self.model is None or self.run_dir is None:
            raise ValueError("this recommender was not loaded from a run folder (siger.load_run)")
        ids = [str(i).strip() for i in ids]
        if not ids:
            raise DataError(where, "no items to add")
        if any(not i for i in ids):
            raise DataError(where, f"empty item id at row {ids.index('') + 1}")
        seen: dict[str, int] = {}
        for n, i in enumerate(ids, start=1):
            if i in seen:
                raise DataError(where, f"item id {i!r} appears twice (rows {seen[i]} and {n})")
            seen[i] = n
        clash = sorted(set(ids) & set(self.item_ids))
        if clash:
            raise DataError(where, f"item ids already in the run: {clash[:10]}" + (" ..." if len(clash) > 10 else ""))
        if titles is not None and len(titles) != len(ids):
            raise DataError(where, f"{len(titles)} titles for {len(ids)} items")
        for m, f in features.items():
            if np.asarray(f).shape[0] != len(ids):
                raise DataError(where, f"modality '{m}': {np.asarray(f).shape[0]} feature rows for {len(ids)} ids",
                                field=m)
        emb = self.model.embed_new_items(features, self.data, self.graphs)  # validates widths, NaN, modalities
        old = read_added(self.run_dir) or {"ids": [], "titles": None, "features": {}}
        mods = sorted(features)
        if old["ids"] and sorted(old["features"]) != mods:
            raise DataError(where, f"features for {mods}; the run's added items have {sorted(old['features'])}")
        all_ids = old["ids"] + ids
        arrays = {"ids": np.array(all_ids)}
        if titles is not None or old["titles"] is not None:
            arrays["titles"] = np.array((old["titles"] or [""] * len(old["ids"])) + (titles or [""] * len(ids)))
        for m in mods:
            new = np.asarray(features[m], np.float32)
            arrays[f"feat_{m}"] = np.concatenate([old["features"][m], new]) if old["ids"] else new

        def save(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        atomic_write(self.run_dir / ADDED_FILE, save)
        self._extend(ids, emb, titles)
        return self.n_items

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

    def _topk(self, users: np.ndarray, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k unseen items of ``users``: one product with the item table (its transpose kept
        from load) per block of users, the seen items masked, a partial sort."""
        if self._item_t is None or self._item_t.shape[1] != self.n_items:
            self._item_t = self.item_emb.T.contiguous()
        k = min(k, self.n_items)
        top = np.empty((len(users), k), np.int64)
        vals = np.empty((len(users), k), np.float32)
        for s in range(0, len(users), chunk):
            b = users[s:s + chunk]
            scores = self.user_emb[torch.from_numpy(b)] @ self._item_t
            seen = self.seen[b]
            rows = np.repeat(np.arange(len(b)), np.diff(seen.indptr))
            scores[torch.from_numpy(rows), torch.from_numpy(seen.indices.astype(np.int64))] = -torch.inf
            v, i = torch.topk(scores, k, dim=1)
            top[s:s + len(b)], vals[s:s + len(b)] = i.numpy(), v.float().numpy()
        return top, vals

    _item_t: torch.Tensor | None = None

    def _recommend_idx(self, idx: np.ndarray, k: int, chunk: int = 4096) -> list[Recommendation]:
        warm = idx[self.history[idx] > 0]
        out: dict[int, Recommendation] = {}
        if len(warm):
            top, scores = self._topk(warm, k, chunk)
            scores = np.round(scores.astype(np.float64), 6)  # once for the whole block: fast to serialise
            ids, titles = self.item_ids, self.titles
            for u, items, vals in zip(warm.tolist(), top.tolist(), scores.tolist()):
                n = next((j for j, v in enumerate(vals) if v == -np.inf), len(vals))  # fewer than k unseen left
                if titles is None:
                    recs = [{"item": ids[i], "score": v} for i, v in zip(items[:n], vals[:n])]
                else:
                    recs = [{"item": ids[i], "score": v, "title": titles[i]} for i, v in zip(items[:n], vals[:n])]
                out[u] = Recommendation(self.user_ids[u], recs)
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
    """A :class:`RunRecommender` for a finished training run folder, with the items added to it
    (``siger add-items``) ranked alongside the trained ones."""
    from siger.data.graphs import GraphStore
    from siger.train.trainer import load_model

    model, cfg, data = load_model(run_dir, device=device)  # device None: the run's own, else the CPU
    with torch.no_grad():
        u, i = model.embeddings()
    seen = (data.matrix("train") + data.matrix("valid") + data.matrix("test")).tocsr()
    seen.data[:] = 1.0
    popularity = np.bincount(data.train[:, 1], minlength=data.n_items).astype(np.float64)
    rec = RunRecommender(
        u.detach(), i.detach(), seen, popularity,
        read_mapping(data.path / "u_id_mapping.csv"), read_mapping(data.path / "i_id_mapping.csv"),
        read_titles(data.path, data.n_items), cfg.train.model, cfg.train.dataset,
        history=np.bincount(data.train[:, 0], minlength=data.n_users),
    )
    rec.run_dir, rec.model, rec.data = Path(run_dir), model, data
    rec.graphs = GraphStore(data, cfg.train.cache_dir)
    rec.n_trained_items = rec.n_items
    rec.train = sp.csr_matrix(data.train_matrix)
    from siger.models.newusers import NewUsersUnsupported

    try:  # new users: the model's fold-in, computed once
        rec.fold = model.fold_in(data)
        rec.free = model.user_emb.detach().clone() if hasattr(model, "user_emb") else None
    except NewUsersUnsupported as e:
        rec.fold_error = str(e)
    added = read_added(Path(run_dir))
    if added is not None:
        emb = model.embed_new_items(added["features"], data, rec.graphs)
        rec._extend(added["ids"], emb, added["titles"])
    return rec


ADDED_FILE = "added_items.npz"


def read_added(run_dir: Path) -> dict | None:
    """The items added to a run: ``{"ids", "titles" (or None), "features": {modality: [n, dim]}}``."""
    p = run_dir / ADDED_FILE
    if not p.exists():
        return None
    with np.load(p, allow_pickle=False) as z:
        ids = [str(x) for x in z["ids"]]
        titles = [str(x) for x in z["titles"]] if "titles" in z.files else None
        feats = {k[len("feat_"):]: z[k] for k in z.files if k.startswith("feat_")}
    return {"ids": ids, "titles": titles, "features": feats}
