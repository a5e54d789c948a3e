"""How long the README's main job takes: ``siger train --model SIGER --dataset tiktok`` to the end.

    python -m benchmarks.main_job [--record] [--key value ...]

Runs the command as a subprocess (a fresh process, as a user would: imports, data loading, graph
building with an empty graph cache, training to early stopping, the final evaluation) and reports
its wall time, epochs and test Recall@20. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import harness


def main(argv: list[str] | None = None) -> int:
    args, extra = harness.parser(__doc__).parse_known_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "siger", "train", "--model", "SIGER", "--dataset", "tiktok", "--out", str(out),
               "--progress", "false", *extra]
        env = {**os.environ, "SIGER_CACHE_DIR": str(Path(tmp) / "cache")}
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        m = json.loads((out / "metrics.json").read_text())
    res = {"wall_s": round(wall, 1), "epochs_run": m["epochs_run"], "best_epoch": m["best_epoch"],
           "seconds_per_epoch": m["seconds_per_epoch"], "test_recall@20": m["test"]["recall@20"],
           "threads": os.cpu_count(), "extra": extra, "model": "SIGER", "dataset": "tiktok"}
    harness.report(args, res, "main job (README's first command)", " ".join(extra) or "defaults",
                   f"{wall / 60:.1f} min for {m['epochs_run']} epochs ({m['seconds_per_epoch']:.1f} s/epoch training)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
