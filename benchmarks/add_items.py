"""Time to add new items to a trained run (``RunRecommender.add_items``: validation, placing each
item among the trained ones, the atomic write of ``added_items.npz``).

    python -m benchmarks.add_items --run RUN [--n 1000] [--record]

The new items' features are drawn from the run's own item features (resampled rows plus noise),
so they are realistic; the run folder is copied to a temporary folder first and left untouched.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from benchmarks import harness


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    import siger

    ap = harness.parser(__doc__)
    ap.add_argument("--run", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--note", default="", help="appended to the record's setting (e.g. what else ran)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(args.run, run, ignore=shutil.ignore_patterns("checkpoint.pt"))
        (run / "added_items.npz").unlink(missing_ok=True)
        t0 = time.perf_counter()
        rec = siger.load_run(run)
        load_s = time.perf_counter() - t0
        rng = np.random.default_rng(args.seed)
        feats = {}
        for m, f in rec.data.features.items():
            rows = f[rng.integers(0, len(f), args.n)]
            feats[m] = (rows + rng.normal(scale=0.05 * f.std(), size=rows.shape)).astype(np.float32)
        ids = [f"new{i}" for i in range(args.n)]
        t0 = time.perf_counter()
        rec.add_items(ids, feats)
        add_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = siger.load_run(run)
        reload_s = time.perf_counter() - t0
        assert again.n_items == rec.n_items
    res = {"run": args.run, "model": rec.model_name, "dataset": rec.dataset, "n": args.n, "add_s": round(add_s, 3),
           "load_s": round(load_s, 2), "reload_with_added_s": round(reload_s, 2), "items_after": rec.n_items}
    harness.report(args, res, f"add {args.n} items to a trained {rec.model_name} run on {rec.dataset}",
                   "RunRecommender.add_items (validate, place, atomic write)" + (f"; {args.note}" if args.note else ""),
                   f"{add_s:.2f} s to add; the run loads in {load_s:.1f} s ({reload_s:.1f} s with the added items)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
