"""Datasets and features: validate, list models, prepare raw logs, derive variants, encode features."""

from __future__ import annotations

import json
from pathlib import Path

from siger.cli.common import no_extra
from siger.config import ConfigError


def cmd_info(args, extra) -> int:
    from siger.data.dataset import load_dataset

    print(json.dumps(load_dataset(args.dataset, args.data_dir).summary(), indent=2))
    return 0


def cmd_models(args, extra) -> int:
    from siger.models import available_models

    print("\n".join(available_models()))
    return 0


def cmd_prepare(args, extra) -> int:
    from siger.data.prepare import prepare

    no_extra(extra)
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

    no_extra(extra)
    rec = derive(args.source, args.out, per_item=args.per_item, snr_db=args.snr_db, graph_noise=args.graph_noise,
                 seed=args.seed, cold_users=args.cold_users)
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
    no_extra(extra)
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


def register(sub, train_epilog: str | None = None) -> None:
    """Add this module's commands to the subparsers ``sub``."""
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
    p.add_argument("--cold-users", type=float, default=None, metavar="F",
                   help="hold a fraction F of users out of training (their train items become cold_users.inter)")
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
