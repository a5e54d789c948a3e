"""Command-line front end. Thin: parses arguments, builds a config, calls the library.

    siger train --model SIGER --dataset tiktok [--data-dir DIR] [--out runs/X] [--config F.yaml]
                [--resume] [--key value ...]
    siger evaluate --run runs/X
    siger ablate --model SIGER --dataset baby --data-dir DIR [--seeds 1] [--out runs/abl]
    siger train ... --knn_k 5,10,20 --beta 0.3,0.5 --out runs/grid [--select-by valid|test]
    siger compare --models LightGCN,VBPR,FREEDOM,MGCN,LGMRec,BM3,SIGER --dataset D --seeds 3 [--out DIR]
    siger summarize runs/a runs/b ...
    siger info --dataset tiktok [--data-dir DIR]
    siger models
    siger prepare --interactions FILE --items FILE --out DIR/NAME [--k-core 5] [--seed 2024]
    siger features text --items DIR/NAME/items.tsv --column title --out DIR/NAME/text_feat.npy
    siger features image --images DIR --encoder torchvision:resnet50 --weights FILE --out F.npy
    siger recommend --run runs/X (--users 12,34 | --all --out recs.tsv) [--k 10]
    siger serve --run runs/X [--host 127.0.0.1] [--port 8000]

Bad input (data files, config keys) prints one line naming the file/line/field and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from siger.config import ConfigError, build_config, parse_cli_overrides
from siger.data.validate import DataError
from siger.experiments.records import RecordError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="model name (see `siger models`; default: the --config file's, else SIGER)")
    p.add_argument("--dataset", default=None,
                   help="dataset name (default: the --config file's, else the bundled tiktok)")
    p.add_argument("--data-dir", default=None, help="folder holding <dataset>/ in the MMRec layout")
    p.add_argument("--config", default=None, help="YAML file of config keys")


def _pin(args) -> None:
    """Resolve --model / --dataset: given on the command line they win over the --config file's
    (a run folder's config.yaml names both); not given, the file's are used, else SIGER on the
    bundled tiktok."""
    from siger.config import load_yaml

    doc = load_yaml(args.config) if getattr(args, "config", None) else {}
    if hasattr(args, "model"):
        args.model = args.model or doc.get("model") or "SIGER"
    args.dataset = args.dataset or doc.get("dataset") or "tiktok"


def _overrides(args, extra: list[str]) -> dict:
    """The command line's config keys, --data-dir and the resolved --dataset (and --model), which
    :func:`build_config` applies after the --config file."""
    _pin(args)
    overrides = parse_cli_overrides(extra)
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    pinned = {"model": args.model} if hasattr(args, "model") else {}
    return {**pinned, "dataset": args.dataset, **overrides}


def _config(args, extra: list[str]):
    return build_config(args.model, args.dataset, _overrides(args, extra), args.config)


def cmd_train(args, extra) -> int:
    from siger.config import load_yaml, split_grid
    from siger.experiments.tune import StudySpec, TuneOptions, grid_space, run_tune
    from siger.train.trainer import Trainer, load_data

    flat = {**(load_yaml(args.config) if args.config else {}), **_overrides(args, extra)}
    model = flat.pop("model")
    fixed, grid = split_grid(model, args.dataset, flat)
    if grid:  # list values: a grid study on the tuner's engine (every combination, no pruning)
        if not args.out:
            raise ConfigError("a grid search (list values) needs --out DIR for its runs")
        spec = StudySpec(model, args.dataset, fixed, None, grid_space(grid, model), args.out,
                         TuneOptions(trials=0, sampler="grid", pruner="none", select_by=args.select_by))
        run_tune(spec)
        return 0
    if args.select_by != "valid":
        raise ConfigError("--select-by only applies to a grid search (give a key several values)")
    cfg = _config(args, extra)
    if args.out:
        _check_out(Path(args.out), args.resume, args.overwrite)
    from siger.distributed import from_env

    ctx, cfg.train.device = from_env(cfg.train.device)  # torchrun: join the process group
    data = load_data(cfg)
    if ctx.is_main:
        print(json.dumps(data.summary()))
    trainer = Trainer(cfg, data, args.out, dist=ctx)
    result = trainer.fit(resume=args.resume)
    if ctx.enabled:
        import torch.distributed

        torch.distributed.barrier()  # every rank done with its sockets before any tears them down
        torch.distributed.destroy_process_group()
    if args.out and ctx.is_main:
        print(f"\nrun written to {args.out}")
    return 0 if result["valid"] is not None else 1


# what a run folder holds (removed by --overwrite; nothing else in the folder is touched)
RUN_FILES = ("config.yaml", "log.jsonl", "metrics.json", "record.json", "curves.png", "model.pt", "checkpoint.pt")


def _check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to train over a run folder unless told what to do with it."""
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite replaces it: give one")
    finished, started = (out / "metrics.json").exists(), (out / "checkpoint.pt").exists()
    if overwrite:
        for f in RUN_FILES:
            (out / f).unlink(missing_ok=True)
        return
    if resume:
        return
    if finished:
        raise ConfigError(f"{out} holds a finished run (metrics.json); use --overwrite to replace it, "
                          "or another --out")
    if started:
        raise ConfigError(f"{out} holds an unfinished run (checkpoint.pt); use --resume to continue it or "
                          "--overwrite to start again")


def cmd_tune(args, extra) -> int:
    from siger.experiments.tune import StudySpec, TuneOptions, load_space, run_tune

    overrides = _overrides(args, extra)
    for k in ("model", "dataset"):  # the study pins them itself (StudySpec), over the --config file's
        overrides.pop(k)
    space = load_space(args.space, args.model)
    enqueue = [{}] if args.enqueue_defaults else []  # {}: every searched key at its config value
    for path in args.enqueue or []:
        import yaml

        doc = yaml.safe_load(Path(path).read_text())
        enqueue += doc if isinstance(doc, list) else [doc]
    opts = TuneOptions(trials=args.trials, sampler=args.sampler, pruner=args.pruner, seed=args.sampler_seed,
                       jobs=args.jobs, storage=args.storage, study_name=args.study_name,
                       startup_trials=args.startup_trials, select_by=args.select_by, heartbeat=args.heartbeat,
                       prune_percentile=args.prune_percentile, prune_curve=args.prune_curve,
                       prune_startup=args.prune_startup, note=args.note,
                       enqueue=enqueue, trial_seeds=args.trial_seeds)
    datasets = []
    if args.datasets:
        from siger.experiments.tune.multi import parse_datasets

        datasets = parse_datasets(args.datasets, overrides.pop("data_dir", None))
    out = args.out or f"studies/{args.model.lower()}_{'_'.join(n for n, _ in datasets) or args.dataset}"
    spec = StudySpec(args.model, args.dataset, overrides, args.config, space, out, opts, datasets=datasets,
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


def cmd_results(args, extra) -> int:
    from siger.experiments import baselines as B
    from siger.experiments import records as R

    _no_extra(extra)
    path = Path(args.records)
    if args.action == "add":
        if not args.paths:
            raise ConfigError("results add needs run folders (or folders of runs)")
        added = R.add_runs(args.paths, args.table, args.label, args.note, path, replace=args.replace)
        print(f"{path}: {len(added)} run record(s) in table {args.table!r}"
              + (f" as {args.label!r}" if args.label else ""))
    elif args.action == "remove":
        if args.paths or not args.label:
            raise ConfigError("results remove takes --table and --label (the row to take out), no folders")
        n = R.remove_rows(args.table, args.label, path)
        print(f"{path}: removed row {args.label!r} from table {args.table!r} ({n} record(s))")
    elif args.action == "mostpop":
        rec = B.mostpop_record(args.dataset, args.data_dir)
        R.add_record(rec, path)
        print(f"{path}: MostPop on {rec['dataset']} (test recall@20 {rec['test']['recall@20']:.4f})")
    elif args.action == "content":
        rec = B.content_record(args.dataset, args.data_dir)
        R.add_record(rec, path)
        print(f"{path}: content baseline on {rec['dataset']} (cold test recall@20 "
              f"{rec['modes']['test']['cold']['recall@20']:.4f})")
    elif args.action == "verify":
        from siger.experiments.replay import verify

        records, verdicts = verify(R.load_records(path), args.sample, args.epochs, args.data_dir, args.rtol,
                                   only_stale=not args.all)
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

    _no_extra(extra)
    differ = report(args.root, args.records, check=args.check, plots=not args.no_plots)
    if args.check:
        if differ:
            print("not what the records render to (run `siger report`): " + ", ".join(differ), file=sys.stderr)
            return 1
        print("docs match the records")
        return 0
    print("rendered " + (", ".join(differ) if differ else "nothing new (docs already match the records)"))
    return 0


def cmd_evaluate(args, extra) -> int:
    from siger.artifacts import metrics_table
    from siger.eval.ranking import evaluate
    from siger.train.trainer import load_model

    if extra:
        raise ConfigError(f"evaluate takes no config overrides, got {extra}")
    if args.modes:
        return _evaluate_modes(args)
    model, cfg, data = load_model(args.run)
    u, i = model.embeddings()
    test = evaluate(u, i, data.train_matrix, data.matrix("test"), cfg.train.topk, cfg.train.eval_chunk_users)
    print(metrics_table({"test": test}, cfg.train.topk))
    stored_path = Path(args.run) / "metrics.json"
    if stored_path.exists():
        stored = json.loads(stored_path.read_text())["test"]
        diff = max(abs(stored[k] - test[k]) for k in stored if k != "n_users")
        same = diff == 0.0
        print(f"\nstored test metrics {'reproduced exactly' if same else f'differ (max abs diff {diff:.2e})'}")
        return 0 if same else 1
    return 0


def _evaluate_modes(args) -> int:
    from siger.artifacts import compact_table
    from siger.experiments.coldstart import evaluate_run

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    res, topk = evaluate_run(Path(args.run), modes)
    for split, by_mode in res.items():
        print(f"{split}:")
        print(compact_table(by_mode, topk))
    print(f"\nwritten to {Path(args.run) / 'cold_metrics.json'} and the run's record")
    return 0


def cmd_add_items(args, extra) -> int:
    import numpy as np

    from siger.data.prepare import ITEM_COLUMNS, _norm, read_table
    from siger.data.validate import DataError
    from siger.serve.recommender import load_run

    _no_extra(extra)
    feats = {}
    for f in (x.strip() for x in args.features.split(",") if x.strip()):
        p = Path(f)
        if not p.name.endswith("_feat.npy"):
            raise ConfigError(f"--features {f}: files are named <modality>_feat.npy")
        try:
            feats[p.name[: -len("_feat.npy")]] = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(p, f"cannot read array: {e}") from None
    header, rows = read_table(args.mapping)
    keys = {_norm(h): h for h in header}
    col = next((keys[c] for c in ITEM_COLUMNS if c in keys), header[0])  # item_id (original) before itemID
    ids = [row.get(col, "").strip() for _, row in rows]
    titles = None
    if args.items:
        iheader, irows = read_table(args.items)
        ikeys = {_norm(h): h for h in iheader}
        icol = next((ikeys[c] for c in ITEM_COLUMNS if c in ikeys), iheader[0])
        tcol = next((ikeys[c] for c in ("title", "name", "text") if c in ikeys), None)
        if tcol is None:
            raise DataError(args.items, "no title column (title, name or text)")
        by_id = {row.get(icol, "").strip(): row.get(tcol, "") for _, row in irows}
        titles = [by_id.get(i, "") for i in ids]
    rec = load_run(args.run)
    before = rec.n_items
    total = rec.add_items(ids, feats, titles, where=str(args.mapping))
    print(f"added {total - before} items to {args.run}: {total} items are ranked now "
          f"({rec.n_trained_items} trained, {total - rec.n_trained_items} added)")
    return 0


def cmd_ablate(args, extra) -> int:
    from siger.experiments.ablate import run_ablation

    cfg = _config(args, extra)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    table = run_ablation(cfg, Path(args.out), seeds=args.seeds, variants=variants)
    print(table)
    return 0


def cmd_compare(args, extra) -> int:
    from siger.experiments.compare import run_compare

    overrides = _overrides(args, extra)  # --models names the models; --dataset wins over --config's
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    out = Path(args.out or f"runs/compare_{args.dataset}")
    model_configs = {}
    for spec in args.model_config or []:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"--model-config {spec!r}: expected MODEL=FILE.yaml")
        model_configs[name.strip()] = path.strip()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()] if args.modes else None
    print(run_compare(models, args.dataset, overrides, out, args.seeds, args.config, model_configs=model_configs,
                      modes=modes))
    return 0


def cmd_summarize(args, extra) -> int:
    from siger.experiments.summary import collect_runs, summarize, summary_table

    groups = collect_runs(args.runs)
    if not groups:
        raise FileNotFoundError(f"no finished run (metrics.json) under {args.runs}")
    print(summary_table({label: summarize(rs) for label, rs in sorted(groups.items())}))
    return 0


def cmd_info(args, extra) -> int:
    from siger.data.dataset import load_dataset

    print(json.dumps(load_dataset(args.dataset, args.data_dir).summary(), indent=2))
    return 0


def cmd_models(args, extra) -> int:
    from siger.models import available_models

    print("\n".join(available_models()))
    return 0


def _no_extra(extra: list[str]) -> None:
    if extra:
        raise ConfigError(f"unrecognised arguments: {' '.join(extra)}")


def cmd_prepare(args, extra) -> int:
    from siger.data.prepare import prepare

    _no_extra(extra)
    rep = prepare(args.interactions, args.out, items=args.items, k=args.k_core, seed=args.seed,
                  user_col=args.user_col, item_col=args.item_col, rating_col=args.rating_col,
                  time_col=args.time_col, cold_items=args.cold_items)
    print("\n".join(rep.lines()))
    out = Path(args.out)
    print(f"\nwrote {out}/ (train with: siger train --dataset {out.name} --data-dir {out.parent})")
    return 0


def cmd_derive(args, extra) -> int:
    import json

    from siger.data.variants import derive

    _no_extra(extra)
    rec = derive(args.source, args.out, per_item=args.per_item, snr_db=args.snr_db, graph_noise=args.graph_noise,
                 seed=args.seed)
    print(json.dumps(rec["operations"], indent=1))
    out = Path(args.out)
    print(f"wrote {out}/ (train with: siger train --dataset {out.name} --data-dir {out.parent})")
    return 0


def _save_npy(path: str, arr) -> None:
    import numpy as np

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npy")
    np.save(tmp, arr)
    tmp.replace(out)


def cmd_features(args, extra) -> int:
    _no_extra(extra)
    if args.kind == "text":
        from siger.features.text import encode_texts, read_item_texts

        if not args.items:
            raise ConfigError("features text needs --items FILE (with itemID and the --column)")
        texts = read_item_texts(args.items, [c.strip() for c in args.column.split(",")], args.id_column)
        feats = encode_texts(texts, batch_size=args.batch_size, device=args.device, progress=not args.quiet)
        _save_npy(args.out, feats)
        print(f"wrote {args.out}: {feats.shape[0]} items x {feats.shape[1]}")
        return 0
    from siger.features.image import encode_images, find_images, load_encoder

    if not args.images:
        raise ConfigError("features image needs --images DIR")
    model = load_encoder(args.encoder, args.weights)
    images = find_images(args.images, args.n_items, args.mapping)
    n_items = args.n_items if args.n_items is not None else max(images) + 1
    feats, filled = encode_images(images, n_items, model, args.batch_size, args.missing, progress=not args.quiet)
    _save_npy(args.out, feats)
    print(f"wrote {args.out}: {feats.shape[0]} items x {feats.shape[1]}"
          + (f"; {len(filled)} items without an image filled with {args.missing}" if filled else ""))
    return 0


def cmd_recommend(args, extra) -> int:
    from siger.serve.recommender import load_run

    _no_extra(extra)
    if args.all == bool(args.users):
        raise ConfigError("give either --users ID,ID,... or --all --out FILE")
    rec = load_run(args.run)
    if args.all:
        if not args.out:
            raise ConfigError("--all needs --out FILE.tsv")
        rows = rec.export_all(args.out, args.k)
        print(f"wrote {args.out}: {rows:,} rows for {rec.n_users:,} users")
        return 0
    for r in rec.recommend([u.strip() for u in args.users.split(",")], args.k):
        flag = f"  ({r['fallback']} fallback: no history)" if r["fallback"] else ""
        print(f"user {r['user']}{flag}")
        for rank, it in enumerate(r["items"], start=1):
            title = f"  {it['title']}" if it.get("title") else ""
            score = f"{it['score']:>10.4f}" if it["score"] is not None else f"{'pop ' + str(it['popularity']):>10}"
            print(f"  {rank:>3}. {it['item']:<12} {score}{title}")
    return 0


def cmd_serve(args, extra) -> int:
    from siger.serve.api import serve
    from siger.serve.recommender import load_run

    _no_extra(extra)
    from siger.extras import require

    require("fastapi", "serve")
    require("uvicorn", "serve")  # before loading the run, so a missing extra is said at once
    serve(load_run(args.run), args.host, args.port, allow_add_items=args.allow_add_items)
    return 0


def make_parser(train_epilog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siger", description="Multimodal graph recommendation (SIGER and baselines)")
    # allow_abbrev=False on every command: `--seed 1000` (a config key) must reach the config, not be
    # taken as a prefix of `--seeds`
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", allow_abbrev=False, help="train a model; any config key can follow as --key value",
                       description="Train one model (or, with list values such as --knn_k 5,10, a grid of "
                                   "runs). Every config key below can be given as --key value.",
                       epilog=train_epilog or "config keys: see `siger train --model NAME --help`",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    p.add_argument("--out", default=None, help="run folder for config, logs, metrics, curves, model")
    p.add_argument("--resume", action="store_true", help="continue from --out's last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out (refused otherwise)")
    p.add_argument("--select-by", default="valid", choices=["valid", "test"],
                   help="grid search only: pick the winner on valid (default) or, as MMRec does, on test")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("tune", allow_abbrev=False,
                       help="hyper-parameter search with Optuna, chosen on valid (study folder, resumable)")
    _common(p)
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
    p.add_argument("--note", default=None, help="a line kept with the study and printed in study.md")
    p.add_argument("--report-only", action="store_true",
                   help="write the study's reports from its storage and run nothing (e.g. while workers run it)")
    p.add_argument("--confirm-top", type=int, default=0, metavar="K",
                   help="after the trials: train the K best again with more seeds, choose the best mean valid")
    p.add_argument("--confirm-seeds", type=int, default=3, help="seeds per confirmed trial (its own run counts; default 3)")
    p.add_argument("--confirm-exclude", action="append", metavar="KEY=VALUE",
                   help="leave trials with this value out of the confirmation (repeatable)")
    p.set_defaults(func=cmd_tune)
    p = sub.add_parser("results", allow_abbrev=False,
                       help="add finished runs, MostPop or a study to the committed result records")
    p.add_argument("action", choices=["add", "remove", "mostpop", "content", "study", "verify"])
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
    p.add_argument("--dataset", default="tiktok", help="mostpop / content: the dataset")
    p.add_argument("--data-dir", default=None,
                   help="mostpop / content: folder holding <dataset>/; verify: where the records' datasets are now")
    p.add_argument("--sample", type=int, default=None, metavar="N",
                   help="verify: replay N records chosen at random (seeded; default: every one)")
    p.add_argument("--epochs", type=int, default=2, help="verify: epochs replayed per record (default 2)")
    p.add_argument("--rtol", type=float, default=0.0,
                   help="verify: relative tolerance of the comparison (default 0: exact, as on the CPU with one torch)")
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
    p = sub.add_parser("evaluate", allow_abbrev=False, help="reload a run and recompute its test metrics")
    p.add_argument("--run", required=True)
    p.add_argument("--modes", default=None,
                   help="cold-start evaluation on a dataset with cold/ items: any of warm,cold,all "
                        "(writes cold_metrics.json and the run's record)")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("ablate", allow_abbrev=False, help="train every ablation of SIGER and write one Markdown table")
    _common(p)
    p.set_defaults(model="SIGER")
    p.add_argument("--out", default="runs/ablation", help="folder for the per-variant runs and ablation.md")
    p.add_argument("--seeds", type=int, default=1, help="seeds per variant (seed, seed+1, ...)")
    p.add_argument("--variants", default=None,
                   help="comma-separated subset (full names or slugs, e.g. no_anchor_loss_lambda_a_0); default all")
    p.set_defaults(func=cmd_ablate)
    p = sub.add_parser("compare", allow_abbrev=False, help="train several models over seeds; comparison.md + comparison.png")
    p.add_argument("--models", default="LightGCN,VBPR,FREEDOM,MGCN,LGMRec,BM3,SIGER", help="comma-separated model names")
    p.add_argument("--dataset", default=None, help="default: the --config file's, else the bundled tiktok")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--config", default=None, help="YAML of keys applied to every model (unknown keys are errors)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per model (seed, seed+1, ...)")
    p.add_argument("--model-config", action="append", metavar="MODEL=FILE",
                   help="settings for one model, e.g. VBPR=runs/grid/best_config.yaml (a grid winner); repeatable")
    p.add_argument("--out", default=None, help="folder for runs and the report (default runs/compare_<dataset>)")
    p.add_argument("--modes", default=None, help="cold-start datasets: also evaluate warm,cold,all on the cold items")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("summarize", allow_abbrev=False, help="Markdown table of finished runs: mean ± std over seeds per model, dataset and setting (runs whose configs differ in more than the seed are split)")
    p.add_argument("runs", nargs="+", help="run folders (searched recursively for metrics.json)")
    p.set_defaults(func=cmd_summarize)
    p = sub.add_parser("info", allow_abbrev=False, help="validate a dataset and print its summary")
    p.add_argument("--dataset", default="tiktok")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("models", allow_abbrev=False, help="list the registered models")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("prepare", allow_abbrev=False, help="raw interactions (CSV/TSV/JSONL) -> MMRec layout: k-core, ids, 8:1:1 split")
    p.add_argument("--interactions", required=True, help="user,item[,rating][,timestamp] rows with a header")
    p.add_argument("--items", default=None, help="optional item table (id column + metadata such as title)")
    p.add_argument("--out", required=True, help="DIR/NAME: the dataset folder (NAME is the dataset name)")
    p.add_argument("--k-core", type=int, default=5, help="minimum interactions per user and item (default 5)")
    p.add_argument("--seed", type=int, default=2024, help="split seed (default 2024)")
    p.add_argument("--cold-items", type=float, default=None, metavar="F",
                   help="hold out a seeded fraction F of items entirely (cold-start protocol; written to cold/)")
    for col in ("user", "item", "rating", "time"):
        p.add_argument(f"--{col}-col", default=None, help=f"{col} column name (default: detected)")
    p.set_defaults(func=cmd_prepare)
    p = sub.add_parser("derive", allow_abbrev=False,
                       help="a variant of a dataset: thinned train, noisy features, corrupted kNN graphs")
    p.add_argument("--from", dest="source", required=True, help="the dataset folder DIR/NAME (MMRec layout)")
    p.add_argument("--out", required=True, help="DIR2/NAME2: the new dataset folder (NAME2 is its name)")
    p.add_argument("--per-item", type=float, default=None, metavar="N",
                   help="thin the train interactions to N per item on average (valid and test kept)")
    p.add_argument("--snr-db", type=float, default=None, metavar="DB",
                   help="add Gaussian noise to every raw feature at this signal-to-noise ratio (dB)")
    p.add_argument("--graph-noise", type=float, default=None, metavar="P",
                   help="replace a fraction P of each item's semantic kNN neighbours by random items")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.set_defaults(func=cmd_derive)
    p = sub.add_parser("features", allow_abbrev=False, help="item features: text (bundled MiniLM) or image (your ResNet weights)")
    p.add_argument("kind", choices=["text", "image"])
    p.add_argument("--out", required=True, help="output .npy, e.g. DIR/NAME/text_feat.npy")
    p.add_argument("--items", default=None, help="text: table with itemID and the text column(s)")
    p.add_argument("--column", default="title", help="text: column(s) to embed, comma-separated (joined by '. ')")
    p.add_argument("--id-column", default="itemID", help="text: item id column (default itemID)")
    p.add_argument("--images", default=None, help="image: folder of <itemID>.jpg|png|...")
    p.add_argument("--encoder", default="torchvision:resnet50", help="image: torchvision:resnet18|34|50|101|152")
    p.add_argument("--weights", default=None, help="image: torchvision state_dict file (never downloaded)")
    p.add_argument("--mapping", default=None, help="image: i_id_mapping.csv when files are named by original id")
    p.add_argument("--n-items", type=int, default=None, help="image: number of items (default: largest id + 1)")
    p.add_argument("--missing", choices=["error", "mean", "zero"], default="error",
                   help="image: items without an image (default: error)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_features)
    p = sub.add_parser("recommend", allow_abbrev=False, help="top-k unseen items for users of a trained run (original ids)")
    p.add_argument("--run", required=True)
    p.add_argument("--users", default=None, help="comma-separated original user ids")
    p.add_argument("--all", action="store_true", help="every user, written to --out")
    p.add_argument("--out", default=None, help="TSV for --all")
    p.add_argument("--k", type=int, default=10)
    p.set_defaults(func=cmd_recommend)
    p = sub.add_parser("add-items", allow_abbrev=False,
                       help="add new items to a trained run from their features (no retraining)")
    p.add_argument("--run", required=True)
    p.add_argument("--features", required=True, help="comma-separated <modality>_feat.npy files, rows = new items")
    p.add_argument("--mapping", required=True, help="table of the new items' original ids, one row per feature row")
    p.add_argument("--items", default=None, help="optional item table with titles (id column + title)")
    p.set_defaults(func=cmd_add_items)
    p = sub.add_parser("serve", allow_abbrev=False, help="HTTP API for a trained run (FastAPI; docs at /docs)")
    p.add_argument("--run", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--allow-add-items", action="store_true",
                   help="enable POST /items (adds items to the run folder, as siger add-items)")
    p.set_defaults(func=cmd_serve)
    return parser


def _train_help(argv: list[str]) -> str | None:
    """The config-key listing for `siger train [--model M] --help` (None for anything else)."""
    if not argv or argv[0] != "train" or not ({"-h", "--help"} & set(argv)):
        return None
    from siger.config import config_help

    model = "SIGER"
    for i, a in enumerate(argv):
        if a == "--model" and i + 1 < len(argv):
            model = argv[i + 1]
        elif a.startswith("--model="):
            model = a.split("=", 1)[1]
    try:
        return config_help(model)
    except KeyError as e:
        return str(e.args[0])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser(_train_help(argv))
    args, extra = parser.parse_known_args(argv)
    warnings.formatwarning = lambda message, category, *rest, **kw: f"siger: warning: {message}\n"
    try:
        return args.func(args, extra)
    except (DataError, ConfigError, RecordError) as e:
        print(f"siger: error: {e}", file=sys.stderr)
        return 2
    except (KeyError, ValueError, FileNotFoundError, ImportError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"siger: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("siger: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
