"""Experiments over several runs: ablations, model comparisons, summaries."""

from __future__ import annotations

from pathlib import Path

from siger.cli.common import add_config_args, resolve
from siger.config import ConfigError


def cmd_ablate(args, extra) -> int:
    from siger.experiments.ablate import run_ablation

    cfg = resolve(args, extra).config()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    table = run_ablation(cfg, Path(args.out), seeds=args.seeds, variants=variants)
    print(table)
    return 0


def cmd_compare(args, extra) -> int:
    from siger.experiments.compare import run_compare

    req = resolve(args, extra)  # --models names the models; --dataset wins over --config's
    overrides = {k: v for k, v in req.overrides.items() if k != "model"}
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    out = Path(args.out or f"runs/compare_{args.dataset}")
    model_configs = {}
    for spec in args.model_config or []:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"--model-config {spec!r}: expected MODEL=FILE.yaml")
        model_configs[name.strip()] = path.strip()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()] if args.modes else None
    print(run_compare(models, req.dataset, overrides, out, args.seeds, req.file, model_configs=model_configs,
                      modes=modes))
    return 0


def cmd_summarize(args, extra) -> int:
    from siger.experiments.summary import collect_runs, summarize, summary_table

    groups = collect_runs(args.runs)
    if not groups:
        raise FileNotFoundError(f"no finished run (metrics.json) under {args.runs}")
    print(summary_table({label: summarize(rs) for label, rs in sorted(groups.items())}))
    return 0


def register(sub, train_epilog: str | None = None) -> None:
    """Add this module's commands to the subparsers ``sub``."""
    p = sub.add_parser("ablate", allow_abbrev=False, help="train every ablation of SIGER and write one Markdown table")
    add_config_args(p)
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
