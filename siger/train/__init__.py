"""Training stage: the epoch loop, early stopping, checkpoints, resume and run artifacts."""

from siger.train.trainer import Trainer, load_model

__all__ = ["Trainer", "load_model"]
