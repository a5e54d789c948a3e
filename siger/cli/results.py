"""The committed result records and the docs rendered from them."""

from __future__ import annotations

import sys
from pathlib import Path

from siger.cli.common import no_extra
from siger.config import ConfigError


def cmd_results(args, extra) -> int:
    from siger.experiments import baselines as B
    from siger.experiments import records as R

    no_extra(extra)
    path = Path(args.records)
    if args.action == "add":
        if not args.paths:
            raise ConfigError("results add needs run folders (or folders of runs)")
        added = R.add_runs(args.paths, args.table, args.label, args.note, path, replace=args.replace)
        print(f"{path}: {len(added)} run record(s) in table {args.table!r}"
              + (f" as {args.label!r}" if args.label else ""))
    elif args.action == "relabel":
        if args.paths or not args.label or not args.to:
            raise ConfigError("results relabel takes --table, --label (the row) and --to (its new name)")
        n = R.relabel_rows(args.table, args.label, args.to, args.note, path, dataset=args.dataset)
        print(f"{path}: row {args.label!r} of table {args.table!r}"
              + (f" on {args.dataset}" if args.dataset else "") + " "
              + ("has a new note" if args.to == args.label else f"is now {args.to!r}") + f" ({n} record(s))")
    elif args.action == "remove":
        if args.paths or not args.label:
            raise ConfigError("results remove takes --table and --label (the row to take out), no folders")
        n = R.remove_rows(args.table, args.label, path)
        print(f"{path}: removed row {args.label!r} from table {args.table!r} ({n} record(s))")
    elif args.action == "mostpop":
        rec = B.mostpop_record(args.dataset or "tiktok", args.data_dir)
        R.add_record(rec, path)
        print(f"{path}: MostPop on {rec['dataset']} (test recall@20 {rec['test']['recall@20']:.4f})")
    elif args.action == "mostpop-cold-users":
        rec = B.mostpop_cold_users_record(args.dataset or "tiktok", args.data_dir)
        R.add_record(rec, path)
        print(f"{path}: MostPop on {rec['dataset']}'s cold users (test recall@20 "
              f"{rec['modes']['test']['cold_users']['recall@20']:.4f})")
    elif args.action == "content":
        rec = B.content_record(args.dataset or "tiktok", args.data_dir)
        R.add_record(rec, path)
        print(f"{path}: content baseline on {rec['dataset']} (cold test recall@20 "
              f"{rec['modes']['test']['cold']['recall@20']:.4f})")
    elif args.action == "verify":
        from siger.experiments.replay import verify

        records, verdicts = verify(R.load_records(path), args.sample, args.epochs, args.data_dir, args.rtol,
                                   only_stale=not args.all, save=lambda recs: R.save_records(recs, path),
                                   per_setting=args.per_setting, jobs=args.jobs)
        R.save_records(records, path)
        bad = [v for v in verdicts if not v.ok]
        print(f"{path}: {len(verdicts) - len(bad)} of {len(verdicts)} replayed record(s) match the current code")
        if bad:
            print("differ (marked stale): " + "; ".join(v.label for v in bad), file=sys.stderr)
            return 1
        return 0
    elif args.action == "study":
        if not args.paths:
            raise ConfigError("results study needs study folders")
        for d in args.paths:
            rec = R.study_record(d, args.note, args.chosen)
            R.add_record(rec, path)
            print(f"{path}: study {d} ({rec['trials']} trials)")
    print("render the docs with: siger report")
    return 0


def cmd_report(args, extra) -> int:
    from siger.experiments.report import report

    no_extra(extra)
    differ = report(args.root, args.records, check=args.check, plots=not args.no_plots)
    if args.check:
        if differ:
            print("not what the records render to (run `siger report`): " + ", ".join(differ), file=sys.stderr)
            return 1
        print("docs match the records")
        return 0
    print("rendered " + (", ".join(differ) if differ else "nothing new (docs already match the records)"))
    return 0


def register(sub, train_epilog: str | None = None) -> None:
    """Add this module's commands to the subparsers ``sub``."""
    p = sub.add_parser("results", allow_abbrev=False,
                       help="add finished runs, MostPop or a study to the committed result records")
    p.add_argument("action", choices=["add", "remove", "relabel", "mostpop", "mostpop-cold-users", "content", "study",
                                      "verify"])
    p.add_argument("--to", default=None, help="relabel: the row's new name (its own name with --note: the note only)")
    p.add_argument("paths", nargs="*", help="add: run folders (searched for record.json); study: study folders")
    p.add_argument("--table", default="comparison", help="add / remove: the table (comparison, ablation, ...)")
    p.add_argument("--label", default=None,
                   help="add: the row label (default: the model name; 'auto': the run's folder above seed<S>, "
                        "e.g. an ablation variant); remove: the row to take out")
    p.add_argument("--note", default=None, help="a line printed under the table (e.g. what was tuned, how)")
    p.add_argument("--replace", action="store_true",
                   help="add: the runs rerun their rows (label, dataset): the old records go, the new take "
                        "their place in the table and, without --note, their note")
    p.add_argument("--chosen", type=int, default=None,
                   help="study: the trial whose values became the defaults, when not the study's best")
    p.add_argument("--dataset", default=None,
                   help="mostpop / content: the dataset (default tiktok); relabel: that dataset's rows only "
                        "(default: every dataset's)")
    p.add_argument("--data-dir", default=None,
                   help="mostpop / content: folder holding <dataset>/; verify: where the records' datasets are now")
    p.add_argument("--sample", type=int, default=None, metavar="N",
                   help="verify: replay N records chosen at random (seeded; default: every one)")
    p.add_argument("--epochs", type=int, default=2, help="verify: epochs replayed per record (default 2)")
    p.add_argument("--rtol", type=float, default=None,
                   help="verify: relative tolerance of the comparison (default: 0, exact, for a record made on this "
                        "CPU model and torch; 1e-6 for one made on another)")
    p.add_argument("--per-setting", action="store_true",
                   help="verify: replay one seed of each setting (made at one commit) and stamp its other seeds by it")
    p.add_argument("--jobs", type=int, default=1,
                   help="verify: replays at once (each one thread, as its record ran; default 1)")
    p.add_argument("--all", action="store_true",
                   help="verify: replay current records too, not only those the git check finds stale")
    p.add_argument("--records", default="results/records.jsonl", help="the records file (default results/records.jsonl)")
    p.set_defaults(func=cmd_results)
    p = sub.add_parser("report", allow_abbrev=False,
                       help="render docs/results.md and the README/docs result blocks from the records")
    p.add_argument("--root", default=".", help="the checkout (default: here)")
    p.add_argument("--records", default=None, help="default <root>/results/records.jsonl")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if the docs differ from the records")
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    p.set_defaults(func=cmd_report)
