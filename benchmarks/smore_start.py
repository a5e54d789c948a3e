"""SMORE at its start: why its BPR loss stays at ln 2 on some datasets (docs/models.md, SMORE).

    python -m benchmarks.smore_start --datasets tiktok,baby --data-dir ../shared/data [--epochs 3] [--key value ...]

For each dataset, from the seeded start of the plain command (plus any ``--key value``), one JSON
line with: the mean row norm of the behaviour (H^b) and side (H^s) representations of users and
items; the norm of each loss term's gradient on the user and item ID tables on the first batch;
and, with ``--epochs N``, each epoch's mean loss terms and valid Recall@20 (the trainer's own
epochs, no early stopping).
"""

from __future__ import annotations

import json
from typing import Any


def start(dataset: str, data_dir: str | None, epochs: int, overrides: dict[str, Any]) -> dict[str, Any]:
    import torch

    from siger.config import build_config
    from siger.train.trainer import Trainer, load_data

    ov = {"data_dir": data_dir, "progress": "false", **overrides}
    cfg = build_config("SMORE", dataset, {k: v for k, v in ov.items() if v is not None})
    data = load_data(cfg)
    trainer = Trainer(cfg, data, None, log=lambda s: None)
    model = trainer.model
    nu = model.n_users

    def mean_norm(x: torch.Tensor) -> float:
        return round(float(x.norm(dim=1).mean()), 5)

    model.eval()
    with torch.no_grad():
        hb, hs = model.encode()
    norms = {"users_hb": mean_norm(hb[:nu]), "users_hs": mean_norm(hs[:nu]),
             "items_hb": mean_norm(hb[nu:]), "items_hs": mean_norm(hs[nu:])}
    model.train()
    b = cfg.train.batch_size
    users, pos, neg = (torch.from_numpy(a[:b]) for a in trainer.sampler.epoch())
    grads = {}
    for name, term in model.loss(users, pos, neg).items():
        if not term.requires_grad:
            continue
        g = torch.autograd.grad(term, [model.user_emb, model.item_emb], retain_graph=True, allow_unused=True)
        grads[name] = {"user_emb": float(g[0].norm()) if g[0] is not None else 0.0,
                       "item_emb": float(g[1].norm()) if g[1] is not None else 0.0}
    model.zero_grad(set_to_none=True)
    curve = []
    for e in range(epochs):
        terms = trainer.train_epoch(e)
        valid = trainer.evaluate("valid")
        curve.append({"epoch": e, "loss": {k: round(v, 4) for k, v in terms.items()},
                      "valid_recall@20": round(valid["recall@20"], 4)})
    return {"dataset": dataset, "overrides": overrides, "interactions_per_user": round(data.train_matrix.nnz / nu, 1),
            "start_norms": norms, "first_batch_grad_norms": grads, "epochs": curve}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.harness import parser
    from siger.config import parse_cli_overrides

    ap = parser(__doc__, record=False)  # a diagnostic: prints, records nothing
    ap.add_argument("--datasets", required=True, help="comma-separated dataset names")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=0, help="train this many epochs after the start's measurements")
    args, extra = ap.parse_known_args(argv)
    overrides = parse_cli_overrides(extra)
    for d in args.datasets.split(","):
        print(json.dumps(start(d, args.data_dir, args.epochs, overrides)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
