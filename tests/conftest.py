"""Shared fixtures: tiny MMRec-layout datasets written to tmp folders, and the real data paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# 4 users x 6 items; every user has train, valid and test items.
TINY_ROWS = [
    (0, 0, 0), (0, 1, 0), (0, 2, 0), (0, 3, 1), (0, 4, 2),
    (1, 1, 0), (1, 2, 0), (1, 5, 0), (1, 0, 1), (1, 3, 2),
    (2, 2, 0), (2, 3, 0), (2, 4, 0), (2, 5, 1), (2, 1, 2),
    (3, 0, 0), (3, 4, 0), (3, 5, 0), (3, 2, 1), (3, 3, 2),
]


def write_inter(path: Path, rows, header="userID\titemID\trating\ttimestamp\tx_label") -> Path:
    lines = [header] + [f"{u}\t{i}\t1.0\t0\t{x}" for u, i, x in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tiny_dir(tmp_path) -> Path:
    """DIR with DIR/tiny/tiny.inter and a 3-d image feature."""
    d = tmp_path / "tiny"
    d.mkdir()
    write_inter(d / "tiny.inter", TINY_ROWS)
    rng = np.random.default_rng(0)
    np.save(d / "image_feat.npy", rng.normal(size=(6, 3)).astype(np.float32))
    return tmp_path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGER_CACHE_DIR", str(tmp_path / "cache"))


def require_shared(name: str) -> Path:
    p = SHARED_DATA / name
    if not p.is_dir():
        pytest.skip(f"{p} not present")
    return SHARED_DATA


def write_slice(data, root: Path, name: str, n_users: int) -> Path:
    """Write the first ``n_users`` users of a real dataset (their items remapped, features and
    provided graphs sliced) to ``root/name`` in the MMRec layout; returns ``root``."""
    import scipy.sparse as sp

    d = root / name
    d.mkdir(parents=True)
    rows = []
    for lab, pairs in enumerate((data.train, data.valid, data.test)):
        keep = pairs[pairs[:, 0] < n_users]
        rows += [(int(u), int(i), lab) for u, i in keep]
    items = np.unique([i for _, i, _ in rows])
    remap = {int(i): n for n, i in enumerate(items)}
    users = np.unique([u for u, _, _ in rows])
    uremap = {int(u): n for n, u in enumerate(users)}
    write_inter(d / f"{name}.inter", [(uremap[u], remap[i], x) for u, i, x in rows])
    for m, f in data.features.items():
        np.save(d / f"{m}_feat.npy", f[items])
    for m, gs in data.graphs.items():
        for k, g in gs.items():
            sp.save_npz(d / f"{m}_adj_{k}.npz", sp.csr_matrix(g[items][:, items]))
    return root


def write_planted(root: Path, name: str = "planted", seed: int = 0) -> Path:
    """60 users in two tastes: users 0-29 only ever take items 0-19, users 30-59 items 20-39 (each
    user 10 items: 8 train, 1 valid, 1 test), so a model that learns ranks well and one that does
    not (a tiny learning rate) ranks at random."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(60):
        lo = 0 if u < 30 else 20
        its = rng.choice(np.arange(lo, lo + 20), size=10, replace=False)
        rows += [(u, int(i), 0 if j < 8 else j - 7) for j, i in enumerate(its)]
    d = root / name
    d.mkdir(parents=True)
    write_inter(d / f"{name}.inter", rows)
    np.save(d / "image_feat.npy", rng.normal(size=(40, 4)).astype(np.float32))
    return root


@pytest.fixture
def planted_dir(tmp_path) -> Path:
    """DIR with DIR/planted (see :func:`write_planted`)."""
    return write_planted(tmp_path / "data")


def peak_rss_50k_items(tmp_path: Path, module: str, cls: str) -> float:
    """Peak RSS (MB) of a fresh process that builds model ``cls`` of ``module`` on a synthetic
    catalogue of 50k items (20k users), takes one training step and runs a full evaluation."""
    import json
    import subprocess
    import sys
    import textwrap

    from tests.test_siger import _synthetic

    root = _synthetic(tmp_path, 20000, 50000, 10, 32)
    script = textwrap.dedent(f"""
        import json, resource, torch
        from siger.data.dataset import load_dataset
        from siger.data.graphs import GraphStore
        from siger.eval.ranking import evaluate
        from {module} import {cls} as M
        data = load_dataset("syn", {str(root)!r})
        model = M(data, M.Config(), GraphStore(data, False))
        b = [torch.from_numpy(data.train[:2048, 0]), torch.from_numpy(data.train[:2048, 1]),
             torch.from_numpy(data.train[2048:4096, 1])]
        sum(model.loss(*b).values()).backward()
        u, i = model.embeddings()
        evaluate(u, i, data.train_matrix, data.matrix("test"), [20])
        print(json.dumps({{"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def fit_tiny_with_authors_defaults(model: str, tiny_dir: Path, run_dir: Path):
    """Three epochs of ``model`` at its registered defaults on the tiny dataset (knn_k 3, batch 4,
    no warm-up: the tiny valid split would hold every epoch): ``(config, trainer, result)``, after
    checking that training and evaluation finished with a valid score and a finite test Recall@20."""
    from siger.config import build_config
    from siger.train.trainer import Trainer, load_data

    cfg = build_config(model, "tiny", {"data_dir": str(tiny_dir), "epochs": 3, "batch_size": 4, "knn_k": 3,
                                       "topk": [5, 10, 20], "progress": False, "warmup_epochs": 0, "warmup_steps": 0})
    trainer = Trainer(cfg, load_data(cfg), run_dir, log=lambda s: None)
    res = trainer.fit()
    assert res["valid"] is not None and np.isfinite(res["test"]["recall@20"])
    return cfg, trainer, res
