"""What `siger tune` adds to a trial over a plain training run of the same config.

    python -m benchmarks.tune_overhead --model LightGCN --dataset tiktok --epochs 10 [--repeats 3] [--record]

In one process, interleaved ``--repeats`` times: a plain run (``load_data`` + ``Trainer.fit()`` into
a run folder, what ``siger train`` does), then one more trial of one study of the same config (a
one-choice space, the median pruner fed every epoch, SQLite storage). A trial's time is Optuna's
own start-to-complete time (sampling, storage writes, the pruner and the training inside); the
first trial also loads the data, later ones reuse it. Reports the median plain run, the median
trial after the first, the per-trial overhead (trial / plain - 1), and what each ``siger tune``
call costs outside its trials (opening the storage, writing the reports and plots).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import harness


def measure(model: str, dataset: str, data_dir: str | None, epochs: int, repeats: int, threads: int) -> dict:
    import torch

    from siger.config import build_config
    from siger.experiments.tune import StudySpec, TuneOptions, open_study, parse_space, run_tune
    from siger.train.trainer import Trainer, load_data

    torch.set_num_threads(threads)
    ov = {"progress": "false", "epochs": str(epochs), "num_threads": str(threads), "patience": "1000"}
    if data_dir:
        ov["data_dir"] = data_dir
    cfg = build_config(model, dataset, ov)
    space = parse_space({"learning_rate": [cfg.train.learning_rate]}, model)
    plain, trials, calls = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(cfg, load_data(cfg), Path(tmp) / "warm", log=lambda s: None).fit()  # graph cache, imports
        out = Path(tmp) / "study"
        for r in range(repeats):  # interleaved, so machine drift hits both alike
            t0 = time.perf_counter()
            c = build_config(model, dataset, ov)
            Trainer(c, load_data(c), Path(tmp) / f"plain{r}", log=lambda s: None).fit()
            plain.append(time.perf_counter() - t0)
            # one more trial of the same study (a one-point space: every trial is the same config)
            spec = StudySpec(model, dataset, ov, None, space, str(out),
                             TuneOptions(trials=r + 1, sampler="random", pruner="median"))
            t0 = time.perf_counter()
            run_tune(spec, log=lambda s: None)
            calls.append(time.perf_counter() - t0)
            last = open_study(spec).trials[-1]
            trials.append((last.datetime_complete - last.datetime_start).total_seconds())
    p = statistics.median(plain)
    later = trials[1:] or trials
    t = statistics.median(later)
    return {"model": model, "dataset": dataset, "epochs": epochs, "repeats": repeats, "threads": threads,
            "plain_s": round(p, 3), "trial_s": round(t, 3), "overhead": round(t / p - 1, 4),
            "first_trial_s": round(trials[0], 3), "first_trial_overhead": round(trials[0] / p - 1, 4),
            "study_fixed_s": round(statistics.median([c - t for c, t in zip(calls, trials)]), 3),
            "plain_all": [round(x, 3) for x in plain], "trials_all": [round(x, 3) for x in trials]}


def main(argv: list[str] | None = None) -> int:
    ap = harness.parser(__doc__)
    ap.add_argument("--model", default="LightGCN")
    ap.add_argument("--dataset", default="tiktok")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    res = measure(args.model, args.dataset, args.data_dir, args.epochs, args.repeats, args.threads)
    harness.report(args, res, f"tuner overhead per trial ({args.model} on {args.dataset})",
                   f"{args.epochs} epochs per run, {args.repeats} plain runs vs a {args.repeats}-trial study, "
                   f"{args.threads} thread(s)",
                   f"plain run {res['plain_s']:.1f} s, trial {res['trial_s']:.1f} s: {100 * res['overhead']:+.1f} % "
                   f"(first trial, loading the data: {100 * res['first_trial_overhead']:+.1f} %); study set-up and "
                   f"reports {res['study_fixed_s']:.1f} s once")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
