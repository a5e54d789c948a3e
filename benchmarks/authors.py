"""A baseline beside its authors' code: the first epochs of both, same dataset, seed and values.

    python -m benchmarks.authors --model DRAGON --mmrec /path/to/MMRec/src [--mmrec-python PY]
        [--dataset tiktok] [--epochs 3] [--record]

Runs the authors' implementation inside an MMRec-layout checkout (``main.py -m MODEL -d DATASET``,
with the model's yaml holding single values and ``epochs: N``; the run's log is parsed for the
training time and valid Recall@20 of every epoch), then ours (``siger train --epochs N
--warmup_epochs 0``) on the same data at seed 999, one thread each, one after the other. Reports
the median training seconds per epoch of both, their ratio, and both valid Recall@20 curves (the
curves are a sanity check, not a comparison: the implementations draw different initial values).
Run it on an otherwise idle machine.

The checkout must run on this machine: for MMRec on a CPU that meant (scratch changes, none of
them in the model's equations) ``.cuda()`` -> ``.to(self.device)``, a scatter-add without
torch_scatter, ``np.int`` -> ``np.int64``, DRAGON's never-trained ``result_embed`` as the plain
tensor it is on a GPU, GUME's constructor taking MMRec's two arguments and its data path; DRAGON's
``user_graph_dict.npy`` written from our user co-occurrence graph (top 200, the same definition).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import harness

_EPOCH = re.compile(r"epoch (\d+) training \[time: ([\d.]+)s")
_RECALL = re.compile(r"recall@20: ([\d.]+)")


def parse_mmrec_log(text: str) -> dict[str, list[float]]:
    """Training seconds and valid Recall@20 per epoch from an MMRec log (the first result line
    after each epoch's training line is valid, the second test)."""
    seconds, valid = [], []
    lines = text.splitlines()
    for j, line in enumerate(lines):
        m = _EPOCH.search(line)
        if m:
            seconds.append(float(m.group(2)))
            rec = next((_RECALL.search(x) for x in lines[j + 1:j + 6] if _RECALL.search(x)), None)
            valid.append(float(rec.group(1)) if rec else float("nan"))
    return {"seconds": seconds, "valid_recall@20": valid}


def run_authors(mmrec: Path, python: str, model: str, dataset: str, threads: int) -> dict[str, list[float]]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([python, "main.py", "-m", model, "-d", dataset], cwd=mmrec, env=env, capture_output=True,
                         text=True, timeout=7200)
    text = out.stdout + out.stderr
    if out.returncode != 0 or "epoch 0 training" not in text:
        raise SystemExit(f"the authors' {model} failed:\n{text[-3000:]}")
    return parse_mmrec_log(text)


def run_ours(model: str, dataset: str, data_dir: str | None, epochs: int, threads: int) -> dict[str, list[float]]:
    import json

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "siger.cli", "train", "--model", model, "--dataset", dataset, "--epochs",
               str(epochs), "--warmup_epochs", "0", "--num_threads", str(threads), "--progress", "false",
               "--seed", "999", "--out", f"{tmp}/run"] + (["--data-dir", data_dir] if data_dir else [])
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
        if out.returncode != 0:
            raise SystemExit(f"our {model} failed:\n{out.stderr[-3000:]}")
        rows = [json.loads(x) for x in Path(f"{tmp}/run/log.jsonl").read_text().splitlines()]
    return {"seconds": [r["train_seconds"] for r in rows], "valid_recall@20": [r["valid"]["recall@20"] for r in rows]}


def main(argv: list[str] | None = None) -> int:
    ap = harness.parser(__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--mmrec", required=True, help="the authors' checkout's src/ folder (MMRec layout)")
    ap.add_argument("--mmrec-python", default=sys.executable)
    ap.add_argument("--dataset", default="tiktok")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=3, help="as the model's yaml in the checkout says")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    theirs = run_authors(Path(args.mmrec), args.mmrec_python, args.model, args.dataset, args.threads)
    ours = run_ours(args.model, args.dataset, args.data_dir, args.epochs, args.threads)
    med_t, med_o = statistics.median(theirs["seconds"]), statistics.median(ours["seconds"])
    values = {"model": args.model, "dataset": args.dataset, "epochs": args.epochs, "threads": args.threads,
              "authors_s_per_epoch": round(med_t, 2), "ours_s_per_epoch": round(med_o, 2),
              "ratio": round(med_o / med_t, 3), "authors": theirs, "ours": ours}
    curve = lambda v: ", ".join(f"{x:.4f}" for x in v)  # noqa: E731
    summary = (f"ours {med_o:.1f} s/epoch, the authors' {med_t:.1f} s/epoch ({med_o / med_t:.2f}x); valid "
               f"Recall@20 by epoch: ours {curve(ours['valid_recall@20'])}; theirs {curve(theirs['valid_recall@20'])}")
    harness.report(args, values, f"{args.model} beside its authors' code on {args.dataset}",
                   f"seed 999, the authors' default values, {args.epochs} epochs each, {args.threads} thread(s), "
                   "one after the other", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
