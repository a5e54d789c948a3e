"""Building blocks shared by the models: sparse propagation, LightGCN, gated projection and
attention fusion. Each block is small and states its shapes."""

from __future__ import annotations

import warnings
from typing import Callable

import scipy.sparse as sp
import torch
from torch import nn

from siger.data.graphs import to_torch


class _SpMM(torch.autograd.Function):
    """y = A x with a precomputed A^T for the backward pass (about 2x faster than autograd's)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, a_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.a_t = a_t
        return torch.sparse.mm(a, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, torch.sparse.mm(ctx.a_t, grad.contiguous())


def csr_transpose(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The CSR tensor of A^T for A ``[n, m]`` given by its CSR arrays (``crow`` ``[n + 1]``,
    ``col``, ``val`` ``[nnz]``): a stable sort of the entries by column, so each row of A^T
    lists its entries by ascending row of A, as ``to_sparse_csc`` does (same sums, same order),
    at a fraction of its cost on the CPU. ``[m, n]``."""
    n, m = shape
    rows = torch.repeat_interleave(torch.arange(n, dtype=crow.dtype, device=crow.device), crow.diff(),
                                   output_size=len(col))
    order = torch.argsort(col, stable=True)
    t_crow = torch.zeros(m + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(torch.bincount(col, minlength=m), 0, out=t_crow[1:])
    return torch.sparse_csr_tensor(t_crow, rows[order], val[order], size=(m, n), check_invariants=False)


class SparseGraph:
    """A frozen sparse matrix ``[n, m]`` for propagation: ``graph @ x`` with x ``[m, d]`` -> ``[n, d]``.

    Holds torch CSR copies of the matrix and its transpose (shared when symmetric). Not a
    parameter: it never receives gradients and is not saved in checkpoints (it is rebuilt from
    the data, deterministically, when a run is loaded).
    """

    def __init__(self, m: sp.spmatrix, device: str | torch.device = "cpu", symmetric: bool | None = None):
        m = sp.csr_matrix(m, dtype="float32")
        if symmetric is None:
            symmetric = m.shape[0] == m.shape[1] and abs(m - m.T).sum() == 0
        self.shape = m.shape
        self.nnz = m.nnz
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            self.a = to_torch(m, device).to_sparse_csr()
            self.a_t = self.a if symmetric else to_torch(m.T.tocsr(), device).to_sparse_csr()

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        return _SpMM.apply(self.a, self.a_t, x)

    def rows(self, idx: torch.Tensor) -> "SparseGraph":
        """The sub-matrix of rows ``idx`` ``[R]``: a ``SparseGraph`` ``[R, m]`` (with its transpose).

        ``graph.rows(idx) @ x == (graph @ x)[idx]`` at ``nnz(rows) / nnz`` of the cost, forward and
        backward. Built from the CSR arrays on the graph's device, no scipy round trip.
        """
        crow, col, val = self.a.crow_indices(), self.a.col_indices(), self.a.values()
        idx = idx.to(crow.device)
        start, count = crow[idx], crow[idx + 1] - crow[idx]
        new_crow = torch.zeros(len(idx) + 1, dtype=crow.dtype, device=crow.device)
        torch.cumsum(count, 0, out=new_crow[1:])
        total = int(new_crow[-1])
        # position of each kept entry in the parent's arrays: its row's start plus its offset in the row
        pos = torch.repeat_interleave(start - new_crow[:-1], count, output_size=total)
        pos += torch.arange(total, dtype=pos.dtype, device=pos.device)
        shape = (len(idx), self.shape[1])
        sub = SparseGraph.__new__(SparseGraph)
        sub.shape, sub.nnz = shape, total
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sub.a = torch.sparse_csr_tensor(new_crow, col[pos], val[pos], size=shape, check_invariants=False)
            sub.a_t = csr_transpose(new_crow, col[pos], val[pos], shape)
        return sub

    def __repr__(self) -> str:
        return f"SparseGraph(shape={tuple(self.shape)}, nnz={self.nnz})"


def spmm_pairs(row: torch.Tensor, col: torch.Tensor, val: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``W @ h`` for W given as (row, col, val) ``[nnz]`` with h ``[m, d]``: ``[len(h), d]`` rows
    (``row`` must index into h's row range), differentiable in ``val`` and ``h``."""
    return torch.zeros_like(h).index_add(0, row, val.unsqueeze(1) * h[col])


def lightgcn_propagate(adj: SparseGraph, ego: torch.Tensor, n_layers: int,
                       rows: torch.Tensor | None = None,
                       noise: Callable[[torch.Tensor], torch.Tensor] | None = None,
                       row_local_noise: bool = True) -> torch.Tensor:
    """LightGCN: mean of E^(0..L) with E^(l+1) = A_hat E^(l).

    Args:
        adj: normalised adjacency ``[N, N]``; ego: layer-0 embeddings ``[N, d]``.
        rows: optional ``[R]`` node ids; then only those rows of the result are computed (the
            last layer propagates over their rows of A_hat only; equal to the full result's rows).
        noise: optional ``h -> h + delta`` applied to every propagated layer (SimGCL's
            perturbation; layer 0 stays clean). ``row_local_noise=False`` says the noise of a row
            depends on the whole table (e.g. a mean norm): the last layer is then perturbed in full
            before its rows are taken.
    Returns:
        ``[N, d]``, or ``[R, d]`` with ``rows``.
    """
    layers = [ego]
    x = ego
    for layer in range(n_layers):
        if rows is not None and layer == n_layers - 1 and (noise is None or row_local_noise):
            last = adj.rows(rows) @ x
            layers = [h[rows] for h in layers] + [last if noise is None else noise(last)]
            break
        x = adj @ x
        if noise is not None:
            x = noise(x)
        layers.append(x)
    else:
        if rows is not None:
            layers = [h[rows] for h in layers]
    return torch.stack(layers, dim=0).mean(dim=0)


def item_input_table(data, modality: str, trainable: bool, graph_only_dim: int) -> nn.Parameter:
    """Modality ``m``'s item input ``[n_items, dim]``: its raw features (trainable or frozen), or a
    learnable xavier-initialised table of ``graph_only_dim`` columns when the dataset provides
    only a graph for the modality (e.g. Amazon Baby here)."""
    if modality in data.features:  # a copy: training the table must not change the dataset's arrays
        f = torch.tensor(data.features[modality], dtype=torch.float32)
        return nn.Parameter(f, requires_grad=trainable)
    return nn.Parameter(nn.init.xavier_uniform_(torch.empty(data.n_items, graph_only_dim)))


def id_embeddings(n_users: int, n_items: int, dim: int) -> tuple[nn.Parameter, nn.Parameter]:
    """Xavier-uniform ID tables: users ``[n_users, dim]`` (drawn first), items ``[n_items, dim]``."""
    users = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_users, dim)))
    items = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_items, dim)))
    return users, items


def frozen_inputs(data, modalities: list[str], graph_only_dim: int) -> nn.ParameterDict:
    """Each modality's item input, raw features frozen (a graph-only modality: a learnable table)."""
    return nn.ParameterDict({m: item_input_table(data, m, trainable=False, graph_only_dim=graph_only_dim)
                             for m in modalities})


def linear_maps(inputs: nn.ParameterDict, out_dim: int) -> nn.ModuleDict:
    """A linear map per modality from its input width to ``out_dim``, weights Xavier-normal."""
    maps = nn.ModuleDict({m: nn.Linear(x.shape[1], out_dim) for m, x in inputs.items()})
    for lin in maps.values():
        nn.init.xavier_normal_(lin.weight)
    return maps


class GatedProjection(nn.Module):
    """Behaviour-gated projection of an item input: x_i = e_i * sigmoid(W_g (W_p f_i + b_p) + b_g).

    Args:
        in_dim: feature dim; dim: embedding dim d.
    Shapes:
        f ``[n_items, in_dim]``, e ``[n_items, d]`` -> ``[n_items, d]``.
    """

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        self.gate = nn.Linear(dim, dim)

    def forward(self, f: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return e * torch.sigmoid(self.gate(self.proj(f)))


class AttentionFusion(nn.Module):
    """MGCN-style fusion of per-modality representations with behaviour preference gates.

    a^m = w^T tanh(W h^m + b) (shared across m), alpha = softmax_m(a), c = sum_m alpha^m h^m,
    s^m = (h^m - c) * sigmoid(W'^m h^b + b'^m), H^s = (sum_m s^m + c) / (|M| + 1).

    Shapes:
        hs: list of |M| tensors ``[N, d]``; hb: ``[N, d]`` -> ``[N, d]``.
    """

    def __init__(self, dim: int, n_modalities: int):
        super().__init__()
        self.query = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))
        self.prefer = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_modalities))

    def forward(self, hs: list[torch.Tensor], hb: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack(hs, dim=1)  # [N, M, d]
        alpha = torch.softmax(self.query(stacked), dim=1)  # [N, M, 1]
        common = (alpha * stacked).sum(dim=1)  # [N, d]
        specific = [(h - common) * torch.sigmoid(g(hb)) for h, g in zip(hs, self.prefer)]
        return (torch.stack(specific, dim=0).sum(dim=0) + common) / (len(hs) + 1)
