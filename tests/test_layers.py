"""Propagation blocks: row-restricted sparse products and LightGCN against the full computation."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from siger.models.layers import SparseGraph, lightgcn_propagate


def test_sparse_graph_rows_hand_computed():
    a = sp.csr_matrix(np.array([[1, 0, 2], [0, 0, 0], [0, 3, 0], [4, 0, 5]], dtype=np.float32))
    g = SparseGraph(a, symmetric=False)
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    sub = g.rows(torch.tensor([3, 1, 0]))  # unsorted, with an empty row
    assert sub.shape == (3, 3) and sub.nnz == 4
    y = sub @ x
    assert torch.equal(y, torch.tensor([[29.0, 38.0], [0.0, 0.0], [11.0, 14.0]]))
    y.sum().backward()  # x's gradient is the column sums of the chosen rows
    assert torch.equal(x.grad, torch.tensor([[5.0, 5.0], [0.0, 0.0], [7.0, 7.0]]))
    assert torch.equal(sub.a_t.to_dense(), torch.tensor(a.toarray()[[3, 1, 0]].T))


def test_sparse_graph_rows_equal_full_product_rows():
    rng = np.random.default_rng(0)
    a = sp.random(50, 30, density=0.1, format="csr", dtype=np.float32, random_state=1)
    g = SparseGraph(a)
    idx = torch.from_numpy(rng.choice(50, size=20, replace=False))
    x = torch.randn(30, 4, requires_grad=True)
    w = torch.randn(20, 4)
    ((g.rows(idx) @ x) * w).sum().backward()
    got = x.grad.clone()
    x.grad = None
    full = g @ x
    (full[idx] * w).sum().backward()
    assert torch.allclose(g.rows(idx) @ x, full[idx], atol=1e-6)
    assert torch.allclose(got, x.grad, atol=1e-6)
    assert g.rows(torch.tensor([], dtype=torch.long)).nnz == 0


@pytest.mark.parametrize("n_layers", [0, 1, 2, 3])
def test_lightgcn_rows_equal_full_rows(n_layers):
    a = sp.random(40, 40, density=0.15, format="csr", dtype=np.float32, random_state=2)
    adj = SparseGraph(a + a.T, symmetric=True)
    ego = torch.randn(40, 8, requires_grad=True)
    rows = torch.tensor([7, 3, 39, 0, 21])
    w = torch.randn(5, 8)
    part = lightgcn_propagate(adj, ego, n_layers, rows=rows)
    (part * w).sum().backward()
    g_part = ego.grad.clone()
    ego.grad = None
    full = lightgcn_propagate(adj, ego, n_layers)
    (full[rows] * w).sum().backward()
    assert part.shape == (5, 8)
    assert torch.allclose(part, full[rows], atol=1e-6)
    assert torch.allclose(g_part, ego.grad, atol=1e-6)


def test_csr_transpose_equals_the_csc_conversion():
    """A^T built by a stable column sort: the same arrays as torch's CSC conversion (entries of
    each column by ascending row), with empty rows and columns."""
    import scipy.sparse as sp

    from siger.models.layers import csr_transpose

    rng = np.random.default_rng(0)
    a = sp.random(7, 9, density=0.3, random_state=1, format="lil", dtype=np.float32)
    a[3, :] = 0  # an empty row
    a[:, 5] = 0  # an empty column
    a = a.tocsr()
    a.eliminate_zeros()
    t = torch.sparse_csr_tensor(torch.as_tensor(a.indptr, dtype=torch.int64), torch.as_tensor(a.indices, dtype=torch.int64),
                                torch.as_tensor(a.data), size=a.shape, check_invariants=True)
    got = csr_transpose(t.crow_indices(), t.col_indices(), t.values(), a.shape)
    csc = t.to_sparse_csc()
    assert got.shape == (9, 7)
    assert torch.equal(got.crow_indices(), csc.ccol_indices())
    assert torch.equal(got.col_indices(), csc.row_indices())
    assert torch.equal(got.values(), csc.values())
    assert np.allclose(got.to_dense().numpy(), a.T.toarray())
    x = torch.as_tensor(rng.normal(size=(7, 3)), dtype=torch.float32)
    assert torch.allclose(torch.sparse.mm(got, x), torch.as_tensor(a.T.toarray()) @ x, atol=1e-6)


def test_item_input_table_is_a_copy_of_the_dataset_features():
    """A fine-tuned feature table must not train the dataset's arrays in place (a second model
    built from the same dataset would start from the first one's trained features)."""
    from types import SimpleNamespace

    from siger.models.layers import item_input_table

    f = np.arange(12, dtype=np.float32).reshape(4, 3)
    data = SimpleNamespace(features={"image": f}, n_items=4)
    p = item_input_table(data, "image", True, 8)
    with torch.no_grad():
        p.add_(1.0)
    assert np.array_equal(f, np.arange(12, dtype=np.float32).reshape(4, 3))
