"""Recommendations from a trained run: Python API, batch export and the HTTP server."""

from siger.serve.recommender import RunRecommender, UnknownUserError, load_run

__all__ = ["RunRecommender", "UnknownUserError", "load_run"]
