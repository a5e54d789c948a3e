"""A baseline beside its authors' code: the first epochs of both, same dataset, seed and values.

    python -m benchmarks.authors --model DRAGON --mmrec /path/to/MMRec/src [--mmrec-python PY]
        [--dataset tiktok] [--epochs 3] [--record]
    python -m benchmarks.authors --model SMORE --mmrec /path/to/MMRec/src --full [--seeds 999,1000,1001]
        [--label "SMORE (authors' defaults)"] [--cache DIR] [--record]

Runs the authors' implementation inside an MMRec-layout checkout (``main.py -m MODEL -d DATASET``,
with the model's yaml holding single values and ``epochs: N``; the run's log is parsed for the
training time and valid Recall@20 of every epoch), then ours (``siger train --epochs N
--warmup_epochs 0 --warmup_steps 0``) on the same data at seed 999, one thread each, one after the other. Reports
the median training seconds per epoch of both, their ratio, and both valid Recall@20 curves (the
curves are a sanity check, not a comparison: the implementations draw different initial values).
Run it on an otherwise idle machine.

``--full``: both to convergence, seed by seed: the authors' code through MMRec's ``quick_start`` with
``epochs`` 1000 and the seed overridden (their early stopping: 20 evaluations without a better
valid Recall@20), against our committed run records of the same seeds and values (the
comparison row ``--label``, made by the plain ``siger compare`` command: run it first). Reports both
test Recall@20 and NDCG@20 at the best-valid epoch (mean ± std over the seeds), the difference of
the means with Welch's 95 % interval (the implementations draw different initial values, so the
seeds are not paired), epochs run and seconds per epoch. The timing side of ``--full`` is only
indicative when other jobs share the machine.

The checkout must run on this machine: for MMRec on a CPU that meant (scratch changes, none of
them in the model's equations) ``.cuda()`` -> ``.to(self.device)``, a scatter-add without
torch_scatter, ``np.int`` -> ``np.int64``, DRAGON's never-trained ``result_embed`` as the plain
tensor it is on a GPU, GUME's constructor taking MMRec's two arguments and its data path; DRAGON's
``user_graph_dict.npy`` written from our user co-occurrence graph (top 200, the same definition).
"""

from __future__ import annotations

import json
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
_METRIC = re.compile(r"(\w+@\d+): ([\d.]+)")


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


def parse_mmrec_result(text: str) -> dict[str, dict[str, float]]:
    """The best-valid epoch's valid and test metrics of an MMRec run (its last ``best valid
    result:`` and ``test result:`` lines)."""
    out = {}
    for key, tag in (("valid", "best valid result: "), ("test", "test result: ")):
        lines = [x for x in text.splitlines() if tag in x]
        if not lines:
            raise ValueError(f"no '{tag.strip()}' line in the authors' log")
        out[key] = {k: float(v) for k, v in _METRIC.findall(lines[-1].split(tag, 1)[1])}
    return out


def run_authors_full(mmrec: Path, python: str, model: str, dataset: str, threads: int, seed: int) -> dict:
    """One run of the authors' code to convergence (MMRec's early stopping) at ``seed``."""
    driver = ("import sys; sys.argv = ['main.py']; from utils.quick_start import quick_start; "
              f"quick_start(model={model!r}, dataset={dataset!r}, "
              f"config_dict={{'gpu_id': 0, 'epochs': 1000, 'seed': [{seed}]}}, save_model=False)")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([python, "-c", driver], cwd=mmrec, env=env, capture_output=True, text=True, timeout=6 * 3600)
    text = out.stdout + out.stderr
    if out.returncode != 0 or "test result: " not in text:
        raise SystemExit(f"the authors' {model} (seed {seed}) failed:\n{text[-3000:]}")
    curve = parse_mmrec_log(text)
    return {"seed": seed, **parse_mmrec_result(text), "epochs_run": len(curve["seconds"]),
            "s_per_epoch": statistics.median(curve["seconds"])}


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """mean(a) - mean(b) with Welch's 95 % interval."""
    from siger.experiments.stats import t_quantile

    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if va + vb > 0 else 1.0
    d = statistics.mean(a) - statistics.mean(b)
    half = t_quantile(0.975, df) * (va + vb) ** 0.5
    return d, d - half, d + half


def our_records(label: str, dataset: str, seeds: list[int]) -> list[dict]:
    """Our committed comparison records of row ``label`` on ``dataset``, one per seed."""
    from siger.experiments.records import load_records

    recs = {r["seed"]: r for r in load_records() if r.get("kind") == "run" and r.get("label") == label
            and r.get("dataset") == dataset and r.get("table") == "comparison"}
    missing = [s for s in seeds if s not in recs]
    if missing:
        raise SystemExit(f"no record of '{label}' on {dataset} for seed(s) {missing}: run `siger compare` and "
                         "`siger results add` first")
    return [recs[s] for s in seeds]


def full(args) -> int:
    seeds = [int(x) for x in args.seeds.split(",")]
    label = args.label or f"{args.model} (authors' defaults)"
    theirs = []
    for s in seeds:  # the authors' runs first (hours); each kept in --cache, so a rerun picks up where it stopped
        cached = Path(args.cache) / f"{args.model}_{args.dataset}_{s}.json" if args.cache else None
        if cached is not None and cached.exists():
            theirs.append(json.loads(cached.read_text()))
            continue
        theirs.append(run_authors_full(Path(args.mmrec), args.mmrec_python, args.model, args.dataset, args.threads, s))
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(theirs[-1]))
    ours = our_records(label, args.dataset, seeds)
    ms = lambda v: f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f}"  # noqa: E731
    values = {"model": args.model, "dataset": args.dataset, "seeds": seeds, "our_label": label,
              "our_records": [r["id"] for r in ours], "authors": theirs,
              "ours": [{"seed": r["seed"], "test": {m: r["test"][m] for m in ("recall@20", "ndcg@20")},
                        "epochs_run": r["epochs_run"], "s_per_epoch": r["seconds_per_epoch"]} for r in ours]}
    parts = []
    for m in ("recall@20", "ndcg@20"):
        a, b = [r["test"][m] for r in ours], [t["test"][m] for t in theirs]
        d, lo, hi = welch(a, b)
        values[f"diff_{m}"] = [d, lo, hi]
        parts.append(f"test {m.replace('recall', 'Recall').replace('ndcg', 'NDCG')}: ours {ms(a)}, theirs {ms(b)}, "
                     f"difference {d:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    ep_o, ep_t = statistics.mean(r["epochs_run"] for r in ours), statistics.mean(t["epochs_run"] for t in theirs)
    sp_o = statistics.mean(r["seconds_per_epoch"] for r in ours)
    sp_t = statistics.mean(t["s_per_epoch"] for t in theirs)
    summary = "; ".join(parts) + (f"; epochs run: ours {ep_o:.0f}, theirs {ep_t:.0f}; s/epoch: ours {sp_o:.1f}, "
                                  f"theirs {sp_t:.1f} (under load, indicative)")
    harness.report(args, values, f"{args.model} to convergence beside its authors' code on {args.dataset}",
                   f"seeds {', '.join(map(str, seeds))}, the authors' default values; ours: the committed rows "
                   f"'{label}' (plain command); theirs: MMRec early stopping, epochs 1000", summary)
    return 0


def run_ours(model: str, dataset: str, data_dir: str | None, epochs: int, threads: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "siger.cli", "train", "--model", model, "--dataset", dataset, "--epochs",
               str(epochs), "--warmup_epochs", "0", "--warmup_steps", "0", "--num_threads", str(threads), "--progress", "false",
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
    ap.add_argument("--full", action="store_true", help="to convergence at --seeds against our committed rows")
    ap.add_argument("--seeds", default="999,1000,1001")
    ap.add_argument("--cache", default=None, help="--full: a folder keeping each finished authors' run")
    ap.add_argument("--label", default=None, help="--full: our comparison row (default: MODEL (authors' defaults))")
    args = ap.parse_args(argv)
    if args.full:
        return full(args)
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
