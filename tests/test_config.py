import pytest

from siger.config import ConfigError, build_config, config_from_dict, parse_cli_overrides


def test_defaults_follow_the_protocol_and_the_study():
    cfg = build_config("SIGER")
    t, m = cfg.train, cfg.model
    assert (t.learning_rate, t.batch_size, t.epochs, t.patience, t.seed) == (1.4e-3, 2048, 1000, 20, 999)
    assert t.topk == [5, 10, 20, 50] and t.valid_metric == "recall@20"
    assert (m.embedding_dim, m.n_ui_layers, m.n_mm_layers, m.knn_k, m.cooc_k) == (64, 2, 1, 10, 10)
    # chosen by the TikTok study (trial 43; docs/siger.md)
    assert (m.beta, m.beta_learn, m.eps, m.perturb_mode, m.anchor_mode, m.cooc_weight) == (
        0.56, True, 0.89, "mean", "anchor", "count")
    assert (m.reg_weight, m.lambda_p, m.lambda_a, m.lambda_c, m.cl_batch) == (2e-5, 2.3e-3, 3.9e-4, 4.2e-3, 256)
    assert (m.tau_p, m.tau_a, m.tau_c, m.detach_anchor) == (0.27, 0.13, 0.14, False)


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
