"""Command-line front end. Thin: parses arguments, resolves a config once, calls the library.

    siger train --model SIGER --dataset tiktok [--data-dir DIR] [--out runs/X] [--config F.yaml]
                [--resume] [--key value ...]
    siger evaluate --run runs/X
    siger tune --model SIGER --dataset tiktok --trials 60 --out studies/X  (or --datasets A,B,C)
    siger ablate --model SIGER --dataset baby --data-dir DIR [--seeds 1] [--out runs/abl]
    siger train ... --knn_k 5,10,20 --beta 0.3,0.5 --out runs/grid [--select-by valid|test]
    siger compare --models LightGCN,VBPR,FREEDOM,MGCN,LGMRec,BM3,SIGER --dataset D --seeds 3 [--out DIR]
    siger summarize runs/a runs/b ...
    siger info --dataset tiktok [--data-dir DIR]
    siger models
    siger prepare --interactions FILE --items FILE --out DIR/NAME [--k-core 5] [--seed 2024]
    siger derive --from DIR/NAME --out DIR2/NAME2 [--per-item N] [--snr-db DB] [--graph-noise P]
    siger features text --items DIR/NAME/items.tsv --column title --out DIR/NAME/text_feat.npy
    siger features image --images DIR --encoder torchvision:resnet50 --weights FILE --out F.npy
    siger recommend --run runs/X (--users 12,34 | --all --out recs.tsv) [--k 10]
    siger serve --run runs/X [--host 127.0.0.1] [--port 8000]
    siger results add|remove|mostpop|content|study|verify ...;  siger report [--check]

One module per group of commands, each with its parsers beside its handlers. Bad input (data
files, config keys) prints one line naming the file/line/field and exits 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from siger.cli import data, experiments, results, serve, train, tune
from siger.config import ConfigError
from siger.data.validate import DataError
from siger.experiments.records import RecordError


def make_parser(train_epilog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siger", description="Multimodal graph recommendation (SIGER and baselines)")
    # allow_abbrev=False on every command: `--seed 1000` (a config key) must reach the config, not be
    # taken as a prefix of `--seeds`
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (train, tune, results, experiments, data, serve):
        module.register(sub, train_epilog)
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

