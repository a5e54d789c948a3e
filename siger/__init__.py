"""siger: multimodal graph recommendation with SIGER, faithful to the MMRec protocol."""

__version__ = "0.1.0"
