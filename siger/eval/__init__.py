"""Evaluation stage: chunked full ranking and vectorised top-K metrics (MMRec protocol)."""

from siger.eval.metrics import hit_matrix, metrics_from_hits
from siger.eval.ranking import eval_users, evaluate, topk_items

__all__ = ["hit_matrix", "metrics_from_hits", "evaluate", "eval_users", "topk_items"]
