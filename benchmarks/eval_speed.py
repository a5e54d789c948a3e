"""Time one full-ranking evaluation (all eligible users x all items, train items masked, top-50,
all metrics) on a dataset, with the embeddings of a trained run or random ones.

    python benchmarks/eval_speed.py --dataset baby --data-dir ../shared/data [--run runs/X] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from siger.data.dataset import load_dataset
from siger.eval.ranking import eval_users, evaluate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="baby")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--run", default=None, help="a run folder: time its model's embeddings() too")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, args.data_dir)
    train, test = data.train_matrix, data.matrix("test")
    emb_s = None
    if args.run:
        from siger.train.trainer import load_model

        model, cfg, data = load_model(args.run, data)
        t0 = time.perf_counter()
        u, i = model.embeddings()
        emb_s = time.perf_counter() - t0
    else:
        g = torch.Generator().manual_seed(0)
        u, i = torch.randn(data.n_users, 64, generator=g), torch.randn(data.n_items, 64, generator=g)
    evaluate(u, i, train, test, [5, 10, 20, 50])  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        evaluate(u, i, train, test, [5, 10, 20, 50])
        times.append(time.perf_counter() - t0)
    print(json.dumps({
        "dataset": args.dataset, "users_ranked": int(len(eval_users(train, test))), "items": data.n_items,
        "eval_seconds_median": round(statistics.median(times), 3), "eval_seconds_min": round(min(times), 3),
        "embeddings_seconds": None if emb_s is None else round(emb_s, 3),
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
    }))


if __name__ == "__main__":
    main()
