"""Exact ranking against faiss on a large catalogue: per-query latency and top-20 agreement.

    python -m benchmarks.catalogue --items 1000000 [--dim 64] [--queries 500] [--record]

A synthetic catalogue shaped like trained embeddings: ``--items`` item vectors drawn from a
mixture of 256 Gaussian clusters (trained item tables are clustered, not uniform), ``--queries``
user vectors drawn the same way. Exact top-20 is the serving path (one product with the item
table's transpose, kept from load, plus a partial sort); faiss (the ``faiss`` extra)
answers with ``IndexFlatIP`` (exact, batched), ``IndexHNSWFlat`` (a graph index) and
``IndexIVFFlat`` (inverted lists). For each: build seconds, the latency of one-user queries
(median and p99 over ``--queries``), and the share of the exact top 20 it returns (recall@20
agreement). Prints one JSON line; ``--record`` stores it for docs/scale.md.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import harness


def catalogue(n: int, dim: int, seed: int = 0, clusters: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def exact_topk(users: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    """Exact ranking as the server does it, one user at a time: one product with the item
    table's transpose (kept from load) and a partial sort: (top ids ``[q, k]``, seconds per query)."""
    import torch

    u, item_t = torch.from_numpy(users), torch.from_numpy(items).T.contiguous()
    out, times = np.empty((len(users), k), np.int64), []
    for q in range(len(users)):
        t = time.perf_counter()
        out[q] = torch.topk(u[q:q + 1] @ item_t, k, dim=1).indices[0].numpy()
        times.append(time.perf_counter() - t)
    return out, times


def faiss_topk(index, users: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    out, times = np.empty((len(users), k), np.int64), []
    for q in range(len(users)):
        t = time.perf_counter()
        _, ids = index.search(users[q:q + 1], k)
        times.append(time.perf_counter() - t)
        out[q] = ids[0]
    return out, times


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x.tolist()) & set(y.tolist())) / len(x) for x, y in zip(a, b)]))


def summary(times: list[float]) -> dict[str, float]:
    t = np.array(times) * 1e3
    return {"p50_ms": round(float(np.median(t)), 3), "p99_ms": round(float(np.percentile(t, 99)), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = harness.parser(__doc__)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch and faiss threads")
    args = ap.parse_args(argv)
    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    items = catalogue(args.items, args.dim, seed=0)
    users = catalogue(args.queries, args.dim, seed=1)
    truth, t_exact = exact_topk(users, items, args.k)
    res = {"items": args.items, "dim": args.dim, "queries": args.queries, "k": args.k, "threads": args.threads,
           "exact": summary(t_exact)}
    nlist = int(4 * np.sqrt(args.items))
    for name, make, tune in (
            ("faiss_flat", lambda: faiss.IndexFlatIP(args.dim), None),
            ("faiss_hnsw", lambda: faiss.IndexHNSWFlat(args.dim, 32, faiss.METRIC_INNER_PRODUCT),
             lambda ix: setattr(ix.hnsw, "efSearch", 128)),
            ("faiss_ivf", lambda: faiss.IndexIVFFlat(faiss.IndexFlatIP(args.dim), args.dim, nlist,
                                                     faiss.METRIC_INNER_PRODUCT),
             lambda ix: setattr(ix, "nprobe", 32))):
        t = time.perf_counter()
        index = make()
        if not index.is_trained:
            index.train(items[np.random.default_rng(2).choice(len(items), min(len(items), 50 * nlist), replace=False)])
        index.add(items)
        build = time.perf_counter() - t
        if tune is not None:
            tune(index)
        got, times = faiss_topk(index, users, args.k)
        res[name] = {**summary(times), "build_s": round(build, 1), "agreement": round(agreement(truth, got), 4)}
        print(name, res[name], flush=True)
    e, h, f = res["exact"], res["faiss_hnsw"], res["faiss_ivf"]
    harness.report(args, res, f"top-{args.k} over a synthetic catalogue of {args.items:,} items",
                   f"{args.dim}-d clustered vectors, one-user queries, {args.queries} queries, {args.threads} thread(s)",
                   f"exact p50 {e['p50_ms']:.1f} ms / p99 {e['p99_ms']:.1f} ms; faiss HNSW p50 {h['p50_ms']:.2f} ms, "
                   f"agreement {h['agreement']:.3f} (build {h['build_s']:.0f} s); IVF p50 {f['p50_ms']:.2f} ms, "
                   f"agreement {f['agreement']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
