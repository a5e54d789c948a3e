"""Cost of one model on one dataset: graph build, seconds per training epoch, seconds per full
evaluation, peak RSS. Run each measurement in a fresh process for a clean peak RSS.

    python -m benchmarks.bench --model SIGER --dataset baby --data-dir ../shared/data --epochs 2 [--steps 10] [--key value ...]

``--steps N`` also times N single training steps (forward, backward, optimiser; the negative
sampling is done once beforehand and not timed) after a warm-up step and reports the median
(``step_s``): per-step cost is what grows with the graph; an epoch has ``steps_per_epoch`` of them.
``--epochs 0 --steps N`` times steps only.

Prints one JSON line (also appended to ``--jsonl``). Graph-build time is measured with an empty
graph cache (a temporary ``cache_dir``), so it includes the kNN and co-occurrence builds.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time

from benchmarks import harness


def machine() -> str:
    import torch

    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cpus, torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.python_version()}"


def _sig(seconds: float) -> float:
    """Three significant figures: a fast machine's few-millisecond timing must not round to 0."""
    return float(f"{seconds:.3g}")


def bench(model: str, dataset: str, data_dir: str | None, epochs: int, overrides: dict[str, str],
          steps: int = 0) -> dict:
    import torch

    from siger.config import build_config
    from siger.data.graphs import GraphStore
    from siger.eval.ranking import evaluate
    from siger.train.trainer import Trainer, build_model, load_data, peak_rss_mb

    with tempfile.TemporaryDirectory() as cache:
        ov = {"data_dir": data_dir, "progress": "false", "epochs": str(max(1, epochs)), "cache_dir": cache, **overrides}
        cfg = build_config(model, dataset, {k: v for k, v in ov.items() if v is not None})
        t0 = time.perf_counter()
        data = load_data(cfg)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_model(cfg, data, GraphStore(data, cache))  # builds (and caches) every graph
        graph_s = time.perf_counter() - t0
        trainer = Trainer(cfg, data, None, log=lambda s: None)
        epoch_s = []
        for e in range(epochs):
            t0 = time.perf_counter()
            trainer.train_epoch(e)
            epoch_s.append(time.perf_counter() - t0)
        step_s = []
        if steps:  # one epoch's samples drawn once (not timed), a warm-up step, then each step on its own
            trainer.model.train()
            trainer.model.pre_epoch()
            b = cfg.train.batch_size
            users, pos, neg = (torch.from_numpy(a).to(cfg.train.device) for a in trainer.sampler.epoch())
            for k in range(steps + 1):
                lo, hi = (k * b) % len(users), (k * b) % len(users) + b
                t0 = time.perf_counter()
                trainer.train_step(users[lo:hi], pos[lo:hi], neg[lo:hi])
                if k:
                    step_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        u, i = trainer.model.embeddings()
        evaluate(u, i, data.train_matrix, data.matrix("test"), cfg.train.topk, cfg.train.eval_chunk_users)
        eval_s = time.perf_counter() - t0
    return {
        "model": cfg.train.model, "dataset": dataset, "users": data.n_users, "items": data.n_items,
        "train_interactions": int(len(data.train)), "epochs_timed": epochs,
        "load_s": round(load_s, 2), "graph_build_s": round(graph_s, 2),
        "batch_size": cfg.train.batch_size, "steps_per_epoch": -(-int(len(data.train)) // cfg.train.batch_size),
        "epoch_s": _sig(min(epoch_s)) if epoch_s else None, "epoch_s_all": [_sig(x) for x in epoch_s],
        "step_s": _sig(float(sorted(step_s)[len(step_s) // 2])) if step_s else None,
        "eval_s": _sig(eval_s), "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": torch.get_num_threads(), "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    from siger.config import parse_cli_overrides

    ap = harness.parser(__doc__)  # extra --key value pairs are config keys
    ap.add_argument("--model", default="SIGER")
    ap.add_argument("--dataset", default="tiktok")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0, help="also time this many single training steps (median)")
    ap.add_argument("--jsonl", default=None, help="append the result line here")
    args, extra = ap.parse_known_args(argv)
    res = bench(args.model, args.dataset, args.data_dir, args.epochs, parse_cli_overrides(extra), args.steps)
    line = json.dumps(res)
    if not args.record:
        print(line)
    if args.jsonl:
        with open(args.jsonl, "a") as fh:
            fh.write(line + "\n")
    if args.record:
        setting = " ".join(f"--{k} {v}" for k, v in parse_cli_overrides(extra).items()) or "defaults"
        harness.report(args, res, f"{res['model']} on {res['dataset']}: cost", setting,
                       f"{res['epoch_s']} s/epoch (best of {args.epochs}), eval {res['eval_s']} s, "
                       f"graphs {res['graph_build_s']} s, peak RSS {res['peak_rss_mb']:.0f} MB, {res['threads']} threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
