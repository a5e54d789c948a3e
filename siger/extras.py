"""Optional dependencies: a clear message naming the extra to install when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {"serve": "siger serve / the HTTP API", "features": "siger features", "faiss": "knn_backend faiss"}


def require(module: str, extra: str, what: str | None = None) -> ModuleType:
    """Import ``module`` or raise an ImportError that says which extra of siger provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{what or EXTRAS.get(extra, extra)} needs the optional '{extra}' dependencies (missing module "
            f"{module!r}): pip install 'siger[{extra}]', or in a checkout pip install -e '.[{extra}]'"
        ) from None
