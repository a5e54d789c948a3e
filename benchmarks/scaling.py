"""Scaling curve: benchmark one model on synthetic copies of a dataset at several scales (each
in a fresh process), fit cost against interactions, plot time and memory.

    python -m benchmarks.scaling --model LightGCN --dataset baby --data-dir ../shared/data \
        --scales 1,3,10 --work /tmp/synth --png benchmarks/scaling_lightgcn.png [--key value ...]

The fit is least squares ``cost = a + b * train_interactions`` plus the log-log exponent
(1.0 = linear) for seconds per epoch, per training step (``--steps N``: median of N single steps),
per full evaluation and peak RSS. Prints a Markdown table and the fits.

A full-graph model propagates over the whole graph at every step, so a step costs O(|E|) and an
epoch of |E| / batch steps O(|E|^2) at a fixed batch. ``--scale-batch`` multiplies the batch size
by the scale (constant steps per epoch), which makes the epoch cost linear too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def fit(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Linear slope/intercept and the log-log exponent of y against x."""
    b, a = np.polyfit(x, y, 1)
    expo = float(np.polyfit(np.log(x), np.log(y), 1)[0]) if len(x) > 1 else float("nan")
    return {"intercept": float(a), "slope_per_1M": float(b) * 1e6, "loglog_exponent": expo}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)  # extra --key value pairs are config keys
    ap.add_argument("--model", default="LightGCN")
    ap.add_argument("--dataset", default="baby")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--scales", default="1,3,10")
    ap.add_argument("--work", default="/tmp/siger_synth")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0, help="also time N single steps per scale")
    ap.add_argument("--scale-batch", action="store_true", help="batch size x scale (constant steps/epoch)")
    ap.add_argument("--batch-size", type=int, default=2048, help="batch at scale 1")
    ap.add_argument("--png", default=None)
    args, extra = ap.parse_known_args(argv)
    rows = []
    for s in [float(x) for x in args.scales.split(",")]:
        name = f"{args.dataset}_x{s:g}".replace(".", "p")
        if not (Path(args.work) / name / f"{name}.inter").exists():
            subprocess.run([sys.executable, "-m", "benchmarks.synth", "--dataset", args.dataset, "--scale", str(s),
                            "--out", str(Path(args.work) / name)] + (["--data-dir", args.data_dir] if args.data_dir else []),
                           check=True, stdout=subprocess.DEVNULL)
        out = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--model", args.model, "--dataset", name,
                              "--data-dir", args.work, "--epochs", str(args.epochs), "--steps", str(args.steps),
                              "--batch_size", str(round(args.batch_size * s) if args.scale_batch else args.batch_size)]
                             + extra,
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    x = np.array([r["train_interactions"] for r in rows], dtype=float)
    keys = [k for k in ("epoch_s", "step_s", "eval_s", "peak_rss_mb") if all(r.get(k) is not None for r in rows)]
    fits = {k: fit(x, np.array([r[k] for r in rows], dtype=float)) for k in keys}
    print("\n| dataset | users | items | train interactions | batch | steps/epoch | graph build s | s/epoch "
          "| s/step | eval s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['dataset']} | {r['users']:,} | {r['items']:,} | {r['train_interactions']:,} | {r['batch_size']} "
              f"| {r['steps_per_epoch']} | {r['graph_build_s']} | {r['epoch_s']} | {r['step_s']} | {r['eval_s']} "
              f"| {r['peak_rss_mb']:.0f} |")
    print("\nfits (y = a + b x, x = train interactions):", json.dumps(fits, indent=1))
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        for k, mk, label in (("epoch_s", "o-", "s / epoch"), ("eval_s", "s-", "s / full evaluation"),
                             ("step_s", "^-", "s / step x 10")):
            if k in fits:
                a1.plot(x, [r[k] * (10 if k == "step_s" else 1) for r in rows], mk,
                        label=f"{label} (exp {fits[k]['loglog_exponent']:.2f})")
        a1.set_xlabel("train interactions")
        a1.set_ylabel("seconds")
        a1.set_title(f"{rows[0]['model']}, batch {'x scale' if args.scale_batch else args.batch_size}: time "
                     "(log-log exponents)", fontsize=9)
        a1.legend()
        a2.plot(x, [r["peak_rss_mb"] for r in rows], "o-")
        a2.set_xlabel("train interactions")
        a2.set_ylabel("peak RSS (MiB)")
        a2.set_title("memory", fontsize=9)
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
