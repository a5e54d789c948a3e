"""Sparse graph builders shared by every model. Nothing here materialises an n x n dense matrix.

- :func:`ui_adjacency`: D^-1/2 A D^-1/2 of the bipartite graph A = [[0, R], [R^T, 0]].
- :func:`bipartite_norm`: its user-item block D_u^-1/2 R D_i^-1/2.
- :func:`knn_graph`: cosine kNN item graph, built in row blocks.
- :func:`cooccurrence_graph`: C = R^T R (train only), zero diagonal, per-row top-k, in row blocks.
- :func:`sym_normalize` / :func:`rw_normalize`, :func:`blend` (after normalisation),
  :func:`blend_weights` (before normalisation), :func:`topk_per_row`.
- :class:`GraphStore`: builds the graphs a model asks for, cached on disk keyed by a hash of the
  inputs, and hands them out as torch sparse tensors.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch

from siger.artifacts import atomic_write
from siger.data.dataset import InteractionData

GRAPH_CACHE_VERSION = "1"


def _inv_sqrt(deg: np.ndarray) -> np.ndarray:
    """1/sqrt(d) with 1/sqrt(0) -> 0 (and non-positive degrees -> 0)."""
    out = np.zeros_like(deg, dtype=np.float64)
    pos = deg > 0
    out[pos] = 1.0 / np.sqrt(deg[pos])
    return out


def sym_normalize(w: sp.spmatrix) -> sp.csr_matrix:
    """S_ij = W_ij / sqrt(d_i d_j) with d = row sums of W (MMRec's 'sym' for kNN graphs)."""
    w = sp.csr_matrix(w)
    d = _inv_sqrt(np.asarray(w.sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(d) @ w @ sp.diags(d), dtype=np.float32)


def rw_normalize(w: sp.spmatrix) -> sp.csr_matrix:
    """S_ij = W_ij / d_i (row-stochastic; rows with d_i = 0 stay zero)."""
    w = sp.csr_matrix(w)
    d = np.asarray(w.sum(axis=1)).ravel()
    inv = np.divide(1.0, d, out=np.zeros_like(d, dtype=np.float64), where=d > 0)
    return sp.csr_matrix(sp.diags(inv) @ w, dtype=np.float32)


def normalize(w: sp.spmatrix, how: str) -> sp.csr_matrix:
    if how == "sym":
        return sym_normalize(w)
    if how == "rw":
        return rw_normalize(w)
    if how == "none":
        return sp.csr_matrix(w, dtype=np.float32)
    raise ValueError(f"unknown normalisation {how!r} (sym | rw | none)")


def bipartite_norm(r: sp.spmatrix) -> sp.csr_matrix:
    """R_hat = D_u^-1/2 R D_i^-1/2, the user-item block of the normalised bipartite adjacency.

    Args:
        r: binary train matrix ``[n_users, n_items]``.
    Returns:
        CSR ``[n_users, n_items]``.
    """
    r = sp.csr_matrix(r, dtype=np.float64)
    du = _inv_sqrt(np.asarray(r.sum(axis=1)).ravel())
    di = _inv_sqrt(np.asarray(r.sum(axis=0)).ravel())
    return sp.csr_matrix(sp.diags(du) @ r @ sp.diags(di), dtype=np.float32)


def ui_adjacency(r: sp.spmatrix) -> sp.csr_matrix:
    """A_hat = D^-1/2 A D^-1/2 with A = [[0, R], [R^T, 0]], no self loops, 1/sqrt(0) -> 0.

    Args:
        r: binary train matrix ``[n_users, n_items]``.
    Returns:
        CSR ``[n_users + n_items, n_users + n_items]``.
    """
    rn = bipartite_norm(r)
    return sp.csr_matrix(sp.bmat([[None, rn], [rn.T, None]]), dtype=np.float32)


def ui_adjacency_rw_self(r: sp.spmatrix) -> sp.csr_matrix:
    """D^-1 (A + I) with A = [[0, R], [R^T, 0]]: the random-walk normalised bipartite graph with
    self loops (LATTICE's and NGCF's user-item graph). Every row sums to 1.

    Args:
        r: binary train matrix ``[n_users, n_items]``.
    Returns:
        CSR ``[n_users + n_items, n_users + n_items]``.
    """
    r = sp.csr_matrix(r, dtype=np.float64)
    a = sp.bmat([[None, r], [r.T, None]]) + sp.eye(sum(r.shape))
    return rw_normalize(a)


def binary_knn_sym(knn: sp.spmatrix) -> sp.csr_matrix:
    """A kNN graph's neighbours with weight 1, D^-1/2 A D^-1/2 with row degrees (+ 1e-7): the item
    graph of FREEDOM and DRAGON (MMRec's ``get_knn_adj_mat``), from any kNN graph's entries."""
    a = sp.csr_matrix(knn, dtype=np.float64, copy=True)
    a.data[:] = 1.0
    d = np.asarray(a.sum(axis=1)).ravel() + 1e-7
    inv = d ** -0.5
    return sp.csr_matrix(sp.diags(inv) @ a @ sp.diags(inv), dtype=np.float32)


def shared_neighbours(graphs: list[sp.spmatrix]) -> sp.csr_matrix:
    """Binary item-item edges i -> j where j is among i's neighbours in *every* given kNN graph
    (their stored entries), i itself excluded (GUME's graph enhancement). ``[n_items, n_items]``."""
    out = None
    for g in graphs:
        b = sp.csr_matrix(g, dtype=np.float32, copy=True)  # never write into the caller's graph
        b.data[:] = 1.0
        out = b if out is None else out.multiply(b)
    out = sp.csr_matrix(out)
    out.setdiag(0)
    out.eliminate_zeros()
    out.data[:] = 1.0
    return out


def ui_adjacency_with_items(r: sp.spmatrix, item_edges: sp.spmatrix) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """D^-1/2 A D^-1/2 with A = [[0, R], [R^T, I]], item-item edges ``I`` in the item block (not
    symmetrised), degrees = A's row sums; and its user-item block ``[n_users, n_items]`` (GUME's
    enhanced user-item graph and the R its users aggregate through).

    Args:
        r: binary train matrix ``[n_users, n_items]``; item_edges: ``[n_items, n_items]``.
    Returns:
        CSR ``[n_users + n_items, n_users + n_items]`` and CSR ``[n_users, n_items]``.
    """
    r = sp.csr_matrix(r, dtype=np.float64)
    a = sp.csr_matrix(sp.bmat([[None, r], [r.T, sp.csr_matrix(item_edges, dtype=np.float64)]]))
    d = sp.diags(_inv_sqrt(np.asarray(a.sum(axis=1)).ravel()))
    norm = sp.csr_matrix(d @ a @ d, dtype=np.float32)
    return norm, sp.csr_matrix(norm[: r.shape[0], r.shape[0]:])


def topk_per_row(m: sp.spmatrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row; ties go to the smaller column index.

    Vectorised: one lexsort over (row, -value, column), then the first k of each row.
    """
    m = sp.csr_matrix(m)
    m.sum_duplicates()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((m.indices, -m.data, rows))
    rows_s = rows[order]
    rank = np.arange(len(order)) - m.indptr[rows_s]
    keep = order[rank < k]
    out = sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)
    out.sort_indices()
    return out


def knn_graph(
    features: np.ndarray, k: int, block_bytes: int = 128 * 2**20, device: str = "cpu", backend: str = "exact"
) -> sp.csr_matrix:
    """Cosine kNN graph: row i keeps its k most similar items (itself included) with weight cos.

    Built in row blocks of at most ``block_bytes`` of similarity scores, so the peak extra memory is
    independent of n_items squared. Not symmetrised; not normalised (see :func:`sym_normalize`).

    Args:
        features: ``[n_items, dim]``.
        k: neighbours per row (clipped to n_items).
        backend: 'exact' (blocked torch matmul + top-k) or 'faiss' (faiss-cpu ``IndexFlatIP`` on the
            normalised rows: also exact, batched by faiss; needs ``pip install faiss-cpu``).
    Returns:
        CSR ``[n_items, n_items]`` with exactly ``min(k, n_items)`` entries per row.
    """
    if backend == "faiss":
        return _knn_faiss(features, k)
    if backend != "exact":
        raise ValueError(f"unknown knn backend {backend!r} (exact | faiss)")
    x = torch.as_tensor(np.asarray(features, dtype=np.float32), device=device)
    x = torch.nn.functional.normalize(x, dim=1)
    n = x.shape[0]
    k = min(k, n)
    rows_per_block = max(1, block_bytes // (4 * n))
    vals, cols = [], []
    for start in range(0, n, rows_per_block):
        sim = x[start : start + rows_per_block] @ x.T  # [block, n]
        v, c = torch.topk(sim, k, dim=1)
        vals.append(v.cpu())
        cols.append(c.cpu())
    v = torch.cat(vals).numpy().ravel()
    c = torch.cat(cols).numpy().ravel()
    r = np.repeat(np.arange(n), k)
    g = sp.csr_matrix((v, (r, c)), shape=(n, n), dtype=np.float32)
    g.sort_indices()
    return g


def _knn_faiss(features: np.ndarray, k: int) -> sp.csr_matrix:
    try:
        import faiss
    except ImportError:
        raise ImportError("knn_backend 'faiss' needs faiss-cpu: pip install 'siger[faiss]'") from None
    x = np.ascontiguousarray(features, dtype=np.float32).copy()
    faiss.normalize_L2(x)
    n = x.shape[0]
    k = min(k, n)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    v, c = index.search(x, k)
    g = sp.csr_matrix((v.ravel(), (np.repeat(np.arange(n), k), c.ravel())), shape=(n, n), dtype=np.float32)
    g.sort_indices()
    return g


def cooccurrence_graph(
    r: sp.spmatrix, k: int, weighting: str = "count", block_rows: int = 4096
) -> sp.csr_matrix:
    """Item-item co-occurrence C = R^T R from the train matrix, diagonal zeroed, per-row top-k.

    Rows are computed in blocks (R^T[block] @ R), so memory stays bounded by the sparse block.
    Ties are broken by the smaller item id.

    Args:
        r: binary train matrix ``[n_users, n_items]``.
        k: neighbours kept per item.
        weighting: 'count' (shared users), 'binary' (1 for each kept neighbour) or 'cosine'
            (count / sqrt(deg_i deg_j), deg = the item's train count). Selection is by weight.
    Returns:
        CSR ``[n_items, n_items]`` (not normalised).
    """
    if weighting not in ("count", "binary", "cosine"):
        raise ValueError(f"unknown co-occurrence weighting {weighting!r} (count | binary | cosine)")
    r = sp.csr_matrix(r, dtype=np.float32, copy=True)  # never write into the caller's matrix
    r.data[:] = 1.0
    rt = sp.csr_matrix(r.T)
    n = r.shape[1]
    deg = np.asarray(r.sum(axis=0)).ravel()
    inv = _inv_sqrt(deg)
    blocks = []
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        c = sp.csr_matrix(rt[start:stop] @ r)  # [block, n_items]
        c = c.tocoo()
        keep = c.row + start != c.col
        data = c.data[keep].astype(np.float64)
        if weighting == "cosine":
            data = data * inv[c.row[keep] + start] * inv[c.col[keep]]
        c = sp.csr_matrix((data, (c.row[keep], c.col[keep])), shape=(stop - start, n))
        c = topk_per_row(c, k)
        if weighting == "binary":
            c.data[:] = 1.0
        blocks.append(c)
    return sp.csr_matrix(sp.vstack(blocks), dtype=np.float32)


def blend(a: sp.spmatrix, b: sp.spmatrix, beta: float) -> sp.csr_matrix:
    """(1 - beta) * a + beta * b; beta = 0 returns exactly a."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if beta == 0.0:
        return sp.csr_matrix(a, dtype=np.float32)
    out = sp.csr_matrix((1.0 - beta) * sp.csr_matrix(a) + beta * sp.csr_matrix(b), dtype=np.float32)
    out.sort_indices()
    return out


def row_max_scale(w: sp.spmatrix) -> sp.csr_matrix:
    """Divide each row by its largest entry (rows with no positive entry stay as they are)."""
    w = sp.csr_matrix(w, dtype=np.float64)
    mx = np.asarray(w.max(axis=1).todense()).ravel()
    inv = np.divide(1.0, mx, out=np.ones_like(mx), where=mx > 0)
    return sp.csr_matrix(sp.diags(inv) @ w)


def blend_weights(w: sp.spmatrix, c: sp.spmatrix, beta: float, norm: str = "sym") -> sp.csr_matrix:
    """Infusion before normalisation: ``normalize((1 - beta) W' + beta C', norm)``.

    ``W'`` and ``C'`` are the semantic and co-occurrence weights, each divided by its row maximum
    so the two are on one scale (a cosine kNN row with self included already has maximum 1;
    co-occurrence counts do not). The blend's edge set is the union of the two top-k lists.
    beta = 0 gives ``normalize(W', norm)``.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    mixed = (1.0 - beta) * row_max_scale(w) + beta * row_max_scale(c)
    out = normalize(mixed, norm)
    out.sort_indices()
    return out


def to_torch(m: sp.spmatrix, device: str | torch.device = "cpu") -> torch.Tensor:
    """scipy sparse -> coalesced torch sparse COO float32 tensor."""
    coo = sp.coo_matrix(m)
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    val = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(idx, val, coo.shape, device=device, check_invariants=False).coalesce()


def _hash(*parts: object) -> str:
    h = hashlib.sha1(GRAPH_CACHE_VERSION.encode())
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str(p.dtype).encode() + str(p.shape).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        elif sp.issparse(p):
            c = sp.csr_matrix(p)
            c.sort_indices()
            h.update(str(c.shape).encode())
            for a in (c.indptr, c.indices, c.data):
                h.update(np.ascontiguousarray(a).tobytes())
        else:
            h.update(repr(p).encode())
    return h.hexdigest()[:20]


def default_cache_dir() -> Path:
    env = os.environ.get("SIGER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "siger"


class GraphStore:
    """Builds the graphs of one dataset on demand, caching each on disk by a hash of its inputs.

    A model asks for graphs by meaning (``store.knn('image', 10)``), never builds them itself.
    ``cache_dir=False`` disables the disk cache.
    """

    def __init__(self, data: InteractionData, cache_dir: str | Path | None | bool = None):
        self.data = data
        self.cache_dir = None if cache_dir is False else Path(cache_dir or default_cache_dir()) / "graphs"
        self._train_hash: str | None = None

    @property
    def train_hash(self) -> str:
        if self._train_hash is None:
            self._train_hash = _hash(self.data.train_matrix)
        return self._train_hash

    def _cached(self, name: str, key: str, build: Callable[[], sp.csr_matrix]) -> sp.csr_matrix:
        if self.cache_dir is None:
            return build()
        path = self.cache_dir / f"{name}-{key}.npz"
        if path.exists():
            try:
                return sp.csr_matrix(sp.load_npz(path))
            except (OSError, ValueError):
                pass  # a corrupt cache entry is rebuilt below
        g = build()

        def save(tmp: str) -> None:
            with open(tmp, "wb") as fh:  # a file object: save_npz would add .npz to a name
                sp.save_npz(fh, g)

        atomic_write(path, save)
        return g

    # -- graphs by meaning -------------------------------------------------------------------
    def ui_adjacency(self) -> sp.csr_matrix:
        return self._cached("ui_adj", self.train_hash, lambda: ui_adjacency(self.data.train_matrix))

    def ui_adjacency_rw_self(self) -> sp.csr_matrix:
        return self._cached("ui_adj_rw_self", self.train_hash, lambda: ui_adjacency_rw_self(self.data.train_matrix))

    def bipartite(self) -> sp.csr_matrix:
        return self._cached("ui_norm", self.train_hash, lambda: bipartite_norm(self.data.train_matrix))

    def knn(self, modality: str, k: int, norm: str = "sym", backend: str = "exact") -> sp.csr_matrix:
        """The modality's semantic graph S^m: built from raw features if present, else provided.

        On a derived dataset with graph noise (``data.graph_noise``) a share of each row's
        neighbours is replaced by random items (:func:`siger.data.variants.corrupt_knn`): before
        normalisation for a built graph, on the provided (already normalised) graph otherwise."""
        data = self.data
        noise = data.graph_noise
        if modality in data.features:
            f = data.features[modality]
            key = _hash(f, k, norm) if backend == "exact" else _hash(f, k, norm, backend)
            if noise:
                key = _hash(key, noise["p"], noise["seed"], modality)

            def build() -> sp.csr_matrix:
                g = knn_graph(f, k, backend=backend)
                return normalize(self._corrupt(g, modality) if noise else g, norm)

            return self._cached(f"knn_{modality}_{k}_{norm}" + ("" if backend == "exact" else f"_{backend}"), key,
                                build)
        if modality in data.graphs:
            provided = data.graphs[modality]
            if k not in provided:
                raise KeyError(
                    f"modality '{modality}' has only provided graphs for k in {sorted(provided)}, "
                    f"not knn_k={k}"
                )
            return self._corrupt(provided[k], modality) if noise else provided[k]
        raise KeyError(f"unknown modality '{modality}' (have {data.modalities})")

    def _corrupt(self, g: sp.csr_matrix, modality: str) -> sp.csr_matrix:
        """``g`` with the dataset's graph noise (each modality its own seeded draw)."""
        import zlib

        from siger.data.variants import corrupt_knn

        noise = self.data.graph_noise
        return corrupt_knn(g, float(noise["p"]), int(noise["seed"]) + zlib.crc32(modality.encode()))

    def user_cooccurrence(self, k: int) -> sp.csr_matrix:
        """Users' co-occurrence graph ``[n_users, n_users]``: C_uv = the number of train items u and
        v share, diagonal zeroed, each row's ``k`` largest kept (ties: smaller user id), counts
        not normalised (DRAGON's user-user graph, built here from the train matrix)."""
        key = _hash(self.train_hash, k, "users")
        return self._cached(f"ucooc_{k}", key, lambda: cooccurrence_graph(self.data.train_matrix.T, k, "count"))

    def cooccurrence(self, k: int, weighting: str = "count", norm: str = "sym") -> sp.csr_matrix:
        key = _hash(self.train_hash, k, weighting, norm)
        return self._cached(
            f"cooc_{k}_{weighting}_{norm}", key,
            lambda: normalize(cooccurrence_graph(self.data.train_matrix, k, weighting), norm),
        )
