"""Diagnostics behind the README's analysis of SIGER's contrastive terms.

    # MostPop (rank by train popularity) under the same protocol and evaluator
    python benchmarks/diagnose.py popularity --dataset ml100k --data-dir ../shared/data
    # geometry of trained runs: does the ranking follow popularity, how spread are the embeddings
    python benchmarks/diagnose.py geometry runs/results/ml100k/SIGER_s999 runs/results/ml100k/LightGCN_s999
    # gradient norm of every loss term on each parameter group, first batch at initialisation
    python benchmarks/diagnose.py gradients --model SIGER --dataset ml100k --data-dir ../shared/data [--key value ...]
    # short training probes: BPR loss and valid Recall@20 after each epoch, one line per variant
    python benchmarks/diagnose.py probe --dataset ml100k --data-dir ../shared/data --epochs 3 \
        lambda_a=0,lambda_c=0 lambda_p=0,lambda_c=0,detach_anchor=true default
    # how many edges of the co-occurrence graph S^c each modality's kNN graph S^m already has
    python benchmarks/diagnose.py overlap --dataset baby --data-dir ../shared/data [--knn_k 10 --cooc_k 10]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr


def popularity_scores(train) -> tuple[torch.Tensor, torch.Tensor]:
    """MostPop as embeddings: users ``[n_u, 1]`` of ones, items ``[n_i, 1]`` = train counts."""
    pop = np.asarray(train.sum(0)).ravel().astype(np.float32)
    return torch.ones(train.shape[0], 1), torch.from_numpy(pop)[:, None]


def centroid_cosine(h: torch.Tensor) -> float:
    """Mean cosine of each row of ``h`` ``[n, d]`` to the direction of the mean row.

    1 when all rows point one way; about 0 when they spread evenly over the sphere.
    """
    return float((F.normalize(h, dim=1) @ F.normalize(h.mean(0), dim=0)).mean())


def popularity_alignment(user: torch.Tensor, item: torch.Tensor, train) -> float:
    """Spearman correlation between each item's mean score over all users and its train count."""
    mean_score = (user.mean(0) @ item.t()).numpy()  # mean_u <u, i> = <mean_u u, i>
    pop = np.asarray(train.sum(0)).ravel()
    return float(spearmanr(mean_score, pop).correlation)


def grad_norms(model, users, pos, neg, groups: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """For each loss term of ``model.loss``: the gradient norm on each named parameter tensor."""
    terms = model.loss(users, pos, neg)
    out = {}
    for name, value in terms.items():
        grads = torch.autograd.grad(value, list(groups.values()), retain_graph=True, allow_unused=True)
        out[name] = {"value": float(value.detach())} | {
            g: 0.0 if t is None else float(t.norm()) for g, t in zip(groups, grads)
        }
    return out


def edge_overlap(a, b) -> tuple[int, int]:
    """Off-diagonal edges of sparse ``a`` ``[n, n]``, and how many of them are also edges of ``b``."""
    def edges(m) -> np.ndarray:
        m = m.tocoo()
        keep = (m.row != m.col) & (m.data != 0)
        return m.row[keep].astype(np.int64) * m.shape[1] + m.col[keep]

    ea = np.unique(edges(a))
    return len(ea), int(np.isin(ea, edges(b)).sum())


def parse_variant(spec: str) -> dict[str, str]:
    """'k=v,k2=v2' -> {'k': 'v', 'k2': 'v2'}; 'default' -> {} (config keys are checked by build_config)."""
    if spec == "default":
        return {}
    out = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"probe variant {spec!r}: expected key=value[,key=value...] or 'default', got {part!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("popularity")
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-dir", default=None)
    g = sub.add_parser("geometry")
    g.add_argument("runs", nargs="+")
    r = sub.add_parser("gradients")
    r.add_argument("--model", default="SIGER")
    r.add_argument("--dataset", required=True)
    q = sub.add_parser("probe")
    q.add_argument("--model", default="SIGER")
    q.add_argument("--dataset", required=True)
    q.add_argument("--data-dir", default=None)
    q.add_argument("--epochs", type=int, default=3)
    q.add_argument("--seed", default="999")
    q.add_argument("variants", nargs="+", help="key=value[,key=value...] or 'default'")
    o = sub.add_parser("overlap")
    o.add_argument("--dataset", required=True)
    o.add_argument("--data-dir", default=None)
    o.add_argument("--knn_k", type=int, default=10)
    o.add_argument("--cooc_k", type=int, default=10)
    args, rest = ap.parse_known_args(argv)
    torch.set_num_threads(1)

    if args.cmd == "popularity":
        from siger.data.dataset import load_dataset
        from siger.eval.ranking import evaluate

        data = load_dataset(args.dataset, args.data_dir)
        u, i = popularity_scores(data.train_matrix)
        for split in ("valid", "test"):
            m = evaluate(u, i, data.train_matrix, data.matrix(split), [10, 20])
            print(json.dumps({"dataset": args.dataset, "model": "MostPop", "split": split}
                             | {k: round(v, 4) for k, v in m.items() if "@" in k}))
    elif args.cmd == "geometry":
        from siger.train.trainer import load_model

        for run in args.runs:
            model, cfg, data = load_model(run)
            with torch.no_grad():
                u, i = model.embeddings()
            print(json.dumps({
                "run": run,
                "spearman_mean_score_vs_popularity": round(popularity_alignment(u, i, data.train_matrix), 3),
                "user_centroid_cos": round(centroid_cosine(u), 3),
                "item_centroid_cos": round(centroid_cosine(i), 3),
                "user_median_norm": round(float(u.norm(dim=1).median()), 4),
                "item_median_norm": round(float(i.norm(dim=1).median()), 4),
            }))
    elif args.cmd == "overlap":
        from siger.data.dataset import load_dataset
        from siger.data.graphs import GraphStore

        data = load_dataset(args.dataset, args.data_dir)
        store = GraphStore(data, False)
        cooc = store.cooccurrence(args.cooc_k)
        for m in data.modalities:
            n, shared = edge_overlap(cooc, store.knn(m, args.knn_k))
            print(json.dumps({"dataset": args.dataset, "modality": m, "cooc_edges": n, "also_in_knn": shared,
                              "fraction": round(shared / max(n, 1), 4)}))
    elif args.cmd == "probe":
        from siger.config import build_config
        from siger.train.trainer import Trainer, load_data

        variants = [(spec, parse_variant(spec)) for spec in args.variants]
        base = {"progress": "false", "seed": args.seed} | ({"data_dir": args.data_dir} if args.data_dir else {})
        for spec, overrides in variants:
            cfg = build_config(args.model, args.dataset, base | overrides)
            tr = Trainer(cfg, load_data(cfg), None, log=lambda s: None)
            for epoch in range(args.epochs):
                losses = tr.train_epoch(epoch)
                valid = tr.evaluate("valid")["recall@20"]
                print(json.dumps({"variant": spec, "epoch": epoch, "bpr": round(float(losses["bpr"]), 4),
                                  "valid_recall@20": round(float(valid), 4)}), flush=True)
    else:
        from siger.config import build_config
        from siger.train.trainer import Trainer, load_data

        overrides = dict(zip(rest[::2], rest[1::2]))
        overrides = {k.lstrip("-").replace("-", "_"): v for k, v in overrides.items()}
        cfg = build_config(args.model, args.dataset, overrides | {"progress": "false"})
        data = load_data(cfg)
        tr = Trainer(cfg, data, None, log=lambda s: None)
        users, pos, neg = (torch.from_numpy(a[: cfg.train.batch_size]) for a in tr.sampler.epoch())
        groups = {n: p for n, p in tr.model.named_parameters() if n in ("user_emb", "item_emb")}
        groups |= {n: p for n, p in tr.model.named_parameters() if n.startswith("item_inputs.")}
        for term, norms in grad_norms(tr.model, users, pos, neg, groups).items():
            print(json.dumps({"term": term} | {k: float(f"{v:.3e}") for k, v in norms.items()}))


if __name__ == "__main__":
    main()
