"""A trained run in use: recommendations, new items, the HTTP API."""

from __future__ import annotations

from siger.cli.common import no_extra
from siger.config import ConfigError


def cmd_recommend(args, extra) -> int:
    from siger.serve.recommender import load_run

    no_extra(extra)
    if sum(map(bool, (args.all, args.users, args.history is not None))) != 1:
        raise ConfigError("give one of --users ID,ID,..., --history ITEM,ITEM,... (a new user) or --all --out FILE")
    rec = load_run(args.run)
    if args.history is not None:
        from siger.serve.recommender import HistoryError

        try:
            r = rec.recommend_history([i for i in args.history.split(",") if i.strip()], args.k)
        except HistoryError as e:
            raise ConfigError(f"--history: {e}") from None
        return _print([{**r, "user": "(new user)"}])
    if args.all:
        if not args.out:
            raise ConfigError("--all needs --out FILE.tsv")
        rows = rec.export_all(args.out, args.k)
        print(f"wrote {args.out}: {rows:,} rows for {rec.n_users:,} users")
        return 0
    return _print(rec.recommend([u.strip() for u in args.users.split(",")], args.k))


def _print(recs) -> int:
    for r in recs:
        flag = f"  ({r['fallback']} fallback: no history)" if r["fallback"] else ""
        print(f"user {r['user']}{flag}")
        for rank, it in enumerate(r["items"], start=1):
            title = f"  {it['title']}" if it.get("title") else ""
            score = f"{it['score']:>10.4f}" if it["score"] is not None else f"{'pop ' + str(it['popularity']):>10}"
            print(f"  {rank:>3}. {it['item']:<12} {score}{title}")
    return 0


def cmd_add_items(args, extra) -> int:
    from siger.data.dataset import read_feature_files
    from siger.data.prepare import read_new_items
    from siger.serve.recommender import load_run

    no_extra(extra)
    feats = read_feature_files([x.strip() for x in args.features.split(",") if x.strip()])
    ids, titles = read_new_items(args.mapping, args.items)
    rec = load_run(args.run)
    before = rec.n_items
    total = rec.add_items(ids, feats, titles, where=str(args.mapping))
    print(f"added {total - before} items to {args.run}: {total} items are ranked now "
          f"({rec.n_trained_items} trained, {total - rec.n_trained_items} added)")
    return 0


def cmd_serve(args, extra) -> int:
    from siger.serve.api import serve
    from siger.serve.recommender import load_run

    no_extra(extra)
    from siger.extras import require

    require("fastapi", "serve")
    require("uvicorn", "serve")  # before loading the run, so a missing extra is said at once
    load_run(args.run)  # a bad run folder is said here, before any worker starts
    serve(args.run, args.host, args.port, allow_add_items=args.allow_add_items, workers=args.workers)
    return 0


def register(sub, train_epilog: str | None = None) -> None:
    """Add this module's commands to the subparsers ``sub``."""
    p = sub.add_parser("recommend", allow_abbrev=False, help="top-k unseen items for users of a trained run (original ids)")
    p.add_argument("--run", required=True)
    p.add_argument("--users", default=None, help="comma-separated original user ids")
    p.add_argument("--all", action="store_true", help="every user, written to --out")
    p.add_argument("--history", default=None, metavar="ITEM,ITEM,...",
                   help="a user the model was not trained on: its items (original ids), folded in without retraining")
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
    p.add_argument("--workers", type=int, default=1,
                   help="server processes, each with its own copy of the run (e.g. one per core)")
    p.add_argument("--allow-add-items", action="store_true",
                   help="enable POST /items (adds items to the run folder, as siger add-items)")
    p.set_defaults(func=cmd_serve)
