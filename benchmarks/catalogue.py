"""Exact ranking against faiss on a large catalogue: per-query latency and top-20 agreement.

    python -m benchmarks.catalogue --items 1000000 [--dim 64] [--queries 500] [--record]

A synthetic catalogue shaped like trained embeddings: ``--items`` item vectors drawn from a
mixture of 256 Gaussian clusters (trained item tables are clustered, not uniform), ``--queries``
user vectors drawn the same way. Exact top-20 is the serving path (one product with the item
table's transpose, kept from load, plus a partial sort); faiss (the ``faiss`` extra)
answers with ``IndexFlatIP`` (exact, batched), ``IndexHNSWFlat`` (a graph index) and
``IndexIVFFlat`` (inverted lists). HNSW searches a metric graph, and the largest inner product
is not a metric: it gets the standard reduction to L2 (each item x becomes [x, sqrt(M^2 - |x|^2)]
with M the largest norm, each query [q, 0]; the nearest in L2 is then the largest inner product). For each: build seconds, the latency of one-user queries
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


def mips_to_l2(items: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Items ``[n, d]`` and queries ``[q, d]`` as ``[n, d + 1]`` / ``[q, d + 1]`` vectors whose L2
    order is the inner-product order: ``|q' - x'|^2 = |q|^2 + M^2 - 2 q.x``."""
    norms = np.einsum("ij,ij->i", items, items)
    extra = np.sqrt(np.maximum(norms.max() - norms, 0.0)).astype(np.float32)
    return (np.ascontiguousarray(np.hstack([items, extra[:, None]])),
            np.ascontiguousarray(np.hstack([queries, np.zeros((len(queries), 1), np.float32)])))


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
    items_l2, users_l2 = mips_to_l2(items, users)
    # (name, index, its search knob and the values tried, the vectors it holds and is asked with)
    for name, make, knob, values, (xs, qs) in (
            ("faiss_flat", lambda: faiss.IndexFlatIP(args.dim), None, [None], (items, users)),
            ("faiss_hnsw", lambda: faiss.IndexHNSWFlat(args.dim + 1, 32), lambda ix, v: setattr(ix.hnsw, "efSearch", v),
             [128, 512, 2048], (items_l2, users_l2)),
            ("faiss_ivf", lambda: faiss.IndexIVFFlat(faiss.IndexFlatIP(args.dim), args.dim, nlist,
                                                     faiss.METRIC_INNER_PRODUCT),
             lambda ix, v: setattr(ix, "nprobe", v), [8, 32, 128], (items, users))):
        t = time.perf_counter()
        index = make()
        if not index.is_trained:
            index.train(xs[np.random.default_rng(2).choice(len(xs), min(len(xs), 50 * nlist), replace=False)])
        index.add(xs)
        build = time.perf_counter() - t
        res[name] = {"build_s": round(build, 1), "by_setting": {}}
        for v in values:
            if knob is not None:
                knob(index, v)
            got, times = faiss_topk(index, qs, args.k)
            res[name]["by_setting"][str(v)] = {**summary(times), "agreement": round(agreement(truth, got), 4)}
        print(name, res[name], flush=True)
    e, h, f = res["exact"], res["faiss_hnsw"], res["faiss_ivf"]

    def curve(r: dict, knob: str) -> str:
        return ", ".join(f"{knob} {v}: p50 {x['p50_ms']:.2f} ms, agreement {x['agreement']:.3f}"
                         for v, x in r["by_setting"].items())

    harness.report(args, res, f"top-{args.k} over a synthetic catalogue of {args.items:,} items",
                   f"{args.dim}-d clustered vectors, one-user queries, {args.queries} queries, {args.threads} thread(s)",
                   f"exact p50 {e['p50_ms']:.1f} ms / p99 {e['p99_ms']:.1f} ms; faiss HNSW (MIPS as L2, M 32, build "
                   f"{h['build_s']:.0f} s) {curve(h, 'efSearch')}; IVF ({nlist} lists) {curve(f, 'nprobe')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
