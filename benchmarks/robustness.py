"""The abstract's noise claim, tested: does SIGER degrade more slowly than without its mechanisms
when the semantic graphs are noisy?

    python -m benchmarks.robustness --datasets ml100k_thin --data-dir data/derived \
        --graph-noise 0,0.25,0.5,0.75 [--snr-db 20,10,0] --seeds 3 [--record]

For each dataset and noise level a variant is derived once (``siger derive``: ``--graph-noise P``
replaces a fraction P of each item's semantic kNN neighbours by random items; ``--snr-db`` adds
Gaussian noise to the raw features before the kNN build; level 0 is the dataset itself), and each
setting below trains on it over the same seeds (paired): MGCN at MMRec's values, SIGER at its
defaults, and SIGER without perturbation, without the anchor loss, without infusion. Every run is
an ordinary run folder under ``--runs`` (finished runs are reused). ``--record`` adds the runs to
``results/records.jsonl`` (table ``robustness``, each record naming its base dataset and noise), from
which ``siger report`` renders the figure (Recall@20 against the noise level) and the paired table.
"""

from __future__ import annotations

import math
from pathlib import Path

from benchmarks import harness

SETTINGS = {  # label -> (model, overrides of its defaults)
    "MGCN (MMRec defaults)": ("MGCN", {}),
    "SIGER (full)": ("SIGER", {}),
    "no perturbation (lambda_p=0)": ("SIGER", {"lambda_p": 0.0}),
    "no anchor loss (lambda_a=0)": ("SIGER", {"lambda_a": 0.0}),
    "no infusion (beta=0)": ("SIGER", {"beta_rule": "fixed", "beta": 0.0}),
}


def variant(base: Path, work: Path, kind: str, level: float) -> Path:
    """The dataset folder for one noise level (derived once; level 0 is the base itself)."""
    from siger.data.variants import derive

    if (kind == "graph" and level == 0) or (kind == "features" and math.isinf(level)):
        return base  # the clean dataset
    tag = f"g{round(level * 100):02d}" if kind == "graph" else f"snr{level:g}".replace("-", "m")
    out = work / f"{base.name}_{tag}"
    if not (out / f"{out.name}.inter").exists():
        derive(base, out, **({"graph_noise": level} if kind == "graph" else {"snr_db": level}), seed=0)
    return out


def run(dataset: str, data_dir: str, work: Path, runs: Path, kind: str, levels: list[float], seeds: list[int],
        settings: list[str], threads: int) -> list[dict]:
    """Train every setting on every level over the seeds; returns one row per run."""
    from siger.config import build_config
    from siger.experiments.runs import train_or_load

    base = Path(data_dir) / dataset
    rows = []
    for level in levels:
        folder = variant(base, work, kind, level)
        for label in settings:
            model, over = SETTINGS[label]
            for seed in seeds:
                cfg = build_config(model, folder.name, {**over, "data_dir": str(folder.parent), "seed": seed,
                                                        "num_threads": threads, "progress": False})
                out = runs / dataset / f"{kind}{level:g}" / label.split(" (")[0].replace(" ", "_") / f"seed{seed}"
                res = train_or_load(cfg, out, log=lambda s: None)
                rows.append({"dataset": dataset, "kind": kind, "level": level, "label": label, "seed": seed,
                             "run": str(out), "valid": res["valid"]["recall@20"], "test": res["test"]["recall@20"]})
                print(f"{dataset} {kind} {level:g} {label} seed {seed}: test recall@20 {res['test']['recall@20']:.4f}",
                      flush=True)
    return rows


def _cell(rec: dict) -> tuple:
    """A robustness run's place: (base dataset, noise kind, level, row label, seed)."""
    nz = rec["noise"]
    return nz["base"], nz["kind"], float(nz["level"]), rec["label"], rec["seed"]


def record(rows: list[dict], records_path: Path | None = None) -> int:
    """Add the runs to the committed records (table ``robustness``), each naming its noise. A run
    whose place (dataset, noise, row, seed) already holds a record replaces it (a run continued
    under a new stop rule has a new record id, and is the same run's result)."""
    import json

    from siger.experiments.records import RECORDS, load_records, merge_records, save_records

    path = records_path or RECORDS
    new = []
    for r in rows:
        rec = json.loads((Path(r["run"]) / "record.json").read_text())
        rec.update(table="robustness", label=r["label"], note=None,
                   noise={"base": r["dataset"], "kind": r["kind"], "level": r["level"]})
        new.append(rec)
    places = {_cell(r): r["id"] for r in new}
    old = [r for r in load_records(path)
           if not (r.get("table") == "robustness" and places.get(_cell(r), r["id"]) != r["id"])]
    save_records(merge_records(old, new), path)
    return len(new)


def main(argv: list[str] | None = None) -> int:
    ap = harness.parser(__doc__)
    ap.add_argument("--datasets", default="ml100k_thin")
    ap.add_argument("--data-dir", default="data/derived")
    ap.add_argument("--graph-noise", default="0,0.25,0.5,0.75", help="fractions of kNN neighbours replaced")
    ap.add_argument("--snr-db", default=None,
                    help="feature signal-to-noise ratios in dB, e.g. inf,20,10,0 (inf: clean; raw-feature datasets)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 999, 1000, ... (paired across settings)")
    ap.add_argument("--settings", default=None, help="a subset of the settings (comma-separated labels)")
    ap.add_argument("--work", default="data/derived/robustness", help="where the noisy variants are written")
    ap.add_argument("--runs", default="runs/robustness")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    settings = [s.strip() for s in args.settings.split(",")] if args.settings else list(SETTINGS)
    seeds = [999 + i for i in range(args.seeds)]
    rows = []
    for ds in (d.strip() for d in args.datasets.split(",") if d.strip()):
        rows += run(ds, args.data_dir, Path(args.work), Path(args.runs), "graph",
                    [float(x) for x in args.graph_noise.split(",")], seeds, settings, args.threads)
        if args.snr_db:
            rows += run(ds, args.data_dir, Path(args.work), Path(args.runs), "features",
                        [float(x) for x in args.snr_db.split(",")], seeds, settings, args.threads)
    if args.record:
        print(f"recorded {record(rows)} runs in table 'robustness' (render with siger report)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
