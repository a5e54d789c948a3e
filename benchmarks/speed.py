"""Training seconds per epoch of SIGER against its backbone MGCN, measured in one run.

    python -m benchmarks.speed --dataset tiktok --epochs 3 [--threads 1] [--record] [--siger-key value ...]

Both models are built on the same data; their epochs are interleaved (MGCN, SIGER, MGCN, ...)
after one untimed warm-up epoch each, so machine drift hits both alike. Reports the median
s/epoch of each and the ratio SIGER / MGCN. SIGER runs at its defaults unless keys are given
(e.g. ``--preset spec``). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import statistics
import time

from benchmarks import harness


def measure(dataset: str, data_dir: str | None, epochs: int, threads: int, siger_overrides: dict[str, str]) -> dict:
    import torch

    from siger.config import build_config
    from siger.train.trainer import Trainer, load_data, peak_rss_mb

    torch.set_num_threads(threads)
    base = {"progress": "false", "num_threads": str(threads)}
    if data_dir:
        base["data_dir"] = data_dir
    trainers = {}
    for name, ov in (("MGCN", {}), ("SIGER", siger_overrides)):
        cfg = build_config(name, dataset, {**base, **ov})
        trainers[name] = Trainer(cfg, load_data(cfg), None, log=lambda s: None)
    times: dict[str, list[float]] = {n: [] for n in trainers}
    for e in range(epochs + 1):
        for name, tr in trainers.items():
            t0 = time.perf_counter()
            tr.train_epoch(e)
            if e:  # epoch 0 is the warm-up
                times[name].append(time.perf_counter() - t0)
    med = {n: statistics.median(v) for n, v in times.items()}
    return {"dataset": dataset, "epochs_timed": epochs, "threads": threads, "siger_overrides": siger_overrides,
            "mgcn_s_per_epoch": round(med["MGCN"], 3), "siger_s_per_epoch": round(med["SIGER"], 3),
            "ratio": round(med["SIGER"] / med["MGCN"], 3),
            "all": {n: [round(x, 3) for x in v] for n, v in times.items()}, "peak_rss_mb": round(peak_rss_mb(), 1)}


def main(argv: list[str] | None = None) -> int:
    from siger.config import parse_cli_overrides

    ap = harness.parser(__doc__)
    ap.add_argument("--dataset", default="tiktok")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per model (after one warm-up epoch)")
    ap.add_argument("--threads", type=int, default=1)
    args, extra = ap.parse_known_args(argv)
    ov = parse_cli_overrides(extra)
    res = measure(args.dataset, args.data_dir, args.epochs, args.threads, ov)
    setting = (" ".join(f"--{k} {v}" for k, v in ov.items()) or "SIGER at its defaults") + \
        f", {args.threads} thread(s), median of {args.epochs} interleaved epochs"
    harness.report(args, res, f"SIGER vs MGCN training time on {args.dataset}", setting,
                   f"SIGER {res['siger_s_per_epoch']:.2f} s/epoch, MGCN {res['mgcn_s_per_epoch']:.2f} s/epoch: "
                   f"{res['ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
