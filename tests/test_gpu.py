"""The GPU path (`--device cuda`): the same training and evaluation as on the CPU.

Skipped where no CUDA device is usable (CI, the 2-core development machine); run them on a GPU
machine with `python -m pytest -q tests/test_gpu.py`.
"""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from siger.config import build_config
from siger.data.dataset import load_dataset
from siger.eval.ranking import evaluate
from siger.train.trainer import Trainer, load_data, load_model
from tests.conftest import write_slice

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")

FAST = {"batch_size": "512", "patience": "100", "progress": "false", "topk": "10,20"}


@pytest.fixture(scope="module")
def tiktok_slice(tmp_path_factory):
    return write_slice(load_dataset("tiktok"), tmp_path_factory.mktemp("slice"), "tks", 150)


def _fit(root, model, out, device, epochs=2, resume=False, **kw):
    ov = dict(FAST, data_dir=str(root), epochs=str(epochs), device=device, **{k: str(v) for k, v in kw.items()})
    cfg = build_config(model, "tks", ov)
    res = Trainer(cfg, load_data(cfg), out, log=lambda s: None).fit(resume=resume)
    return res, [json.loads(x)["loss"] for x in (out / "log.jsonl").read_text().splitlines()]


def test_siger_on_cuda_follows_the_cpu_run(tiktok_slice, tmp_path):
    """No perturbation (its noise is drawn on the device): same init, same batches, same losses."""
    _, cpu = _fit(tiktok_slice, "SIGER", tmp_path / "cpu", "cpu", lambda_p=0)
    _, gpu = _fit(tiktok_slice, "SIGER", tmp_path / "gpu", "cuda", lambda_p=0)
    for a, b in zip(cpu, gpu):
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-6), k


@pytest.mark.parametrize("model", ["LightGCN", "VBPR", "FREEDOM", "MGCN", "BM3", "LGMRec", "SIGER"])
def test_every_model_trains_on_cuda(tiktok_slice, tmp_path, model):
    res, losses = _fit(tiktok_slice, model, tmp_path / "run", "cuda")
    assert all(np.isfinite(sum(x.values())) for x in losses)
    assert 0.0 <= res["test"]["recall@20"] <= 1.0
    m, cfg, _ = load_model(tmp_path / "run")  # the run's device is usable here: it stays on it
    assert next(m.parameters()).device.type == "cuda"


def test_resume_on_cuda_continues_exactly(tiktok_slice, tmp_path):
    """The perturbation noise comes from the CUDA generator, whose state the checkpoint keeps."""
    _, full = _fit(tiktok_slice, "SIGER", tmp_path / "full", "cuda", epochs=4)
    _fit(tiktok_slice, "SIGER", tmp_path / "part", "cuda", epochs=2)
    _, resumed = _fit(tiktok_slice, "SIGER", tmp_path / "part", "cuda", epochs=4, resume=True)
    assert len(resumed) == 4
    for a, b in zip(full, resumed):
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-7), k


def test_evaluation_on_cuda_equals_cpu():
    """Continuous random scores (no near-ties): the device must not change any ranking."""
    rng = np.random.default_rng(0)
    nu, ni = 300, 200
    u = torch.from_numpy(rng.normal(size=(nu, 8)).astype(np.float32))
    i = torch.from_numpy(rng.normal(size=(ni, 8)).astype(np.float32))
    train = sp.random(nu, ni, density=0.05, format="csr", random_state=1)
    train.data[:] = 1
    target = sp.random(nu, ni, density=0.02, format="csr", random_state=2)
    target.data[:] = 1
    target = target - target.multiply(train)
    target.eliminate_zeros()
    cpu = evaluate(u, i, train, target, [5, 10, 20], chunk=64)
    gpu = evaluate(u.cuda(), i.cuda(), train, target, [5, 10, 20], chunk=64)
    assert gpu == pytest.approx(cpu, abs=1e-12)
