"""Every bad-input error names the file and the line or field, and the CLI exits non-zero."""

import numpy as np
import pytest

from siger.cli import main
from siger.data.dataset import load_dataset
from siger.data.validate import DataError
from tests.conftest import TINY_ROWS, write_inter

HEADER = "userID\titemID\trating\ttimestamp\tx_label"


def _inter(tmp_path, rows=TINY_ROWS, header=HEADER, text=None):
    d = tmp_path / "bad"
    d.mkdir(exist_ok=True)
    if text is not None:
        (d / "bad.inter").write_text(text)
    else:
        write_inter(d / "bad.inter", rows, header)
    return d


def _err(tmp_path) -> DataError:
    with pytest.raises(DataError) as ei:
        load_dataset("bad", tmp_path)
    return ei.value


def test_valid_tiny_dataset_loads(tiny_dir):
    d = load_dataset("tiny", tiny_dir)
    assert (d.n_users, d.n_items) == (4, 6)
    assert len(d.train) == 12 and len(d.valid) == 4 and len(d.test) == 4
    assert d.modalities == ["image"] and d.features["image"].dtype == np.float32


def test_missing_column(tmp_path):
    _inter(tmp_path, header="userID\titemID\trating\ttimestamp\tsplit")
    e = _err(tmp_path)
    assert e.field == "x_label" and e.line == 1 and "missing column" in str(e) and "bad.inter:1" in str(e)


def test_non_integer_id(tmp_path):
    rows = list(TINY_ROWS)
    rows[3] = ("u7", 3, 1)
    _inter(tmp_path, rows)
    e = _err(tmp_path)
    assert (e.line, e.field) == (5, "userID") and "'u7'" in str(e)


def test_float_item_id_is_not_an_integer(tmp_path):
    rows = list(TINY_ROWS)
    rows[0] = (0, "1.5", 0)
    _inter(tmp_path, rows)
    e = _err(tmp_path)
    assert (e.line, e.field) == (2, "itemID")


def test_negative_id_out_of_range(tmp_path):
    rows = list(TINY_ROWS) + [(-1, 2, 0)]
    _inter(tmp_path, rows)
    e = _err(tmp_path)
    assert e.field == "userID" and e.line == len(rows) + 1 and "negative" in str(e)


def test_non_contiguous_ids(tmp_path):
    rows = [(u, 9 if i == 5 else i, x) for u, i, x in TINY_ROWS]  # item 5 -> 9: ids 5..8 missing
    _inter(tmp_path, rows)
    e = _err(tmp_path)
    assert e.field == "itemID" and "not contiguous" in str(e) and "first missing: 5" in str(e)


def test_bad_x_label(tmp_path):
    rows = list(TINY_ROWS)
    rows[6] = (1, 2, 3)
    _inter(tmp_path, rows)
    e = _err(tmp_path)
    assert (e.line, e.field) == (8, "x_label")


def test_duplicate_pair(tmp_path):
    rows = list(TINY_ROWS) + [(2, 3, 2)]
    _inter(tmp_path, rows)
    e = _err(tmp_path)
    assert e.line == len(rows) + 1 and "duplicate" in str(e) and "line 13" in str(e)


def test_wrong_field_count(tmp_path):
    _inter(tmp_path, text=HEADER + "\n0\t1\t1.0\t0\t0\n1\t2\t1.0\t0\n")
    e = _err(tmp_path)
    assert e.line == 3 and "expected 5" in str(e)


def test_empty_train_split(tmp_path):
    rows = [(u, i, 1 if x == 0 else x) for u, i, x in TINY_ROWS]
    _inter(tmp_path, rows)
    e = _err(tmp_path)
    assert "train split" in str(e) and e.field == "x_label"


def test_feature_rows_mismatch(tmp_path):
    d = _inter(tmp_path)
    np.save(d / "image_feat.npy", np.zeros((5, 3), np.float32))
    e = _err(tmp_path)
    assert "image_feat.npy" in e.path and "feature rows (5) != n_items (6" in str(e)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_features(tmp_path, bad):
    d = _inter(tmp_path)
    f = np.ones((6, 3), np.float32)
    f[4, 1] = bad
    np.save(d / "image_feat.npy", f)
    e = _err(tmp_path)
    assert "row 4, column 1" in str(e) and "image_feat.npy" in e.path


def test_graph_shape_mismatch(tmp_path):
    import scipy.sparse as sp

    d = _inter(tmp_path)
    sp.save_npz(d / "text_adj_10_True.npz", sp.identity(5, format="csr"))
    e = _err(tmp_path)
    assert "text_adj_10_True.npz" in e.path and "shape" in str(e)


def test_missing_dataset_folder(tmp_path):
    e = _err(tmp_path)
    assert "not found" in str(e)


def test_cli_bad_input_exits_nonzero_with_location(tmp_path, capsys):
    rows = list(TINY_ROWS)
    rows[6] = (1, 2, 7)
    _inter(tmp_path, rows)
    code = main(["train", "--dataset", "bad", "--data-dir", str(tmp_path), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "bad.inter:8" in err and "x_label" in err and "Traceback" not in err


def test_cli_unknown_config_key(tiny_dir, capsys):
    code = main(["train", "--dataset", "tiny", "--data-dir", str(tiny_dir), "--learning_rat", "1e-3"])
    err = capsys.readouterr().err
    assert code == 2 and "--learning_rat" in err and "--learning_rate" in err


def test_cli_bad_config_value(tiny_dir, capsys):
    code = main(["train", "--dataset", "tiny", "--data-dir", str(tiny_dir), "--epochs", "ten"])
    assert code == 2 and "--epochs" in capsys.readouterr().err
