"""Raw interaction logs -> a dataset folder in the MMRec layout (``siger prepare``).

Steps, each reported (nothing is dropped without a count in the report):

1. read ``user, item[, rating][, timestamp]`` rows from CSV, TSV or JSON lines (header required
   for CSV/TSV; column names are matched case-insensitively against common spellings, or given);
2. remove repeated (user, item) pairs, keeping the latest by timestamp (the last row on ties);
3. k-core filtering (default 5): repeatedly drop users and items with fewer than k interactions
   until every remaining user and item has at least k;
4. map original ids to contiguous ``0..n-1`` ids in natural order (numeric when every id is an
   integer, else lexicographic) and save ``u_id_mapping.csv`` / ``i_id_mapping.csv``;
5. the MMRec per-user random 8:1:1 split, seeded: a user with n >= 10 interactions gets
   ``round(0.1 n)`` valid and ``round(0.1 n)`` test items (half rounds up), the rest train; a user
   with 3 <= n < 10 gets 1 valid and 1 test; a user with n < 3 keeps all in train (only possible
   with ``k < 3``; counted in the report).

An optional item table (``--items``) is filtered to the kept items and written as ``items.tsv``
(``itemID`` first, then the original columns), which ``siger features text`` and
``siger recommend`` read.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from siger.data.cold import COLD_DIR, split_cold
from siger.data.validate import DataError

USER_COLUMNS = ("user_id", "userid", "user", "uid", "reviewerid", "customer_id")
ITEM_COLUMNS = ("item_id", "itemid", "item", "iid", "asin", "movieid", "product_id", "parent_asin")
RATING_COLUMNS = ("rating", "ratings", "score", "overall", "stars")
TIME_COLUMNS = ("timestamp", "time", "ts", "unixreviewtime", "datetime")


@dataclass
class PrepareReport:
    """What ``prepare`` read, removed and wrote (saved as ``prepare_report.json``)."""

    source: str
    rows_read: int = 0
    duplicate_pairs_removed: int = 0
    k_core: int = 5
    k_core_rounds: int = 0
    rows_removed_by_k_core: int = 0
    users_before: int = 0
    items_before: int = 0
    users: int = 0
    items: int = 0
    interactions: int = 0
    train: int = 0
    valid: int = 0
    test: int = 0
    users_under_10: int = 0
    users_train_only: int = 0
    item_table_rows: int = 0
    item_table_rows_unused: int = 0
    items_without_metadata: int = 0
    seed: int = 2024
    columns: dict[str, str | None] = field(default_factory=dict)
    cold_items: int = 0  # held-out items (--cold-items), in cold/
    cold_valid_items: int = 0
    cold_test_items: int = 0
    cold_interactions: int = 0

    def lines(self) -> list[str]:
        r = self
        out = [
            f"read {r.rows_read:,} rows from {r.source} (columns {r.columns})",
            f"removed {r.duplicate_pairs_removed:,} repeated (user, item) rows (kept the latest)",
            f"{r.k_core}-core filtering: {r.k_core_rounds} rounds, removed {r.rows_removed_by_k_core:,} rows; "
            f"users {r.users_before:,} -> {r.users:,}, items {r.items_before:,} -> {r.items:,}",
            f"split (seed {r.seed}): train {r.train:,}, valid {r.valid:,}, test {r.test:,}; "
            f"{r.users_under_10:,} users with < 10 interactions got 1 valid + 1 test",
        ]
        if r.users_train_only:
            out.append(f"{r.users_train_only:,} users with < 3 interactions kept all of them in train")
        if r.cold_items:
            out.append(f"cold items (never in train, in {COLD_DIR}/): {r.cold_items:,} ({r.cold_valid_items:,} valid, "
                       f"{r.cold_test_items:,} test) with {r.cold_interactions:,} interactions; the counts above "
                       "are the warm items'")
        if r.item_table_rows:
            out.append(
                f"item table: {r.item_table_rows:,} rows, {r.item_table_rows_unused:,} for items not kept; "
                f"{r.items_without_metadata:,} kept items have no row"
            )
        return out


def _norm(name: str) -> str:
    """Column key for matching: lower case, RecBole ``name:type`` suffix removed."""
    return name.split(":", 1)[0].strip().lower()


def _pick(header: list[str], given: str | None, candidates: tuple[str, ...], what: str, path: Path,
          required: bool) -> str | None:
    if given is not None:
        if given not in header:
            matches = [h for h in header if _norm(h) == _norm(given)]
            if not matches:
                raise DataError(path, f"column '{given}' not found; columns are {header}", line=1, field=what)
            return matches[0]
        return given
    by_key = {_norm(h): h for h in header}
    for c in candidates:
        if c in by_key:
            return by_key[c]
    if required:
        raise DataError(path, f"no {what} column found among {header}; name it with --{what}-col", line=1,
                        field=what)
    return None


def read_table(path: str | Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Read CSV (``.csv``), JSON lines (``.jsonl``/``.json``) or tab-separated (anything else; also
    a ``.csv`` whose header line has tabs and no comma, as MMRec's ``*_id_mapping.csv``).

    Returns the column names and ``(line_number, row)`` pairs; every value is a string.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    suffix = path.suffix.lower()
    rows: list[tuple[int, dict[str, str]]] = []
    if suffix in (".jsonl", ".json", ".ndjson"):
        header: list[str] = []
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(path, f"invalid JSON: {e.msg}", line=n) from None
                if not isinstance(obj, dict):
                    raise DataError(path, "expected one JSON object per line", line=n)
                for k in obj:
                    if k not in header:
                        header.append(k)
                rows.append((n, {k: "" if v is None else str(v) for k, v in obj.items()}))
        if not rows:
            raise DataError(path, "no rows")
        return header, rows
    delim = "," if suffix == ".csv" else "\t"
    if delim == ",":
        with open(path, encoding="utf-8", newline="") as fh:
            first = fh.readline()
        if "\t" in first and "," not in first:
            delim = "\t"
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=delim)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(path, "empty file (expected a header line)", line=1) from None
        if len(set(header)) != len(header):
            raise DataError(path, f"repeated column names in header {header}", line=1)
        for values in reader:
            n = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                sep = "comma" if delim == "," else "tab"
                raise DataError(path, f"expected {len(header)} {sep}-separated fields, got {len(values)}", line=n)
            rows.append((n, dict(zip(header, values))))
    if not rows:
        raise DataError(path, "no rows after the header")
    return header, rows


def read_new_items(mapping: str | Path, items: str | Path | None = None) -> tuple[list[str], list[str] | None]:
    """New items to add to a trained run: their original ids, one per row of the ``mapping``
    table (its item-id column, else its first), and with an ``items`` table (id column + title,
    name or text) their titles in the same order (an id the table lacks gets "")."""
    header, rows = read_table(mapping)
    keys = {_norm(h): h for h in header}
    col = next((keys[c] for c in ITEM_COLUMNS if c in keys), header[0])  # item_id (original) before itemID
    ids = [row.get(col, "").strip() for _, row in rows]
    if items is None:
        return ids, None
    iheader, irows = read_table(items)
    ikeys = {_norm(h): h for h in iheader}
    icol = next((ikeys[c] for c in ITEM_COLUMNS if c in ikeys), iheader[0])
    tcol = next((ikeys[c] for c in ("title", "name", "text") if c in ikeys), None)
    if tcol is None:
        raise DataError(items, "no title column (title, name or text)")
    by_id = {row.get(icol, "").strip(): row.get(tcol, "") for _, row in irows}
    return ids, [by_id.get(i, "") for i in ids]


def _natural_order(ids: np.ndarray) -> np.ndarray:
    """Unique ids sorted numerically when all are integers, else as strings."""
    uniq = np.unique(ids)
    try:
        as_int = np.array([int(x) for x in uniq], dtype=np.int64)
    except ValueError:
        return uniq
    return uniq[np.argsort(as_int, kind="stable")]


def k_core(users: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Boolean mask of rows in the k-core of the bipartite graph, and the number of rounds.

    ``users``/``items``: int64 ``[n]`` contiguous codes. Every user and item left has >= k rows.
    """
    keep = np.ones(len(users), dtype=bool)
    rounds = 0
    if k <= 1:
        return keep, 0
    while True:
        u_deg = np.bincount(users[keep], minlength=users.max() + 1 if len(users) else 0)
        i_deg = np.bincount(items[keep], minlength=items.max() + 1 if len(items) else 0)
        bad = keep & ((u_deg[users] < k) | (i_deg[items] < k))
        if not bad.any():
            return keep, rounds
        keep &= ~bad
        rounds += 1


def split_counts(n: int) -> tuple[int, int]:
    """(valid, test) sizes for a user with n interactions (see the module docstring)."""
    if n < 3:
        return 0, 0
    if n < 10:
        return 1, 1
    m = int(math.floor(0.1 * n + 0.5))
    return m, m


def random_split(users: np.ndarray, seed: int) -> np.ndarray:
    """x_label (0 train, 1 valid, 2 test) per row: per-user random split, seeded.

    Users are visited in id order and each user's rows in row order, so the result depends only
    on the rows and the seed.
    """
    rng = np.random.default_rng(seed)
    label = np.zeros(len(users), dtype=np.int64)
    order = np.argsort(users, kind="stable")
    bounds = np.flatnonzero(np.diff(users[order])) + 1
    for rows in np.split(order, bounds):
        nv, nt = split_counts(len(rows))
        if nv + nt == 0:
            continue
        perm = rows[rng.permutation(len(rows))]
        label[perm[:nv]] = 1
        label[perm[nv:nv + nt]] = 2
    return label


def _float(v: str, path: Path, line: int, col: str) -> float:
    try:
        x = float(v)
    except ValueError:
        raise DataError(path, f"expected a number, got {v!r}", line=line, field=col) from None
    if not math.isfinite(x):
        raise DataError(path, f"expected a finite number, got {v!r}", line=line, field=col)
    return x


def _write_tsv(path: Path, header: list[str], rows) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        w.writerow(header)
        w.writerows(rows)
    tmp.replace(path)


def prepare(
    interactions: str | Path,
    out: str | Path,
    items: str | Path | None = None,
    k: int = 5,
    seed: int = 2024,
    user_col: str | None = None,
    item_col: str | None = None,
    rating_col: str | None = None,
    time_col: str | None = None,
    items_id_col: str | None = None,
    cold_items: float | None = None,
) -> PrepareReport:
    """Build ``out`` (a folder named like the dataset) from raw files. See the module docstring."""
    path = Path(interactions)
    out = Path(out)
    if k < 0:
        raise ValueError(f"k-core must be >= 0, got {k}")
    header, rows = read_table(path)
    ucol = _pick(header, user_col, USER_COLUMNS, "user", path, True)
    icol = _pick(header, item_col, ITEM_COLUMNS, "item", path, True)
    rcol = _pick(header, rating_col, RATING_COLUMNS, "rating", path, False)
    tcol = _pick(header, time_col, TIME_COLUMNS, "timestamp", path, False)
    rep = PrepareReport(source=str(path), k_core=k, seed=seed,
                        columns={"user": ucol, "item": icol, "rating": rcol, "timestamp": tcol})

    u_raw, i_raw, rating, ts = [], [], [], []
    for n, row in rows:
        u, it = row.get(ucol, "").strip(), row.get(icol, "").strip()
        if not u:
            raise DataError(path, "empty user id", line=n, field=ucol)
        if not it:
            raise DataError(path, "empty item id", line=n, field=icol)
        u_raw.append(u)
        i_raw.append(it)
        rating.append(_float(row.get(rcol, ""), path, n, rcol) if rcol else 1.0)
        ts.append(_float(row.get(tcol, ""), path, n, tcol) if tcol else 0.0)
    rep.rows_read = len(rows)
    u_raw_a, i_raw_a = np.array(u_raw), np.array(i_raw)
    rating_a, ts_a = np.array(rating), np.array(ts)
    _, u_code = np.unique(u_raw_a, return_inverse=True)
    _, i_code = np.unique(i_raw_a, return_inverse=True)
    rep.users_before, rep.items_before = int(u_code.max()) + 1, int(i_code.max()) + 1

    # repeated pairs: keep the latest (last row among equal timestamps)
    order = np.lexsort((np.arange(len(ts_a)), ts_a, i_code, u_code))
    last = np.ones(len(order), dtype=bool)
    same_next = (u_code[order][1:] == u_code[order][:-1]) & (i_code[order][1:] == i_code[order][:-1])
    last[:-1] = ~same_next
    kept_rows = np.sort(order[last])
    rep.duplicate_pairs_removed = len(rows) - len(kept_rows)

    mask, rep.k_core_rounds = k_core(u_code[kept_rows], i_code[kept_rows], k)
    rep.rows_removed_by_k_core = int((~mask).sum())
    kept_rows = kept_rows[mask]
    if len(kept_rows) == 0:
        raise DataError(path, f"no interactions left after {k}-core filtering; lower --k-core")

    users_o, items_o = u_raw_a[kept_rows], i_raw_a[kept_rows]
    u_ids, i_ids = _natural_order(users_o), _natural_order(items_o)
    u_map = {x: n for n, x in enumerate(u_ids)}
    i_map = {x: n for n, x in enumerate(i_ids)}
    uu = np.array([u_map[x] for x in users_o], dtype=np.int64)
    ii = np.array([i_map[x] for x in items_o], dtype=np.int64)
    r_k, t_k = rating_a[kept_rows], ts_a[kept_rows]
    cold = None
    if cold_items:  # hold out whole items: their interactions never enter train
        cold = split_cold(uu, ii, np.zeros(len(uu), np.int64), len(i_ids), cold_items, seed)
        cold_ids = [i_ids[j] for j in cold["cold"]]
        u_ids = [u_ids[u] for u in np.flatnonzero(cold["user_map"] >= 0)]
        i_ids = [i_ids[j] for j in cold["warm"]]
        i_map = {x: n for n, x in enumerate(i_ids)}
        cold_map = {x: n for n, x in enumerate(cold_ids)}
        keep = cold["warm_index"]
        cu, ci = cold["cold_rows"][:, 0], cold["cold_rows"][:, 1]
        cr, ct = r_k[cold["cold_index"]], t_k[cold["cold_index"]]
        uu, ii, r_k, t_k = cold["warm_rows"][:, 0], cold["warm_rows"][:, 1], r_k[keep], t_k[keep]
        rep.cold_items = len(cold_ids)
        rep.cold_valid_items = int((cold["cold_split"] == 1).sum())
        rep.cold_test_items = int((cold["cold_split"] == 2).sum())
        rep.cold_interactions = int(len(cu))
    label = random_split(uu, seed)
    deg = np.bincount(uu)
    rep.users, rep.items, rep.interactions = len(u_ids), len(i_ids), len(uu)
    rep.train, rep.valid, rep.test = (int((label == s).sum()) for s in (0, 1, 2))
    rep.users_under_10 = int(((deg >= 3) & (deg < 10)).sum())
    rep.users_train_only = int((deg < 3).sum())

    out.mkdir(parents=True, exist_ok=True)
    name = out.name
    order = np.lexsort((ii, uu))
    _write_tsv(out / f"{name}.inter", ["userID", "itemID", "rating", "timestamp", "x_label"],
               ([int(uu[j]), int(ii[j]), _num(r_k[j]), _num(t_k[j]), int(label[j])] for j in order))
    _write_tsv(out / "u_id_mapping.csv", ["user_id", "userID"], ([x, n] for n, x in enumerate(u_ids)))
    _write_tsv(out / "i_id_mapping.csv", ["item_id", "itemID"], ([x, n] for n, x in enumerate(i_ids)))
    if cold is not None:
        cdir = out / COLD_DIR
        cdir.mkdir(exist_ok=True)
        corder = np.lexsort((ci, cu))
        _write_tsv(cdir / "cold.inter", ["userID", "itemID", "rating", "timestamp", "x_label"],
                   ([int(cu[j]), int(ci[j]), _num(cr[j]), _num(ct[j]), int(cold["cold_split"][ci[j]])] for j in corder))
        _write_tsv(cdir / "i_id_mapping.csv", ["item_id", "itemID"], ([x, n] for n, x in enumerate(cold_ids)))

    if items is not None:
        ipath = Path(items)
        iheader, irows = read_table(ipath)
        given = items_id_col if items_id_col is not None else (icol if icol in iheader else None)
        idc = _pick(iheader, given, ITEM_COLUMNS, "item", ipath, True)
        meta: dict[int, list[str]] = {}
        unused = 0
        others = [h for h in iheader if h != idc]
        cmeta: dict[int, list[str]] = {}
        for n, row in irows:
            key = row.get(idc, "").strip()
            target, index = (meta, i_map) if key in i_map else (cmeta, cold_map) if cold and key in cold_map else (None, None)
            if target is None:
                unused += 1
                continue
            if index[key] in target:
                raise DataError(ipath, f"item {key!r} has two rows", line=n, field=idc)
            target[index[key]] = [" ".join(row.get(h, "").split()) for h in others]
        rep.item_table_rows, rep.item_table_rows_unused = len(irows), unused
        rep.items_without_metadata = len(i_ids) - len(meta)
        _write_tsv(out / "items.tsv", ["itemID"] + [_norm(h) for h in others],
                   ([n] + meta.get(n, [""] * len(others)) for n in range(len(i_ids))))
        if cold is not None:
            _write_tsv(out / COLD_DIR / "items.tsv", ["itemID"] + [_norm(h) for h in others],
                       ([n] + cmeta.get(n, [""] * len(others)) for n in range(len(cold_ids))))

    tmp = out / "prepare_report.json.tmp"
    tmp.write_text(json.dumps(asdict(rep), indent=2) + "\n")
    tmp.replace(out / "prepare_report.json")
    return rep


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))
