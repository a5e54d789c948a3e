"""Replays: a record is stale when its first epochs, trained again, differ from its own head."""

import json
import shutil

import pytest

from siger.config import build_config, config_from_dict
from siger.experiments.replay import Checkouts, compare, verify_record
from siger.train.record import REPO
from siger.train.trainer import Trainer, load_data
from tests.conftest import SHARED_DATA

FAST = {"batch_size": 64, "epochs": 3, "progress": False, "num_threads": 1, "topk": [5, 10, 20],
        "valid_metric": "recall@20", "warmup_epochs": 0, "warmup_steps": 0, "knn_k": 3, "cooc_k": 3}


def _record(planted_dir, tmp_path):
    cfg = build_config("SIGER", "planted", {**FAST, "data_dir": str(planted_dir), "cache_dir": str(tmp_path / "c")})
    Trainer(cfg, load_data(cfg), tmp_path / "run", log=lambda s: None).fit()
    return json.loads((tmp_path / "run" / "record.json").read_text())


def _scaled_copy(tmp_path, module: str, func: str, factor: float):
    """A copy of the package (under ``tmp_path/code``) whose ``module``.``func`` returns ``factor``
    times what it did: a code change a replay must catch."""
    code = tmp_path / "code"
    shutil.copytree(REPO / "siger", code / "siger", ignore=shutil.ignore_patterns("__pycache__"))
    path = code / "siger" / f"{module.replace('.', '/')}.py"
    text = path.read_text()
    assert f"def {func}(" in text
    path.write_text(text.replace(f"def {func}(", f"def _{func}(")
                    + f"\n\ndef {func}(*a, **k):\n    return {factor} * _{func}(*a, **k)\n")
    return code


def test_compare_is_exact_by_default_and_names_what_differs():
    a = [{"epoch": 0, "loss": {"bpr": 0.5, "reg": 1e-6}, "valid": {"recall@20": 0.1}}]
    assert compare(a, json.loads(json.dumps(a))) == []
    b = [{"epoch": 0, "loss": {"bpr": 0.5 + 1e-12, "reg": 1e-6}, "valid": {"recall@20": 0.1}}]
    assert compare(a, b) == [f"epoch 0 loss bpr: record 0.5, replay {0.5 + 1e-12!r}"]
    assert compare(a, b, rtol=1e-9) == []
    c = [{"epoch": 0, "loss": {"bpr": 0.5}, "valid": {"recall@20": 0.1}}]
    assert compare(a, c) == ["epoch 0 loss reg: only in the record"]


def test_a_record_replays_exactly_and_a_changed_loss_is_caught(planted_dir, tmp_path):
    rec = _record(planted_dir, tmp_path)
    assert [h["epoch"] for h in rec["log_head"]] == [0, 1, 2] and "bpr" in rec["log_head"][0]["loss"]
    v = verify_record(rec, 2, Checkouts(), str(planted_dir))
    assert v.ok and v.diffs == [] and v.head_source == "the run itself"
    # the same record against a copy of the code whose BPR loss is scaled by 1.0001
    code = _scaled_copy(tmp_path, "models.losses", "bpr_loss", 1.0001)
    v = verify_record(rec, 2, Checkouts(), str(planted_dir), code=code)
    assert not v.ok and any("loss bpr" in d for d in v.diffs)


def test_a_saved_config_means_by_a_missing_key_what_it_meant_then(tmp_path):
    # SIGER's beta_rule is newer than the runs recorded before it: a saved config without it ran 'fixed'
    cfg = build_config("SIGER")
    assert cfg.model.beta_rule == "holdout" and cfg.train.warmup_epochs == 20
    doc = cfg.to_dict()
    del doc["model"]["beta_rule"], doc["train"]["warmup_epochs"]
    old = config_from_dict(doc)
    assert old.model.beta_rule == "fixed" and old.train.warmup_epochs == 0
    import yaml

    (tmp_path / "saved.yaml").write_text(yaml.safe_dump(doc))
    from_file = build_config("SIGER", yaml_path=tmp_path / "saved.yaml")
    assert from_file.model.beta_rule == "fixed" and from_file.train.warmup_epochs == 0
    (tmp_path / "flat.yaml").write_text(yaml.safe_dump({"lambda_p": 0.01}))  # a plain override file: defaults
    assert build_config("SIGER", yaml_path=tmp_path / "flat.yaml").model.beta_rule == "holdout"


def test_committed_records_replay_on_the_current_code():
    """A small sample of the committed records, replayed against their heads (CI's replay check)."""
    from siger.experiments.records import load_records

    if not (SHARED_DATA / "ml100k").is_dir():
        pytest.skip("../shared/data not present")
    recs = [r for r in load_records(REPO / "results" / "records.jsonl")
            if r.get("kind") == "run" and r["dataset"] == "ml100k" and len(r.get("log_head") or []) >= 1]
    if not recs:
        pytest.skip("no committed ml100k record carries a head yet")
    for rec in recs[:2]:
        v = verify_record(rec, 1, Checkouts(), str(SHARED_DATA))
        assert v.ok, v.diffs


def test_per_setting_replays_one_seed_and_stamps_the_others_by_it(planted_dir, tmp_path, monkeypatch):
    from siger.experiments import replay as rp

    recs = []
    for seed in (1, 2):
        cfg = build_config("LightGCN", "planted", {**{k: v for k, v in FAST.items() if not k.endswith("_k")},
                                                    "data_dir": str(planted_dir), "seed": seed})
        Trainer(cfg, load_data(cfg), tmp_path / f"s{seed}", log=lambda s: None).fit()
        recs.append(json.loads((tmp_path / f"s{seed}" / "record.json").read_text()))
    calls = []
    real = rp.verify_record

    def counting(rec, *a, **k):
        calls.append(rec["seed"])
        return real(rec, *a, **k)

    monkeypatch.setattr(rp, "verify_record", counting)
    monkeypatch.setattr(rp, "git_state", lambda: {"commit": "c0ffee", "dirty_code": []})
    out, verdicts = rp.verify(recs, None, epochs=1, data_dir=str(planted_dir), only_stale=False, per_setting=True,
                              log=lambda s: None)
    assert calls == [1] and len(verdicts) == 1 and verdicts[0].ok
    assert out[0]["verified"] == {"commit": "c0ffee", "epochs": 1}
    assert out[1]["verified"] == {"commit": "c0ffee", "epochs": 1, "by": recs[0]["id"]}


def test_stop_check_knows_the_current_early_stopping_rule():
    from siger.train.record import stop_check

    def rec(best, run, warmup=20, patience=20, stopped="early_stop"):
        return {"stopped": stopped, "best_epoch": best, "epochs_run": run,
                "config": {"train": {"warmup_epochs": warmup, "patience": patience, "eval_every": 1, "epochs": 1000}}}

    assert stop_check(rec(45, 66)) is None  # best after the warm-up: 20 bad evaluations since 45, all counted
    assert stop_check(rec(3, 40)) is None  # best in the warm-up: epochs 20..39 are the 20 counted
    msg = stop_check(rec(3, 24))  # the earlier rule stopped here: epochs 20..23 are only 4 of 20
    assert msg is not None and "counts 4 of its 20" in msg
    assert stop_check(rec(0, 21, warmup=0)) is None  # MMRec's rule: 20 since the best
    assert stop_check(rec(3, 24, stopped="epochs")) is None  # not an early stop
    # a record that carries its effective warm-up (a step floor: 86 epochs on a small dataset)
    assert "counts 0 of its 20" in stop_check({**rec(3, 40), "warmup_epochs_effective": 86})
    assert stop_check({**rec(3, 106), "warmup_epochs_effective": 86}) is None


def test_verify_names_a_record_todays_plain_command_would_train_on(planted_dir):
    """A record made before warmup_steps existed ran with 0 (what a replay uses); today's default
    floors the warm-up in steps, which on a dataset of few batches an epoch passes its early stop."""
    from siger.experiments.replay import DefaultRule
    from siger.train.stopping import effective_warmup

    rule = DefaultRule()
    train = {"dataset": "planted", "data_dir": str(planted_dir), "batch_size": 64, "warmup_epochs": 20,
             "patience": 20, "eval_every": 1, "epochs": 1000}
    rec = {"stopped": "early_stop", "best_epoch": 3, "epochs_run": 40, "config": {"train": train}}
    n = rule.n_train(rec["config"])
    warmup = effective_warmup(20, 600, n, 64)
    assert warmup > 40  # planted: few batches an epoch, so 600 steps are many epochs
    why = rule(rec)
    assert why.startswith("made before warmup_steps existed; with today's default (warmup_steps 600)")
    assert f"inside the {warmup}-epoch warm-up" in why
    assert rule({**rec, "epochs_run": warmup + 20, "best_epoch": warmup - 1}) is None  # past it: same stop
    assert rule({**rec, "config": {"train": {**train, "warmup_steps": 0}}}) is None  # a key it has: its own rule
    assert rule({**rec, "stopped": "epochs"}) is None


def test_the_tolerance_is_exact_on_the_machine_that_made_the_head_and_loose_elsewhere():
    from siger.experiments.replay import CROSS_MACHINE_METRIC_RTOL, CROSS_MACHINE_RTOL, cpu_and_torch, default_rtol

    cross = (CROSS_MACHINE_RTOL, CROSS_MACHINE_METRIC_RTOL)

    amd = "AMD EPYC, 2 cpus, torch 2.13.0+cpu, 1 threads, Python 3.11.7"
    assert cpu_and_torch(amd) == ("AMD EPYC", "2.13.0+cpu")
    # threads and Python do not change a float; the CPU model and torch do
    assert default_rtol(amd, "AMD EPYC, 2 cpus, torch 2.13.0+cpu, 4 threads, Python 3.12.1") == (0.0, 0.0)
    assert default_rtol(amd, "Intel(R) Xeon(R) Processor, 2 cpus, torch 2.13.0+cpu, 1 threads, Python 3.11.7") \
        == cross
    assert default_rtol(amd, "AMD EPYC, 2 cpus, torch 2.12.0+cpu, 1 threads, Python 3.11.7") == cross
    assert default_rtol(None, amd) == cross  # unknown: another machine


def test_the_head_is_judged_by_the_machine_that_made_it():
    from siger.experiments.replay import head_machine

    rec = {"machine": "AMD EPYC, 2 cpus, torch 2.13.0+cpu, 1 threads, Python 3.11.7"}
    assert head_machine(rec) == rec["machine"]  # its own head: the run's machine
    assert head_machine({**rec, "log_head_source": "the run itself"}) == rec["machine"]
    # replayed at its commit: the replaying machine, unknown before heads named it
    assert head_machine({**rec, "log_head_source": "replayed at 0123456789ab"}) is None
    assert head_machine({**rec, "log_head_source": "replayed at 0123456789ab", "log_head_machine": "X, 4 cpus"}) \
        == "X, 4 cpus"


def test_a_record_from_another_machine_replays_within_the_loose_tolerance_only(planted_dir, tmp_path):
    from siger.train.record import git_state, machine

    rec = _record(planted_dir, tmp_path)
    # the same head with every loss a relative 1e-7 off: what another CPU model gives
    rec["log_head"] = [{**h, "loss": {k: v * (1 + 1e-7) for k, v in h["loss"].items()}} for h in rec["log_head"]]
    rec["machine"] = "Some Other CPU, 8 cpus, torch 2.13.0+cpu, 1 threads, Python 3.11.7"
    v = verify_record(rec, 1, Checkouts(), str(planted_dir))
    assert v.ok and v.rtol == (1e-6, 1e-4)
    mine = verify_record({**rec, "machine": machine()}, 1, Checkouts(), str(planted_dir))  # this machine's head
    assert mine.rtol == (0.0, 0.0) and not mine.ok and all("loss" in d for d in mine.diffs)
    rec["log_head"][0]["loss"]["bpr"] *= 1 + 1e-5  # off by more than the tolerance allows
    rec["commit"], rec["dirty_code"] = None, []  # no commit to re-derive the head at: a difference
    v = verify_record(rec, 1, Checkouts(), str(planted_dir))
    assert not v.ok and v.diffs == [f"epoch 0 loss bpr: record {rec['log_head'][0]['loss']['bpr']!r}, "
                                    f"replay {v.diffs[0].split('replay ')[1]}"]
    # with its commit, the head is re-derived on this machine and the two replays compared exactly:
    # the code at HEAD computes what the code now does
    rec["commit"] = git_state()["commit"]
    v = verify_record(rec, 1, Checkouts(), str(planted_dir))
    assert v.ok and v.rtol == (0.0, 0.0) and "re-derived at" in v.head_source
    # and a changed loss against that re-derived head is caught exactly
    code = _scaled_copy(tmp_path, "models.losses", "bpr_loss", 1.0001)
    v = verify_record(rec, 1, Checkouts(), str(planted_dir), code=code)
    assert not v.ok and any("loss bpr" in d for d in v.diffs) and "re-derived at" in v.head_source


def test_compare_can_hold_metrics_to_their_own_tolerance():
    a = [{"epoch": 0, "loss": {"bpr": 0.5}, "valid": {"map@50": 0.04274650860207864}}]
    b = [{"epoch": 0, "loss": {"bpr": 0.5 * (1 + 1e-8)}, "valid": {"map@50": 0.04274613095058752}}]  # measured
    assert compare(a, b, 1e-6, 1e-4) == []
    assert compare(a, b, 1e-6) == [f"epoch 0 valid map@50: record {a[0]['valid']['map@50']!r}, "
                                   f"replay {b[0]['valid']['map@50']!r}"]
    assert compare(a, b, 1e-9, 1e-4) == [f"epoch 0 loss bpr: record 0.5, replay {b[0]['loss']['bpr']!r}"]


def test_graphs_one_code_tree_cached_cannot_hide_another_trees_change(planted_dir, tmp_path):
    """One verification, two code trees: the current code fills its graph cache first; a copy whose
    kNN graph builder is changed still builds (and is judged on) its own graphs."""
    rec = _record(planted_dir, tmp_path)
    checkouts = Checkouts()
    try:
        assert verify_record(rec, 1, checkouts, str(planted_dir)).ok
        assert any(checkouts.cache(REPO).glob("graphs/knn_*"))  # the current code's graphs, cached
        code = _scaled_copy(tmp_path, "data.graphs", "knn_graph", 1.5)
        assert checkouts.cache(code) != checkouts.cache(REPO)
        v = verify_record(rec, 1, checkouts, str(planted_dir), code=code)
        assert not v.ok and v.diffs
        assert verify_record(rec, 1, checkouts, str(planted_dir)).ok  # the current code's cache is untouched
    finally:
        root = checkouts._root
        checkouts.close()
    assert not root.exists()


def test_parallel_replays_keep_the_order_and_stamps_of_one(monkeypatch):
    import threading
    import time

    from siger.experiments import replay as rp

    recs = [{"kind": "run", "id": f"r{i}", "seed": i, "dataset": "d", "config": {"train": {}},
             "table": "t", "label": "L"} for i in range(5)]
    running, peak, lock = [0], [0], threading.Lock()

    def fake(rec, *a, **k):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2 if rec["seed"] % 2 == 0 else 0.05)  # later ones finish first
        with lock:
            running[0] -= 1
        return rp.Verdict(rec["id"], rec["id"], rec["seed"] != 3, [] if rec["seed"] != 3 else ["x"], "the run itself")

    monkeypatch.setattr(rp, "verify_record", fake)
    monkeypatch.setattr(rp, "git_state", lambda: {"commit": "c0ffee", "dirty_code": []})
    monkeypatch.setattr(rp, "stop_check", lambda r: None)
    lines = []
    out, verdicts = rp.verify([dict(r) for r in recs], None, epochs=1, only_stale=False, log=lines.append, jobs=2)
    assert peak[0] == 2
    assert [v.record_id for v in verdicts] == [f"r{i}" for i in range(5)]  # the order of one job
    assert [r.get("verified") for r in out] == [{"commit": "c0ffee", "epochs": 1}] * 3 + [None] + \
        [{"commit": "c0ffee", "epochs": 1}]
    assert out[3]["replay_differs"] == ["x"]
    seq, _ = rp.verify([dict(r) for r in recs], None, epochs=1, only_stale=False, log=lambda s: None, jobs=1)
    assert seq == out
