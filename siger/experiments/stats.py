"""The statistics every table uses: mean ± sample std over seeds, and paired differences.

Runs with the same seed share their initialisation and their sampling, so the difference of two
settings is measured best seed by seed: :func:`paired_diff` gives the mean of the per-seed
differences and its 95 % interval (Student's t on n - 1 degrees of freedom), far tighter than
comparing two means with their own spreads.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def mean_std(vals: Sequence[float]) -> tuple[float, float]:
    """(mean, sample std with ddof 1; 0.0 for one value)."""
    a = np.asarray(vals, dtype=np.float64)
    return float(a.mean()), (float(a.std(ddof=1)) if len(a) > 1 else 0.0)


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(p, df))


def paired_diff(a: dict[int, float], b: dict[int, float], level: float = 0.95) -> tuple[float, float, float, int]:
    """``a - b`` over the seeds both have (seed -> value): (mean difference, interval low, interval
    high, n). With one shared seed the interval is (nan, nan); with none, everything is nan."""
    seeds = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in seeds], dtype=np.float64)
    n = len(d)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = float(d.mean())
    if n == 1:
        return m, math.nan, math.nan, 1
    half = t_quantile(0.5 + level / 2, n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
    return m, m - half, m + half, n


def fmt_paired(diff: tuple[float, float, float, int]) -> str:
    """'+0.0012 [-0.0003, +0.0027]' (the interval left out for one seed; '—' for none)."""
    m, lo, hi, n = diff
    if n == 0:
        return "—"
    if n == 1:
        return f"{m:+.4f}"
    return f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]"
