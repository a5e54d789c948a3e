"""Run records, `siger results`, and the report rendered from records (no hand-typed numbers)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from siger.cli import main
from siger.experiments import records as R
from siger.experiments import report as P
from siger.experiments import staleness as S
from siger.train.record import record_id

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--batch_size", "4", "--patience", "100", "--progress", "false", "--topk", "5,10,20"]


def _train(tiny_dir, out, seed, *extra):
    return main(["train", "--model", "LightGCN", "--dataset", "tiny", "--data-dir", str(tiny_dir), "--out", str(out),
                 "--epochs", "2", "--seed", str(seed), *FAST, *extra])


def _fake(label, seed, r20, n20, table="comparison", dataset="d", **cfg):
    test = {"recall@10": r20 / 2, "recall@20": r20, "ndcg@10": n20 / 2, "ndcg@20": n20}
    rec = {"kind": "run", "model": "M", "dataset": dataset, "seed": seed, "config": {"train": {"seed": seed},
           "model": dict(cfg)}, "valid": test, "test": test, "best_epoch": 3, "epochs_run": 5,
           "seconds_per_epoch": 2.0, "peak_rss_mb": 100.0, "table": table, "label": label, "note": None,
           "commit": "x", "dirty_code": [], "date": f"2026-01-0{seed % 9 + 1}"}
    rec["id"] = record_id(rec)
    return rec


def test_a_finished_run_writes_its_record(tiny_dir, tmp_path):
    out = tmp_path / "r"
    assert _train(tiny_dir, out, 7) == 0
    rec = json.loads((out / "record.json").read_text())
    m = json.loads((out / "metrics.json").read_text())
    assert rec["kind"] == "run" and rec["model"] == "LightGCN" and rec["seed"] == 7 and rec["dataset"] == "tiny"
    assert rec["test"] == m["test"] and rec["valid"] == m["valid"] and rec["config"]["train"]["seed"] == 7
    assert {"commit", "dirty_code", "machine", "date", "version", "id", "seconds_per_epoch", "peak_rss_mb"} <= set(rec)
    assert "cpus" in rec["machine"] and rec["stopped"] == "epochs"
    # finishing the same run again (resume of a finished run) keeps the record and its id
    assert _train(tiny_dir, out, 7, "--resume") == 0
    assert json.loads((out / "record.json").read_text())["id"] == rec["id"]


def test_results_add_appends_replaces_and_refuses_bad_input(tiny_dir, tmp_path, capsys):
    for s in (1, 2):
        assert _train(tiny_dir, tmp_path / "runs" / f"s{s}", s) == 0
    recs = tmp_path / "records.jsonl"
    assert main(["results", "add", str(tmp_path / "runs"), "--table", "comparison", "--label", "LightGCN (tiny)",
                 "--note", "at its defaults", "--records", str(recs)]) == 0
    got = R.load_records(recs)
    assert [(r["label"], r["table"], r["seed"]) for r in got] == [("LightGCN (tiny)", "comparison", 1),
                                                                   ("LightGCN (tiny)", "comparison", 2)]
    assert main(["results", "add", str(tmp_path / "runs" / "s1"), "--records", str(recs), "--table",
                 "comparison", "--label", "LightGCN (tiny)"]) == 0
    assert len(R.load_records(recs)) == 2  # the same run again replaces its record
    # a replay's stamp on a run's record goes with the run into another table (not to other runs),
    # also when the run sits there already without it (added before the replay)
    assert main(["results", "add", str(tmp_path / "runs"), "--records", str(recs), "--table", "depth"]) == 0
    stamped = [{**r, "verified": {"commit": "abc", "epochs": 1}} if r["seed"] == 1 and r["table"] == "comparison"
               else r for r in R.load_records(recs)]
    R.save_records(stamped, recs)
    assert main(["results", "add", str(tmp_path / "runs"), "--records", str(recs), "--table", "depth"]) == 0
    depth = {r["seed"]: r for r in R.load_records(recs) if r["table"] == "depth"}
    assert depth[1]["verified"] == {"commit": "abc", "epochs": 1} and "verified" not in depth[2]
    R.save_records([r for r in R.load_records(recs) if r["table"] != "depth"], recs)
    assert main(["results", "add", str(tmp_path / "runs" / "s1"), "--records", str(recs), "--table", "cold"]) == 2
    assert "siger evaluate --run" in capsys.readouterr().err  # a cold row needs the cold-start metrics
    assert len(R.load_records(recs)) == 2
    assert main(["results", "add", str(tmp_path / "nothing"), "--records", str(recs)]) == 2
    assert "no run record" in capsys.readouterr().err
    (recs.parent / "bad.jsonl").write_text('{"kind": "run"}\nnot json\n')
    with pytest.raises(R.RecordError, match="bad.jsonl:2"):
        R.load_records(recs.parent / "bad.jsonl")


def test_rendered_tables_are_computed_from_the_records():
    recs = [_fake("A", 1, 0.10, 0.05), _fake("A", 2, 0.12, 0.07), _fake("B", 1, 0.08, 0.04, lr=2)]
    blocks = P.render(recs, stale=lambda r: None)
    table = blocks["comparison:d"]
    # A: mean 0.11, sample std of (0.10, 0.12) = 0.0141; B: one seed, no std
    assert "| A | 2 | **0.0550 ± 0.0071** | **0.1100 ± 0.0141** | **0.0300 ± 0.0071** | **0.0600 ± 0.0141** |" in table
    assert "| B | 1 | 0.0400 | 0.0800 | 0.0200 | 0.0400 | 2.0 | 5 (3) | 100 |" in table
    assert blocks["headline"] == "No results recorded yet."  # no SIGER (defaults) row
    assert blocks["results"].startswith("# Results") and "## d" in blocks["results"]
    abl = P.render([_fake("SIGER (full)", 1, 0.10, 0.05, table="ablation"), _fake("no x", 1, 0.09, 0.06, "ablation", x=0)],
                   stale=lambda r: None)["ablation:d"]
    assert "Δ R@20 (paired, 95 % CI)" in abl and \
        "| no x | 1 | 0.0450 | 0.0900 | **0.0300** | **0.0600** | -0.0100 | +0.0100 |" in abl
    # over seeds the delta is paired: seed 1 -0.01, seed 2 -0.03, seed 3 -0.02 -> mean -0.02, sd 0.01,
    # half width t(0.975, 2) 0.01 / sqrt(3) = 0.0248; the reference row has no delta of its own
    recs = [_fake("SIGER (full)", s, 0.10 + s / 100, 0.05, table="ablation") for s in (1, 2, 3)]
    recs += [_fake("no x", s, 0.10 + s / 100 - d, 0.05, "ablation", x=0) for s, d in ((1, 0.01), (2, 0.03), (3, 0.02))]
    abl = P.render(recs, stale=lambda r: None)["ablation:d"]
    assert "| -0.0200 [-0.0448, +0.0048] | +0.0000 [+0.0000, +0.0000] |" in abl
    assert "| — | — |" in abl.splitlines()[2]
    with pytest.raises(R.RecordError, match="mixes runs of different settings"):
        P.render([_fake("A", 1, 0.1, 0.05), _fake("A", 2, 0.1, 0.05, lr=3)], stale=lambda r: None)
    with pytest.raises(R.RecordError, match="seed"):
        P.render([_fake("A", 1, 0.1, 0.05), {**_fake("A", 1, 0.2, 0.05), "id": "other"}], stale=lambda r: None)
    marked = P.render([_fake("A", 1, 0.1, 0.05)], stale=lambda r: "stale")["comparison:d"]
    assert "| A † |" in marked
    # the depth table takes its deltas against MGCN at 4 behaviour layers
    depth = P.render([_fake(P.DEPTH_REF, 1, 0.10, 0.05, table="depth"), _fake("SIGER (defaults)", 1, 0.12, 0.04, "depth", x=1)],
                     stale=lambda r: None)["depth:d"]
    assert "| SIGER (defaults) | 1 | **0.0600** | **0.1200** | 0.0200 | 0.0400 | +0.0200 | -0.0100 |" in depth


def test_headline_pairs_siger_with_mgcn_and_the_strongest_other_row():
    recs = [_fake("SIGER (defaults)", s, v, 0.05) for s, v in ((1, 0.10), (2, 0.12), (3, 0.11))]
    recs += [_fake("MGCN (MMRec defaults)", s, v, 0.05, x=1) for s, v in ((1, 0.09), (2, 0.11), (3, 0.11))]
    recs += [_fake("X", s, v, 0.05, x=2) for s, v in ((1, 0.13), (2, 0.12), (3, 0.11))]
    recs += [_fake("Y (two seeds)", s, 0.2, 0.05, x=3) for s in (1, 2)]  # fewer than 3 seeds: not a contender
    recs += [_fake("SIGER (tuned)", s, 0.3, 0.05, x=4) for s in (1, 2, 3)]  # SIGER's own rows: not contenders
    recs.append({**_fake("MostPop (for scale)", 0, 0.05, 0.02), "kind": "mostpop", "seed": None})
    head = P.render(recs, stale=lambda r: None)["headline"].splitlines()
    # SIGER - MGCN by seed 0.01, 0.01, 0.00: mean 0.0067, sd 0.0058, half width t(0.975, 2) sd / sqrt(3) = 0.0143;
    # SIGER - X by seed -0.03, 0, 0: mean -0.01, sd 0.0173, half width 0.0430
    assert head[2] == ("| d | 0.1100 ± 0.0100 (3 seeds) | 0.1033 ± 0.0115 (3 seeds) | +0.0067 [-0.0077, +0.0210] "
                       "| X: 0.1200 ± 0.0100 (3 seeds) | -0.0100 [-0.0530, +0.0330] | 0.0500 |")


def test_staleness_follows_git(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = tmp_path / "repo"
    (repo / "siger" / "models").mkdir(parents=True)
    (repo / "siger" / "models" / "m.py").write_text("x = 1\n")
    (repo / "README.md").write_text("hi\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "a"], check=True)
    first = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    rec = {"kind": "run", "commit": first, "dirty_code": []}
    (repo / "README.md").write_text("docs only\n")
    subprocess.run(git + ["commit", "-qam", "docs"], check=True)
    assert S.Staleness(repo)(rec) is None  # a docs change does not make a result stale
    (repo / "siger" / "models" / "m.py").write_text("x = 2\n")
    subprocess.run(git + ["commit", "-qam", "model"], check=True)
    assert S.Staleness(repo)(rec) == "stale"
    assert S.Staleness(repo)({**rec, "dirty_code": ["siger/models/m.py"]}) == "uncommitted"


def test_staleness_is_judged_on_the_code_the_model_depends_on(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = tmp_path / "repo"
    models = repo / "siger" / "models"
    (models / "spaces").mkdir(parents=True)
    (models / "a.py").write_text('class A:\n    name = "A"\n')
    (models / "b.py").write_text('from siger.models.a import A\n\nclass B(A):\n    name = "B"\n')
    (models / "c.py").write_text('class C:\n    name = "C"\n')
    (models / "spaces" / "a.yaml").write_text("lr: [1]\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "a"], check=True)
    first = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    rec = {m: {"kind": "run", "model": m, "commit": first, "dirty_code": []} for m in "ABC"}
    (models / "spaces" / "a.yaml").write_text("lr: [2]\n")  # a search space: no result changes
    (models / "__init__.py").write_text("from siger.models import a, b, c, d\n")  # a model registered: none
    (models / "c.py").write_text('class C:\n    name = "C"\n    x = 1\n')
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "c"], check=True)
    st = S.Staleness(repo)
    assert [st(rec[m]) for m in "ABC"] == [None, None, "stale"]
    assert st({**rec["A"], "dirty_code": ["siger/models/c.py"]}) is None  # another model's edit
    assert st({**rec["B"], "dirty_code": ["siger/models/a.py"]}) == "uncommitted"  # B imports a
    (models / "a.py").write_text('class A:\n    name = "A"\n    y = 2\n')
    subprocess.run(git + ["commit", "-qam", "a2"], check=True)
    st = S.Staleness(repo)
    assert [st(rec[m]) for m in "ABC"] == ["stale", "stale", "stale"]  # B imports A's file
    mostpop = {"kind": "mostpop", "model": "MostPop", "commit": first, "dirty_code": []}
    assert st(mostpop) is None  # no model file at all
    # the cold-start protocols' code counts only for a run evaluated by mode
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (models / "newusers.py").write_text("z = 1\n")
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "fold-in"], check=True)
    st = S.Staleness(repo)
    warm = {"kind": "run", "model": "A", "commit": head, "dirty_code": []}
    assert st(warm) is None and st({**warm, "modes": {"test": {}}}) == "stale"


def test_blocks_in_docs_are_filled_and_unknown_blocks_are_errors():
    text = "intro\n<!-- report:headline -->\nold numbers\n<!-- /report -->\nend\n"
    out = P.fill_blocks(text, {"headline": "| new |"}, "X.md")
    assert out == "intro\n<!-- report:headline -->\n| new |\n<!-- /report -->\nend\n"
    with pytest.raises(R.RecordError, match="nothing to render"):
        P.fill_blocks(text.replace("headline", "nope"), {"headline": "x"}, "X.md")


def test_committed_docs_are_what_the_committed_records_render_to():
    """docs/results.md and every report block of README.md and docs/*.md come from results/records.jsonl."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs the git checkout (staleness marks are computed from git)")
    differ = P.report(ROOT, check=True)
    assert differ == [], f"run `siger report`: {differ}"


def test_study_record_keeps_the_chosen_trial_and_the_choices_table_shows_it(tmp_path):
    trial = lambda n, state, beta, valid: {"number": n, "state": state, "params": {"beta": beta},  # noqa: E731
                                           "valid": valid, "test": valid - 0.01, "best_epoch": 3, "epochs_run": 5}
    study = {"model": "SIGER", "dataset": "d", "metric": "recall@20", "select_by": "valid", "sampler": "tpe",
             "pruner": "median", "space": {"params": {"beta": {"low": 0, "high": 1}}, "fixed": {}},
             "best": trial(1, "COMPLETE", 0.9, 0.3), "importances": {"beta": 1.0}, "confirmed": None,
             "trials": [trial(0, "COMPLETE", 0.2, 0.2), trial(1, "COMPLETE", 0.9, 0.3), trial(2, "PRUNED", 0.5, 0.1)]}
    (tmp_path / "study.json").write_text(json.dumps(study))
    rec = R.study_record(tmp_path, chosen=0)
    assert rec["chosen"]["number"] == 0 and rec["chosen"]["params"] == {"beta": 0.2}
    table = P.choices_table([rec])
    row = [line for line in table.splitlines() if line.startswith("| `beta`")][0]
    assert "chosen on d: trial 0" in table and row.split(" | ")[3:5] == ["0.9", "0.2"]  # best, chosen
    with pytest.raises(R.RecordError, match="no complete trial 2"):
        R.study_record(tmp_path, chosen=2)  # a pruned trial cannot be the defaults' source


def test_a_cold_table_is_rendered_once_in_its_own_section():
    recs = []
    for seed in (1, 2):
        r = _fake("M", seed, 0.3, 0.2, table="cold")
        r["note"] = "the plain command plus the seed"
        m = {"recall@20": 0.1 * seed, "ndcg@20": 0.05 * seed}
        r["modes"] = {"test": {"warm": m, "cold": m, "all": m}, "valid": {"warm": m, "cold": m, "all": m}}
        recs.append(r)
    blocks = P.render(recs, stale=lambda r: None)
    assert "| M | 2 | 0.1500 ± 0.0707 |" in blocks["cold:d"]
    assert blocks["results"].count("warm R@20") == 1 and "Cold-start items" in blocks["results"]
    section = blocks["results"].split("Cold-start items")[1]
    assert section.count("- **M**: the plain command plus the seed") == 1  # the row's note, under its table


def test_one_run_can_sit_in_two_tables_and_a_readd_replaces_only_its_own_table():
    run = _fake("SIGER (full)", 1, 0.1, 0.05)
    recs = R.merge_records([], [run, {**run, "table": "ablation"}])
    assert [r["table"] for r in recs] == ["comparison", "ablation"]
    recs = R.merge_records(recs, [{**run, "table": "ablation", "label": "again"}])
    assert [(r["table"], r["label"]) for r in recs] == [("comparison", "SIGER (full)"), ("ablation", "again")]


def test_results_remove_takes_one_row_out_of_one_table(tmp_path, capsys):
    from siger.cli import main

    run = _fake("MGCN (tuned, trial 2)", 1, 0.1, 0.05)
    other = _fake("SIGER (defaults)", 2, 0.2, 0.06)
    path = tmp_path / "records.jsonl"
    R.save_records([run, {**run, "table": "confirmation"}, other], path)
    assert main(["results", "remove", "--table", "comparison", "--label", "MGCN (tuned, trial 2)",
                 "--records", str(path)]) == 0
    left = R.load_records(path)
    assert [(r["table"], r["label"]) for r in left] == [("confirmation", "MGCN (tuned, trial 2)"),
                                                        ("comparison", "SIGER (defaults)")]
    assert main(["results", "remove", "--table", "comparison", "--label", "nope", "--records", str(path)]) != 0
    assert "no row 'nope' in table 'comparison'" in capsys.readouterr().err
    assert R.load_records(path) == left


def test_a_confirmation_table_shows_and_marks_the_valid_score_the_choice_read():
    # trial a: better on valid, worse on test; the choice reads valid, so a's valid cell is bold
    recs = []
    for s, (va, vb) in enumerate([(0.30, 0.20), (0.32, 0.22)], start=1):
        a, b = _fake("trial a", s, 0.10, 0.05, table="confirmation"), _fake("trial b", s, 0.12, 0.06, table="confirmation")
        a["valid"] = {**a["valid"], "recall@20": va}
        b["valid"] = {**b["valid"], "recall@20": vb}
        recs += [a, b]
    lines = P.run_table(recs, "confirmation", "d", lambda r: None).splitlines()
    assert lines[0].split(" | ")[2] == "valid Recall@20"
    row_a, row_b = (ln.split(" | ") for ln in lines[2:4])
    assert row_a[2] == "**0.3100 ± 0.0141**" and row_b[2] == "0.2100 ± 0.0141"
    assert row_a[4] == "0.1000 ± 0.0000" and row_b[4] == "**0.1200 ± 0.0000**"  # test: best in bold, not chosen
    other = P.run_table([{**r, "table": "comparison"} for r in recs], "comparison", "d", lambda r: None)
    assert "trial a" in other and "valid Recall@20" not in other
    # a per-model confirmation table (confirmation_<model>) reads valid the same way
    own = P.run_table([{**r, "table": "confirmation_siger"} for r in recs], "confirmation_siger", "d",
                      lambda r: None).splitlines()
    assert own[0].split(" | ")[2] == "valid Recall@20" and own[2].split(" | ")[2] == "**0.3100 ± 0.0141**"



def test_results_add_replace_reruns_a_row_in_place_with_its_note(tiny_dir, tmp_path, capsys):
    recs = tmp_path / "records.jsonl"
    b_old = _fake("B", 1, 0.2, 0.06, dataset="tiny")
    b_old["note"] = "how B was tuned"
    R.save_records([_fake("A", 1, 0.1, 0.05, dataset="tiny"), b_old, _fake("B", 1, 0.3, 0.07, dataset="e"),
                    _fake("C", 1, 0.4, 0.08, dataset="tiny")], recs)
    assert _train(tiny_dir, tmp_path / "new" / "seed5", 5) == 0
    assert main(["results", "add", str(tmp_path / "new"), "--table", "comparison", "--label", "B", "--replace",
                 "--records", str(recs)]) == 0
    got = R.load_records(recs)  # B's record on tiny went, the rerun took its place and its note
    assert [(r["label"], r["dataset"], r["seed"]) for r in got] == [("A", "tiny", 1), ("B", "tiny", 5),
                                                                   ("B", "e", 1), ("C", "tiny", 1)]
    assert got[1]["model"] == "LightGCN" and got[1]["note"] == "how B was tuned"
    # a row with nothing to replace on the runs' dataset is an error, and nothing is written
    assert main(["results", "add", str(tmp_path / "new"), "--table", "comparison", "--label", "D", "--replace",
                 "--records", str(recs)]) == 2
    assert "no row 'D' on tiny in table 'comparison'" in capsys.readouterr().err
    assert R.load_records(recs) == got


def test_replace_keeps_the_rows_note_and_order_unless_a_note_is_given():
    a1, a2, b = _fake("A", 1, 0.1, 0.05), _fake("A", 2, 0.1, 0.05), _fake("B", 1, 0.2, 0.06)
    a1["note"] = a2["note"] = "how A was tuned"
    new = [_fake("A", 7, 0.5, 0.1), _fake("A", 8, 0.5, 0.1)]
    out = R.replace_rows([a1, b, a2], new, "comparison", keep_note=True)
    assert [(r["label"], r["seed"]) for r in out] == [("A", 7), ("A", 8), ("B", 1)]
    assert all(r["note"] == "how A was tuned" for r in out[:2])
    new = [_fake("A", 7, 0.5, 0.1)]
    assert R.replace_rows([a1, b, a2], new, "comparison", keep_note=False)[0]["note"] is None
    with pytest.raises(R.RecordError, match="no row 'A' on d in table 'ablation'"):
        R.replace_rows([a1, b, a2], new, "ablation", keep_note=True)


def test_robustness_records_render_a_paired_table_per_noise_level(tmp_path):
    recs = []
    for level, drop in ((0.0, 0.00), (0.5, 0.02)):
        for s in (1, 2, 3):
            full = _fake("SIGER (full)", s, 0.20 - level / 10 + s / 100, 0.1, table="robustness",
                         dataset=f"d_g{int(level * 100)}")
            abl = _fake("no perturbation (lambda_p=0)", s, 0.20 - level / 10 + s / 100 - drop, 0.1, table="robustness",
                        dataset=f"d_g{int(level * 100)}", lambda_p=0)
            for r in (full, abl):
                r["noise"] = {"base": "d", "kind": "graph", "level": level}
            recs += [full, abl]
    blocks = P.render(recs, stale=lambda r: None)
    table = blocks["robustness:d:graph"]
    lines = table.splitlines()
    assert lines[0] == "| noise | SIGER (full) | no perturbation (lambda_p=0) | Δ no perturbation (lambda_p=0) |"
    assert lines[2].startswith("| 0 | 0.2200 ± 0.0100 | 0.2200 ± 0.0100 | +0.0000 [+0.0000, +0.0000] |")
    assert lines[3].startswith("| 0.5 | 0.1700 ± 0.0100 | 0.1500 ± 0.0100 | -0.0200 [-0.0200, -0.0200] |")
    assert "robustness_d_graph.png" in table
    assert "## d_g0" not in blocks["results"]  # noise variants are not datasets of their own in results.md


def test_relabel_renames_a_row_everywhere_in_its_table(tmp_path):
    path = tmp_path / "r.jsonl"
    recs = [_fake("SIGER (defaults)", s, 0.1, 0.05, dataset=d) for s in (1, 2) for d in ("a", "b")]
    recs.append(_fake("SIGER (defaults)", 1, 0.1, 0.05, table="ablation"))
    R.save_records(recs, path)
    assert R.relabel_rows("comparison", "SIGER (defaults)", "SIGER (old defaults)", "before 2026-12-05", path) == 4
    out = R.load_records(path)
    assert [r["label"] for r in out] == ["SIGER (old defaults)"] * 4 + ["SIGER (defaults)"]  # other tables untouched
    assert out[0]["note"] == "before 2026-12-05"
    with pytest.raises(R.RecordError, match="no row"):
        R.relabel_rows("comparison", "nope", "x", None, path)


def test_relabel_to_the_same_name_changes_the_note_only(tmp_path):
    path = tmp_path / "r.jsonl"
    R.save_records([_fake("SIGER (full)", s, 0.1, 0.05, table="ablation") for s in (1, 2)]
                   + [_fake("SIGER (full)", 1, 0.1, 0.05, table="robustness")], path)
    assert R.relabel_rows("ablation", "SIGER (full)", "SIGER (full)", "at the defaults until 2026-12-05", path) == 2
    out = R.load_records(path)
    assert [r["note"] for r in out] == ["at the defaults until 2026-12-05"] * 2 + [None]
    assert [r["label"] for r in out] == ["SIGER (full)"] * 3
    with pytest.raises(R.RecordError, match="changes nothing"):
        R.relabel_rows("ablation", "SIGER (full)", "SIGER (full)", None, path)


def test_relabel_on_one_dataset_leaves_the_others(tmp_path):
    path = tmp_path / "r.jsonl"
    R.save_records([_fake("SMORE", s, 0.1, 0.05, dataset=d) for d in ("a", "b") for s in (1, 2)], path)
    assert R.relabel_rows("comparison", "SMORE", "SMORE", "stopped on a plateau", path, dataset="b") == 2
    out = R.load_records(path)
    assert [(r["dataset"], r.get("note")) for r in out] == [("a", None)] * 2 + [("b", "stopped on a plateau")] * 2
    assert R.relabel_rows("comparison", "SMORE", "SMORE (old)", None, path, dataset="a") == 2
    assert [r["label"] for r in R.load_records(path)] == ["SMORE (old)"] * 2 + ["SMORE"] * 2
    with pytest.raises(R.RecordError, match="on dataset 'c'"):
        R.relabel_rows("comparison", "SMORE", "SMORE", "x", path, dataset="c")
