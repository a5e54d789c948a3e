"""Recommendations: hand-checked ranking, seen-item exclusion, cold users, the CLI, the Python
API and the real HTTP server on a loopback port."""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from siger.cli import main
from siger.serve.recommender import RunRecommender, UnknownUserError
from tests.conftest import TINY_ROWS, write_inter


def _hand_rec():
    # 3 users, 4 items, 1-d embeddings: score(u, i) = U[u] * V[i]
    U = torch.tensor([[1.0], [-1.0], [2.0]])
    V = torch.tensor([[0.5], [3.0], [-2.0], [1.0]])
    seen = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    pop = np.array([5.0, 9.0, 1.0, 7.0])
    return RunRecommender(U, V, seen, pop, ["a", "b", "c"], ["w", "x", "y", "z"], ["W", "X", "Y", "Z"],
                          history=np.array([3, 2, 0]))


def test_ranking_by_hand_excludes_seen_and_flags_cold_users():
    rec = _hand_rec()
    a, b, c = rec.recommend(["a", "b", "c"], k=2)
    # a: scores w .5, x 3 (seen), y -2, z 1 -> z, w
    assert [it["item"] for it in a["items"]] == ["z", "w"] and a["items"][0]["score"] == 1.0
    assert a["items"][0]["title"] == "Z" and a["fallback"] is None
    # b: scores -.5, -3, 2, -1 -> y, w
    assert [it["item"] for it in b["items"]] == ["y", "w"]
    # c has no training history: popularity x (9), z (7)
    assert c["fallback"] == "popularity" and [it["item"] for it in c["items"]] == ["x", "z"]
    # no model score for fallback items (raw counts next to model scores misled); their train count instead
    assert [(it["score"], it["popularity"]) for it in c["items"]] == [(None, 9), (None, 7)]
    assert all("popularity" not in it for it in a["items"])
    # k larger than the unseen items: only unseen ones come back
    assert [it["item"] for it in rec.recommend(["a"], k=10)[0]["items"]] == ["z", "w", "y"]
    with pytest.raises(UnknownUserError, match="'q'"):
        rec.recommend(["q"], 2)
    with pytest.raises(ValueError):
        rec.recommend(["a"], 0)


def test_export_all_writes_every_user(tmp_path):
    rows = _hand_rec().export_all(tmp_path / "recs.tsv", k=2)
    lines = (tmp_path / "recs.tsv").read_text().splitlines()
    assert rows == 6 and len(lines) == 7
    assert lines[0] == "user\trank\titem\tscore\ttitle\tfallback"
    assert lines[1].split("\t")[:3] == ["a", "1", "z"] and lines[-1].endswith("popularity")


@pytest.fixture
def trained_run(tmp_path):
    """A LightGCN run on a tiny dataset with original ids, titles and one cold user (u4)."""
    d = tmp_path / "data" / "shop"
    d.mkdir(parents=True)
    rows = TINY_ROWS + [(4, 0, 1), (4, 1, 2)]  # user 4: no train interaction
    write_inter(d / "shop.inter", rows)
    (d / "u_id_mapping.csv").write_text("user_id\tuserID\n" + "".join(f"u{i}\t{i}\n" for i in range(5)))
    (d / "i_id_mapping.csv").write_text("item_id\titemID\n" + "".join(f"sku{i}\t{i}\n" for i in range(6)))
    (d / "items.tsv").write_text("itemID\ttitle\n" + "".join(f"{i}\tThing {i}\n" for i in range(6)))
    run = tmp_path / "run"
    assert main(["train", "--model", "LightGCN", "--dataset", "shop", "--data-dir", str(tmp_path / "data"),
                 "--out", str(run), "--epochs", "2", "--batch_size", "4", "--progress", "false",
                 "--topk", "1,2", "--valid_metric", "recall@2"]) == 0
    return run


def test_load_run_python_api_and_cli(trained_run, tmp_path, capsys):
    import siger

    rec = siger.load_run(trained_run)
    out = rec.recommend(["u0", "u4"], k=3)
    seen_u0 = {f"sku{i}" for u, i, _ in TINY_ROWS if u == 0}
    assert len(out[0]["items"]) == 1 and not seen_u0 & {it["item"] for it in out[0]["items"]}  # 5 of 6 seen
    assert out[0]["items"][0]["title"].startswith("Thing ")
    assert out[1]["fallback"] == "popularity"
    # u4 saw sku0 and sku1 in valid/test: never recommended
    assert not {"sku0", "sku1"} & {it["item"] for it in out[1]["items"]}
    capsys.readouterr()
    assert main(["recommend", "--run", str(trained_run), "--users", "u1,u4", "--k", "2"]) == 0
    text = capsys.readouterr().out
    assert "user u1" in text and "Thing" in text and "user u4  (popularity fallback" in text
    assert main(["recommend", "--run", str(trained_run), "--users", "nobody"]) == 2
    assert "unknown user 'nobody'" in capsys.readouterr().err
    assert main(["recommend", "--run", str(trained_run), "--all", "--out", str(tmp_path / "all.tsv"), "--k", "2"]) == 0
    # each warm user has seen 5 of the 6 items (1 row each); cold u4 gets k=2 popular items
    assert len((tmp_path / "all.tsv").read_text().splitlines()) == 1 + 4 * 1 + 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(trained_run):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "siger", "serve", "--run", str(trained_run), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
        if proc.poll() is not None:
            pytest.fail(f"server exited: {proc.stdout.read()}")
    else:
        proc.kill()
        pytest.fail("server did not start in 60 s")
    yield base
    proc.terminate()
    proc.wait(10)


def test_http_api(server):
    import httpx

    h = httpx.get(server + "/health").json()
    assert h == {"status": "ok", "model": "LightGCN", "dataset": "shop", "users": 5, "items": 6}
    r = httpx.get(server + "/recommend/u2", params={"k": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == "u2" and len(body["items"]) == 1 and body["fallback"] is None  # 5 of 6 seen
    assert set(body["items"][0]) == {"item", "score", "title"}
    fb = httpx.get(server + "/recommend/u4").json()
    assert fb["fallback"] == "popularity" and fb["items"][0]["score"] is None and fb["items"][0]["popularity"] > 0
    r = httpx.get(server + "/recommend/ghost")
    assert r.status_code == 404 and "ghost" in r.json()["detail"]
    assert httpx.get(server + "/recommend/u1", params={"k": 0}).status_code == 422
    assert httpx.get(server + "/recommend/u1", params={"k": "ten"}).status_code == 422
    r = httpx.post(server + "/recommend", json={"users": ["u3", "u1"], "k": 1})
    assert r.status_code == 200 and [x["user"] for x in r.json()] == ["u3", "u1"]
    assert httpx.post(server + "/recommend", json={"users": ["u3", "zz"]}).status_code == 404
    assert httpx.post(server + "/recommend", json={"users": [], "k": 1}).status_code == 422
    assert httpx.get(server + "/docs").status_code == 200
    spec = httpx.get(server + "/openapi.json").json()
    assert "/recommend/{user_id}" in spec["paths"]


def test_bounded_load_has_no_errors(server):
    from benchmarks.serve_load import run_load

    stats = run_load(server, users=["u0", "u1", "u2", "u3"], n_requests=200, concurrency=8, k=3)
    assert stats["errors"] == 0 and stats["requests"] == 200 and stats["p99_ms"] >= stats["p50_ms"] > 0
    json.dumps(stats)


def test_new_users_from_a_history_python_and_cli(trained_run, capsys):
    import siger
    from siger.serve.recommender import HistoryError

    rec = siger.load_run(trained_run)
    r = rec.recommend_history(["sku0", "sku2"], k=3)
    assert r["fallback"] is None and len(r["items"]) == 3
    assert not {"sku0", "sku2"} & {it["item"] for it in r["items"]}  # the history is not recommended back
    assert rec.recommend_history([], k=2)["fallback"] == "popularity"
    with pytest.raises(HistoryError, match="unknown item ids \\['nope'\\]") as e:
        rec.recommend_history(["sku0", "nope"])
    assert e.value.unknown == ["nope"]
    with pytest.raises(HistoryError, match="at most"):
        rec.recommend_history(["sku0"] * 10_000)
    # a trained user folded in from its train items with its own layer-0 vector is the trained user
    u = rec.index_of("u1")
    again = rec._fold([rec.train_items(u)], rec.free[u:u + 1])[0]
    assert torch.allclose(again, rec.user_emb[u], atol=1e-6)
    # appending interactions: the items are not recommended to the user again
    before = {it["item"] for it in rec.recommend(["u2"], k=6)[0]["items"]}
    assert rec.append_history("u2", sorted(before)) > 0
    assert rec.recommend(["u2"], k=6)[0]["items"] == []  # u2 has now seen every item
    capsys.readouterr()
    assert main(["recommend", "--run", str(trained_run), "--history", "sku0,sku2", "--k", "2"]) == 0
    assert "user (new user)" in capsys.readouterr().out
    assert main(["recommend", "--run", str(trained_run), "--history", "sku0,ghost"]) == 2
    assert "ghost" in capsys.readouterr().err


def test_http_new_users_and_bad_input(server):
    import httpx

    r = httpx.post(server + "/recommend", json={"history": ["sku0", "sku3"], "k": 2})
    assert r.status_code == 200 and r.json()["fallback"] is None and len(r.json()["items"]) == 2
    r = httpx.post(server + "/recommend", json={"history": ["sku0", "nope", "gone"]})
    assert r.status_code == 422 and "nope" in r.json()["detail"] and "gone" in r.json()["detail"]
    assert httpx.post(server + "/recommend", json={"history": []}).json()["fallback"] == "popularity"
    assert httpx.post(server + "/recommend", json={"history": ["sku0"] * 10_000}).status_code == 422
    assert httpx.post(server + "/recommend", json={"history": ["sku0"], "k": 0}).status_code == 422
    assert httpx.post(server + "/recommend", json={"history": ["sku0"], "users": ["u1"]}).status_code == 422
    r = httpx.post(server + "/recommend", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = httpx.post(server + "/users/u2/history", json={"items": ["sku5"]})
    assert r.status_code == 200 and r.json()["history"] >= 1
    assert "sku5" not in {it["item"] for it in httpx.get(server + "/recommend/u2", params={"k": 6}).json()["items"]}
    assert httpx.post(server + "/users/ghost/history", json={"items": ["sku1"]}).status_code == 404
    assert httpx.post(server + "/users/u2/history", json={"items": ["zzz"]}).status_code == 422
    assert httpx.get(server + "/health").status_code == 200  # still serving after every bad request
