import json

import pytest

from siger.cli import main
from siger.experiments.summary import collect_runs, summarize, summary_table


def _run(path, model, seed, r20, r10=0.1):
    path.mkdir(parents=True)
    test = {"recall@10": r10, "recall@20": r20, "ndcg@10": 0.05, "ndcg@20": 0.06}
    path.joinpath("metrics.json").write_text(json.dumps({
        "model": model, "dataset": "d", "seed": seed, "test": test, "seconds_per_epoch": 2.0,
        "epochs_run": 30, "best_epoch": 10}))


def test_summarize_mean_and_sample_std(tmp_path, capsys):
    for s, v in zip((1, 2, 3), (0.2, 0.3, 0.4)):
        _run(tmp_path / f"A{s}", "A", s, v)
    _run(tmp_path / "B1", "B", 1, 0.5)
    groups = collect_runs([tmp_path])
    assert sorted(groups) == ["A on d", "B on d"] and len(groups["A on d"]) == 3
    row = summarize(groups["A on d"])
    assert row["recall@20"][0] == pytest.approx(0.3) and row["recall@20"][1] == pytest.approx(0.1)
    table = summary_table({"A": row, "B": summarize(groups["B on d"])}, ref="A")
    assert "0.3000 ± 0.1000" in table and "+0.2000 (+66.7%)" in table
    assert main(["summarize", str(tmp_path)]) == 0
    assert "| A on d |" in capsys.readouterr().out


def test_summarize_without_runs_is_an_error(tmp_path, capsys):
    assert main(["summarize", str(tmp_path)]) == 2
    assert "no finished run" in capsys.readouterr().err


def test_collect_follows_linked_runs_once(tmp_path):
    _run(tmp_path / "runs" / "A1", "A", 1, 0.2)
    _run(tmp_path / "runs" / "A2", "A", 2, 0.4)
    cmp = tmp_path / "cmp" / "A"
    cmp.mkdir(parents=True)
    (cmp / "seed1").symlink_to(tmp_path / "runs" / "A1", target_is_directory=True)
    (cmp / "seed2").symlink_to(tmp_path / "runs" / "A2", target_is_directory=True)
    assert len(collect_runs([tmp_path / "cmp"])["A on d"]) == 2  # through the links
    assert len(collect_runs([tmp_path])["A on d"]) == 2  # each run once, though reached twice


def test_collect_splits_runs_whose_settings_differ(tmp_path):
    def cfg(path, seed, lam, threads):
        path.joinpath("config.yaml").write_text(
            f"train:\n  model: A\n  seed: {seed}\n  num_threads: {threads}\nmodel:\n  lam: {lam}\n  k: 10\n")

    for s, lam, v in ((1, 0.01, 0.1), (2, 0.01, 0.2), (1, 0.001, 0.4), (2, 0.001, 0.6)):
        _run(tmp_path / f"A_{lam}_{s}", "A", s, v)
        cfg(tmp_path / f"A_{lam}_{s}", s, lam, threads=s)  # seed and threads differ: not a setting
    groups = collect_runs([tmp_path])
    assert sorted(groups) == ["A on d (lam=0.001)", "A on d (lam=0.01)"]
    assert summarize(groups["A on d (lam=0.001)"])["recall@20"][0] == pytest.approx(0.5)
    assert summarize(groups["A on d (lam=0.01)"])["recall@20"][0] == pytest.approx(0.15)
    # same setting, different seeds and threads: one group, plain label
    assert sorted(collect_runs([tmp_path / "A_0.01_1", tmp_path / "A_0.01_2"])) == ["A on d"]
    # a key only newer runs record (added to the schema later) does not split
    newer = tmp_path / "A_0.01_2" / "config.yaml"
    newer.write_text(newer.read_text() + "  backend: exact\n")
    assert sorted(collect_runs([tmp_path / "A_0.01_1", tmp_path / "A_0.01_2"])) == ["A on d"]


def test_seeds_phrase_names_one_seed_or_the_range():
    from siger.experiments.summary import seeds_phrase

    assert seeds_phrase(999, 1) == "seed 999"
    assert seeds_phrase(999, 3) == "seeds 999..1001, mean ± std"


@pytest.mark.parametrize("n", [1, 7, 10, 13, 20])
def test_bar_colours_are_distinct_up_to_twenty_rows(n):
    from siger.artifacts import bar_colours

    assert len(set(bar_colours(n))) == n  # 13 rows on tab10 would repeat three colours


def test_plot_bars_writes_a_png_for_thirteen_rows(tmp_path):
    from siger.artifacts import plot_bars

    rows = {f"row {k}": {"recall@20": (0.1 + k / 100, 0.01)} for k in range(13)}
    plot_bars(rows, ["recall@20"], tmp_path / "b.png", "t")
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
