"""Load a dataset in the MMRec layout into a validated :class:`InteractionData`.

Layout of ``DIR/<name>/``:

- ``<name>.inter`` (or ``.inter.gz``): tab-separated ``userID itemID rating timestamp x_label``;
- ``<modality>_feat.npy`` (or ``.npy.gz``): float features ``[n_items, dim]``;
- optional precomputed item graphs ``<modality>_adj_<k>*.npz`` (scipy CSR, already normalised):
  a modality that has only a graph gets a learnable item input in the models;
- optional ``i_id_mapping.csv`` / ``u_id_mapping.csv`` (original id -> contiguous id) and
  ``item_text.tsv`` (itemID, text), used for display only.

``mm_adj_*.npz`` (FREEDOM's mixed graph) is kept apart in ``extra_graphs``: it is not a modality.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from siger.data.validate import DataError, check_features, check_graph, read_inter
from siger.data.variants import read_variant

BUNDLED_DIR = Path(__file__).parent / "bundled"
_GRAPH_RE = re.compile(r"^(?P<mod>[A-Za-z0-9]+)_adj_(?P<k>\d+)(?P<rest>.*)\.npz$")


@dataclass
class InteractionData:
    """A validated dataset: interactions split by ``x_label`` plus per-modality item inputs.

    Attributes:
        name: dataset name.
        path: folder it was read from.
        n_users, n_items: counts (ids are ``0..n-1``).
        train, valid, test: int64 arrays ``[n, 2]`` of (user, item) pairs.
        features: modality -> float32 ``[n_items, dim]`` raw features.
        graphs: modality -> {k: normalised CSR ``[n_items, n_items]``} provided kNN graphs.
        extra_graphs: other provided item graphs by file stem (e.g. FREEDOM's ``mm_adj_...``).
        graph_noise: ``{p, seed}`` of a derived dataset whose semantic kNN graphs are corrupted
            (``variant.json``, :mod:`siger.data.variants`); None for real data.
    """

    name: str
    path: Path
    n_users: int
    n_items: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    graphs: dict[str, dict[int, sp.csr_matrix]] = field(default_factory=dict)
    extra_graphs: dict[str, sp.csr_matrix] = field(default_factory=dict)
    graph_noise: dict | None = None  # {p, seed}: a variant's kNN corruption (siger.data.variants)

    @property
    def modalities(self) -> list[str]:
        """Modalities with raw features or a provided graph, sorted by name."""
        return sorted(set(self.features) | set(self.graphs))

    def split(self, name: str) -> np.ndarray:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    def matrix(self, split: str) -> sp.csr_matrix:
        """Binary user-item matrix ``[n_users, n_items]`` of one split (CSR, sorted indices)."""
        pairs = self.split(split)
        m = sp.csr_matrix(
            (np.ones(len(pairs), dtype=np.float32), (pairs[:, 0], pairs[:, 1])),
            shape=(self.n_users, self.n_items),
        )
        m.sort_indices()
        return m

    @cached_property
    def train_matrix(self) -> sp.csr_matrix:
        return self.matrix("train")

    def select_modalities(self, names: list[str] | None) -> "InteractionData":
        """Keep only ``names`` (None keeps all); an unknown name is an error."""
        if names is None:
            return self
        unknown = [m for m in names if m not in self.modalities]
        if unknown:
            raise DataError(self.path, f"unknown modalities {unknown}; this dataset has {self.modalities}",
                            field="modalities")
        return InteractionData(
            self.name, self.path, self.n_users, self.n_items, self.train, self.valid, self.test,
            {m: f for m, f in self.features.items() if m in names},
            {m: g for m, g in self.graphs.items() if m in names},
            self.extra_graphs, self.graph_noise,
        )

    def summary(self) -> dict[str, object]:
        return {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
            "modalities": {
                m: (f"features {self.features[m].shape[1]}-d" if m in self.features else "graph only")
                for m in self.modalities
            },
        }


def resolve_dataset_dir(name: str, data_dir: str | Path | None = None) -> Path:
    """``data_dir/name`` if given; else ``$SIGER_DATA_DIR/name``; else the bundled copy."""
    if data_dir is None:
        data_dir = os.environ.get("SIGER_DATA_DIR")
        if data_dir is None or not (Path(data_dir) / name).is_dir():
            if (BUNDLED_DIR / name).is_dir():
                return BUNDLED_DIR / name
            bundled = sorted(p.name for p in BUNDLED_DIR.iterdir() if p.is_dir())
            raise DataError(
                name, f"dataset '{name}' is not bundled (bundled: {bundled}); pass --data-dir DIR "
                f"holding DIR/{name}/{name}.inter"
            )
    d = Path(data_dir) / name
    if not d.is_dir():
        raise DataError(d, "dataset folder not found")
    return d


def _load_npy(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return np.load(fh, allow_pickle=False)
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(path, f"cannot read array: {e}") from None


def read_feature_files(paths: list[str | Path]) -> dict[str, np.ndarray]:
    """Feature files named ``<modality>_feat.npy`` -> {modality: array}; a badly named or unreadable
    file is a :class:`DataError` naming it."""
    out = {}
    for f in map(Path, paths):
        if not f.name.endswith("_feat.npy"):
            raise DataError(f, "feature files are named <modality>_feat.npy")
        out[f.name[: -len("_feat.npy")]] = _load_npy(f)
    return out


def load_dataset(name: str, data_dir: str | Path | None = None) -> InteractionData:
    """Read and validate ``<data_dir>/<name>`` (see the module docstring for the layout)."""
    d = resolve_dataset_dir(name, data_dir)
    inter_path = d / f"{name}.inter"
    if not inter_path.exists() and (d / f"{name}.inter.gz").exists():
        inter_path = d / f"{name}.inter.gz"
    cols = read_inter(inter_path)
    n_users = int(cols["user"].max()) + 1
    n_items = int(cols["item"].max()) + 1
    pairs = np.stack([cols["user"], cols["item"]], axis=1)
    lab = cols["x_label"]

    features: dict[str, np.ndarray] = {}
    for p in sorted(d.iterdir()):
        m = re.match(r"^(?P<mod>.+)_feat\.npy(\.gz)?$", p.name)
        if m:
            if m["mod"] in features:
                raise DataError(p, f"modality '{m['mod']}' has features in two files")
            features[m["mod"]] = check_features(p, _load_npy(p), n_items)

    graphs: dict[str, dict[int, sp.csr_matrix]] = {}
    extra: dict[str, sp.csr_matrix] = {}
    for p in sorted(d.glob("*.npz")):
        g = _GRAPH_RE.match(p.name)
        is_mixed = p.name.startswith("mm_adj_")  # e.g. FREEDOM's mm_adj_freedomdsp_10_1.npz
        if g is None and not is_mixed:
            continue
        try:
            mat = sp.load_npz(p)
        except (OSError, ValueError) as e:
            raise DataError(p, f"cannot read scipy sparse matrix: {e}") from None
        mat = check_graph(p, mat, n_items)
        if is_mixed:
            extra[p.stem] = mat
        else:
            graphs.setdefault(g["mod"], {})[int(g["k"])] = mat

    return InteractionData(
        name=name, path=d, n_users=n_users, n_items=n_items,
        train=pairs[lab == 0], valid=pairs[lab == 1], test=pairs[lab == 2],
        features=features, graphs=graphs, extra_graphs=extra, graph_noise=read_variant(d).get("graph_noise"),
    )


TITLE_COLUMNS = ("title", "movie_title", "name", "text")


def read_mapping(path: Path) -> list[str] | None:
    """Original ids indexed by contiguous id, from ``*_id_mapping.csv`` (tab-separated)."""
    if not path.exists():
        return None
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    ids: dict[int, str] = {}
    for n, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            raise ValueError(f"{path}:{n}: expected 'original_id<TAB>contiguous_id'")
        ids[int(row[1])] = row[0]
    return [ids[i] for i in range(len(ids))]


def read_titles(folder: Path, n_items: int) -> list[str] | None:
    """Display titles indexed by item id from ``items.tsv`` (or ``item_text.tsv``), if there."""
    for name in ("items.tsv", "item_text.tsv"):
        p = folder / name
        if not p.exists():
            continue
        with open(p, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t"))
        header = [h.split(":", 1)[0].lower() for h in rows[0]]
        col = next((header.index(c) for c in TITLE_COLUMNS if c in header), None)
        if col is None or "itemid" not in header:
            continue
        idc = header.index("itemid")
        titles = [""] * n_items
        for row in rows[1:]:
            i = int(row[idc])
            if 0 <= i < n_items:
                titles[i] = row[col]
        return titles
    return None


def write_mapping(path: Path, originals: list[str], orig_col: str, id_col: str) -> None:
    """``*_id_mapping.csv``: original id and contiguous id, tab-separated (read by :func:`read_mapping`)."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow([orig_col, id_col])
        w.writerows([o, n] for n, o in enumerate(originals))
