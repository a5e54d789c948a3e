"""Benchmark tools: the synthetic generator keeps the degree distributions; the bench script runs."""

import json

import numpy as np
import pytest

from benchmarks.bench import bench
from benchmarks.scaling import fit
from benchmarks.synth import sample_interactions, synthesize
from siger.data.dataset import load_dataset


def test_sample_interactions_gives_each_user_its_degree_without_repeats():
    rng = np.random.default_rng(0)
    deg = np.array([1, 5, 3, 40, 2])
    w = np.array([100.0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1.0])
    pairs = sample_interactions(deg, w, rng)
    assert np.array_equal(np.bincount(pairs[:, 0], minlength=5), np.minimum(deg, 30))
    assert len(np.unique(pairs[:, 0] * 30 + pairs[:, 1])) == len(pairs)
    # the heavy item is drawn far more often than its 1/30 uniform share
    many = sample_interactions(np.full(2000, 2), w, rng)
    assert (many[:, 1] == 0).mean() > 0.4  # ~0.47 expected (item 0 in ~95% of 2-item users); uniform: 0.033


def test_synthetic_scale_keeps_degree_distribution(tmp_path):
    real = load_dataset("tiktok")
    info = synthesize("tiktok", None, 2.0, tmp_path / "tk2", seed=1)
    syn = load_dataset("tk2", tmp_path)
    assert syn.n_users == info["users"] == round(2 * real.n_users)
    n_real = len(real.train) + len(real.valid) + len(real.test)
    assert abs(info["interactions"] / (2 * n_real) - 1) < 0.05  # ~2x the interactions
    d_real = np.bincount(np.concatenate([real.train, real.valid, real.test])[:, 0])
    d_syn = np.bincount(np.concatenate([syn.train, syn.valid, syn.test])[:, 0])
    for q in (0.25, 0.5, 0.9):
        assert abs(np.quantile(d_syn, q) - np.quantile(d_real[d_real > 0], q)) <= 1 + 0.1 * np.quantile(d_real, q)
    assert set(syn.features) == {"audio", "image"} and syn.features["image"].shape == (syn.n_items, 128)


def test_bench_reports_every_cost(tmp_path):
    synthesize("tiktok", None, 0.1, tmp_path / "tk", seed=0)
    r = bench("LightGCN", "tk", str(tmp_path), 1, {"batch_size": "512"})
    assert r["epoch_s"] > 0 and r["eval_s"] > 0 and r["graph_build_s"] >= 0 and r["peak_rss_mb"] > 0
    assert r["train_interactions"] > 0
    json.dumps(r)


def test_bench_times_single_steps(tmp_path):
    synthesize("tiktok", None, 0.1, tmp_path / "tk", seed=0)
    r = bench("LightGCN", "tk", str(tmp_path), 0, {"batch_size": "256"}, steps=3)
    assert r["epoch_s"] is None and r["step_s"] > 0 and r["eval_s"] > 0
    assert r["batch_size"] == 256 and r["steps_per_epoch"] == -(-r["train_interactions"] // 256)


@pytest.mark.slow  # four fresh processes (~45 s on a loaded 2-core machine)
def test_scaling_scales_the_batch(tmp_path, capsys):
    from benchmarks.scaling import main

    assert main(["--model", "LightGCN", "--dataset", "tiktok", "--scales", "0.05,0.1", "--work", str(tmp_path),
                 "--epochs", "1", "--steps", "1", "--scale-batch", "--batch-size", "2000",
                 "--png", str(tmp_path / "s.png")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["batch_size"] for r in rows] == [100, 200]
    assert all(r["epoch_s"] > 0 and r["step_s"] > 0 for r in rows) and (tmp_path / "s.png").stat().st_size > 0


def test_fit_recovers_a_linear_law():
    x = np.array([1e5, 3e5, 1e6])
    f = fit(x, 2.0 + 5e-6 * x)
    assert abs(f["slope_per_1M"] - 5.0) < 1e-6 and abs(f["intercept"] - 2.0) < 1e-6
    assert abs(fit(x, 5e-6 * x)["loglog_exponent"] - 1.0) < 1e-9
    assert abs(fit(x, 1e-12 * x ** 2)["loglog_exponent"] - 2.0) < 1e-9


def test_infonce_rows_ab_gives_the_same_loss_on_both_paths(tmp_path):
    import siger.models.losses as losses
    from benchmarks.infonce_rows import ab

    exact = losses.distinct_rows
    synthesize("tiktok", None, 0.1, tmp_path / "tk", seed=0)
    r = ab("SIGER", "tk", str(tmp_path), 1, {"batch_size": "512", "num_threads": "1"})
    assert losses.distinct_rows is exact  # the full-batch path is switched back after each step
    assert r["distinct_users"] < 512  # the batch repeats users, so the two paths differ in work
    a, b = r["loss_terms"]["distinct_rows"], r["loss_terms"]["every_row"]
    assert set(a) == set(b) >= {"bpr", "pert", "anchor", "align"}
    for k in a:
        assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(b[k])), k
    assert r["step_s_distinct_rows"] > 0 and r["step_s_every_row"] > 0


def test_authors_log_parsing_takes_each_epochs_time_and_valid_recall():
    from benchmarks.authors import parse_mmrec_log

    log = """05 Dec 19:45    INFO epoch 0 training [time: 23.88s, train loss: 21.7133]
05 Dec 19:45    INFO epoch 0 evaluating [time: 1.2s, valid_score: 0.038100]
recall@5: 0.0194    recall@10: 0.0302    recall@20: 0.0381    recall@50: 0.0611
recall@5: 0.0178    recall@10: 0.0274    recall@20: 0.0392    recall@50: 0.0630
05 Dec 19:46    INFO epoch 1 training [time: 23.00s, train loss: 16.1266]
recall@5: 0.0243    recall@10: 0.0332    recall@20: 0.0456    recall@50: 0.0670
recall@5: 0.0224    recall@10: 0.0333    recall@20: 0.0469    recall@50: 0.0702
"""
    assert parse_mmrec_log(log) == {"seconds": [23.88, 23.0], "valid_recall@20": [0.0381, 0.0456]}


def test_authors_full_run_parsing_and_welch_interval():
    from benchmarks.authors import parse_mmrec_result, welch

    log = """05 Dec 19:45    INFO best valid result: recall@5: 0.0300    recall@20: 0.0900    ndcg@20: 0.0400
05 Dec 19:45    INFO test result: recall@5: 0.0310    recall@20: 0.0950    ndcg@20: 0.0410
05 Dec 20:45    INFO best valid result: recall@5: 0.0350    recall@20: 0.1000    ndcg@20: 0.0450
05 Dec 20:45    INFO test result: recall@5: 0.0360    recall@20: 0.1050    ndcg@20: 0.0460
"""
    got = parse_mmrec_result(log)  # the last pair: the run's final best-valid epoch
    assert got == {"valid": {"recall@5": 0.035, "recall@20": 0.1, "ndcg@20": 0.045},
                   "test": {"recall@5": 0.036, "recall@20": 0.105, "ndcg@20": 0.046}}
    # a = (1, 2, 3), b = (2, 4, 6): difference -2; variances of the means 1/3 and 4/3, df = (5/3)^2 /
    # ((1/9 + 16/9) / 2) = 3.2353, t(0.975, 3.2353) = 3.0554; half width 3.0554 * sqrt(5/3) = 3.9445
    d, lo, hi = welch([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert d == -2.0 and abs(hi - d - 4.1554) < 1e-3 and abs(d - lo - 4.1554) < 1e-3


def test_robustness_record_replaces_a_continued_run_in_its_place(tmp_path):
    """A run continued under a new stop rule has a new record id: recording it again replaces
    the old record of its place (dataset, noise, row, seed), never adds a second one."""
    import json

    from benchmarks.robustness import record
    from siger.experiments.records import load_records, save_records

    def run_dir(name, rid, seed):
        d = tmp_path / name
        d.mkdir()
        (d / "record.json").write_text(json.dumps({"kind": "run", "id": rid, "seed": seed, "dataset": "d_g50"}))
        return {"run": str(d), "dataset": "d", "kind": "graph", "level": 0.5, "label": "SIGER (full)", "seed": seed}

    path = tmp_path / "records.jsonl"
    save_records([{"kind": "run", "id": "other", "table": "comparison", "label": "SIGER (full)", "seed": 1}], path)
    record([run_dir("a", "old1", 1), run_dir("b", "old2", 2)], path)
    record([run_dir("c", "new1", 1)], path)
    got = sorted((r.get("table"), r["id"]) for r in load_records(path))
    assert got == [("comparison", "other"), ("robustness", "new1"), ("robustness", "old2")]


def test_smore_start_measures_each_term_on_its_own(tmp_path):
    from benchmarks.smore_start import start

    synthesize("tiktok", None, 0.1, tmp_path / "tk", seed=0)
    base = {"batch_size": "512", "num_threads": "1"}
    one = start("tk", str(tmp_path), 1, base | {"cl_weight": "0.01"})
    two = start("tk", str(tmp_path), 0, base | {"cl_weight": "0.02"})
    assert one["start_norms"] == two["start_norms"] and min(one["start_norms"].values()) > 0
    for t in ("user_emb", "item_emb"):  # a term's gradient alone: it scales with its weight, BPR's does not
        assert abs(two["first_batch_grad_norms"]["cl"][t] - 2 * one["first_batch_grad_norms"]["cl"][t]) \
            <= 1e-5 * two["first_batch_grad_norms"]["cl"][t]
        assert two["first_batch_grad_norms"]["bpr"][t] == one["first_batch_grad_norms"]["bpr"][t] > 0
    assert [e["epoch"] for e in one["epochs"]] == [0] and 0 <= one["epochs"][0]["valid_recall@20"] <= 1
    assert one["epochs"][0]["loss"]["bpr"] > 0 and two["epochs"] == []
