"""The model interface and the registry.

A model is one file: a :class:`Recommender` subclass decorated with ``@register``, with a nested
``Config`` dataclass holding its hyper-parameters and defaults. The trainer only ever calls
``loss(users, pos, neg)`` (a dict of named terms, summed for the gradient) and
``embeddings()`` (final user and item embeddings, computed once per evaluation).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from siger.data.dataset import InteractionData
from siger.data.graphs import GraphStore
from siger.keys import check

_REGISTRY: dict[str, type["Recommender"]] = {}


def register(cls: type["Recommender"]) -> type["Recommender"]:
    """Class decorator: make a model findable by ``cls.name`` (case-insensitive)."""
    key = cls.name.lower()
    if key in _REGISTRY and _REGISTRY[key] is not cls:
        raise ValueError(f"model name {cls.name!r} registered twice")
    _REGISTRY[key] = cls
    return cls


def get_model_class(name: str) -> type["Recommender"]:
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {available_models()}") from None


def available_models() -> list[str]:
    return sorted(c.name for c in _REGISTRY.values())


class Recommender(nn.Module):
    """Base class. Subclasses set ``name`` and ``Config`` and implement ``forward`` and ``loss``.

    Args:
        data: the validated dataset (counts, train matrix, modalities).
        config: an instance of ``self.Config``.
        graphs: the dataset's :class:`GraphStore` (every graph comes from there).
        device: where parameters and graphs live.
    """

    name: ClassVar[str] = ""
    # named sets of config overrides (``--preset NAME``), applied under YAML and command-line values
    PRESETS: ClassVar[dict[str, dict[str, object]]] = {}
    # this model's defaults for shared training keys (e.g. its learning rate), applied over
    # TrainConfig's defaults and under any preset, YAML or --key value
    TRAIN_DEFAULTS: ClassVar[dict[str, object]] = {}

    @dataclass
    class Config:
        embedding_dim: int = 64

    def __init__(self, data: InteractionData, config, graphs: GraphStore, device: str | torch.device = "cpu"):
        super().__init__()
        check(config)  # every key within what its field declares (siger.keys)
        self.config = config
        self.n_users = data.n_users
        self.n_items = data.n_items
        self.device_ = torch.device(device)

    def require_modalities(self, data: InteractionData) -> list[str]:
        """The dataset's modalities, for a model that needs at least one (an error names the
        dataset where it has none)."""
        if not data.modalities:
            raise ValueError(f"{self.name} needs at least one modality; dataset {data.name} has none")
        return list(data.modalities)

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode inside the block (no dropout, no noise), the previous mode restored after."""
        was = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (user ``[n_users, d]``, item ``[n_items, d]``) embeddings, no noise."""
        raise NotImplementedError

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named loss terms for a batch of (user, positive, negative) ids, each ``[B]``."""
        raise NotImplementedError

    def summary(self) -> dict[str, object]:
        """What the model derived from the data when it was built (e.g. SIGER's infusion weights),
        JSON-serialisable; the trainer logs it and keeps it in metrics.json and the run record."""
        return {}

    def pre_epoch(self) -> None:
        """Called by the trainer before each training epoch (e.g. FREEDOM's edge pruning).

        Randomness must come from torch's global generator, which checkpoints save and restore.
        """

    def embed_new_items(self, features: dict, data: InteractionData, graphs: GraphStore) -> torch.Tensor:
        """Item embeddings ``[n_new, d]`` of new items from their raw ``features`` (modality ->
        ``[n_new, dim]``) and the trained parameters alone, comparable with ``embeddings()[1]``.
        Models that cannot represent an item they were not trained on raise
        :class:`siger.models.newitems.NewItemsUnsupported`."""
        from siger.models.newitems import NewItemsUnsupported

        raise NewItemsUnsupported(f"{self.name} cannot embed an item it was not trained on from features alone")

    def fold_in(self, data: InteractionData):
        """New users from their histories (:mod:`siger.models.newusers`): computed once from the
        trained parameters, a function ``(history [n, n_items] binary CSR, free=None) -> [n, d]``
        giving representations comparable with ``embeddings()[0]`` (``free``: a trained user's
        own layer-0 vector, for checks). Models that cannot raise :class:`NewUsersUnsupported`."""
        from siger.models.newusers import NewUsersUnsupported

        raise NewUsersUnsupported(f"{self.name} cannot represent a user it was not trained on from a history")

    @torch.no_grad()
    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings for ranking, computed in eval mode."""
        with self.evaluating():
            u, i = self.forward()
        return u.detach(), i.detach()

    def extra_repr(self) -> str:
        return f"n_users={self.n_users}, n_items={self.n_items}"
