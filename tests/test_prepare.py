"""`siger prepare`: reading, repeated pairs, k-core, id mapping, the 8:1:1 split, errors."""

import json

import numpy as np
import pytest

from siger.cli import main
from siger.data.dataset import load_dataset
from siger.data.prepare import k_core, prepare, random_split, split_counts
from siger.data.validate import DataError


def test_split_counts_follow_the_rule():
    assert split_counts(1) == (0, 0) and split_counts(2) == (0, 0)
    assert split_counts(3) == (1, 1) and split_counts(9) == (1, 1)
    assert split_counts(10) == (1, 1) and split_counts(14) == (1, 1)
    assert split_counts(15) == (2, 2)  # 1.5 rounds up
    assert split_counts(25) == (3, 3) and split_counts(24) == (2, 2) and split_counts(100) == (10, 10)


def test_k_core_needs_two_rounds_on_a_hand_case():
    # users a,b,c ; items x,y,z. k=2.
    # round 1: item z has 1 row (c,z) -> drop; user d has 1 row -> drop.
    # then c has only (c,x) -> round 2 drops it; x keeps a,b -> stable.
    users = np.array([0, 0, 1, 1, 2, 2, 3])  # a a b b c c d
    items = np.array([0, 1, 0, 1, 0, 2, 1])  # x y x y x z y
    keep, rounds = k_core(users, items, 2)
    assert keep.tolist() == [True, True, True, True, False, False, False]
    assert rounds == 2
    keep1, r1 = k_core(users, items, 1)
    assert keep1.all() and r1 == 0


def test_random_split_is_seeded_and_per_user():
    users = np.repeat(np.arange(4), [12, 5, 2, 30])
    a, b, c = random_split(users, 7), random_split(users, 7), random_split(users, 8)
    assert (a == b).all() and (a != c).any()
    for u, n in enumerate([12, 5, 2, 30]):
        lab = a[users == u]
        nv, nt = split_counts(n)
        assert (lab == 1).sum() == nv and (lab == 2).sum() == nt and (lab == 0).sum() == n - nv - nt


def _raw(tmp_path, sep=","):
    rows = [("u1", "10", 5, 100), ("u1", "2", 3, 101), ("u1", "3", 4, 102),
            ("u2", "10", 4, 100), ("u2", "2", 5, 105), ("u2", "3", 1, 106),
            ("u3", "10", 2, 100), ("u3", "2", 2, 110), ("u3", "3", 3, 111),
            ("u3", "10", 1, 200),  # repeated pair: the later row (rating 1) is kept
            ("u4", "99", 5, 1)]  # u4 and item 99 fall out of the 3-core
    lines = [sep.join(["user_id", "item_id", "rating", "timestamp"])] + [sep.join(map(str, r)) for r in rows]
    p = tmp_path / ("raw.csv" if sep == "," else "raw.tsv")
    p.write_text("\n".join(lines) + "\n")
    return p


def test_prepare_end_to_end_hand_case(tmp_path):
    raw = _raw(tmp_path)
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n2,Two\n3,Three\n10,Ten\n55,Unused\n")
    rep = prepare(raw, tmp_path / "out" / "shop", items=items, k=3, seed=1)
    assert rep.rows_read == 11 and rep.duplicate_pairs_removed == 1
    assert rep.rows_removed_by_k_core == 1 and rep.users == 3 and rep.items == 3 and rep.interactions == 9
    assert rep.item_table_rows_unused == 1 and rep.items_without_metadata == 0
    d = tmp_path / "out" / "shop"
    # natural (numeric) order of item ids: 2, 3, 10
    assert (d / "i_id_mapping.csv").read_text().splitlines() == ["item_id\titemID", "2\t0", "3\t1", "10\t2"]
    assert (d / "u_id_mapping.csv").read_text().splitlines()[1:] == ["u1\t0", "u2\t1", "u3\t2"]
    assert (d / "items.tsv").read_text().splitlines() == ["itemID\ttitle", "0\tTwo", "1\tThree", "2\tTen"]
    lines = [x.split("\t") for x in (d / "shop.inter").read_text().splitlines()[1:]]
    by_pair = {(int(u), int(i)): (r, lab) for u, i, r, _, lab in lines}
    assert by_pair[(2, 2)][0] == "1"  # u3's latest rating for item 10
    labels = [int(lab) for _, lab in by_pair.values()]
    assert labels.count(1) == 3 and labels.count(2) == 3  # 3 interactions each: 1 valid + 1 test
    data = load_dataset("shop", tmp_path / "out")
    assert data.n_users == 3 and len(data.train) == 3
    assert json.loads((d / "prepare_report.json").read_text())["k_core_rounds"] >= 1


def test_prepare_reads_jsonl_and_tsv_alike(tmp_path):
    a = prepare(_raw(tmp_path, "\t"), tmp_path / "a" / "x", k=3, seed=1)
    rows = [dict(zip(["user", "asin", "overall", "unixReviewTime"], line.split("\t")))
            for line in _raw(tmp_path, "\t").read_text().splitlines()[1:]]
    j = tmp_path / "raw.jsonl"
    j.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    b = prepare(j, tmp_path / "b" / "x", k=3, seed=1)
    assert a.columns["item"] == "item_id" and b.columns["item"] == "asin"
    assert (tmp_path / "a" / "x" / "x.inter").read_text() == (tmp_path / "b" / "x" / "x.inter").read_text()


def test_prepare_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating\nu1,i1,5\nu2,i2,five\n")
    with pytest.raises(DataError) as e:
        prepare(bad, tmp_path / "o" / "x")
    assert "bad.csv:3" in str(e.value) and "'rating'" in str(e.value)
    nouser = tmp_path / "nouser.csv"
    nouser.write_text("who,item\nu1,i1\n")
    with pytest.raises(DataError, match="no user column"):
        prepare(nouser, tmp_path / "o" / "x")
    short = tmp_path / "short.csv"
    short.write_text("user,item\nu1,i1\nu2\n")
    with pytest.raises(DataError, match="short.csv:3"):
        prepare(short, tmp_path / "o" / "x")
    with pytest.raises(DataError, match="no interactions left"):
        prepare(_raw(tmp_path), tmp_path / "o" / "x", k=50)


def test_cli_prepare_reports_and_fails_cleanly(tmp_path, capsys):
    raw = _raw(tmp_path)
    assert main(["prepare", "--interactions", str(raw), "--out", str(tmp_path / "d" / "shop"), "--k-core", "3"]) == 0
    out = capsys.readouterr().out
    assert "removed 1 repeated" in out and "3-core" in out and "siger train --dataset shop" in out
    assert main(["prepare", "--interactions", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "e")]) == 2
    assert "missing.csv" in capsys.readouterr().err
