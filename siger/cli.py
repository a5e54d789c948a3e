"""Command-line front end. Thin: parses arguments, builds a config, calls the library.

    siger train --model SIGER --dataset tiktok [--data-dir DIR] [--out runs/X] [--config F.yaml]
                [--resume] [--key value ...]
    siger evaluate --run runs/X
    siger ablate --model SIGER --dataset baby --data-dir DIR [--seeds 1] [--out runs/abl]
    siger summarize runs/a runs/b ...
    siger info --dataset tiktok [--data-dir DIR]
    siger models

Bad input (data files, config keys) prints one line naming the file/line/field and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from siger.config import ConfigError, build_config, parse_cli_overrides
from siger.data.validate import DataError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="SIGER", help="model name (see `siger models`; default SIGER)")
    p.add_argument("--dataset", default="tiktok", help="dataset name (default: the bundled tiktok)")
    p.add_argument("--data-dir", default=None, help="folder holding <dataset>/ in the MMRec layout")
    p.add_argument("--config", default=None, help="YAML file of config keys")


def _config(args, extra: list[str]):
    overrides = parse_cli_overrides(extra)
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    return build_config(args.model, args.dataset, overrides, args.config)


def cmd_train(args, extra) -> int:
    from siger.train.trainer import Trainer, load_data

    cfg = _config(args, extra)
    data = load_data(cfg)
    print(json.dumps(data.summary()))
    trainer = Trainer(cfg, data, args.out)
    result = trainer.fit(resume=args.resume)
    if args.out:
        print(f"\nrun written to {args.out}")
    return 0 if result["valid"] is not None else 1


def cmd_evaluate(args, extra) -> int:
    from siger.eval.ranking import evaluate
    from siger.report import metrics_table
    from siger.train.trainer import load_model

    if extra:
        raise ConfigError(f"evaluate takes no config overrides, got {extra}")
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


def cmd_ablate(args, extra) -> int:
    from siger.ablate import run_ablation

    cfg = _config(args, extra)
    table = run_ablation(cfg, Path(args.out), seeds=args.seeds)
    print(table)
    return 0


def cmd_summarize(args, extra) -> int:
    from siger.report import collect_runs, summarize, summary_table

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


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siger", description="Multimodal graph recommendation (SIGER and baselines)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a model; any config key can follow as --key value")
    _common(p)
    p.add_argument("--out", default=None, help="run folder for config, logs, metrics, curves, model")
    p.add_argument("--resume", action="store_true", help="continue from --out's last checkpoint")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", help="reload a run and recompute its test metrics")
    p.add_argument("--run", required=True)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("ablate", help="train every ablation of SIGER and write one Markdown table")
    _common(p)
    p.set_defaults(model="SIGER")
    p.add_argument("--out", default="runs/ablation", help="folder for the per-variant runs and ablation.md")
    p.add_argument("--seeds", type=int, default=1, help="seeds per variant (seed, seed+1, ...)")
    p.set_defaults(func=cmd_ablate)
    p = sub.add_parser("summarize", help="Markdown table of finished runs: mean ± std over seeds per model/dataset")
    p.add_argument("runs", nargs="+", help="run folders (searched recursively for metrics.json)")
    p.set_defaults(func=cmd_summarize)
    p = sub.add_parser("info", help="validate a dataset and print its summary")
    p.add_argument("--dataset", default="tiktok")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        return args.func(args, extra)
    except (DataError, ConfigError) as e:
        print(f"siger: error: {e}", file=sys.stderr)
        return 2
    except (KeyError, ValueError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"siger: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("siger: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
