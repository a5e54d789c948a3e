"""`siger compare` and grid search."""

import json

import pytest
import yaml

from siger.cli import main
from siger.config import ConfigError
from siger.search import split_grid

BASE = ["--epochs", "2", "--batch_size", "4", "--progress", "false", "--topk", "5,10,20",
        "--valid_metric", "recall@20"]


def test_split_grid_separates_scalar_lists_only():
    fixed, grid = split_grid("SIGER", "tiny", {"knn_k": "5,10", "topk": "10,20", "beta": "0.5",
                                               "perturb_mode": "modulus,uniform"})
    assert grid == {"knn_k": ["5", "10"], "perturb_mode": ["modulus", "uniform"]}
    assert fixed == {"topk": "10,20", "beta": "0.5"}
    with pytest.raises(ConfigError, match="repeated"):
        split_grid("SIGER", "tiny", {"knn_k": "5,5"})


@pytest.mark.parametrize("select_by", ["valid", "test"])
def test_grid_search_trains_every_combination_and_saves_the_winner(tiny_dir, tmp_path, capsys, select_by):
    out = tmp_path / "grid"
    argv = ["train", "--model", "LightGCN", "--dataset", "tiny", "--data-dir", str(tiny_dir), "--out", str(out),
            "--learning_rate", "0.05,0.001", "--n_layers", "1,2", "--select-by", select_by] + BASE
    assert main(argv) == 0
    res = json.loads((out / "search.json").read_text())
    assert len(res["rows"]) == 4 and res["select_by"] == select_by
    best = max(res["rows"], key=lambda r: r[select_by]["recall@20"])
    assert res["best"]["params"] == best["params"]
    saved = yaml.safe_load((out / "best_config.yaml").read_text())
    assert str(saved["train"]["learning_rate"]) == str(float(best["params"]["learning_rate"]))
    assert saved["model"]["n_layers"] == int(best["params"]["n_layers"])
    md = (out / "search.md").read_text()
    assert md.count("**best**") == 1 and ("seen the test set" in md) == (select_by == "test")
    # finished combinations are reused, not retrained
    stamp = (out / "grid").stat().st_mtime, [p.stat().st_mtime for p in sorted((out / "grid").rglob("metrics.json"))]
    assert main(argv) == 0
    assert [p.stat().st_mtime for p in sorted((out / "grid").rglob("metrics.json"))] == stamp[1]


def test_select_by_without_grid_and_grid_without_out_are_errors(tiny_dir, capsys):
    base = ["train", "--model", "LightGCN", "--dataset", "tiny", "--data-dir", str(tiny_dir)] + BASE
    assert main(base + ["--select-by", "test"]) == 2
    assert "only applies to a grid" in capsys.readouterr().err
    assert main(base + ["--n_layers", "1,2"]) == 2
    assert "needs --out" in capsys.readouterr().err


def test_compare_writes_table_and_chart_and_resumes(tiny_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--models", "LightGCN,VBPR", "--dataset", "tiny", "--data-dir", str(tiny_dir),
            "--seeds", "2", "--out", str(out)] + BASE
    assert main(argv) == 0
    md = (out / "comparison.md").read_text()
    assert "| LightGCN |" in md and "| VBPR |" in md and "±" in md and "peak RSS MB" in md
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    runs = sorted(p.parent.name for p in out.rglob("metrics.json"))
    assert runs == ["seed1000", "seed1000", "seed999", "seed999"]
    stamps = [p.stat().st_mtime for p in sorted(out.rglob("metrics.json"))]
    assert main(argv) == 0
    assert [p.stat().st_mtime for p in sorted(out.rglob("metrics.json"))] == stamps
    assert main(["compare", "--models", "LightGCN,Nope", "--dataset", "tiny", "--data-dir", str(tiny_dir),
                 "--out", str(tmp_path / "x")]) == 2
    assert "unknown model 'Nope'" in capsys.readouterr().err
