"""benchmarks/diagnose.py: the geometry and gradient diagnostics against hand-computed cases."""

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchmarks.diagnose import centroid_cosine, grad_norms, popularity_alignment, popularity_scores


def test_centroid_cosine_hand_cases():
    assert centroid_cosine(torch.tensor([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(1 / math.sqrt(2))
    assert centroid_cosine(torch.tensor([[2.0, 1.0], [4.0, 2.0]])) == pytest.approx(1.0)
    # three rows at 0, 120 and 240 degrees plus a small bias: the centroid is the bias direction
    rows = torch.tensor([[1.0, 0.0], [-0.5, math.sqrt(3) / 2], [-0.5, -math.sqrt(3) / 2]]) + torch.tensor([0.1, 0.0])
    n = rows / rows.norm(dim=1, keepdim=True)
    assert centroid_cosine(rows) == pytest.approx(float(n[:, 0].mean()), abs=1e-6)


def test_popularity_scores_and_alignment():
    # 3 users x 4 items; train counts per item = [3, 1, 2, 0]
    train = sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 0, 1, 0], [1, 0, 0, 0]], dtype=np.float32))
    u, i = popularity_scores(train)
    assert u.shape == (3, 1) and torch.equal(i[:, 0], torch.tensor([3.0, 1.0, 2.0, 0.0]))
    assert popularity_alignment(u, i, train) == pytest.approx(1.0)
    assert popularity_alignment(u, -i, train) == pytest.approx(-1.0)
    # mean user (1, 1): mean scores 1, 3, 2, 2.5 -> ranks 1, 4, 2, 3; popularity ranks 4, 2, 3, 1;
    # sum d^2 = 9 + 4 + 1 + 4 = 18, rho = 1 - 6 * 18 / (4 * 15) = -0.8
    users = torch.tensor([[1.0, 0.0], [1.0, 2.0]])
    items = torch.tensor([[1.0, 0.0], [1.0, 2.0], [0.0, 2.0], [2.0, 0.5]])
    assert popularity_alignment(users, items, train) == pytest.approx(-0.8)


def test_grad_norms_per_term():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 2.0]))

    class Toy:
        def loss(self, users, pos, neg):
            return {"square": (w**2).sum(), "linear": 3 * w.sum()}

    out = grad_norms(Toy(), None, None, None, {"w": w})
    assert out["square"]["value"] == pytest.approx(9.0)
    assert out["square"]["w"] == pytest.approx(6.0)  # ||2w|| = 2 * 3
    assert out["linear"]["w"] == pytest.approx(3 * math.sqrt(3))


def test_parse_variant():
    from benchmarks.diagnose import parse_variant

    assert parse_variant("default") == {}
    assert parse_variant("lambda_a=0,detach-anchor=true") == {"lambda_a": "0", "detach_anchor": "true"}
    for bad in ("lambda_a", "lambda_a=", "=1", "lambda_a=0,,x=1"):
        with pytest.raises(SystemExit, match="probe variant"):
            parse_variant(bad)


def test_probe_runs_and_reports_each_epoch(capsys):
    from benchmarks.diagnose import main

    main(["probe", "--model", "LightGCN", "--dataset", "tiktok", "--epochs", "1",
          "default", "n_layers=1"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["variant"], x["epoch"]) for x in lines] == [("default", 0), ("n_layers=1", 0)]
    assert all(0.0 < x["bpr"] < 0.7 and 0.0 <= x["valid_recall@20"] <= 1.0 for x in lines)


def test_edge_overlap_counts_off_diagonal_edges_by_hand():
    from benchmarks.diagnose import edge_overlap

    # a: 0-1, 1-0, 1-2 and a self-loop on 2; b: 1-0, 2-1, 2-2 and an explicit zero at 1-2
    a = sp.csr_matrix(np.array([[0, 1, 0], [2, 0, 3], [0, 0, 5]], dtype=np.float32))
    b = sp.coo_matrix((np.array([4.0, 1.0, 1.0, 0.0]), (np.array([1, 2, 2, 1]), np.array([0, 1, 2, 2]))), shape=(3, 3))
    assert edge_overlap(a, b) == (3, 1)  # only 1-0 is shared: the self-loop and b's zero do not count
    assert edge_overlap(b, a) == (2, 1)
