"""What a new user hit on a fresh clone (issue 22): each case failed before it was fixed."""

import os
import re
import stat
import sys
from pathlib import Path

import pytest

from siger.cli import main

FAST = ["--batch_size", "4", "--patience", "100", "--progress", "false", "--knn_k", "2", "--cooc_k", "2",
        "--topk", "5,10,20", "--valid_metric", "recall@20"]
ROOT = Path(__file__).resolve().parents[1]


def _train(tiny_dir, out, *extra, model="SIGER"):
    return main(["train", "--model", model, "--dataset", "tiny", "--data-dir", str(tiny_dir), "--out", str(out),
                 *([a for a in FAST if model != "LightGCN" or a not in ("--knn_k", "--cooc_k", "2")]), *extra])


def test_serve_without_the_extra_names_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    assert main(["serve", "--run", str(tmp_path / "no_run")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'siger[serve]'" in err and "uvicorn" in err and "Traceback" not in err


@pytest.mark.parametrize("key,value,allowed", [("epochs", "-1", ">= 1"), ("epochs", "0", ">= 1"),
                                               ("patience", "-5", ">= 1"), ("batch_size", "0", ">= 1"),
                                               ("embedding_dim", "0", ">= 1"), ("learning_rate", "-1e-3", ">= 0"), ("tau_c", "0", "> 0"),
                                               ("beta", "1.5", "in [0, 1]"), ("warmup_epochs", "-2", ">= 0")])
def test_out_of_range_values_are_errors_naming_key_and_range(tiny_dir, tmp_path, capsys, key, value, allowed):
    assert _train(tiny_dir, tmp_path / "r", f"--{key}", value) == 2
    err = capsys.readouterr().err
    assert f"--{key}: must be {allowed}, got" in err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_resume_with_another_config_lists_the_keys_and_exits_2(tiny_dir, tmp_path, capsys):
    out = tmp_path / "lgn"
    assert _train(tiny_dir, out, "--epochs", "1", model="LightGCN") == 0
    capsys.readouterr()
    # the README's old example: resuming a LightGCN run folder as SIGER
    assert _train(tiny_dir, out, "--epochs", "2", "--resume", model="SIGER") == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "model: saved 'LightGCN', now 'SIGER'" in err and "Traceback" not in err


def test_a_finished_run_is_not_overwritten_without_overwrite(tiny_dir, tmp_path, capsys):
    out = tmp_path / "r"
    assert _train(tiny_dir, out, "--epochs", "1", model="LightGCN") == 0
    before = (out / "metrics.json").read_bytes()
    capsys.readouterr()
    assert _train(tiny_dir, out, "--epochs", "2", model="LightGCN") == 2
    assert "holds a finished run" in capsys.readouterr().err and (out / "metrics.json").read_bytes() == before
    assert _train(tiny_dir, out, "--epochs", "2", "--overwrite", model="LightGCN") == 0
    assert '"epochs_run": 2' in (out / "metrics.json").read_text()


def test_train_help_lists_the_models_config_keys(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--model", "MGCN", "--help"])
    out = capsys.readouterr().out
    for key in ("--epochs", "--patience", "--device", "--learning_rate", "--lambda_c", "--warmup_epochs"):
        assert re.search(rf"^\s+{key} \w", out, re.M), key
    assert "--key value" in out and "model MGCN:" in out


def test_ci_builds_its_own_environment():
    text = (ROOT / ".ci" / "run").read_text()
    assert not re.search(r"rm -rf \.venv(\s|$)", text) and "python3 -m venv .venv-ci" in text


def test_closing_table_fits_80_columns_and_files_are_readable(tiny_dir, tmp_path, capsys):
    out = tmp_path / "r"
    assert _train(tiny_dir, out, "--epochs", "1", model="LightGCN") == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert table and max(map(len, table)) <= 80
    mask = os.umask(0)
    os.umask(mask)
    for f in ("config.yaml", "metrics.json", "model.pt", "checkpoint.pt", "curves.png", "log.jsonl"):
        assert stat.S_IMODE((out / f).stat().st_mode) == 0o666 & ~mask, f
