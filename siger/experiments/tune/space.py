"""The search-space language of `siger tune` (YAML), validated against a model's config keys.

``key: {low: L, high: H[, log: true][, step: S]}`` (float or int by the config field's type) or
``key: [choice, ...]``, either at the top level or under ``params:``, with an optional ``fixed:``
mapping of config keys every trial shares (e.g. ``warmup_epochs: 20``). A key searched only under
a condition on earlier keys adds ``if: {other_key: value}`` (a conditional list is written
``{choices: [...], if: {...}}``); where the condition fails the key keeps its config value, or
takes the value of an optional ``else:`` (e.g. a switch that the other branch's setting does not
allow: ``beta_learn: {choices: [false, true], if: {infuse_at: graph}, else: false}``).
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from siger.config import ConfigError, build_config, field_types, parse_value, read_yaml, strip_optional

SPACES_DIR = Path(__file__).resolve().parents[2] / "models" / "spaces"


# -- the search space ------------------------------------------------------------------------
@dataclass
class Param:
    """One searched config key: a range (``low``..``high``, optionally ``log`` or ``step``) or ``choices``."""

    name: str
    kind: str  # "float" | "int" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None
    when: dict[str, Any] = field(default_factory=dict)  # searched only where earlier keys have these values
    otherwise: tuple = ()  # (value,): the key's value where the condition fails (``else:``); (): its config value

    def active(self, chosen: dict[str, Any]) -> bool:
        return all(k in chosen and chosen[k] == v for k, v in self.when.items())

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list[Any]:
        """The values a grid sampler visits (choices, or a range with a ``step``)."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.step is None:
            raise ConfigError(f"space key {self.name}: a grid needs choices or a step, not a continuous range")
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        vals = [self.low + i * self.step for i in range(n)]
        return [int(v) for v in vals] if self.kind == "int" else [round(v, 12) for v in vals]

    def to_yaml(self) -> Any:
        if self.kind == "categorical":
            if not self.when:
                return list(self.choices)
            return {"choices": list(self.choices), "if": dict(self.when),
                    **({"else": self.otherwise[0]} if self.otherwise else {})}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.when:
            out["if"] = dict(self.when)
        if self.otherwise:
            out["else"] = self.otherwise[0]
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass
class Space:
    """A search space (``params``) and the config keys every trial shares (``fixed``)."""

    params: dict[str, Param]
    fixed: dict[str, Any] = field(default_factory=dict)

    def to_yaml(self) -> dict[str, Any]:
        return {"params": {k: p.to_yaml() for k, p in self.params.items()}, "fixed": dict(self.fixed)}

    def resolve(self, pick: Callable[[Param], Any]) -> dict[str, Any]:
        """A trial's values, key by key in file order (conditions see earlier keys): ``pick(p)``
        where ``p`` is active, its ``else`` value where it is not and has one; else left out."""
        params: dict[str, Any] = {}
        for k, p in self.params.items():
            if p.active(params):
                params[k] = pick(p)
            elif p.otherwise:
                params[k] = p.otherwise[0]
        return params

    def complete(self, suggested: dict[str, Any]) -> dict[str, Any]:
        """A stored trial's sampled values (Optuna's ``trial.params``) with the ``else`` values added."""
        return self.resolve(lambda p: suggested[p.name])


def default_space_path(model: str) -> Path:
    from siger.models import get_model_class

    return SPACES_DIR / f"{get_model_class(model).name.lower()}.yaml"


def _num(x: Any, where: str) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {x!r}") from None


def parse_space(doc: dict[str, Any], model: str, where: str = "space") -> Space:
    """Validate a space mapping against ``model``'s config keys and types."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: a search space must be a mapping of config keys")
    if set(doc) <= {"params", "fixed"} and doc:
        params_doc, fixed = doc.get("params") or {}, dict(doc.get("fixed") or {})
    else:
        params_doc, fixed = doc, {}
    base = build_config(model)
    types = {**field_types(base.train), **field_types(base.model)}
    params: dict[str, Param] = {}
    for key, spec in params_doc.items():
        k = str(key).replace("-", "_")
        at = f"{where}: key {k}"
        if k not in types:
            build_config(model, overrides={k: "0"})  # raises the usual unknown-key error with suggestions
        tp, _ = strip_optional(types[k])
        if typing.get_origin(tp) is list:
            raise ConfigError(f"{at}: list-valued keys cannot be searched")
        when: dict[str, Any] = {}
        otherwise: tuple = ()
        if isinstance(spec, dict) and "else" in spec and "if" not in spec:
            raise ConfigError(f"{at}: 'else' needs an 'if' (the value where the condition fails)")
        if isinstance(spec, dict) and "if" in spec:
            spec = dict(spec)
            cond = spec.pop("if")
            if "else" in spec:
                otherwise = (parse_value(spec.pop("else"), types[k], k),)
            if not isinstance(cond, dict) or not cond:
                raise ConfigError(f"{at}: 'if' must map earlier searched keys to a value, got {cond!r}")
            for ck, cv in cond.items():
                if ck not in params:
                    raise ConfigError(f"{at}: condition on {ck!r}, which is not a searched key listed before {k}")
                when[ck] = parse_value(cv, types[ck], ck)
            if set(spec) == {"choices"}:
                spec = spec["choices"]
            elif "choices" in spec:
                raise ConfigError(f"{at}: a conditional list is {{choices, if[, else]}}, got extra keys "
                                  f"{sorted(set(spec) - {'choices'})}")
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(f"{at}: empty list of choices")
            choices = [parse_value(v, types[k], k) for v in spec]
            if len({repr(c) for c in choices}) != len(choices):
                raise ConfigError(f"{at}: repeated choices {spec}")
            params[k] = Param(k, "categorical", choices=choices, when=when, otherwise=otherwise)
        elif isinstance(spec, dict):
            unknown = set(spec) - {"low", "high", "log", "step"}
            if unknown or "low" not in spec or "high" not in spec:
                raise ConfigError(f"{at}: a range is {{low, high[, log][, step][, if[, else]]}} and a "
                                  f"conditional list {{choices, if[, else]}}, got {spec}")
            if tp not in (int, float):
                raise ConfigError(f"{at}: a range needs a numeric key, {k} is {getattr(tp, '__name__', tp)}")
            low, high = _num(spec["low"], at), _num(spec["high"], at)
            log = bool(spec.get("log", False))
            step = None if spec.get("step") is None else _num(spec["step"], at)
            if not low < high:
                raise ConfigError(f"{at}: low ({low}) must be below high ({high})")
            if log and low <= 0:
                raise ConfigError(f"{at}: a log range needs low > 0")
            if log and step is not None:
                raise ConfigError(f"{at}: log and step cannot be combined")
            kind = "int" if tp is int else "float"
            if kind == "int" and not (low.is_integer() and high.is_integer()):
                raise ConfigError(f"{at}: {k} is an integer key; low and high must be integers")
            params[k] = Param(k, kind, low, high, log, step, when=when, otherwise=otherwise)
        else:
            raise ConfigError(f"{at}: expected a list of choices or {{low, high}}, got {spec!r}")
    if not params:
        raise ConfigError(f"{where}: the search space is empty")
    clash = sorted(set(params) & {k.replace("-", "_") for k in fixed})
    if clash:
        raise ConfigError(f"{where}: keys both searched and fixed: {clash}")
    return Space(params, fixed)


def load_space(path: str | Path | None, model: str) -> Space:
    """The space in ``path`` (YAML), or ``model``'s default space when ``path`` is None."""
    p = Path(path) if path is not None else default_space_path(model)
    if not p.exists():
        raise ConfigError(f"{p}: no such search space file" + ("" if path else f" (no default space for {model})"))
    return parse_space(read_yaml(p, "search space") or {}, model, str(p))


def load_enqueue(paths: list[str | Path]) -> list[dict[str, Any]]:
    """The trials to queue from ``--enqueue`` files: each a mapping of searched keys to values, or
    a list of them (keys not given keep their config value)."""
    out: list[dict[str, Any]] = []
    for path in paths:
        doc = read_yaml(path, "enqueued trials")
        entries = doc if isinstance(doc, list) else [doc]
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                where = f"entry {i + 1}" if isinstance(doc, list) else "the document"
                raise ConfigError(f"{path}: {where} is not a mapping of keys to values: {entry!r}")
        out += entries
    return out


def grid_space(grid: dict[str, list[str]], model: str) -> Space:
    """A grid of ``siger train``'s list values (``--knn_k 5,10``) as a space of choices."""
    return parse_space({k: list(v) for k, v in grid.items()}, model, "grid")
