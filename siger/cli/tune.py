"""`siger tune`: hyper-parameter studies (one dataset or several)."""

from __future__ import annotations

from siger.cli.common import add_config_args, resolve
from siger.config import ConfigError


def cmd_tune(args, extra) -> int:
    from siger.experiments.tune import StudySpec, TuneOptions, load_space, run_tune
    from siger.experiments.tune.space import load_enqueue

    req = resolve(args, extra)
    overrides = {k: v for k, v in req.overrides.items() if k not in ("model", "dataset")}  # the study pins them
    space = load_space(args.space, req.model)
    # {}: every searched key at its config value
    enqueue = ([{}] if args.enqueue_defaults else []) + load_enqueue(args.enqueue or [])
    opts = TuneOptions(trials=args.trials, sampler=args.sampler, pruner=args.pruner, seed=args.sampler_seed,
                       jobs=args.jobs, storage=args.storage, study_name=args.study_name,
                       startup_trials=args.startup_trials, select_by=args.select_by, heartbeat=args.heartbeat,
                       prune_percentile=args.prune_percentile, prune_curve=args.prune_curve,
                       prune_startup=args.prune_startup, note=args.note,
                       enqueue=enqueue, trial_seeds=args.trial_seeds, extend_space=args.extend_space)
    datasets = []
    if args.datasets:
        from siger.experiments.tune.multi import parse_datasets

        datasets = parse_datasets(args.datasets, overrides.pop("data_dir", None))
    out = args.out or f"studies/{req.model.lower()}_{'_'.join(n for n, _ in datasets) or req.dataset}"
    spec = StudySpec(req.model, req.dataset, overrides, req.file, space, out, opts, datasets=datasets,
                     reference=args.reference, aggregate=args.aggregate)
    if args.report_only:  # e.g. while other processes run the study
        from siger.experiments.tune import checkpoint_storage, open_study, write_reports

        if args.note:
            open_study(spec).set_user_attr("note", args.note)
        write_reports(spec)
        checkpoint_storage(spec.opts, spec.out)
        return 0
    run_tune(spec)
    if args.confirm_top:
        from siger.experiments.tune import confirm_top

        exclude = {}
        for item in args.confirm_exclude or []:
            k, sep, v = item.partition("=")
            if not sep:
                raise ConfigError(f"--confirm-exclude {item!r}: expected KEY=VALUE")
            exclude[k.strip()] = v.strip()
        confirm_top(spec, args.confirm_top, args.confirm_seeds, args.jobs, exclude=exclude)
    return 0


def register(sub, train_epilog: str | None = None) -> None:
    """Add this module's commands to the subparsers ``sub``."""
    p = sub.add_parser("tune", allow_abbrev=False,
                       help="hyper-parameter search with Optuna, chosen on valid (study folder, resumable)")
    add_config_args(p)
    p.add_argument("--space", default=None,
                   help="search-space YAML (key: {low, high[, log][, step]} or key: [choices]); default: the model's own")
    p.add_argument("--trials", type=int, default=20, help="finished trials (complete + pruned) to reach (default 20)")
    p.add_argument("--out", default=None, help="study folder (default studies/<model>_<dataset>)")
    p.add_argument("--sampler", default="tpe", choices=["tpe", "random", "grid"])
    p.add_argument("--pruner", default="median", choices=["median", "percentile", "hyperband", "sha", "none"],
                   help="stops hopeless trials on valid, never before the warmup_epochs config key")
    p.add_argument("--prune-percentile", type=float, default=25.0,
                   help="percentile pruner: stop a trial in the bottom P %% of the others at the same epoch (default 25; "
                        "the median pruner is 50)")
    p.add_argument("--prune-startup", type=int, default=None,
                   help="median / percentile: completed trials needed before any trial is pruned "
                        "(default: --startup-trials, at most 5)")
    p.add_argument("--prune-curve", default="best", choices=["best", "raw"],
                   help="median / percentile: compare a trial's best so far with the other trials' best valid by the "
                        "same epoch, held after they stopped (best, default), or with their value at that epoch as "
                        "Optuna does (raw: a trial running past the epoch where all others stopped is never pruned)")
    p.add_argument("--trial-seeds", type=int, default=1,
                   help="seeds per trial (seed, seed + 1, ...): the trial's value is the mean best-valid metric "
                        "over them; the pruner reads the first seed's run (default 1)")
    p.add_argument("--datasets", default=None, metavar="A,B,...",
                   help="a multi-dataset study: each trial trains on every dataset (NAME from --data-dir, or "
                        "DIR/NAME), scored relative to --reference on each; value: --aggregate of the scores")
    p.add_argument("--reference", default="MGCN",
                   help="multi-dataset: the model (at its own defaults) each dataset's score is relative to")
    p.add_argument("--aggregate", default="worst", choices=["worst", "mean"],
                   help="multi-dataset: a trial's value is the worst (default) or the mean relative score")
    p.add_argument("--jobs", type=int, default=1, help="worker processes sharing the study (threads split among them)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default sqlite:///<out>/study.db)")
    p.add_argument("--study-name", default=None, help="default <model>-<dataset>")
    p.add_argument("--sampler-seed", type=int, default=0, help="sampler seed (worker w uses seed + w)")
    p.add_argument("--startup-trials", type=int, default=10, help="random trials before TPE models the space")
    p.add_argument("--heartbeat", type=int, default=60,
                   help="seconds between heartbeats of a running trial; a killed trial is retried once stale")
    p.add_argument("--enqueue-defaults", action="store_true", help="first trial: the config's values of the searched keys")
    p.add_argument("--enqueue", action="append", metavar="FILE.yaml",
                   help="trials to run first: a mapping or a list of them; keys not given take their config value")
    p.add_argument("--select-by", default="valid", choices=["valid", "test"],
                   help="choose on valid (default) or, as MMRec does, on test (labelled as having seen test)")
    p.add_argument("--extend-space", action="store_true",
                   help="resume a study with a space that adds keys to its own (the trials so far ran them at "
                        "their config values; study.md says from which trial)")
    p.add_argument("--note", default=None, help="a line kept with the study and printed in study.md")
    p.add_argument("--report-only", action="store_true",
                   help="write the study's reports from its storage and run nothing (e.g. while workers run it)")
    p.add_argument("--confirm-top", type=int, default=0, metavar="K",
                   help="after the trials: train the K best again with more seeds, choose the best mean valid "
                        "(with --datasets: on every dataset, each seed against its own reference run; the best "
                        "--aggregate of the per-dataset mean relative scores)")
    p.add_argument("--confirm-seeds", type=int, default=3, help="seeds per confirmed trial (its own run counts; default 3)")
    p.add_argument("--confirm-exclude", action="append", metavar="KEY=VALUE",
                   help="leave trials with this value out of the confirmation (repeatable)")
    p.set_defaults(func=cmd_tune)
