"""The early-stopping rule, as pure functions of a run's evaluations.

One rule, read in three places: the trainer (:class:`siger.train.trainer.Trainer` stops a run by
it), the record check (:func:`siger.train.record.stop_check` judges a finished run's stop by it)
and the resume check (a run whose stop keys changed continues only where the rule allows).
Nothing here reads files, models or tensors.

The rule: a run stops once ``patience`` evaluations without a better valid metric have been
counted, where only evaluations at epochs >= the warm-up count. The warm-up is
``warmup_epochs``, or longer where ``warmup_steps`` optimiser steps take longer
(:func:`effective_warmup`). With both 0 it is MMRec's rule: patience counted from the best.
"""

from __future__ import annotations

import math
from typing import Sequence

# the keys that decide only when a run ends, never what an epoch computes: two configs that differ
# only in them train the same epochs, so a run may continue under another value of them wherever
# the rule with the new values would not have ended it earlier (:func:`first_stop`)
STOP_KEYS = ("warmup_epochs", "warmup_steps", "patience")


def batches_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimiser steps in one epoch over ``n_train`` training pairs (the last batch may be short)."""
    return math.ceil(n_train / batch_size)


def effective_warmup(warmup_epochs: int, warmup_steps: int, n_train: int, batch_size: int) -> int:
    """The warm-up in epochs: ``warmup_epochs``, or more where ``warmup_steps`` optimiser steps
    take longer (``ceil(n_train / batch_size)`` batches an epoch); 0 steps adds nothing.

    Example: 14,005 training pairs at batch 2048 are 7 steps an epoch, so 600 steps take
    ceil(600 / 7) = 86 epochs, more than 20: ``effective_warmup(20, 600, 14005, 2048) == 86``."""
    if warmup_steps <= 0 or n_train <= 0:
        return warmup_epochs
    return max(warmup_epochs, math.ceil(warmup_steps / batches_per_epoch(n_train, batch_size)))


def patience_used(eval_epochs: Sequence[int], best_epoch: int, warmup: int) -> int:
    """Evaluations that count toward early stopping: those after the best epoch, but only those
    at epochs >= ``warmup``. A model on frozen kNN graphs often peaks at epoch 0-3, dips while
    its ID embeddings train and passes that peak only after epoch 20: counted from the early
    peak, the patience would run out just as it recovers (measured: SIGER at four behaviour
    layers on ml100k_thin_g50 stopped at epoch 23, one epoch before passing its epoch-3 peak).

    ``eval_epochs``: the epochs evaluated so far, in order; ``best_epoch``: the epoch of the best
    valid metric among them (-1: none yet)."""
    since_best = sum(1 for e in eval_epochs if e > best_epoch)
    after_warmup = sum(1 for e in eval_epochs if e >= warmup)
    return min(since_best, after_warmup)


def eval_epochs(last_epoch: int, eval_every: int, max_epochs: int) -> list[int]:
    """The epochs a run evaluated on, up to ``last_epoch``: every ``eval_every``-th epoch and the last
    epoch of the cap (the trainer's schedule)."""
    return [e for e in range(last_epoch + 1) if (e + 1) % eval_every == 0 or e == max_epochs - 1]


def first_stop(evals: Sequence[tuple[int, float]], warmup: int, patience: int) -> int | None:
    """The epoch after whose evaluation the rule ends a run whose evaluations are ``evals``
    (``(epoch, valid metric)`` in order; a strictly higher value is a new best), or None when
    it does not end within them."""
    best_v, best_e, seen = None, -1, []
    for epoch, value in evals:
        seen.append(epoch)
        if best_v is None or value > best_v:
            best_v, best_e = value, epoch
        if patience_used(seen, best_e, warmup) >= patience:
            return epoch
    return None


__all__ = ["STOP_KEYS", "batches_per_epoch", "effective_warmup", "eval_epochs", "first_stop", "patience_used"]
