"""Multi-dataset studies: relative scores against a reference, worst / mean aggregates, pruning
per dataset, and the leave-one-dataset-out choice."""

import json

import pytest
import yaml

from siger.config import ConfigError
from siger.experiments.tune import StudySpec, TuneOptions, open_study, parse_space, run_tune
from siger.experiments.tune.multi import aggregate, bounded, hopeless, leave_one_out, parse_datasets
from tests.conftest import write_planted

FAST = {"batch_size": "64", "patience": "1000", "progress": "false", "topk": "5,10,20",
        "valid_metric": "recall@5", "num_threads": "1", "epochs": "4", "warmup_epochs": "0", "warmup_steps": "0"}


def test_aggregate_is_the_minimum_or_the_mean():
    rel = {"a": 1.10, "b": 0.90, "c": 1.00}
    assert aggregate(rel, "worst") == 0.90
    assert aggregate(rel, "mean") == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="aggregate"):
        aggregate(rel, "median")


def test_parse_datasets_names_and_paths():
    assert parse_datasets("tiktok, /d/x/baby,ml100k", "/data") == [
        ("tiktok", "/data"), ("baby", "/d/x"), ("ml100k", "/data")]
    with pytest.raises(ConfigError, match="at least two"):
        parse_datasets("tiktok", None)
    with pytest.raises(ConfigError, match="each dataset once"):
        parse_datasets("tiktok,/x/tiktok", None)


def test_hopeless_compares_best_so_far_with_the_completed_trials_at_that_epoch():
    # five completed trials stopped at epoch 3 with best-so-far 1.0, 0.9, 0.8, 0.7, 0.6 (held after)
    others = [{0: 0.5, 3: v} for v in (1.0, 0.9, 0.8, 0.7, 0.6)]
    # the 25th percentile of [0.6 .. 1.0] is 0.7: a best of 0.65 at epoch 5 is below it, 0.75 is not
    assert hopeless({4: 0.65, 5: 0.6}, others, 5, 10, 25.0, 5)
    assert not hopeless({4: 0.75, 5: 0.6}, others, 5, 10, 25.0, 5)
    # at epoch 1 the others' best so far is 0.5 each: nothing is below that percentile's 0.5
    assert not hopeless({1: 0.5}, others, 1, 10, 25.0, 5)
    # too few completed trials to judge
    assert not hopeless({4: 0.0}, others[:4], 5, 10, 25.0, 5)
    # a floor (the best complete trial's worst case): 0.65 is below the bar of 0.7 but already at
    # a floor of 0.65, so this dataset cannot be why the trial loses to the best one; 0.64 is not
    assert not hopeless({4: 0.65}, others, 5, 10, 25.0, 5, floor=0.65)
    assert hopeless({4: 0.64}, others, 5, 10, 25.0, 5, floor=0.65)


def test_bounded_needs_two_datasets_below_the_best_and_the_worst_aggregate():
    assert bounded({"a": 0.9, "b": 0.95, "c": 1.2}, 1.0, "worst") == ["a", "b"]
    assert bounded({"a": 0.9, "c": 1.2}, 1.0, "worst") == []  # one below: LODO without a could pick it
    assert bounded({"a": 0.9, "b": 0.95}, None, "worst") == []  # no complete trial yet
    assert bounded({"a": 0.9, "b": 0.95}, 1.0, "mean") == []  # a mean can be lifted by the rest
    assert bounded({"a": 1.0, "b": 1.0}, 1.0, "worst") == []  # level is not below


def test_a_trial_below_the_best_on_two_datasets_stops_before_the_rest(tmp_path):
    data = tmp_path / "data"
    for i, n in enumerate(("p1", "p2", "p3")):
        write_planted(data, n, seed=i)
    space = parse_space({"learning_rate": {"low": 1e-6, "high": 1e-2, "log": True}}, "LightGCN")
    opts = TuneOptions(trials=2, sampler="random", pruner="none", enqueue=[{"learning_rate": 1e-2},
                                                                         {"learning_rate": 1e-6}])
    spec = StudySpec("LightGCN", None, {**FAST, "data_dir": str(data)}, None, space, str(tmp_path / "st"), opts,
                     datasets=parse_datasets("p1,p2,p3", str(data)), reference="MGCN", aggregate="worst")
    run_tune(spec)
    good, slow = sorted(open_study(spec).get_trials(), key=lambda t: t.number)
    assert good.state.name == "COMPLETE" and set(good.user_attrs["datasets"]) == {"p1", "p2", "p3"}
    assert slow.state.name == "PRUNED"
    assert slow.user_attrs["bounded"] == {"best": good.value, "below": ["p1", "p2"]}
    assert set(slow.user_attrs["datasets"]) == {"p1", "p2"}  # p3 never trained
    assert not (tmp_path / "st" / slow.user_attrs["run_dir"] / "p3").exists()
    assert f"| {slow.number} | pruned (bounded) |" in (tmp_path / "st" / "study.md").read_text()


def test_leave_one_out_chooses_on_the_other_datasets():
    def row(n, a, b, c):
        return {"number": n, "state": "COMPLETE",
                "datasets": {k: {"rel": v, "rel_test": v + 0.01} for k, v in zip("abc", (a, b, c))}}

    rows = [row(0, 1.2, 0.8, 1.0), row(1, 0.9, 1.0, 1.0), row(2, 1.0, 1.1, 0.7)]
    out = {x["left_out"]: x for x in leave_one_out(rows, ["a", "b", "c"], "worst")}
    # without a: worst over (b, c) is 0.8, 1.0, 0.7 -> trial 1, which gets 0.9 on a
    assert (out["a"]["trial"], out["a"]["rel"], out["a"]["chosen_on"]) == (1, 0.9, 1.0)
    # without b: worst over (a, c) is 1.0, 0.9, 0.7 -> trial 0, which gets 0.8 on b
    assert (out["b"]["trial"], out["b"]["rel"]) == (0, 0.8)
    # without c: worst over (a, b) is 0.8, 0.9, 1.0 -> trial 2, which gets 0.7 on c (test 0.71)
    assert (out["c"]["trial"], out["c"]["rel"], out["c"]["rel_test"]) == (2, 0.7, pytest.approx(0.71))


def test_a_multi_dataset_study_scores_every_dataset_against_its_reference(tmp_path):
    data = write_planted(tmp_path / "data", "p1", seed=0)
    write_planted(data, "p2", seed=1)
    space = parse_space({"learning_rate": [1e-2, 1e-6]}, "LightGCN")
    opts = TuneOptions(trials=2, sampler="grid", pruner="none")
    spec = StudySpec("LightGCN", None, {**FAST, "data_dir": str(data)}, None, space, str(tmp_path / "st"), opts,
                     datasets=parse_datasets("p1,p2", str(data)), reference="MGCN", aggregate="worst")
    with pytest.raises(ConfigError, match="multi-dataset study runs one seed"):
        run_tune(spec)  # a grid is refused
    spec.opts = TuneOptions(trials=2, sampler="random", pruner="none", enqueue=[{"learning_rate": 1e-2},
                                                                               {"learning_rate": 1e-6}])
    spec.space = parse_space({"learning_rate": {"low": 1e-6, "high": 1e-2, "log": True}}, "LightGCN")
    run_tune(spec)
    st = tmp_path / "st"
    refs = {n: json.loads((st / "refs" / n / "seed999" / "metrics.json").read_text()) for n in ("p1", "p2")}
    for n in refs:  # the reference: MGCN at its defaults, with the study's training protocol
        ref_cfg = yaml.safe_load((st / "refs" / n / "seed999" / "config.yaml").read_text())
        assert ref_cfg["train"]["model"] == "MGCN" and ref_cfg["train"]["epochs"] == 4
        assert ref_cfg["model"]["reg_weight"] == 1e-4 and ref_cfg["train"]["dataset"] == n
    trials = open_study(spec).get_trials()
    assert len(trials) == 2
    for t in trials:
        per = t.user_attrs["datasets"]
        assert set(per) == {"p1", "p2"}
        for n in ("p1", "p2"):  # the relative score is the trial's best valid over the reference's
            m = json.loads((st / t.user_attrs["run_dir"] / n / "metrics.json").read_text())
            assert per[n]["rel"] == pytest.approx(m["valid"]["recall@5"] / refs[n]["valid"]["recall@5"])
        assert t.value == pytest.approx(min(per[n]["rel"] for n in per))
        assert t.user_attrs["mean"] == pytest.approx(sum(per[n]["rel"] for n in per) / 2)
    fast, slow = sorted(trials, key=lambda t: -t.params["learning_rate"])
    assert fast.value > slow.value  # a learning model beats one that barely moves, on the worst case
    text = (st / "study.md").read_text()
    assert "| p1 | p2 | mean | worst |" in text and "## Leave one dataset out" in text
    assert json.loads((st / "study.json").read_text())["datasets"] == ["p1", "p2"]
    # the study's record carries the leave-one-out choice, and the report renders it
    from siger.experiments.records import study_record
    from siger.experiments.report import render

    rec = study_record(st)
    assert rec["datasets"] == ["p1", "p2"] and [x["left_out"] for x in rec["lodo"]] == ["p1", "p2"]
    assert rec["best"]["value"] == pytest.approx(max(t.value for t in trials))
    blocks = render([rec], stale=lambda r: None)
    assert "| p1 |" in blocks["lodo:lightgcn"] and "worst" in blocks["studies"]


def test_a_trial_with_the_reference_config_reuses_the_reference_run(tmp_path):
    from siger.config import build_config

    data = tmp_path / "data"
    for i, n in enumerate(("p1", "p2")):
        write_planted(data, n, seed=i)
    lr = build_config("LightGCN", "p1", {}).train.learning_rate
    space = parse_space({"learning_rate": {"low": 1e-6, "high": 1e-2, "log": True}}, "LightGCN")
    opts = TuneOptions(trials=1, sampler="random", pruner="none", enqueue=[{"learning_rate": lr}])
    spec = StudySpec("LightGCN", None, {**FAST, "data_dir": str(data)}, None, space, str(tmp_path / "st"), opts,
                     datasets=parse_datasets("p1,p2", str(data)), reference="LightGCN", aggregate="worst")
    run_tune(spec)
    (t,) = open_study(spec).get_trials()
    assert t.state.name == "COMPLETE" and t.value == 1.0
    for n in ("p1", "p2"):
        run = tmp_path / "st" / t.user_attrs["run_dir"] / n
        assert run.is_symlink() and run.resolve() == (tmp_path / "st" / "refs" / n / "seed999").resolve()
        ref = json.loads((run / "metrics.json").read_text())
        assert t.user_attrs["datasets"][n]["valid"] == ref["valid"] and t.user_attrs["datasets"][n]["reference"]
        assert max(t.user_attrs["curves"][n].values()) == pytest.approx(1.0)
    # a finished training of the reference config left in the trial's own folder (from before the
    # link, or under an earlier stop rule) gives way to the link: a stale record there would queue
    # a re-scoring retry of the trial at every resume
    import shutil

    from siger.experiments.tune.multi import reference_run_if_same

    run = tmp_path / "st" / t.user_attrs["run_dir"] / "p1"
    target = run.resolve()
    run.unlink()
    shutil.copytree(target, run)
    (run / "record.json").write_text(json.dumps({"stopped": "early_stop", "best_epoch": 0, "epochs_run": 2}))
    same = reference_run_if_same(spec, "p1", spec.trial_config({"learning_rate": lr}, on=("p1", str(data))), run)
    assert same is not None and run.is_symlink() and run.resolve() == target


def test_a_trial_the_old_early_stop_ended_is_retried_and_superseded(tmp_path, monkeypatch):
    """Finished trials whose runs the rule before 2026-12-05 stopped inside the warm-up are queued
    again when the study resumes: same values, the first one's run folder, the runs continued from
    their checkpoints; two trials with the same values get one retry. The retry replaces them in
    the count, the best choice and the report."""
    import siger.experiments.tune.drive as drive
    import siger.train.trainer as T
    from siger.experiments.tune.rescore import live_trials, stale_runs

    data = write_planted(tmp_path / "data", "p1", seed=0)
    write_planted(data, "p2", seed=1)
    space = parse_space({"learning_rate": {"low": 0.0, "high": 1e-2}}, "LightGCN")
    ov = {**FAST, "data_dir": str(data), "epochs": "8", "warmup_epochs": "5", "warmup_steps": "0", "patience": "2"}
    st = tmp_path / "st"

    def spec(trials):
        return StudySpec("LightGCN", None, ov, None, space, str(st),
                         TuneOptions(trials=trials, sampler="random", pruner="none", enqueue=[{"learning_rate": 0.0}]),
                         datasets=parse_datasets("p1,p2", str(data)), reference="MGCN", aggregate="worst")

    old = lambda evals, best, warmup: (sum(e > best for e in evals)  # noqa: E731
                                       if evals and evals[-1] + 1 >= warmup else 0)
    monkeypatch.setattr(T, "patience_used", old)
    monkeypatch.setattr(drive, "requeue_stale", lambda *a, **k: [])  # the code of then: no re-scoring either
    run_tune(spec(1), log=lambda s: None)
    open_study(spec(1)).enqueue_trial({"learning_rate": 0.0})  # the same values again (as a sampler may draw)
    run_tune(spec(2), log=lambda s: None)
    monkeypatch.undo()
    first, twin = open_study(spec(2)).get_trials()
    run = st / first.user_attrs["run_dir"]
    assert twin.params == first.params and twin.user_attrs["run_dir"] != first.user_attrs["run_dir"]
    # a learning rate of 0: the best epoch is 0, so the old rule stopped at epoch 4 (patience 2 from the peak)
    assert json.loads((run / "p1" / "metrics.json").read_text())["epochs_run"] == 5
    why = stale_runs(run)
    assert len(why) == 2 and why[0].startswith(f"{run.name}/p1: early stop at epoch 4 (best 0")

    run_tune(spec(2), log=lambda s: None)  # the same --trials: the retry runs in the stale trials' place
    study = open_study(spec(2))
    first, twin, retry, new = study.get_trials()
    assert retry.user_attrs["retry_of"] == [0, 1] and retry.user_attrs["run_dir"] == first.user_attrs["run_dir"]
    assert retry.params == first.params and retry.state.name == "COMPLETE"
    # the current rule: 2 evaluations of patience after the warm-up, so epochs 0-6
    assert json.loads((run / "p1" / "metrics.json").read_text())["epochs_run"] == 7
    assert retry.user_attrs["datasets"]["p2"]["epochs_run"] == 7 and stale_runs(run) == []
    assert [t.number for t in live_trials(study)] == [2, 3] and new.params != first.params
    text = (st / "study.md").read_text()
    assert "| 0 | complete, superseded by 2 |" in text and "| 2 | complete (re-scores 0, 1) |" in text
    assert "2 superseded by a re-scoring retry" in text
    run_tune(spec(2), log=lambda s: None)  # nothing stale is left: nothing is queued or run again
    assert len(open_study(spec(2)).get_trials()) == 4


def test_superseded_follows_retries_of_retries():
    from types import SimpleNamespace

    from siger.experiments.tune.rescore import superseded

    t = lambda n, of=None: SimpleNamespace(number=n, user_attrs={"retry_of": of} if of else {})  # noqa: E731
    # 4 re-scores 1 and 2 (one run folder); it was killed and re-queued by the heartbeat as 5 (same attributes)
    assert superseded([t(0), t(1), t(2), t(3), t(4, [1, 2]), t(5, [1, 2])]) == {1: 5, 2: 5}
    assert superseded([t(0), t(1)]) == {}


def test_stale_runs_reads_only_the_datasets_a_trial_reached(tmp_path):
    """A multi-dataset trial's value reads only the datasets it reached: a stale run in another
    folder of its run directory (left by an earlier trial that shared it, or one a pruned retry
    never got to) must not queue a retry, or every resume would queue one again."""
    from siger.experiments.tune.rescore import stale_runs

    stale = {"stopped": "early_stop", "best_epoch": 3, "epochs_run": 24,
             "config": {"train": {"warmup_epochs": 20, "patience": 20, "eval_every": 1, "epochs": 200}}}
    fine = {**stale, "epochs_run": 40}
    run = tmp_path / "trials" / "0003"
    for name, rec in (("a", fine), ("b", stale)):
        (run / name).mkdir(parents=True)
        (run / name / "record.json").write_text(json.dumps(rec))
    assert stale_runs(run, ["a"]) == []
    assert len(stale_runs(run, ["a", "b"])) == 1 and len(stale_runs(run)) == 1


def test_stale_runs_judge_by_the_studys_warmup_now(tmp_path):
    """After the warm-up's default grew (a floor in steps: 86 epochs on a small dataset), a run
    stopped early or pruned inside the new warm-up is stale; one past it is not."""
    from siger.experiments.tune.rescore import stale_runs

    train = {"warmup_epochs": 20, "patience": 20, "eval_every": 1, "epochs": 200}
    recs = {"early": {"dataset": "small", "stopped": "early_stop", "best_epoch": 3, "epochs_run": 40},
            "pruned": {"dataset": "small", "stopped": "pruned", "best_epoch": 30, "epochs_run": 41},
            "late": {"dataset": "small", "stopped": "pruned", "best_epoch": 30, "epochs_run": 90},
            "large": {"dataset": "large", "stopped": "early_stop", "best_epoch": 3, "epochs_run": 40}}
    for name, rec in recs.items():
        (tmp_path / name / "r").mkdir(parents=True)
        (tmp_path / name / "r" / "record.json").write_text(json.dumps({**rec, "config": {"train": train}}))
    warmup_of = {"small": 86, "large": 20}.get
    now = lambda name: stale_runs(tmp_path / name, None, lambda rec: warmup_of(rec["dataset"]))  # noqa: E731
    assert stale_runs(tmp_path / "early") == [] and stale_runs(tmp_path / "pruned") == []  # the rule they ran under
    assert "counts 0 of its 20" in now("early")[0] and "inside the 86-epoch warm-up" in now("early")[0]
    assert "pruned at epoch 40, inside the 86-epoch warm-up" in now("pruned")[0]
    assert now("late") == [] and now("large") == []


def test_study_warmup_counts_each_datasets_batches(tmp_path):
    """The warm-up a study gives a run now: its fixed warm-up keys on the run's dataset, by hand."""
    from siger.experiments.tune.drive import study_warmup
    from siger.train.trainer import load_data

    data = write_planted(tmp_path / "data", "p1", seed=0)
    write_planted(data, "p2", seed=1)
    space = parse_space({"learning_rate": {"low": 1e-3, "high": 1e-2}}, "LightGCN")
    ov = {**FAST, "data_dir": str(data), "warmup_epochs": "3", "warmup_steps": "100", "batch_size": "64"}
    spec = StudySpec("LightGCN", None, ov, None, space, str(tmp_path / "st"), TuneOptions(trials=1),
                     datasets=parse_datasets("p1,p2", str(data)), reference="MGCN", aggregate="worst")
    n = int(load_data(spec.trial_config({})).train_matrix.nnz)
    per_epoch = -(-n // 64)
    rec = {"dataset": "p1", "config": {"train": {"batch_size": 64, "warmup_epochs": 20, "warmup_steps": 0}}}
    assert study_warmup(spec)(rec) == max(3, -(-100 // per_epoch))  # the study's keys, not the run's
    assert study_warmup(spec)({**rec, "dataset": "gone"}) is None


def test_a_trial_scored_against_a_reference_that_moved_is_stale(tmp_path):
    """A reference run continued under a new stop rule changes the scale of the relative scores:
    a trial scored against the old reference valid is named, one scored against today's is not."""
    from types import SimpleNamespace

    from siger.experiments.tune.multi import moved_references

    data = write_planted(tmp_path / "data", "p1", seed=0)
    write_planted(data, "p2", seed=1)
    space = parse_space({"learning_rate": {"low": 1e-3, "high": 1e-2}}, "LightGCN")
    spec = StudySpec("LightGCN", None, {**FAST, "data_dir": str(data)}, None, space, str(tmp_path / "st"),
                     TuneOptions(trials=1), datasets=parse_datasets("p1,p2", str(data)), reference="MGCN",
                     aggregate="worst")
    refs = {("p1", 999): {"valid": {"recall@5": 0.5}}, ("p2", 999): {"valid": {"recall@5": 0.4}}}
    why = moved_references(spec, refs)
    now = SimpleNamespace(user_attrs={"datasets": {"p1": {"valid": {"recall@5": 0.45}, "rel": 0.9},
                                                   "p2": {"valid": {"recall@5": 0.4}, "rel": 1.0, "reference": True}}})
    old = SimpleNamespace(user_attrs={"datasets": {"p1": {"valid": {"recall@5": 0.45}, "rel": 0.45 / 0.49}}})
    assert why(now) == []
    assert len(why(old)) == 1 and why(old)[0].startswith("p1: relative score 0.91837") and "now: 0.90000" in why(old)[0]


def test_confirmation_of_a_multi_dataset_study_scores_each_seed_against_its_own_reference(tmp_path):
    """--confirm-top on a multi-dataset study: every extra seed gets its reference run on every
    dataset, each (dataset, seed) is a relative score, and the winner has the best aggregate of
    the per-dataset means. A trial with the reference's config links to the reference's runs."""
    from siger.config import build_config
    from siger.experiments.tune import confirm_top
    from siger.experiments.tune.confirm import choose_winner

    data = tmp_path / "data"
    for i, n in enumerate(("p1", "p2")):
        write_planted(data, n, seed=i)
    lr = build_config("LightGCN", "p1", {}).train.learning_rate
    space = parse_space({"learning_rate": {"low": 1e-6, "high": 1e-2, "log": True}}, "LightGCN")
    opts = TuneOptions(trials=3, sampler="random", pruner="none",
                       enqueue=[{"learning_rate": lr}, {"learning_rate": 3e-3}, {"learning_rate": 1e-6}])
    st = tmp_path / "st"
    spec = StudySpec("LightGCN", None, {**FAST, "data_dir": str(data)}, None, space, str(st), opts,
                     datasets=parse_datasets("p1,p2", str(data)), reference="LightGCN", aggregate="worst")
    run_tune(spec, log=lambda s: None)
    confirm_top(spec, top=2, seeds=2, log=lambda s: None)
    c = json.loads((st / "confirm.json").read_text())
    assert c["seed_list"] == [999, 1000] and c["datasets"] == ["p1", "p2"] and len(c["rows"]) == 2
    trials = {t.number: t for t in open_study(spec).get_trials()}
    assert {r["number"] for r in c["rows"]} == {n for n, t in sorted(trials.items(), key=lambda x: -x[1].value)[:2]}
    refs = {n: json.loads((st / "refs" / n / "seed1000" / "metrics.json").read_text()) for n in ("p1", "p2")}
    for r in c["rows"]:
        t = trials[r["number"]]
        for n in ("p1", "p2"):
            d = r["datasets"][n]
            run = st / "confirm" / f"{r['number']:04d}" / "seed1000" / n
            m = json.loads((run / "metrics.json").read_text())
            assert yaml.safe_load((run / "config.yaml").read_text())["train"]["seed"] == 1000
            # seed 999 is the trial's own run; seed 1000 reads seed 1000's reference
            assert d["rel"][0] == pytest.approx(t.user_attrs["datasets"][n]["rel"])
            assert d["rel"][1] == pytest.approx(m["valid"]["recall@5"] / refs[n]["valid"]["recall@5"])
            assert d["rel_mean"] == pytest.approx(sum(d["rel"]) / 2)
            lo, hi = d["interval"]
            assert lo <= d["rel_mean"] <= hi
        assert r["value"] == pytest.approx(min(r["datasets"][n]["rel_mean"] for n in ("p1", "p2")))
        assert r["value_per_seed"][1] == pytest.approx(min(r["datasets"][n]["rel"][1] for n in ("p1", "p2")))
    assert c["best_by_value"] == max(c["rows"], key=lambda r: r["value"])["number"]
    assert c["best"]["number"] == choose_winner(c["rows"], "worst")["best"]["number"]
    assert c["best_by_value"] in [t["number"] for t in c["tied"]]
    ref_trial = next(r for r in c["rows"] if r["params"]["learning_rate"] == lr)
    for n in ("p1", "p2"):  # the reference's own config: its seed-1000 runs are the references'
        run = st / "confirm" / f"{ref_trial['number']:04d}" / "seed1000" / n
        assert run.is_symlink() and run.resolve() == (st / "refs" / n / "seed1000").resolve()
        assert ref_trial["datasets"][n]["rel"] == [1.0, 1.0]
    winner = yaml.safe_load((st / "best_config.yaml").read_text())
    assert winner["train"]["learning_rate"] == c["best"]["params"]["learning_rate"]
    text = (st / "study.md").read_text()
    assert "## Confirmation: the top 2 trials over 2 seeds" in text and "| trial | p1 | p2 | worst of the means |" in text
    assert "| mean over the datasets |" in text and "— (the best worst case) |" in text
    from siger.experiments.records import study_record
    from siger.experiments.report import study_table

    rec = study_record(st)
    assert f"trial {c['best']['number']}, worst of the mean relative scores" in study_table([rec])
    # the docs' block of the confirmation is study.md's table, from the record
    from siger.experiments.report import render

    block = render([rec], stale=lambda r: None)["confirm:lightgcn"]
    assert block.startswith("| trial | p1 | p2 | worst of the means |") and block in text
    assert f"| **{c['best']['number']}** |" in block


def test_the_pruner_reads_the_best_complete_trials_value_as_its_floor(tmp_path, monkeypatch):
    """With the worst aggregate, every dataset's pruning decision of a trial gets the best complete
    trial's value as its floor (a dataset already at that value never prunes); with mean, none."""
    import siger.experiments.tune.multi as M

    data = tmp_path / "data"
    for i, n in enumerate(("p1", "p2")):
        write_planted(data, n, seed=i)
    floors = []

    def spy(mine, others, epoch, horizon, percentile, startup, floor=None):
        floors.append(floor)
        return False

    monkeypatch.setattr(M, "hopeless", spy)
    space = parse_space({"learning_rate": {"low": 1e-6, "high": 1e-2, "log": True}}, "LightGCN")
    for how in ("worst", "mean"):
        floors.clear()
        opts = TuneOptions(trials=2, sampler="random", pruner="percentile", prune_startup=1,
                           enqueue=[{"learning_rate": 1e-2}, {"learning_rate": 1e-3}])
        spec = StudySpec("LightGCN", None, {**FAST, "data_dir": str(data)}, None, space, str(tmp_path / how), opts,
                         datasets=parse_datasets("p1,p2", str(data)), reference="MGCN", aggregate=how)
        run_tune(spec, log=lambda s: None)
        first = min(open_study(spec).get_trials(), key=lambda t: t.number)
        assert len(floors) == 16  # 2 trials x 2 datasets x 4 evaluations
        assert set(floors[:8]) == {None}  # the first trial has no complete trial before it
        assert set(floors[8:]) == ({first.value} if how == "worst" else {None})
        assert "below the best complete trial's value" in first.user_attrs["pruner"] or how == "mean"


def test_a_trial_pruned_at_or_above_the_floor_before_it_existed_is_stale():
    """Trials pruned before the floor existed, on a dataset where they had reached the best value
    of the trials complete when they started, are retried (the pruner now lets them train on)."""
    import datetime as dt
    from types import SimpleNamespace as NS

    from siger.experiments.tune.multi import FLOOR_PRUNER, pruned_above_floor

    t0 = dt.datetime(2026, 12, 6, 10)

    def trial(n, state, start, done=None, value=None, curve=None, **ua):
        per = {"a": {"rel": 1.1, "pruned": False}, "b": {"rel": 0.9, "pruned": True}} if curve else {}
        return NS(number=n, state=NS(name=state), value=value, datetime_start=t0 + dt.timedelta(hours=start),
                  datetime_complete=None if done is None else t0 + dt.timedelta(hours=done),
                  user_attrs={"datasets": per, "curves": {"b": curve} if curve else {},
                              "pruner": "per dataset, bottom 25 % of completed trials", **ua})

    best = trial(0, "COMPLETE", 0, done=1, value=1.016)
    later = trial(1, "COMPLETE", 1, done=5, value=1.05)  # complete only after the trials below started
    above = trial(2, "PRUNED", 2, curve={"86": 1.017})
    below = trial(3, "PRUNED", 2, curve={"86": 1.004})
    judged = trial(4, "PRUNED", 2, curve={"86": 1.03}, pruner=f"per dataset, bottom 25 % {FLOOR_PRUNER}")
    bounded = trial(5, "PRUNED", 2, curve={"86": 1.03}, bounded={"best": 1.0, "below": ["a", "b"]})
    early = trial(6, "PRUNED", 0.5, curve={"86": 1.03})  # started before any trial was complete
    trials = [best, later, above, below, judged, bounded, early]
    spec = NS(aggregate="worst")
    why = pruned_above_floor(spec, trials)
    assert why(above) == ["b: pruned at a best so far of 1.0170, at or above the best complete trial's value "
                          "then (1.0160), which no longer prunes: the run trains on"]
    assert [why(t) for t in (best, below, judged, bounded, early)] == [[]] * 5
    assert pruned_above_floor(NS(aggregate="mean"), trials)(above) == []


def test_the_confirmed_winner_is_the_best_mean_among_worst_cases_the_seeds_cannot_tell_apart():
    """A has the best worst case. B's per-seed worst cases differ from A's by -0.02, +0.01, -0.005:
    mean -0.005, sd 0.015, half width t(0.975, 2) 4.303 * 0.015 / sqrt(3) = 0.0373, so the
    interval [-0.042, +0.032] reaches zero and B ties; its mean over the datasets (1.1075) beats
    A's (1.06). C is below A by 0.03 at every seed (interval [-0.03, -0.03]): out, whatever its mean."""
    from siger.experiments.tune.confirm import choose_winner

    def row(n, value, per_seed, x, y):
        return {"number": n, "value": value, "value_per_seed": per_seed,
                "datasets": {"x": {"rel_mean": x}, "y": {"rel_mean": y}}}

    a = row(1, 1.02, [1.02, 1.03, 1.01], 1.02, 1.10)
    b = row(2, 1.015, [1.00, 1.04, 1.005], 1.015, 1.20)
    c = row(3, 0.99, [0.99, 1.00, 0.98], 0.99, 1.50)
    got = choose_winner([a, b, c], "worst")
    assert got["best"] is b and got["best_by_value"] == 1
    assert [t["number"] for t in got["tied"]] == [1, 2]
    m, lo, hi = got["tied"][1]["diff"]
    assert m == pytest.approx(-0.005) and lo == pytest.approx(-0.005 - 0.03726, abs=1e-4) and \
        hi == pytest.approx(-0.005 + 0.03726, abs=1e-4)
    assert got["tied"][1]["mean"] == pytest.approx(1.1075)
    # B at every seed 0.03 below A: out, and A wins
    b2 = row(2, 0.99, [0.99, 1.00, 0.98], 1.0, 1.2)
    assert choose_winner([a, b2], "worst")["best"] is a
    # the mean aggregate: the best value, no ties
    assert choose_winner([a, b, c], "mean") == {"best": a, "best_by_value": 1, "tied": []}
