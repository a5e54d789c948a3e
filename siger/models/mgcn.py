"""MGCN (Yu et al., ACM MM 2023), SIGER's backbone, as in MMRec.

MGCN = behaviour LightGCN + per-modality behaviour-gated features propagated on frozen kNN item
graphs + attention fusion with preference gates + BPR + the behaviour<->fused InfoNCE
(``cl_loss`` 0.01, temperature 0.2). This is exactly SIGER with no infusion (beta 0), no
perturbation loss and no anchor loss, so it is that class with those defaults (one code path:
a test checks MGCN and the ablated SIGER give identical training on a fixed seed).
"""

from __future__ import annotations

from dataclasses import dataclass

from siger.models.base import register
from siger.models.siger import SIGER


@register
class MGCN(SIGER):
    name = "MGCN"
    PRESETS: dict = {}  # SIGER's "spec" preset is SIGER's own

    @dataclass
    class Config(SIGER.Config):
        beta: float = 0.0  # MGCN uses the pure semantic kNN graphs
        lambda_p: float = 0.0
        lambda_a: float = 0.0
        lambda_c: float = 0.01  # MMRec MGCN.yaml cl_loss
