"""Models: one file per model, each registering itself by name on the shared interface."""

from siger.models import bm3, dragon, freedom, gume, lattice, lgmrec, lightgcn, mgcn, siger, smore, vbpr  # noqa: F401  (registration)
from siger.models.base import Recommender, available_models, get_model_class, register

__all__ = ["Recommender", "available_models", "get_model_class", "register"]
