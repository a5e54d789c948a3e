"""siger: multimodal graph recommendation with SIGER, faithful to the MMRec protocol."""

from siger.version import __version__

__all__ = ["load_run", "__version__"]


def __getattr__(name: str):
    # lazy: `import siger` (and the CLI) must not pay for torch until a model is needed
    if name == "load_run":
        from siger.serve.recommender import load_run

        return load_run
    raise AttributeError(f"module 'siger' has no attribute {name!r}")
