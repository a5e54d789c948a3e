"""`siger compare` and grid search."""

import json

import pytest
import yaml

from siger.cli import main
from siger.config import ConfigError, split_grid

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
    res = json.loads((out / "grid.json").read_text())
    rows = res["rows"]
    assert len(rows) == 4 and res["select_by"] == select_by
    assert {(r["params"]["learning_rate"], r["params"]["n_layers"]) for r in rows} == \
        {("0.05", "1"), ("0.05", "2"), ("0.001", "1"), ("0.001", "2")}
    best = max(rows, key=lambda r: r[select_by]["recall@20"])
    assert res["best"]["params"] == best["params"]
    saved = yaml.safe_load((out / "best_config.yaml").read_text())
    assert saved["train"]["learning_rate"] == float(best["params"]["learning_rate"])
    assert saved["model"]["n_layers"] == int(best["params"]["n_layers"])
    md = (out / "grid.md").read_text()
    assert ("seen the test set" in md) == (select_by == "test")
    # finished combinations are reused, not retrained
    stamps = [p.stat().st_mtime for p in sorted(out.rglob("metrics.json"))]
    assert main(argv) == 0
    assert [p.stat().st_mtime for p in sorted(out.rglob("metrics.json"))] == stamps


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


def test_compare_model_config_applies_a_grid_winner_and_refuses_stale_runs(tiny_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    base = ["compare", "--models", "LightGCN,VBPR", "--dataset", "tiny", "--data-dir", str(tiny_dir),
            "--out", str(out)] + BASE
    assert main(base) == 0
    # a best_config.yaml-style file: its seed / dataset / data_dir describe its own run and are not applied
    winner = tmp_path / "best_config.yaml"
    winner.write_text(yaml.safe_dump({"train": {"model": "VBPR", "dataset": "other", "data_dir": "/nowhere",
                                                "seed": 5, "learning_rate": 0.01},
                                      "model": {"reg_weight": 3.0}}))
    # the finished VBPR run has reg_weight 1e-4: reusing it would be wrong, so it is an error naming the keys
    assert main(base + ["--model-config", f"VBPR={winner}"]) == 2
    err = capsys.readouterr().err
    assert "finished run has a different config" in err and "learning_rate" in err and "reg_weight" in err
    out2 = tmp_path / "cmp2"
    argv = [a if a != str(out) else str(out2) for a in base] + ["--model-config", f"VBPR={winner}"]
    assert main(argv) == 0
    saved = yaml.safe_load((out2 / "VBPR" / "seed999" / "config.yaml").read_text())
    assert saved["model"]["reg_weight"] == 3.0 and saved["train"]["learning_rate"] == 0.01
    assert saved["train"]["seed"] == 999 and saved["train"]["dataset"] == "tiny"
    lgcn = yaml.safe_load((out2 / "LightGCN" / "seed999" / "config.yaml").read_text())
    assert lgcn["train"]["learning_rate"] == 0.001
    assert f"VBPR with `{winner}`" in (out2 / "comparison.md").read_text()
    assert main(argv[:-2] + ["--model-config", "SIGER=x.yaml"]) == 2
    assert "not in --models" in capsys.readouterr().err
    assert main(argv[:-2] + ["--model-config", "VBPR"]) == 2
    assert "expected MODEL=FILE.yaml" in capsys.readouterr().err


def test_train_or_load_checks_real_folders_and_takes_symlinks_as_given(tmp_path):
    from siger.config import build_config
    from siger.experiments.runs import train_or_load

    run = tmp_path / "run"
    run.mkdir()
    build_config("LightGCN", "tiny", {"n_layers": 3, "data_dir": "/old/path"}).save(run / "config.yaml")
    (run / "metrics.json").write_text(json.dumps({"test": {"recall@20": 0.5}}))
    same = build_config("LightGCN", "tiny", {"n_layers": 3, "data_dir": "/new/path", "num_threads": 2})
    assert train_or_load(same, run)["test"]["recall@20"] == 0.5  # paths and threads do not matter
    other = build_config("LightGCN", "tiny", {"n_layers": 2})
    with pytest.raises(ConfigError, match="n_layers"):
        train_or_load(other, run)
    link = tmp_path / "link"
    link.symlink_to(run)
    assert train_or_load(other, link)["test"]["recall@20"] == 0.5
