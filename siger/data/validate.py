"""Every check on input files. Each failure raises :class:`DataError` naming the file, and the
line or field where that makes sense. Nothing is dropped silently: a bad row is an error."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REQUIRED_COLUMNS = ("userID", "itemID", "x_label")
SPLITS = {0: "train", 1: "valid", 2: "test"}


class DataError(Exception):
    """Bad input data. ``str(err)`` reads ``file:line: field 'x': message``."""

    def __init__(self, path: str | Path, message: str, line: int | None = None, field: str | None = None):
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path + (f":{line}" if line is not None else "")
        what = f"field '{field}': " if field is not None else ""
        super().__init__(f"{where}: {what}{message}")


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _int_column(values: list[str], name: str, path: Path) -> np.ndarray:
    """Parse a column of integer strings; on failure name the first bad line (header = line 1)."""
    try:
        return np.array(values, dtype=np.int64)
    except (ValueError, OverflowError):
        pass
    for row, v in enumerate(values):
        try:
            int(v)
        except ValueError:
            raise DataError(path, f"expected an integer, got {v!r}", line=row + 2, field=name) from None
    raise DataError(path, "cannot parse integer column", field=name)  # pragma: no cover


def read_inter(path: str | Path, all_users: bool = True, need_train: bool = True,
               all_items: bool = True) -> dict[str, np.ndarray]:
    """Read and check an MMRec ``.inter`` file (tab-separated, header line).

    ``all_users=False`` / ``need_train=False`` are for a cold-start dataset's ``cold/cold.inter``,
    which holds some of the users and no train rows; ``all_items=False`` (with ``all_users=False``)
    for a cold-user dataset's ``cold_users.inter``, the histories of some users over some items.

    Returns ``{'user': int64 [n], 'item': int64 [n], 'x_label': int64 [n]}`` plus ``rating`` and
    ``timestamp`` (float64) when present. Checks: the header has userID, itemID and x_label; each
    row has as many fields as the header; ids are non-negative integers; x_label is 0, 1 or 2; no
    (user, item) pair occurs twice; the train split is not empty.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    with _open_text(path) as fh:
        text = fh.read()
    lines = text.splitlines()
    if not lines:
        raise DataError(path, "empty file (expected a header line)", line=1)
    header = lines[0].rstrip("\r").split("\t")
    for col in REQUIRED_COLUMNS:
        if col not in header:
            raise DataError(
                path, f"missing column '{col}' in header {header} (tab-separated)", line=1, field=col
            )
    idx = {c: header.index(c) for c in header}
    width = len(header)
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            raise DataError(path, "empty line", line=n)
        parts = line.rstrip("\r").split("\t")
        if len(parts) != width:
            raise DataError(path, f"expected {width} tab-separated fields, got {len(parts)}", line=n)
        rows.append(parts)
    if not rows:
        raise DataError(path, "no interaction rows after the header", line=2)
    cols = list(zip(*rows))
    out = {
        "user": _int_column(list(cols[idx["userID"]]), "userID", path),
        "item": _int_column(list(cols[idx["itemID"]]), "itemID", path),
        "x_label": _int_column(list(cols[idx["x_label"]]), "x_label", path),
    }
    for name, key in (("rating", "rating"), ("timestamp", "timestamp")):
        if name in idx:
            try:
                out[key] = np.array(cols[idx[name]], dtype=np.float64)
            except ValueError:
                for r, v in enumerate(cols[idx[name]]):
                    try:
                        float(v)
                    except ValueError:
                        raise DataError(path, f"expected a number, got {v!r}", line=r + 2, field=name) from None
    for name, col in (("userID", out["user"]), ("itemID", out["item"])):
        neg = np.flatnonzero(col < 0)
        if len(neg):
            raise DataError(path, f"negative id {col[neg[0]]}", line=int(neg[0]) + 2, field=name)
    bad = np.flatnonzero(~np.isin(out["x_label"], list(SPLITS)))
    if len(bad):
        raise DataError(
            path,
            f"x_label must be 0 (train), 1 (valid) or 2 (test), got {out['x_label'][bad[0]]}",
            line=int(bad[0]) + 2,
            field="x_label",
        )
    if all_users:
        _check_contiguous(out["user"], "userID", path)
    if all_items:
        _check_contiguous(out["item"], "itemID", path)
    n_items = int(out["item"].max()) + 1
    keys = out["user"] * n_items + out["item"]
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1])
    if len(dup):
        first, second = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
        raise DataError(
            path,
            f"duplicate (user, item) pair ({out['user'][first]}, {out['item'][first]}) "
            f"also on line {first + 2}",
            line=second + 2,
        )
    if need_train and not np.any(out["x_label"] == 0):
        raise DataError(path, "the train split (x_label == 0) is empty", field="x_label")
    return out


def _check_contiguous(ids: np.ndarray, name: str, path: Path) -> None:
    """Ids must be exactly 0..max: a gap means a mis-mapped file."""
    n = int(ids.max()) + 1
    present = np.zeros(n, dtype=bool)
    present[ids] = True
    missing = np.flatnonzero(~present)
    if len(missing):
        raise DataError(
            path,
            f"ids are not contiguous: {len(missing)} id(s) in 0..{n - 1} never occur "
            f"(first missing: {missing[0]}); ids must be 0-based and contiguous",
            field=name,
        )


def check_features(path: str | Path, feats: np.ndarray, n_items: int) -> np.ndarray:
    """A feature matrix must be 2-D, numeric, finite and have one row per item."""
    path = Path(path)
    if feats.ndim != 2:
        raise DataError(path, f"expected a 2-D array [n_items, dim], got shape {feats.shape}")
    if not np.issubdtype(feats.dtype, np.number):
        raise DataError(path, f"expected a numeric array, got dtype {feats.dtype}")
    if feats.shape[0] != n_items:
        raise DataError(
            path, f"feature rows ({feats.shape[0]}) != n_items ({n_items}, from the .inter file)"
        )
    feats = np.asarray(feats, dtype=np.float32)
    finite = np.isfinite(feats)
    if not finite.all():
        r, c = np.argwhere(~finite)[0]
        raise DataError(path, f"non-finite value {feats[r, c]} at row {r}, column {c} (NaN/Inf features)")
    return feats


def check_graph(path: str | Path, graph: sp.spmatrix, n_items: int) -> sp.csr_matrix:
    """A provided item graph must be [n_items, n_items] with finite weights."""
    path = Path(path)
    if graph.shape != (n_items, n_items):
        raise DataError(path, f"graph shape {graph.shape} != ({n_items}, {n_items})")
    g = sp.csr_matrix(graph, dtype=np.float32)
    if not np.isfinite(g.data).all():
        raise DataError(path, "graph has NaN/Inf weights")
    return g
