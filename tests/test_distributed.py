"""Data-parallel training and evaluation on torch.distributed (gloo, CPU processes)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from siger.data.dataset import load_dataset
from siger.distributed import rank_bounds
from siger.eval.ranking import evaluate
from tests.conftest import write_slice


def test_rank_bounds_cover_everything_once():
    for n in (0, 1, 7, 10):
        for world in (1, 2, 3, 4):
            b = [rank_bounds(n, r, world) for r in range(world)]
            assert b[0][0] == 0 and b[-1][1] == n and all(b[i][1] == b[i + 1][0] for i in range(world - 1))
            assert max(z - a for a, z in b) - min(z - a for a, z in b) <= 1


def _eval_worker(rank, world, init, out):
    import torch.distributed as dist

    from siger.distributed import DistContext

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    data = load_dataset("tiktok")
    g = torch.Generator().manual_seed(0)
    u, i = torch.randn(data.n_users, 16, generator=g), torch.randn(data.n_items, 16, generator=g)
    res = evaluate(u, i, data.train_matrix, data.matrix("test"), [5, 10, 20, 50], 1000, DistContext(rank, world))
    with open(f"{out}.{rank}", "w") as fh:
        json.dump(res, fh)
    dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 3])
def test_distributed_evaluation_equals_single_process_exactly(tmp_path, world):
    import torch.multiprocessing as mp

    out = str(tmp_path / "res")
    mp.spawn(_eval_worker, args=(world, f"file://{tmp_path / 'pg'}", out), nprocs=world, join=True)
    data = load_dataset("tiktok")
    g = torch.Generator().manual_seed(0)
    u, i = torch.randn(data.n_users, 16, generator=g), torch.randn(data.n_items, 16, generator=g)
    single = evaluate(u, i, data.train_matrix, data.matrix("test"), [5, 10, 20, 50], 1000)
    assert single["n_users"] % world != 0 or world == 2  # 6,125 users: uneven shares for world 3
    for r in range(world):
        with open(f"{out}.{r}") as fh:
            assert json.load(fh) == single


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "torchrun")),
                    reason="torchrun not installed")
def test_torchrun_two_processes_match_one_process(tmp_path):
    root = write_slice(load_dataset("tiktok"), tmp_path / "data", "tks", 150)
    args = ["--model", "LightGCN", "--dataset", "tks", "--data-dir", str(root), "--epochs", "3",
            "--batch_size", "512", "--progress", "false", "--num_threads", "1", "--topk", "10,20"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, "-m", "siger", "train", *args, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "siger", "train", *args,
                          "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
    la = [json.loads(x) for x in (tmp_path / "one" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert len(la) == len(lb) == 3
    for x, y in zip(la, lb):  # epoch means of the loss terms, several steps per epoch
        for k in x["loss"]:
            assert abs(x["loss"][k] - y["loss"][k]) < 1e-5, (k, x["loss"][k], y["loss"][k])
    ma = json.loads((tmp_path / "one" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert ma["best_epoch"] == mb["best_epoch"]
    for k, v in ma["test"].items():
        assert abs(v - mb["test"][k]) < 1e-6, k
    assert not any((tmp_path / "two").glob("*.rank1*"))  # only rank 0 writes
