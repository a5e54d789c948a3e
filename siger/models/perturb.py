"""Embedding perturbation for contrastive views (SIGER's modulus-guided noise and variants).

delta_n = scale_n * sign(h_n) * r_n / ||r_n||, r_n ~ U(0, 1)^d, with the per-node scale:

- 'modulus': eps * ||h_n||                (SIGER: noise grows with the embedding's modulus)
- 'uniform': eps                          (SimGCL)
- 'mean':    eps * ||h_n|| / mean_n ||h_n||
- 'inverse': eps * mean_n ||h_n|| / ||h_n||   (0 for a zero embedding)

Norms are taken without gradient. With every entry of h_n non-zero, ||delta_n|| = scale_n.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("modulus", "uniform", "mean", "inverse")
# Modes whose noise for a node depends on that node alone: a subset of rows can be perturbed on
# its own (same distribution). 'mean' and 'inverse' scale by a mean over the whole table.
ROW_LOCAL = ("modulus", "uniform")


def noise_scale(h: torch.Tensor, eps: float, mode: str) -> torch.Tensor:
    """Per-node noise norm ``[N, 1]`` for embeddings ``h`` ``[N, d]``."""
    with torch.no_grad():
        norm = h.norm(dim=-1, keepdim=True)
        if mode == "modulus":
            return eps * norm
        if mode == "uniform":
            return torch.full_like(norm, eps)
        if mode == "mean":
            return eps * norm / norm.mean().clamp_min(1e-12)
        if mode == "inverse":
            return torch.where(norm > 0, eps * norm.mean() / norm.clamp_min(1e-12), torch.zeros_like(norm))
    raise ValueError(f"unknown perturbation mode {mode!r} ({' | '.join(MODES)})")


def perturb(h: torch.Tensor, eps: float, mode: str = "modulus", generator: torch.Generator | None = None) -> torch.Tensor:
    """h + delta with the noise described in the module docstring. ``[N, d]`` -> ``[N, d]``."""
    r = torch.rand(h.shape, generator=generator, device=h.device, dtype=h.dtype)
    return h + noise_scale(h, eps, mode) * torch.sign(h) * F.normalize(r, dim=-1)
