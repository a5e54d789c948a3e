"""Data-parallel training on torch.distributed (gloo on CPU, nccl on GPU), launched by
``torchrun --nproc_per_node N -m siger train ...``.

Every rank holds the dataset, the graphs and a full replica of the model (same seed, then a
broadcast from rank 0). All ranks draw the same epoch of BPR triples; each global batch is cut
into contiguous per-rank slices; each rank's loss is scaled by (its slice / global batch) and the
gradients are summed across ranks, so for losses that are means of per-example terms (BPR, L2,
FREEDOM, VBPR, BM3) the update equals the single-process update on the global batch. In-batch
contrastive terms (SIGER, MGCN, LGMRec) see the rank's own slice as negatives, as usual in DDP.
Evaluation splits the users across ranks and gathers the per-user hit rows (sizes known in advance,
so no padding enters the metrics); metrics are then computed exactly as in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env(device: str = "cpu") -> tuple[DistContext, str]:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else a single-process context.

    Returns the context and the device to use (``cuda:LOCAL_RANK`` under nccl)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device
    cuda = device.startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return DistContext(dist.get_rank(), dist.get_world_size()), device


def rank_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous split of ``n`` items: sizes differ by at most one, in rank order."""
    return (n * rank) // world, (n * (rank + 1)) // world


def broadcast_model(model: torch.nn.Module) -> None:
    for t in model.state_dict().values():
        dist.broadcast(t, 0)


def allreduce_grads(model: torch.nn.Module) -> None:
    """Sum every trainable parameter's gradient across ranks (missing gradients count as zero),
    with one flat all-reduce."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        g = flat[offset:offset + n].view_as(p)
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.copy_(g)
        offset += n


def allreduce_sum(x: float, device) -> float:
    t = torch.tensor([x], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())


def all_keys(d: dict) -> list[str]:
    """The sorted union of every rank's dictionary keys."""
    out: list[list[str]] = [None] * dist.get_world_size()  # type: ignore[list-item]
    dist.all_gather_object(out, sorted(d))
    return sorted(set().union(*out))


def gather_rows(local: np.ndarray, sizes: list[int], device="cpu") -> np.ndarray:
    """All-gather row blocks of known sizes (rank order) into one array on every rank."""
    width = local.shape[1]
    pad = max(sizes)
    buf = torch.zeros((pad, width), dtype=torch.int32, device=device)
    buf[: len(local)] = torch.from_numpy(local.astype(np.int32))
    out = [torch.zeros_like(buf) for _ in sizes]
    dist.all_gather(out, buf)
    return np.concatenate([o[:s].cpu().numpy() for o, s in zip(out, sizes)]).astype(local.dtype)
