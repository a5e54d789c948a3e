import pytest

from siger.config import ConfigError, build_config, config_from_dict, parse_cli_overrides


def test_defaults_follow_the_protocol_and_the_study():
    cfg = build_config("SIGER")
    t, m = cfg.train, cfg.model
    assert (t.learning_rate, t.batch_size, t.epochs, t.patience, t.seed) == (0.001828541693960453, 2048, 1000, 20, 999)
    # the early-stopping warm-up every reported run uses is the default (frozen-graph models peak at epoch 0-1)
    assert t.warmup_epochs == 20
    # and its floor in optimiser steps (TikTok's 20 epochs), so a small dataset gets as many updates
    assert t.warmup_steps == 600
    assert t.topk == [5, 10, 20, 50] and t.valid_metric == "recall@20"
    assert (m.embedding_dim, m.n_ui_layers, m.n_mm_layers, m.knn_k, m.cooc_k) == (64, 4, 1, 10, 10)
    # the infusion weight measured on held-out train interactions, not learned from the training loss
    assert (m.beta_rule, m.beta_learn) == ("holdout", False)
    # chosen by the multi-dataset study (trial 37, confirmed over three seeds; docs/siger.md), unrounded
    assert (m.eps, m.perturb_mode, m.perturb_at, m.anchor_mode, m.cooc_weight) == (
        1.4871650577468474, "mean", "layers", "anchor", "count")
    assert (m.reg_weight, m.lambda_p, m.lambda_a, m.lambda_c, m.cl_batch) == (
        6.293647582954189e-06, 0.0028836842298077176, 0.009106652326926284, 0.002581201808831822, 256)
    assert (m.tau_p, m.tau_a, m.tau_c, m.detach_anchor) == (
        0.2355145930813419, 0.3642392419860805, 0.12585892849932037, False)


def test_spec_preset_is_the_spec_and_mgcn_keeps_mmrec_values():
    cfg = build_config("SIGER", overrides={"preset": "spec"})
    t, m = cfg.train, cfg.model
    assert t.learning_rate == 1e-3
    assert (m.beta, m.beta_learn, m.eps, m.perturb_mode, m.cl_batch) == (0.5, False, 0.1, "modulus", 0)
    assert (m.reg_weight, m.lambda_p, m.lambda_a, m.lambda_c) == (1e-4, 0.01, 0.01, 0.01)
    assert (m.tau_p, m.tau_a, m.tau_c) == (0.2, 0.2, 0.2)
    # a --key value still wins over the preset, and the model's training default over TrainConfig's
    assert build_config("SIGER", overrides={"preset": "spec", "learning_rate": "5e-4"}).train.learning_rate == 5e-4
    g = build_config("MGCN")
    assert g.train.learning_rate == 1e-3  # not SIGER's tuned rate
    # MGCN has none of SIGER's keys (its class is the backbone SIGER extends)
    assert not any(hasattr(g.model, k) for k in ("beta", "beta_learn", "lambda_p", "lambda_a", "eps", "tau_p"))
    assert (g.model.lambda_c, g.model.tau_c, g.model.reg_weight, g.model.cl_batch) == (0.01, 0.2, 1e-4, 0)


def test_cli_overrides_are_typed():
    ov = parse_cli_overrides(["--learning_rate", "5e-4", "--epochs", "3", "--detach_anchor", "true",
                              "--topk=10,20", "--beta", "0.3", "--modalities", "image"])
    cfg = build_config("SIGER", "tiktok", ov)
    assert cfg.train.learning_rate == 5e-4 and cfg.train.epochs == 3 and cfg.train.topk == [10, 20]
    assert cfg.model.detach_anchor is True and cfg.model.beta == 0.3 and cfg.train.modalities == ["image"]


def test_yaml_then_cli_precedence_and_roundtrip(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("train:\n  epochs: 7\n  learning_rate: 0.01\nmodel:\n  beta: 0.2\n")
    cfg = build_config("SIGER", None, {"epochs": "9"}, y)
    assert cfg.train.epochs == 9 and cfg.train.learning_rate == 0.01 and cfg.model.beta == 0.2
    again = config_from_dict(cfg.to_dict())
    assert again == cfg


@pytest.mark.parametrize("ov,msg", [
    ({"bogus": "1"}, "unknown config key --bogus"),
    ({"epochs": "1.5"}, "--epochs"),
    ({"detach_anchor": "maybe"}, "--detach_anchor"),
    ({"knn_k": "5,10"}, "search grid"),
])
def test_bad_overrides(ov, msg):
    with pytest.raises(ConfigError, match=msg):
        build_config("SIGER", "tiktok", ov)


def test_override_needs_a_value():
    with pytest.raises(ConfigError, match="needs a value"):
        parse_cli_overrides(["--epochs"])


def test_an_mgcn_config_saved_before_mgcn_lost_sigers_keys_still_loads(tmp_path):
    # MGCN's config carried SIGER's keys (switched off) until 2026-12-02; such a file must load,
    # with the same values for the keys MGCN has, and only where the retired keys were inert
    old = {"train": {"model": "MGCN", "dataset": "tiktok", "learning_rate": 0.002},
           "model": {"knn_k": 5, "lambda_c": 0.004, "beta": 0.0, "beta_learn": False, "infuse_at": "graph",
                     "lambda_p": 0.0, "lambda_a": 0.0, "eps": 0.1, "cooc_k": 10, "perturb_mode": "modulus"}}
    with pytest.warns(UserWarning, match="beta.*lambda_p.*lambda_a"):
        cfg = config_from_dict(old)
    assert (cfg.model.knn_k, cfg.model.lambda_c, cfg.train.learning_rate) == (5, 0.004, 0.002)
    assert not hasattr(cfg.model, "beta") and not hasattr(cfg.model, "cooc_k")
    for key, value in (("beta", 0.3), ("lambda_a", 0.01), ("beta_learn", True), ("infuse_at", "union")):
        with pytest.raises(ConfigError, match=f"--{key} .*MGCN no longer has this key"):
            config_from_dict({**old, "model": {**old["model"], key: value}})
    with pytest.warns(UserWarning):  # from the command line too, as a string
        assert build_config("MGCN", "tiktok", {"beta": "0"}).model.lambda_c == 0.01
    with pytest.raises(ConfigError, match="unknown config key --bet "):  # a typo is still a typo
        build_config("MGCN", "tiktok", {"bet": "0"})
    with pytest.raises(ConfigError, match="unknown config key --beta_x"):
        build_config("SIGER", "tiktok", {"beta_x": "0"})


def test_command_line_model_and_dataset_win_over_a_config_file(tiny_dir, tmp_path):
    """A run folder's config.yaml names its model and dataset; `--config run/config.yaml --dataset
    other` must train on `other` (it once trained on the file's dataset), and without --model /
    --dataset the file's are used (not SIGER on tiktok)."""
    import json
    import shutil

    import yaml

    from siger.cli import main
    from siger.experiments.tune import StudySpec, parse_space

    other = tiny_dir / "other"
    other.mkdir()
    shutil.copy(tiny_dir / "tiny" / "tiny.inter", other / "other.inter")
    shutil.copy(tiny_dir / "tiny" / "image_feat.npy", other / "image_feat.npy")
    fast = ["--epochs", "1", "--batch_size", "4", "--progress", "false", "--topk", "5,10,20", "--data-dir", str(tiny_dir)]
    first = tmp_path / "first"
    assert main(["train", "--model", "LightGCN", "--dataset", "tiny", "--out", str(first), *fast]) == 0
    conf = str(first / "config.yaml")
    assert main(["train", "--config", conf, "--dataset", "other", "--out", str(tmp_path / "moved"), *fast]) == 0
    saved = yaml.safe_load((tmp_path / "moved" / "config.yaml").read_text())["train"]
    assert (saved["model"], saved["dataset"]) == ("LightGCN", "other")
    assert json.loads((tmp_path / "moved" / "metrics.json").read_text())["dataset"] == "other"
    assert main(["train", "--config", conf, "--out", str(tmp_path / "same"), *fast]) == 0
    saved = yaml.safe_load((tmp_path / "same" / "config.yaml").read_text())["train"]
    assert (saved["model"], saved["dataset"]) == ("LightGCN", "tiny")
    # a study started from a run's config: its --dataset wins too
    spec = StudySpec("LightGCN", "other", {"data_dir": str(tiny_dir)}, conf,
                     parse_space({"learning_rate": [0.01]}, "LightGCN"), str(tmp_path / "s"), None)
    assert spec.trial_config({}).train.dataset == "other"


def test_a_command_reads_its_config_file_once(tiny_dir, tmp_path, monkeypatch):
    """siger train resolves its config once: one read of the --config file, whatever the model and
    dataset pinning, the override parsing and the config building need."""
    import pathlib

    from siger.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: LightGCN\ndataset: tiny\nn_layers: 1\nepochs: 1\nbatch_size: 4\nprogress: false\n"
                   "topk: [5, 10, 20]\n")
    reads = []
    real = pathlib.Path.read_text

    def counting(self, *a, **k):
        if self.resolve() == cfg.resolve():
            reads.append(self)
        return real(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "read_text", counting)
    assert main(["train", "--config", str(cfg), "--data-dir", str(tiny_dir), "--out", str(tmp_path / "r")]) == 0
    assert len(reads) == 1
    reads.clear()  # a grid of two runs from the same file: still one read
    assert main(["train", "--config", str(cfg), "--data-dir", str(tiny_dir), "--out", str(tmp_path / "g"),
                 "--n_layers", "1,2"]) == 0
    assert len(reads) == 1


def test_train_and_its_grid_use_nothing_of_the_tuner(tiny_dir, tmp_path):
    import subprocess
    import sys

    code = ("import sys; from siger.cli import main; "
            f"rc = main(['train', '--model', 'LightGCN', '--dataset', 'tiny', '--data-dir', {str(tiny_dir)!r}, "
            f"'--out', {str(tmp_path / 'g')!r}, '--n_layers', '1,2', '--epochs', '1', '--batch_size', '4', "
            "'--progress', 'false', '--topk', '5,10,20']); "
            "print(rc, sorted(m for m in sys.modules if m.startswith('siger.experiments.tune') or m == 'optuna'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "0 []"


def test_a_config_file_that_gives_a_key_twice_is_refused_naming_file_and_key(tmp_path, capsys):
    """PyYAML keeps the last of a repeated key silently, and flattening the train: / model:
    sections would let one overwrite the other: both are errors that name the file, the key and
    where each was given, and the command exits non-zero."""
    from siger.cli import main
    from siger.config import read_config_file

    repeated = tmp_path / "repeated.yaml"
    repeated.write_text("learning_rate: 0.01\nreg_weight: 1.0e-4\nlearning_rate: 0.001\n")
    with pytest.raises(ConfigError, match=r"repeated\.yaml.*'learning_rate' repeated \(first on line 1\)"):
        read_config_file(repeated)
    nested = tmp_path / "nested.yaml"
    nested.write_text("train:\n  seed: 1\n  seed: 2\nmodel:\n  lambda_p: 0.1\n")
    with pytest.raises(ConfigError, match=r"nested\.yaml.*'seed' repeated \(first on line 2\)"):
        read_config_file(nested)
    across = tmp_path / "across.yaml"
    across.write_text("train:\n  seed: 1\nmodel:\n  reg_weight: 0.1\nreg_weight: 0.2\n")
    with pytest.raises(ConfigError, match=r"across\.yaml: key 'reg_weight' given twice \(under model: and at the "
                                          r"top level\)"):
        read_config_file(across)
    assert main(["train", "--model", "LightGCN", "--config", str(repeated), "--out", str(tmp_path / "r")]) != 0
    assert "repeated.yaml" in capsys.readouterr().err
    # a run's saved config.yaml (train: and model: sections, no key in both) reads as before
    ok = tmp_path / "ok.yaml"
    build_config("SIGER").save(ok)
    f = read_config_file(ok)
    assert f.saved is not None and f.flat["lambda_p"] == build_config("SIGER").model.lambda_p


def test_siger_defaults_are_the_confirmed_multi_dataset_trial():
    """The defaults are the multi-dataset study's confirmed choice as the study stored it
    (results/studies/siger_multi/confirm.json), key for key, unrounded."""
    import json
    from pathlib import Path

    best = json.loads((Path(__file__).parents[1] / "results/studies/siger_multi/confirm.json").read_text())["best"]
    cfg = build_config("SIGER")
    for k, v in best["params"].items():
        where = cfg.train if k == "learning_rate" else cfg.model
        assert getattr(where, k) == v, k
