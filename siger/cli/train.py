"""Training and evaluating one run (or, with list values, a grid of runs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from siger.cli.common import Request, add_config_args, check_out, resolve
from siger.config import ConfigError


def cmd_train(args, extra) -> int:
    from siger.config import split_grid
    from siger.train.trainer import Trainer, load_data

    req = resolve(args, extra)
    flat = req.flat()
    _, grid = split_grid(req.model, req.dataset, {k: v for k, v in flat.items() if k != "model"})
    if grid:  # list values: every combination is a run; the winner is chosen on valid
        from siger.experiments.grid import grid_configs, run_grid

        if not args.out:
            raise ConfigError("a grid search (list values) needs --out DIR for its runs")
        run_grid(grid_configs(grid, lambda combo: build_grid_config(req, combo)), Path(args.out), args.select_by)
        return 0
    if args.select_by != "valid":
        raise ConfigError("--select-by only applies to a grid search (give a key several values)")
    cfg = req.config()
    if args.out:
        check_out(Path(args.out), args.resume, args.overwrite)
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


def build_grid_config(req: Request, combo: dict):
    """One grid combination's config: the file's and the command line's single values, then the
    combination's (the grid keys' list values are left out)."""
    from siger.config import build_config

    file = None if req.file is None else type(req.file)(req.file.path, {k: v for k, v in req.file.flat.items()
                                                                        if k not in combo}, req.file.saved)
    return build_config(req.model, req.dataset, {**{k: v for k, v in req.overrides.items() if k not in combo},
                                                 **combo}, file)


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


def register(sub, train_epilog: str | None = None) -> None:
    """Add this module's commands to the subparsers ``sub``."""
    p = sub.add_parser("train", allow_abbrev=False, help="train a model; any config key can follow as --key value",
                       description="Train one model (or, with list values such as --knn_k 5,10, a grid of "
                                   "runs). Every config key below can be given as --key value.",
                       epilog=train_epilog or "config keys: see `siger train --model NAME --help`",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--out", default=None, help="run folder for config, logs, metrics, curves, model")
    p.add_argument("--resume", action="store_true", help="continue from --out's last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out (refused otherwise)")
    p.add_argument("--select-by", default="valid", choices=["valid", "test"],
                   help="grid search only: pick the winner on valid (default) or, as MMRec does, on test")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", allow_abbrev=False, help="reload a run and recompute its test metrics")
    p.add_argument("--run", required=True)
    p.add_argument("--modes", default=None,  # cold items: warm, cold, all; cold users: cold_users
                   help="cold-start evaluation on a dataset with cold/ items: any of warm,cold,all "
                        "(writes cold_metrics.json and the run's record)")
    p.set_defaults(func=cmd_evaluate)
