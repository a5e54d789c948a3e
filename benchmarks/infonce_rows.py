"""A/B timing of the in-batch InfoNCE terms over distinct rows (the default) against the same
terms over every batch row (a batch repeats users and items; the two are the same loss).

    python -m benchmarks.infonce_rows --model SIGER --dataset baby --data-dir ../shared/data --rounds 5 [--key value ...]

The full-batch path is obtained by making ``siger.models.losses.distinct_rows`` return every
row with count 1, which is exactly the computation before distinct rows were introduced. The two
paths are timed interleaved (``--rounds`` rounds of one step each, after a warm-up step of each)
on the same batches (forward + backward, no optimiser step), from the same parameters (restored before every step), so machine load
hits both alike. Prints one JSON line: median step seconds per path, the loss terms of both paths
on the first batch, and how many distinct users / positive items the batches hold.
"""

from __future__ import annotations

import argparse
import copy
import json
import time


def ab(model_name: str, dataset: str, data_dir: str | None, rounds: int, overrides: dict[str, str]) -> dict:
    import torch

    import siger.models.losses as losses
    from siger.config import build_config
    from siger.train.trainer import Trainer, load_data

    ov = {"data_dir": data_dir, "progress": "false", **overrides}
    cfg = build_config(model_name, dataset, {k: v for k, v in ov.items() if v is not None})
    data = load_data(cfg)
    trainer = Trainer(cfg, data, None, log=lambda s: None)
    model = trainer.model
    model.train()
    model.pre_epoch()
    state = copy.deepcopy(model.state_dict())
    b = cfg.train.batch_size
    users, pos, neg = (torch.from_numpy(a) for a in trainer.sampler.epoch())
    exact = losses.distinct_rows

    def every_row(idx: torch.Tensor):
        return idx, torch.ones_like(idx)

    def step(path, k: int) -> tuple[float, dict]:
        losses.distinct_rows = path
        try:
            model.load_state_dict(state)
            lo = (k * b) % len(users)
            sl = slice(lo, lo + b)
            torch.manual_seed(k)  # same noise draws on both paths
            t0 = time.perf_counter()
            out = model.loss(users[sl], pos[sl], neg[sl])
            total = sum(out.values())
            model.zero_grad(set_to_none=True)
            total.backward()
            dt = time.perf_counter() - t0
        finally:
            losses.distinct_rows = exact
        return dt, {k_: round(float(v.detach()), 7) for k_, v in out.items()}

    times: dict[str, list[float]] = {"distinct_rows": [], "every_row": []}
    terms = {}
    for k in range(rounds + 1):
        for name, path in (("distinct_rows", exact), ("every_row", every_row)):
            dt, out = step(path, k)
            if k:
                times[name].append(dt)
            else:
                terms[name] = out
    first = slice(0, b)
    return {
        "model": cfg.train.model, "dataset": dataset, "batch_size": b, "threads": torch.get_num_threads(),
        "distinct_users": int(users[first].unique().numel()), "distinct_pos_items": int(pos[first].unique().numel()),
        **{f"step_s_{n}": round(sorted(t)[len(t) // 2], 4) for n, t in times.items()},
        "loss_terms": terms,
    }


def main(argv: list[str] | None = None) -> int:
    from siger.config import parse_cli_overrides

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="SIGER")
    ap.add_argument("--dataset", default="tiktok")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--rounds", type=int, default=5)
    args, extra = ap.parse_known_args(argv)
    print(json.dumps(ab(args.model, args.dataset, args.data_dir, args.rounds, parse_cli_overrides(extra))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
