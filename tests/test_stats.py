"""Paired differences and their intervals, against hand computation."""

import math

import pytest

from siger.experiments.stats import fmt_paired, mean_std, paired_diff


def test_mean_std_is_the_sample_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([5.0]) == (5.0, 0.0)


def test_paired_diff_by_hand():
    # differences 0.1, 0.2, 0.3 on seeds 1-3 (seed 4 only in a: left out): mean 0.2, sd 0.1,
    # t(0.975, 2) = 4.302653, half width 4.302653 * 0.1 / sqrt(3) = 0.248414
    a = {1: 1.1, 2: 1.2, 3: 1.3, 4: 9.0}
    b = {1: 1.0, 2: 1.0, 3: 1.0}
    m, lo, hi, n = paired_diff(a, b)
    assert n == 3 and m == pytest.approx(0.2)
    assert (hi - lo) / 2 == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-6)
    assert fmt_paired((m, lo, hi, n)) == "+0.2000 [-0.0484, +0.4484]"
    # a constant shift has a zero-width interval: pairing removes what the seeds share
    m, lo, hi, n = paired_diff({1: 0.5, 2: 0.9}, {1: 0.4, 2: 0.8})
    assert (m, lo, hi) == pytest.approx((0.1, 0.1, 0.1))
    assert fmt_paired(paired_diff({1: 1.0}, {1: 0.5})) == "+0.5000"
    assert fmt_paired(paired_diff({1: 1.0}, {2: 0.5})) == "—"
