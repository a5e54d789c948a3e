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
    TRAIN_DEFAULTS: dict = {}  # MMRec's training defaults (lr 1e-3), not SIGER's tuned ones

    # Every key MGCN reads is pinned here to MMRec's MGCN, so a change of SIGER's defaults never
    # changes MGCN (the keys of SIGER's extra components are pinned too, to the spec's values).
    @dataclass
    class Config(SIGER.Config):
        beta: float = 0.0  # MGCN uses the pure semantic kNN graphs
        beta_learn: bool = False
        lambda_p: float = 0.0
        lambda_a: float = 0.0
        lambda_c: float = 0.01  # MMRec MGCN.yaml cl_loss
        tau_c: float = 0.2  # MMRec MGCN's InfoNCE temperature
        reg_weight: float = 1e-4  # MMRec MGCN.yaml reg_weight
        cl_batch: int = 0  # the contrastive term over the whole batch, as MMRec
        detach_align: bool = False
        perturb_mode: str = "modulus"
        eps: float = 0.1
        tau_p: float = 0.2
        tau_a: float = 0.2
