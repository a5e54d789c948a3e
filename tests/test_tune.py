"""`siger tune`: spaces, the Optuna engine, pruning, resume after SIGKILL, and valid-only choice."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from siger.cli import main
from siger.config import ConfigError
from siger.experiments.tune import StudySpec, TuneOptions, load_space, parse_space, run_tune

FAST = {"batch_size": "64", "patience": "1000", "progress": "false", "topk": "5,10,20",
        "valid_metric": "recall@5", "num_threads": "1"}


def _spec(data_dir, out, space, opts, model="LightGCN", **ov):
    overrides = {**FAST, "data_dir": str(data_dir), **{k: str(v) for k, v in ov.items()}}
    return StudySpec(model, "planted", overrides, None, parse_space(space, model), str(out), opts)


# -- spaces ------------------------------------------------------------------------------------
def test_space_parsing_types_ranges_choices_and_conditions():
    sp = parse_space({"params": {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
                                 "n_mm_layers": {"low": 1, "high": 3}, "perturb_mode": ["modulus", "uniform"],
                                 "infuse_at": ["graph", "weights"],
                                 "beta_learn": {"choices": [False, True], "if": {"infuse_at": "graph"}},
                                 "eps": {"low": 0.1, "high": 0.5, "step": 0.2}},
                      "fixed": {"warmup_epochs": 20}}, "SIGER")
    p = sp.params
    assert (p["learning_rate"].kind, p["learning_rate"].log) == ("float", True)
    assert p["n_mm_layers"].kind == "int" and p["perturb_mode"].choices == ["modulus", "uniform"]
    assert p["beta_learn"].when == {"infuse_at": "graph"} and p["beta_learn"].choices == [False, True]
    assert p["beta_learn"].active({"infuse_at": "graph"}) and not p["beta_learn"].active({"infuse_at": "weights"})
    assert p["eps"].grid_values() == [0.1, 0.3, 0.5] and sp.fixed == {"warmup_epochs": 20}
    for bad, msg in [({"nope": [1, 2]}, "unknown config key"),
                     ({"learning_rate": {"low": 1e-2, "high": 1e-4}}, "must be below"),
                     ({"learning_rate": {"low": 0, "high": 1, "log": True}}, "log range needs low > 0"),
                     ({"n_mm_layers": {"low": 1.5, "high": 3}}, "integer key"),
                     ({"perturb_mode": {"low": 0, "high": 1}}, "numeric key"),
                     ({"topk": [[5], [10]]}, "list-valued"),
                     ({"knn_k": [5, 5]}, "repeated"),
                     ({"beta_learn": {"choices": [True], "if": {"infuse_at": "graph"}}}, "not a searched key"),
                     ({}, "empty")]:
        with pytest.raises(ConfigError, match=msg):
            parse_space(bad, "SIGER")
    with pytest.raises(ConfigError, match="both searched and fixed"):
        parse_space({"params": {"knn_k": [5, 10]}, "fixed": {"knn_k": 10}}, "SIGER")


def test_space_and_enqueue_files_refuse_repeated_keys_and_name_the_file(tmp_path):
    """PyYAML keeps the last of a repeated key silently: an edit that left a stray top-level
    ``fixed:`` in a comment block would have dropped a section. The tuner's files refuse it."""
    from siger.experiments.tune.space import load_enqueue

    space = tmp_path / "space.yaml"
    space.write_text("params:\n  learning_rate: [0.001, 0.01]\nfixed:\n  epochs: 3\nfixed:\n  warmup_epochs: 0\n")
    with pytest.raises(ConfigError, match=r"space.yaml: cannot read search space: key 'fixed' repeated \(first on line 3\)"):
        load_space(space, "LightGCN")
    space.write_text("params:\n  learning_rate: {low: 0.001, high: 0.01, low: 0.0001}\n")  # nested too
    with pytest.raises(ConfigError, match="key 'low' repeated"):
        load_space(space, "LightGCN")
    space.write_text("params:\n  learning_rate: [0.001, 0.01]\nfixed:\n  epochs: 3\n")
    assert load_space(space, "LightGCN").fixed == {"epochs": 3}
    good, bad = tmp_path / "q.yaml", tmp_path / "bad.yaml"
    good.write_text("- {learning_rate: 0.01}\n- {learning_rate: 0.001}\n")
    assert load_enqueue([good, good]) == [{"learning_rate": 0.01}, {"learning_rate": 0.001}] * 2
    bad.write_text("- {learning_rate: 0.01}\n- 0.001\n")
    with pytest.raises(ConfigError, match="bad.yaml: entry 2 is not a mapping"):
        load_enqueue([bad])
    with pytest.raises(ConfigError, match="missing.yaml: cannot read enqueued trials"):
        load_enqueue([tmp_path / "missing.yaml"])


def test_every_model_ships_a_valid_default_space():
    from siger.models import available_models

    for m in available_models():
        sp = load_space(None, m)
        assert sp.params and sp.fixed.get("warmup_epochs") == 20, m


# -- the engine ----------------------------------------------------------------------------------
def test_planted_better_setting_is_found_and_reports_are_written(planted_dir, tmp_path):
    out = tmp_path / "study"
    spec = _spec(planted_dir, out, {"learning_rate": {"low": 1e-7, "high": 0.1, "log": True}},
                 TuneOptions(trials=8, startup_trials=4, pruner="none"), epochs=8)
    res = run_tune(spec, log=lambda s: None)
    done = [r for r in res["rows"] if r["state"] == "COMPLETE"]
    assert len(done) == 8
    lrs = sorted(r["params"]["learning_rate"] for r in done)
    assert lrs[0] < 1e-4 and lrs[-1] > 1e-3  # both ends were tried
    best = res["best"]
    assert best["params"]["learning_rate"] > 1e-3  # the planted setting: a learning rate that learns
    assert best["valid"]["recall@5"] == max(r["valid"]["recall@5"] for r in done)
    assert best["valid"]["recall@5"] > 2 * min(r["valid"]["recall@5"] for r in done)
    saved = yaml.safe_load((out / "best_config.yaml").read_text())
    assert saved["train"]["learning_rate"] == best["params"]["learning_rate"]
    md = (out / "study.md").read_text()
    assert "were **not used** to choose" in md and md.count("| complete |") == 8
    for png in ("history.png", "importance.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert yaml.safe_load((out / "space.yaml").read_text())["params"]["learning_rate"]["log"] is True


def test_diverging_and_hopeless_trials_are_pruned(planted_dir, tmp_path):
    space = {"learning_rate": {"low": 1e-7, "high": 1e30, "log": True}}
    # two good trials first, then one whose loss turns non-finite, then one that cannot learn
    # (valid below the median of the others at its first evaluations: the median pruner stops it)
    enqueue = [{"learning_rate": 0.05}, {"learning_rate": 0.02}, {"learning_rate": 1e30}, {"learning_rate": 1e-7}]
    spec = _spec(planted_dir, tmp_path / "s", space,
                 TuneOptions(trials=4, startup_trials=2, pruner="median", enqueue=enqueue), epochs=30,
                 warmup_steps=0)  # the epoch-counted warm-up (20) alone
    res = run_tune(spec, log=lambda s: None)
    by_lr = {r["params"]["learning_rate"]: r for r in res["rows"]}
    assert by_lr[0.05]["state"] == by_lr[0.02]["state"] == "COMPLETE"
    assert by_lr[1e30]["state"] == "PRUNED" and "non-finite" in by_lr[1e30]["error"]
    assert by_lr[1e-7]["state"] == "PRUNED" and by_lr[1e-7]["epochs_run"] < 30
    metrics = json.loads((tmp_path / "s" / by_lr[1e-7]["run_dir"] / "metrics.json").read_text())
    assert metrics["pruned"] is True
    md = (tmp_path / "s" / "study.md").read_text()
    assert "pruned (diverged)" in md and md.count("| pruned") == 2


def test_pruner_respects_the_warmup(planted_dir, tmp_path):
    enqueue = [{"learning_rate": 0.05}, {"learning_rate": 0.02}, {"learning_rate": 1e-7}]
    spec = _spec(planted_dir, tmp_path / "s", {"learning_rate": {"low": 1e-7, "high": 0.1, "log": True}},
                 TuneOptions(trials=3, startup_trials=2, enqueue=enqueue), epochs=30, warmup_epochs=12,
                 warmup_steps=0)
    res = run_tune(spec, log=lambda s: None)
    slow = next(r for r in res["rows"] if r["params"]["learning_rate"] == 1e-7)
    assert slow["state"] == "PRUNED" and slow["epochs_run"] == 13  # first allowed at epoch 12 (0-based)


def test_test_metrics_never_influence_the_choice(planted_dir, tmp_path, monkeypatch):
    """Two studies, same seeds, with test metrics replaced by opposite fakes: the sampled
    parameters, the objective values and the winner must be identical."""
    from siger.train import trainer as trainer_mod

    real = trainer_mod.Trainer.evaluate

    def study(tag, sign):
        def fake(self, split, emb=None):
            m = real(self, split, emb)
            return {k: sign * (v + 1) for k, v in m.items()} if split == "test" else m

        monkeypatch.setattr(trainer_mod.Trainer, "evaluate", fake)
        spec = _spec(planted_dir, tmp_path / tag, {"learning_rate": {"low": 1e-6, "high": 0.1, "log": True},
                                                   "n_layers": [1, 2, 3]},
                     TuneOptions(trials=6, startup_trials=3, pruner="none"), epochs=4)
        return run_tune(spec, log=lambda s: None)

    a, b = study("a", 1.0), study("b", -1.0)
    assert [r["params"] for r in a["rows"]] == [r["params"] for r in b["rows"]]
    assert [r["value"] for r in a["rows"]] == [r["value"] for r in b["rows"]]
    assert all(r["value"] == r["valid"]["recall@5"] for r in a["rows"])
    assert a["best"]["number"] == b["best"]["number"]
    assert a["best"]["test"]["recall@5"] == -b["best"]["test"]["recall@5"]  # the fakes did reach the table


def test_resumed_study_refuses_other_settings(planted_dir, tmp_path):
    space = {"learning_rate": [0.01, 0.05]}
    run_tune(_spec(planted_dir, tmp_path / "s", space, TuneOptions(trials=1, pruner="none"), epochs=2),
             log=lambda s: None)
    with pytest.raises(ConfigError, match="started with other settings"):
        run_tune(_spec(planted_dir, tmp_path / "s", space, TuneOptions(trials=2, pruner="none"), epochs=3),
                 log=lambda s: None)
    res = run_tune(_spec(planted_dir, tmp_path / "s", space, TuneOptions(trials=2, pruner="none"), epochs=2),
                   log=lambda s: None)
    assert sum(r["state"] == "COMPLETE" for r in res["rows"]) == 2


def test_two_workers_share_one_study(planted_dir, tmp_path):
    spec = _spec(planted_dir, tmp_path / "s", {"learning_rate": {"low": 1e-4, "high": 0.1, "log": True}},
                 TuneOptions(trials=4, jobs=2, startup_trials=2, pruner="none"), epochs=3)
    res = run_tune(spec, log=lambda s: None, quiet_workers=True)
    done = [r for r in res["rows"] if r["state"] == "COMPLETE"]
    assert 4 <= len(done) <= 5 and len({r["run_dir"] for r in done}) == len(done)


def _tune_cmd(planted_dir, out, trials):
    args = [sys.executable, "-m", "siger", "tune", "--model", "LightGCN", "--dataset", "planted", "--data-dir",
            str(planted_dir), "--out", str(out), "--trials", str(trials), "--pruner", "none", "--heartbeat", "1",
            "--startup-trials", "1", "--space", str(out.parent / "space.yaml"), "--epochs", "400", "--eval_every", "50"]
    for k, v in FAST.items():
        args += [f"--{k}", v]
    return args


def test_study_killed_with_sigkill_resumes_and_finishes_the_trial_count(planted_dir, tmp_path):
    (tmp_path / "space.yaml").write_text("learning_rate: {low: 1.0e-3, high: 0.1, log: true}\n")
    out = tmp_path / "study"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_tune_cmd(planted_dir, out, 3), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env, start_new_session=True)
    ckpt = out / "trials" / "0001" / "checkpoint.pt"
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert ckpt.exists(), "trial 1 never reached its first checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)  # mid-trial: trial 1 is left RUNNING in the storage
    proc.wait()
    assert not (out / "trials" / "0001" / "metrics.json").exists()
    time.sleep(2.5)  # past the heartbeat grace period (2 x 1 s)
    res = subprocess.run(_tune_cmd(planted_dir, out, 3), capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resumed from" in res.stdout and "retry: resumes trials/0001" in res.stdout
    study = json.loads((out / "study.json").read_text())
    states = [t["state"] for t in study["trials"]]
    assert states.count("COMPLETE") == 3 and states.count("FAIL") == 1  # the killed attempt, retried
    retried = [t for t in study["trials"] if t["state"] == "COMPLETE" and t["run_dir"] == "trials/0001"]
    assert len(retried) == 1 and retried[0]["epochs_run"] == 400
    assert (out / "trials" / "0001" / "metrics.json").exists()


def test_cli_tune_and_errors(planted_dir, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("params:\n  learning_rate: [0.05, 0.001]\nfixed:\n  warmup_epochs: 0\n")
    argv = ["tune", "--model", "LightGCN", "--dataset", "planted", "--data-dir", str(planted_dir), "--space",
            str(space), "--trials", "2", "--out", str(tmp_path / "s"), "--epochs", "2", "--enqueue-defaults"]
    for k, v in FAST.items():
        argv += [f"--{k}", v]
    assert main(argv) == 0
    study = json.loads((tmp_path / "s" / "study.json").read_text())
    assert study["trials"][0]["params"] == {"learning_rate": 0.001}  # the config default, enqueued first
    space.write_text("learning_rate: {low: 1, high: 0.1}\n")
    assert main(argv) == 2
    assert "must be below" in capsys.readouterr().err


def test_a_resumed_study_can_add_keys_to_its_space_and_queue_new_entries(planted_dir, tmp_path):
    from siger.config import ConfigError

    out = tmp_path / "s"
    lr = {"learning_rate": [0.05, 0.001]}
    first = [{"learning_rate": 0.05}, {"learning_rate": 0.001}]
    run_tune(_spec(planted_dir, out, lr, TuneOptions(trials=2, pruner="none", enqueue=first), epochs=2),
             log=lambda s: None)
    wider = {**lr, "n_layers": [1, 3]}
    with pytest.raises(ConfigError, match="started with other settings"):  # not without --extend-space
        run_tune(_spec(planted_dir, out, wider, TuneOptions(trials=3, pruner="none"), epochs=2), log=lambda s: None)
    with pytest.raises(ConfigError, match="only adds keys"):  # a key it had may not change
        run_tune(_spec(planted_dir, out, {"learning_rate": [0.05, 0.002], "n_layers": [1, 3]},
                       TuneOptions(trials=3, pruner="none", extend_space=True), epochs=2), log=lambda s: None)
    # the same entries plus one: only the new one is queued (the earlier ones ran already)
    more = [*first, {"learning_rate": 0.05, "n_layers": 3}]
    res = run_tune(_spec(planted_dir, out, wider, TuneOptions(trials=3, pruner="none", extend_space=True,
                                                              enqueue=more), epochs=2), log=lambda s: None)
    params = [r["params"] for r in sorted(res["rows"], key=lambda r: r["number"])]
    # the earlier trials ran LightGCN's n_layers default, 2, and are shown so
    assert params == [{"learning_rate": 0.05, "n_layers": 2}, {"learning_rate": 0.001, "n_layers": 2},
                      {"learning_rate": 0.05, "n_layers": 3}]
    md = (out / "study.md").read_text()
    assert "Space extended at trial 2: n_layers added (the trials before it ran n_layers=2)." in md
    # resumed again with the same entries and space: nothing new is queued, nothing is refused
    spec = _spec(planted_dir, out, wider, TuneOptions(trials=3, pruner="none", enqueue=more), epochs=2)
    res = run_tune(spec, log=lambda s: None)
    assert len(res["rows"]) == 3
    # a confirmation re-seeds each trial at the values it ran: an earlier trial at the value it had
    # then, not at today's default (made to differ here by editing the recorded value)
    from siger.experiments.tune import confirm_top, open_study

    study = open_study(spec)
    ext = study.user_attrs["space_extensions"]
    study.set_user_attr("space_extensions", [{**ext[0], "until_then": {"n_layers": 1}}])
    confirm_top(spec, top=3, seeds=2, log=lambda s: None)
    layers = {p.parent.parent.name: yaml.safe_load(p.read_text())["model"]["n_layers"]
              for p in (out / "confirm").glob("*/seed1000/config.yaml")}
    assert layers == {"0000": 1, "0001": 1, "0002": 3}


def test_confirmation_retrains_the_top_trials_and_chooses_the_best_mean_valid(planted_dir, tmp_path):
    from siger.experiments.tune import confirm_top

    out = tmp_path / "s"
    spec = _spec(planted_dir, out, {"learning_rate": {"low": 1e-4, "high": 0.1, "log": True}},
                 TuneOptions(trials=3, startup_trials=3, pruner="none"), epochs=4)
    run_tune(spec, log=lambda s: None)
    res = confirm_top(spec, top=2, seeds=2, log=lambda s: None)
    c = json.loads((out / "confirm.json").read_text())
    assert len(c["rows"]) == 2 and c["seed_list"] == [999, 1000]
    assert all(len(r["valid"]) == 2 for r in c["rows"])
    assert c["best"]["valid_mean"] == max(r["valid_mean"] for r in c["rows"])
    winner = yaml.safe_load((out / "best_config.yaml").read_text())
    assert winner["train"]["learning_rate"] == c["best"]["params"]["learning_rate"] and winner["train"]["seed"] == 999
    assert "## Confirmation" in (out / "study.md").read_text()
    assert sorted(p.parent.name for p in (out / "confirm").rglob("metrics.json")) == ["seed1000", "seed1000"]
    assert res["best"]["number"] in {r["number"] for r in c["rows"]}


def test_percentile_pruner_keeps_slow_starters_the_median_would_stop():
    import optuna

    from siger.experiments.tune import make_pruner

    study = optuna.create_study(direction="maximize")
    for v in (0.5, 0.6, 0.7, 0.8, 0.9):  # five finished trials' values at epoch 3
        t = optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=v, intermediate_values={3: v},
                                      params={}, distributions={})
        study.add_trial(t)
    slow = study.ask()
    slow.report(0.55, 3)  # below the median (0.7), above the bottom 10 % (0.54)
    med = make_pruner(TuneOptions(pruner="median", startup_trials=5), warmup=0, max_epochs=10)
    pct = make_pruner(TuneOptions(pruner="percentile", prune_percentile=10.0, startup_trials=5), warmup=0, max_epochs=10)
    harsh = make_pruner(TuneOptions(pruner="percentile", prune_percentile=40.0, startup_trials=5), warmup=0,
                        max_epochs=10)
    frozen = study._storage.get_trial(slow._trial_id)
    assert med.prune(study, frozen) and not pct.prune(study, frozen) and harsh.prune(study, frozen)
    assert not make_pruner(TuneOptions(pruner="percentile", startup_trials=5), warmup=5, max_epochs=10).prune(study, frozen)


def test_best_so_far_holds_the_running_best_between_evaluations_and_after_the_stop():
    from siger.experiments.tune import best_so_far

    assert best_so_far({1: 0.5, 2: 0.3, 4: 0.6}, horizon=7) == {1: 0.5, 2: 0.5, 3: 0.5, 4: 0.6, 5: 0.6, 6: 0.6}
    assert best_so_far({0: 0.5, 1: 0.3}, horizon=3, maximize=False) == {0: 0.5, 1: 0.3, 2: 0.3}
    assert best_so_far({0: float("nan"), 1: 0.2}, horizon=2) == {1: 0.2}
    assert best_so_far({}, horizon=5) == {}


def test_pruner_judges_a_slow_trial_past_the_epoch_where_the_others_stopped():
    """Five completed trials early-stopped at epoch 5 with bests 0.5-0.9; a slow trial still at
    0.3 at epoch 8. Optuna's rule (raw curves) finds nobody at epoch 8 and lets it run to the cap;
    against the others' best-so-far curves it is pruned. One above them all survives either way."""
    import optuna

    from siger.experiments.tune import make_pruner, pruner_name

    study = optuna.create_study(direction="maximize")
    for v in (0.5, 0.6, 0.7, 0.8, 0.9):
        curve = {0: v, 1: v - 0.2, 2: v - 0.1, 3: v - 0.3, 4: v - 0.3, 5: v - 0.3}  # peak at epoch 0, then a dip
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=v,
                                                  intermediate_values=curve, params={}, distributions={}))
    opts = dict(pruner="percentile", prune_percentile=25.0, startup_trials=5)
    best = make_pruner(TuneOptions(**opts), warmup=2, max_epochs=20)
    raw = make_pruner(TuneOptions(**opts, prune_curve="raw"), warmup=2, max_epochs=20)

    def trial_with(curve):
        t = study.ask()
        for step, v in curve.items():
            t.report(v, step)
        return study._storage.get_trial(t._trial_id)

    slow = trial_with({0: 0.1, 4: 0.2, 8: 0.3})
    assert not raw.prune(study, slow) and best.prune(study, slow)
    good = trial_with({0: 0.1, 8: 0.95})
    assert not raw.prune(study, good) and not best.prune(study, good)
    # in the others' dip (epoch 3: raw values 0.2-0.6) a trial at 0.45 passes Optuna's rule but
    # is behind what the others had reached by then (their peaks, 0.5-0.9)
    mid = trial_with({0: 0.4, 3: 0.45})
    assert not raw.prune(study, mid) and best.prune(study, mid)
    assert "best-so-far" in pruner_name(TuneOptions(**opts))
    assert "best-so-far" not in pruner_name(TuneOptions(**opts, prune_curve="raw"))
    with pytest.raises(ConfigError, match="prune-curve"):
        TuneOptions(prune_curve="peak").check()
    # with six completed trials asked for before pruning, five are not enough
    assert not make_pruner(TuneOptions(**opts, prune_startup=6), warmup=2, max_epochs=20).prune(study, slow)
    with pytest.raises(ConfigError, match="prune-startup"):
        TuneOptions(prune_startup=0).check()
    # a trial replaced by a re-scoring retry is not read by either pruner: trial 4 (0.9) superseded
    # by a retry that scored 0.3
    retry = {e: 0.3 for e in range(6)}
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.3, params={},
                                              distributions={}, intermediate_values=retry,
                                              user_attrs={"retry_of": [4]}))
    from siger.experiments.tune.engine import _PrunerView

    assert sorted(t.value for t in _PrunerView(study, 20, best=False).get_trials(
        states=(optuna.trial.TrialState.COMPLETE,))) == [0.3, 0.5, 0.6, 0.7, 0.8]


def test_confirmation_can_leave_out_trials_by_value(planted_dir, tmp_path):
    from siger.experiments.tune import confirm_top

    out = tmp_path / "s"
    spec = _spec(planted_dir, out, {"learning_rate": [0.05, 0.01, 0.002]},
                 TuneOptions(trials=3, sampler="grid", pruner="none"), epochs=3)
    run_tune(spec, log=lambda s: None)
    confirm_top(spec, top=3, seeds=2, log=lambda s: None, exclude={"learning_rate": "0.05"})
    c = json.loads((out / "confirm.json").read_text())
    assert sorted(r["params"]["learning_rate"] for r in c["rows"]) == [0.002, 0.01]
    assert "were left out" in (out / "study.md").read_text()


def test_trials_never_start_from_features_an_earlier_trial_fine_tuned(planted_dir, tmp_path):
    """MGCN fine-tunes its raw features (finetune_features, as MMRec) and its item input table
    shares memory with the dataset's arrays: trials of one process must each start from the
    file's features. Three trials of one config (a one-point space) must be the same run."""
    space = {"learning_rate": [0.01]}
    spec = _spec(planted_dir, tmp_path / "s", space, TuneOptions(trials=3, sampler="random", pruner="none"),
                 model="MGCN", epochs=3, knn_k=3)
    run_tune(spec, log=lambda s: None)
    runs = sorted((tmp_path / "s" / "trials").iterdir())
    logs = [[json.loads(line)["loss"] for line in (r / "log.jsonl").read_text().splitlines()] for r in runs]
    assert len(logs) == 3 and logs[0] == logs[1] == logs[2]


def test_a_resumed_study_does_not_repeat_its_first_draws(planted_dir, tmp_path):
    """Each run of the command builds its sampler from the same seed; a resumed study must not
    redraw the parameters its earlier trials already ran."""
    space = {"learning_rate": {"low": 1e-3, "high": 1e-1, "log": True}}
    for n in (1, 2, 3):  # three calls of the same command, one new trial each
        spec = _spec(planted_dir, tmp_path / "s", space, TuneOptions(trials=n, sampler="random", pruner="none"),
                     epochs=1)
        run_tune(spec, log=lambda s: None)
    from siger.experiments.tune import open_study

    lrs = [t.params["learning_rate"] for t in open_study(spec).trials]
    assert len(lrs) == 3 and len(set(lrs)) == 3


def test_a_trial_of_several_seeds_is_valued_by_their_mean_and_resumes(planted_dir, tmp_path):
    out = tmp_path / "s"
    opts = TuneOptions(trials=2, startup_trials=2, pruner="none", trial_seeds=2)
    spec = _spec(planted_dir, out, {"learning_rate": {"low": 1e-3, "high": 0.1, "log": True}}, opts, epochs=3)
    res = run_tune(spec, log=lambda s: None)
    done = [r for r in res["rows"] if r["state"] == "COMPLETE"]
    assert len(done) == 2
    for r in done:
        first = json.loads((out / r["run_dir"] / "metrics.json").read_text())
        second = json.loads((out / f"{r['run_dir']}-seed1000" / "metrics.json").read_text())
        assert (first["seed"], second["seed"]) == (999, 1000)
        assert first["valid"]["recall@5"] != second["valid"]["recall@5"] or first["test"] != second["test"]
        want = (first["valid"]["recall@5"] + second["valid"]["recall@5"]) / 2
        assert r["value"] == pytest.approx(want) and r["valid"]["recall@5"] == pytest.approx(want)
        assert r["test"]["recall@20"] == pytest.approx((first["test"]["recall@20"] + second["test"]["recall@20"]) / 2)
        assert [s["seed"] for s in r["seeds"]] == [999, 1000]
    md = (out / "study.md").read_text()
    assert "2 seeds per trial" in md and "valid recall@5 per seed" in md
    # resumed with more trials: the finished seeds are kept, not retrained
    kept = {p: p.stat().st_mtime_ns for p in out.glob("trials/*-seed1000/metrics.json")}
    more = _spec(planted_dir, out, {"learning_rate": {"low": 1e-3, "high": 0.1, "log": True}},
                 TuneOptions(trials=3, startup_trials=2, pruner="none", trial_seeds=2), epochs=3)
    res = run_tune(more, log=lambda s: None)
    assert sum(r["state"] == "COMPLETE" for r in res["rows"]) == 3 and len(kept) == 2
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert len(list(out.glob("trials/*-seed1000/metrics.json"))) == 3
    # the seed count is part of the study's identity: resuming with another is refused
    with pytest.raises(ConfigError, match="other settings"):
        run_tune(_spec(planted_dir, out, {"learning_rate": {"low": 1e-3, "high": 0.1, "log": True}},
                       TuneOptions(trials=3, startup_trials=2, pruner="none"), epochs=3), log=lambda s: None)
    from siger.experiments.tune import confirm_top

    with pytest.raises(ConfigError, match="already average"):
        confirm_top(spec, top=1, seeds=2, log=lambda s: None)


def test_a_config_the_model_refuses_fails_that_trial_and_the_study_goes_on(planted_dir, tmp_path):
    # SIGER refuses beta_learn with infuse_at weights: a space that searches infuse_at but leaves
    # beta_learn at its config value (on here) draws such trials; they fail (not counted), others run
    out = tmp_path / "s"
    spec = _spec(planted_dir, out, {"infuse_at": ["graph", "weights"], "knn_k": [2, 3]},
                 TuneOptions(trials=2, sampler="grid", pruner="none"), model="SIGER", epochs=1, cooc_k=2,
                 beta_learn="true")
    res = run_tune(spec, log=lambda s: None)
    states = {(r["params"]["infuse_at"], r["state"]) for r in res["rows"]}
    assert states == {("graph", "COMPLETE"), ("weights", "FAIL")}
    assert sum(r["state"] == "COMPLETE" for r in res["rows"]) == 2
    failed = [r for r in res["rows"] if r["state"] == "FAIL"]
    assert all("beta_learn needs infuse_at graph" in r["error"] for r in failed)
    assert "failed (invalid config)" in (out / "study.md").read_text()
    # every draw refused: the worker stops with the model's error instead of failing forever
    bad = _spec(planted_dir, tmp_path / "bad", {"infuse_at": ["weights"], "knn_k": [2, 3]},
                TuneOptions(trials=2, sampler="random", pruner="none"), model="SIGER", epochs=1, cooc_k=2,
                beta_learn="true")
    with pytest.raises(ConfigError, match="were all refused by the model: beta_learn needs"):
        run_tune(bad, log=lambda s: None)


def test_else_gives_a_conditional_key_its_value_where_the_condition_fails(planted_dir, tmp_path):
    sp = parse_space({"infuse_at": ["graph", "weights"],
                      "beta_learn": {"choices": [False, True], "if": {"infuse_at": "graph"}, "else": False},
                      "eps": {"low": 0.1, "high": 0.5, "if": {"infuse_at": "graph"}, "else": 0.3}}, "SIGER")
    assert sp.params["beta_learn"].otherwise == (False,) and sp.params["eps"].otherwise == (0.3,)
    assert sp.complete({"infuse_at": "weights"}) == {"infuse_at": "weights", "beta_learn": False, "eps": 0.3}
    assert sp.complete({"infuse_at": "graph", "beta_learn": True, "eps": 0.2}) == \
        {"infuse_at": "graph", "beta_learn": True, "eps": 0.2}
    assert sp.to_yaml()["params"]["beta_learn"] == {"choices": [False, True], "if": {"infuse_at": "graph"},
                                                    "else": False}
    assert parse_space(sp.to_yaml(), "SIGER").params["eps"].otherwise == (0.3,)  # round trip (space.yaml)
    # a space without else keeps its old form (old studies' identity unchanged)
    assert parse_space({"infuse_at": ["graph", "weights"], "beta_learn": {"choices": [False, True], "if": {
        "infuse_at": "graph"}}}, "SIGER").to_yaml()["params"]["beta_learn"] == \
        {"choices": [False, True], "if": {"infuse_at": "graph"}}
    for bad, msg in [({"beta_learn": {"choices": [True], "else": False}}, "'else' needs an 'if'"),
                     ({"infuse_at": ["graph", "weights"],
                       "beta_learn": {"choices": [True], "if": {"infuse_at": "graph"}, "else": "maybe"}}, "beta_learn"),
                     ({"infuse_at": ["graph", "weights"],
                       "beta_learn": {"choices": [True], "if": {"infuse_at": "graph"}, "oops": 1}}, "extra keys")]:
        with pytest.raises(ConfigError, match=msg):
            parse_space(bad, "SIGER")
    # the refused combination of the test above now runs: weights trials get beta_learn false
    out = tmp_path / "s"
    spec = _spec(planted_dir, out, {"infuse_at": ["graph", "weights"],
                                    "beta_learn": {"choices": [True], "if": {"infuse_at": "graph"}, "else": False}},
                 TuneOptions(trials=2, sampler="random", pruner="none",
                             enqueue=[{"infuse_at": "graph"}, {"infuse_at": "weights"}]),
                 model="SIGER", epochs=1, cooc_k=2, knn_k=2, beta_learn="true")
    res = run_tune(spec, log=lambda s: None)
    assert all(r["state"] == "COMPLETE" for r in res["rows"]), [r["error"] for r in res["rows"]]
    seen = {(r["params"]["infuse_at"], r["params"]["beta_learn"]) for r in res["rows"]}
    assert seen == {("graph", True), ("weights", False)}
    for r in res["rows"]:  # the run itself trained with the else value, not the config default
        cfg = yaml.safe_load((out / r["run_dir"] / "config.yaml").read_text())
        assert cfg["model"]["beta_learn"] is (r["params"]["infuse_at"] == "graph")
    assert "| weights | False |" in (out / "study.md").read_text()
