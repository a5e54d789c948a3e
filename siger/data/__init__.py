"""Data stage: files -> validated :class:`InteractionData` -> sparse graphs -> BPR samples."""

from siger.data.dataset import InteractionData, load_dataset
from siger.data.graphs import GraphStore
from siger.data.sampler import BPRSampler
from siger.data.validate import DataError

__all__ = ["InteractionData", "load_dataset", "GraphStore", "BPRSampler", "DataError"]
