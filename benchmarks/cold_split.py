"""Derive a cold-start dataset from an MMRec-layout one: hold out a seeded fraction of its items.

    python -m benchmarks.cold_split --dataset tiktok --fraction 0.2 --seed 2024 --out data/tiktok_cold [--data-dir DIR]

The warm items keep their interactions and train/valid/test labels; every interaction with a cold
item moves to ``cold/cold.inter``, each cold item (half of them, seeded) a valid or a test item;
features are split the same way (see ``siger/data/cold.py``). Train on the result as on any
dataset, then ``siger evaluate --run RUN --modes warm,cold,all``.
"""

from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> int:
    from siger.data.cold import derive_cold_dataset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data-dir", default=None, help="folder holding <dataset>/ (default: the bundled data)")
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--out", required=True, help="DIR/NAME of the new dataset")
    args = ap.parse_args(argv)
    print(json.dumps(derive_cold_dataset(args.data_dir, args.dataset, args.out, args.fraction, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
