"""Config keys that carry their own rules: allowed values and ranges declared beside the field.

A model's ``Config`` dataclass (and the shared ``TrainConfig``) declares each key with
:func:`key`, e.g. ``knn_norm: str = key("sym", choices=("sym", "rw", "none"))`` or
``tau: float = key(0.2, POSITIVE)``; :func:`check` tests a config instance against what its
fields declare, so neither the config loader nor a model keeps lists of other modules' keys.
This module sits at the bottom of the package (it imports nothing of siger), so models and the
config loader can both use it.

``absent``: what a saved config that lacks the key meant by it (a key added after runs were
recorded, whose behaviour before then was not today's default); see ``siger.config``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric key: ``lo``..``hi`` (None = unbounded), ends open or closed."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def ok(self, v: float) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True

    def text(self) -> str:
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        lo = "(" if self.lo_open else "["
        hi = ")" if self.hi_open else "]"
        return f"in {lo}{self.lo:g}, {self.hi:g}{hi}"


POSITIVE_INT = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, lo_open=True)
UNIT = Range(0, 1)
UNIT_OPEN_TOP = Range(0, 1, hi_open=True)
UNIT_OPEN_BOTTOM = Range(0, 1, lo_open=True)

# In a model config's ``RETIRED`` map (keys an earlier version of the model had): any value loads.
RETIRED_ANY = object()
_MISSING = dataclasses.MISSING


def key(default: Any = _MISSING, rng: Range | None = None, *, choices: tuple[str, ...] | None = None,
        absent: Any = _MISSING, default_factory: Any = _MISSING) -> Any:
    """A dataclass field with its rule: a numeric ``rng`` or the allowed ``choices``, and what a
    saved config without the key meant (``absent``)."""
    meta: dict[str, Any] = {}
    if rng is not None:
        meta["range"] = rng
    if choices is not None:
        meta["choices"] = tuple(choices)
    if absent is not _MISSING:
        meta["absent"] = absent
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def rule_text(f: dataclasses.Field) -> str:
    """What a field allows, for help texts ('' when it declares nothing)."""
    if "range" in f.metadata:
        return f.metadata["range"].text()
    if "choices" in f.metadata:
        return " | ".join(f.metadata["choices"])
    return ""


def violations(obj: Any) -> list[tuple[str, str]]:
    """``(key, message)`` for every field of the dataclass instance ``obj`` whose value breaks its
    declared range or choices."""
    out = []
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        rng = f.metadata.get("range")
        if rng is not None and isinstance(v, (int, float)) and not isinstance(v, bool) and not rng.ok(v):
            out.append((f.name, f"must be {rng.text()}, got {v!r}"))
        choices = f.metadata.get("choices")
        if choices is not None and v not in choices:
            out.append((f.name, f"must be one of {' | '.join(choices)}, got {v!r}"))
    return out


def check(obj: Any) -> None:
    """Raise ``ValueError`` naming the first key of ``obj`` whose value its field does not allow."""
    bad = violations(obj)
    if bad:
        name, msg = bad[0]
        raise ValueError(f"{name} {msg}")
