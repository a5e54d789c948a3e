"""Typed configuration: a ``TrainConfig`` shared by every model plus one dataclass per model.

A resolved configuration is a :class:`Config` with two sections, ``train`` and ``model``. It is
loaded from the dataclass defaults, then an optional YAML file (``train:`` / ``model:`` sections,
or flat keys), then command-line overrides given as flat ``--key value`` pairs. A flat key is
looked up in ``train`` first, then in ``model``; unknown keys are an error that suggests the
nearest known key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from siger.eval.metrics import METRICS
from siger.keys import NON_NEGATIVE, POSITIVE, POSITIVE_INT, RETIRED_ANY, key, rule_text, violations


class ConfigError(ValueError):
    """A configuration key or value that cannot be used (unknown key, value of the wrong type)."""


@dataclass
class TrainConfig:
    """Settings shared by every model: data, optimisation, early stopping, evaluation.

    Defaults follow the MMRec protocol (Adam lr 1e-3, batch 2048, up to 1000 epochs, early stop
    after 20 evaluations without a better valid Recall@20, seed 999).
    """

    model: str = "SIGER"  # model name (siger models)
    preset: str | None = None  # a named set of model settings applied under YAML and --key values (e.g. SIGER's "spec")
    dataset: str = "tiktok"  # dataset name: a folder <data_dir>/<dataset>/, or the bundled tiktok
    data_dir: str | None = None  # folder holding <dataset>/; None: the bundled dataset
    modalities: list[str] | None = None  # subset of the dataset's modalities; None: all
    seed: int = key(999, NON_NEGATIVE)  # seeds the model initialisation, the sampler and the noise
    epochs: int = key(1000, POSITIVE_INT)  # most training epochs
    batch_size: int = key(2048, POSITIVE_INT)  # (user, positive, negative) triples per step
    learning_rate: float = key(1e-3, NON_NEGATIVE)  # Adam step size
    # the step size after e epochs is learning_rate * lr_decay ** (e / lr_decay_epochs) (MMRec's
    # learning_rate_scheduler; LATTICE's authors decay 0.96 per 50 epochs); 1 = constant
    lr_decay: float = key(1.0, POSITIVE)
    lr_decay_epochs: int = key(50, POSITIVE_INT)
    neg_pool: str = key("train", choices=("train", "all"))  # BPR negatives from: train (items occurring in train, as MMRec) | all
    patience: int = key(20, POSITIVE_INT)  # evaluations without improvement before stopping
    # early stopping (and a tuner's pruner) may not end a run before this epoch: models on frozen
    # kNN graphs often peak on valid at epoch 0-1, dip, and pass that peak only later; 0 = MMRec's rule
    # (configs saved before 2026-12-05 that lack the key ran with 0)
    warmup_epochs: int = key(20, NON_NEGATIVE, absent=0)
    # a floor on that warm-up in optimiser steps: it lasts max(warmup_epochs, ceil(warmup_steps /
    # batches per epoch)) epochs, so a small dataset (few batches an epoch) gets as many updates
    # before early stopping may count as a large one (600: TikTok's 20 epochs); 0 = epochs only
    # (docs/usage.md; configs saved before 2026-12-06 that lack the key ran with 0)
    warmup_steps: int = key(600, NON_NEGATIVE, absent=0)
    eval_every: int = key(1, POSITIVE_INT)  # evaluate on valid every N epochs
    valid_metric: str = "recall@20"  # what early stopping and model choice read on valid
    topk: list[int] = field(default_factory=lambda: [5, 10, 20, 50])  # cut-offs of every metric
    eval_chunk_users: int = key(4096, POSITIVE_INT)  # users scored at once during full ranking
    device: str = "cpu"  # cpu | cuda[:N] | mps
    num_threads: int = key(0, NON_NEGATIVE)  # torch intra-op threads; 0 keeps torch's default
    cache_dir: str | None = None  # graph cache; None: $SIGER_CACHE_DIR or ~/.cache/siger
    # tqdm progress bars: None = only when stderr is a terminal (a log file gets one line per
    # epoch, not the bars' redraws); true = always; false = never
    progress: bool | None = None


@dataclass
class Config:
    """A resolved configuration: shared training settings and the chosen model's settings."""

    train: TrainConfig
    model: Any  # the model's own dataclass

    def to_dict(self) -> dict[str, Any]:
        return {"train": dataclasses.asdict(self.train), "model": dataclasses.asdict(self.model)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def strip_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def parse_value(raw: Any, tp: Any, key: str) -> Any:
    """Convert ``raw`` (a string from the command line or a YAML scalar) to the field type ``tp``."""
    base, optional = strip_optional(tp)
    if optional and (raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null", ""))):
        return None
    origin = typing.get_origin(base)
    if origin is list:
        (inner,) = typing.get_args(base)
        items = raw if isinstance(raw, (list, tuple)) else [s for s in str(raw).split(",") if s != ""]
        return [parse_value(x, inner, key) for x in items]
    try:
        if base is bool:
            if isinstance(raw, bool):
                return raw
            s = str(raw).lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if base is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            if isinstance(raw, str) and "," in raw:
                raise ConfigError(
                    f"--{key}: a list of values ({raw!r}) is a search grid; train takes one value"
                )
            return int(raw)
        if base is float:
            if isinstance(raw, str) and "," in raw:
                raise ConfigError(
                    f"--{key}: a list of values ({raw!r}) is a search grid; train takes one value"
                )
            return float(raw)
        if base is str:
            return str(raw)
    except ConfigError:
        raise
    except (TypeError, ValueError):
        raise ConfigError(f"--{key}: expected {getattr(base, '__name__', base)}, got {raw!r}") from None
    return raw


def field_types(obj: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(type(obj))
    return {f.name: hints[f.name] for f in dataclasses.fields(obj)}


def _retire(cfg: Config, key: str, raw: Any) -> bool:
    """True if ``key`` is one the model's config retired (its ``RETIRED`` class attribute) and
    ``raw`` is a value it may still carry (the caller drops it); an error if the value would
    have switched on what the key controlled."""
    retired = getattr(type(cfg.model), "RETIRED", {})
    if key not in retired:
        return False
    need = retired[key]
    if need is not RETIRED_ANY:
        try:
            ok = parse_value(raw, type(need), key) == need
        except ConfigError:
            ok = False
        if not ok:
            raise ConfigError(f"--{key} {raw!r}: model {cfg.train.model} no longer has this key; it could "
                              f"only be {need!r} there (other values train another model's mechanism)")
    return True


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Set flat ``key -> value`` overrides on ``cfg`` (train section first, then model; a key the
    model's config retired loads if its value is one it may carry, see :func:`_retire`)."""
    train_types = field_types(cfg.train)
    model_types = field_types(cfg.model)
    dropped = []
    for name, raw in overrides.items():
        k = name.replace("-", "_")
        if k in train_types:
            setattr(cfg.train, k, parse_value(raw, train_types[k], k))
        elif k in model_types:
            setattr(cfg.model, k, parse_value(raw, model_types[k], k))
        elif _retire(cfg, k, raw):
            dropped.append(k)
        else:
            known = sorted(set(train_types) | set(model_types))
            near = difflib.get_close_matches(k, known, n=3)
            hint = f" (did you mean {', '.join('--' + n for n in near)}?)" if near else ""
            raise ConfigError(f"unknown config key --{name} for model {cfg.train.model}{hint}")
    if dropped:
        warnings.warn(f"model {cfg.train.model} no longer has these keys (an earlier version's config; "
                      f"inert at the values given), dropped: {', '.join(dropped)}", stacklevel=2)
    return cfg


# keys that change how fast / how visibly a run goes, or how long it may go, not what it computes
RUN_ONLY_KEYS = ("epochs", "progress", "num_threads", "device")
# keys that say where a run read and cached its data and how it chunked evaluation, not what it computes
PLACE_KEYS = ("data_dir", "cache_dir", "eval_chunk_users")
# keys holding a folder: two spellings of the same folder (relative / absolute / via a link) are equal
PATH_KEYS = ("data_dir", "cache_dir")


def _same_value(key: str, old: Any, new: Any) -> bool:
    if key in PATH_KEYS and isinstance(old, str) and isinstance(new, str):
        return os.path.realpath(old) == os.path.realpath(new)
    return old == new


def absent_values(section: Any) -> dict[str, Any]:
    """What a saved config that lacks a key meant by it, for every field of the dataclass
    ``section``: the field's ``metadata["absent"]`` where it has one (a key added after runs were
    made, whose behaviour before then was not today's default), else its default."""
    out = {}
    for f in dataclasses.fields(section):
        if "absent" in f.metadata:
            out[f.name] = f.metadata["absent"]
        elif f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def config_mismatch(saved: dict[str, Any], cfg: "Config", ignore: tuple[str, ...] = ()) -> list[str]:
    """Keys whose value in a saved run's config (``Config.to_dict()`` form) differs from ``cfg``.

    A key the saved config lacks was added to the code after the run: the run used what
    :func:`absent_values` says. Keys in :data:`RUN_ONLY_KEYS` and in ``ignore`` are not compared;
    folders in :data:`PATH_KEYS` are compared after resolving them (relative to the current directory).
    """
    now = cfg.to_dict()
    defaults = {"train": absent_values(cfg.train), "model": absent_values(cfg.model)}
    diff = []
    for section in ("train", "model"):
        old = saved.get(section) or {}
        diff += [k for k in now[section] if k not in RUN_ONLY_KEYS and k not in ignore
                 and not _same_value(k, old.get(k, defaults[section].get(k)), now[section][k])]
    return sorted(diff)


def key_docs(cls: type) -> dict[str, str]:
    """One-line meaning of each field of a config dataclass, read from its source: the comment on
    the field's line, else the comment lines just above it (subclasses override their bases)."""
    import inspect
    import re

    docs: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        try:
            src = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        above: list[str] = []
        for line in src.splitlines():
            stripped = line.strip()
            if stripped.startswith("#"):
                above.append(stripped.lstrip("# ").strip())
                continue
            m = re.match(r"\s+(\w+)\s*:[^=#]+=[^#]*(?:#\s*(.*))?$", line)
            if m and m.group(1) in {f.name for f in dataclasses.fields(cls)}:
                docs[m.group(1)] = (m.group(2) or " ".join(above)).strip()
            above = []
    return docs


def config_help(model: str, width: int = 100) -> str:
    """Every config key of ``model`` with its type, default and meaning (``siger train --help``)."""
    import textwrap

    from siger.models import get_model_class

    cls = get_model_class(model)
    lines = ["config keys: give any as --key value (lists comma-separated), or in --config FILE.yaml "
             "(train:/model: sections or flat keys)", ""]
    for title, dc in (("training (every model)", TrainConfig), (f"model {cls.name}", cls.Config)):
        lines.append(f"{title}:")
        docs = key_docs(dc)
        hints = typing.get_type_hints(dc)
        inst = dc()
        if dc is TrainConfig:
            for k, v in getattr(cls, "TRAIN_DEFAULTS", {}).items():
                setattr(inst, k, v)  # shown as this model's default
        for f in dataclasses.fields(dc):
            tp, opt = strip_optional(hints[f.name])
            tname = getattr(tp, "__name__", str(tp)) + (" | None" if opt else "")
            if typing.get_origin(tp) is list:
                tname = f"list[{typing.get_args(tp)[0].__name__}]"
            head = f"  --{f.name} {tname} = {getattr(inst, f.name)!r}"
            text = docs.get(f.name, "")
            rule = rule_text(f)
            if rule and not ("choices" in f.metadata and all(c in text for c in f.metadata["choices"])):
                text += f" [{rule}]"
            first = f"{head:<44} {text}".rstrip() if len(head) < 44 else head + "\n" + " " * 45 + text
            lines += textwrap.wrap(first, width=width, subsequent_indent=" " * 45, replace_whitespace=False) or [first]
        lines.append("")
    presets = getattr(cls, "PRESETS", {})
    if presets:
        lines.append(f"presets of {cls.name} (--preset NAME): " + ", ".join(sorted(presets)))
    return "\n".join(lines)


class _UniqueKeys(yaml.SafeLoader):
    """PyYAML's safe loader, except that a mapping may not repeat a key: PyYAML keeps the last
    value silently, so a key written twice (a stray ``fixed:`` left by an edit) would drop the first."""


def _unique_mapping(loader: _UniqueKeys, node: yaml.MappingNode, deep: bool = False) -> dict:
    first: dict[Any, int] = {}
    for key_node, _ in node.value:
        k = loader.construct_object(key_node, deep=True)
        try:
            if k in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {k!r} repeated (first on line {first[k]})", key_node.start_mark)
            first[k] = key_node.start_mark.line + 1
        except TypeError:  # an unhashable key: the constructor below says so
            continue
    return loader.construct_mapping(node, deep=deep)


_UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(path: str | Path, what: str) -> Any:
    """The YAML document in ``path`` (``what`` it is, for the error), refusing repeated keys; a
    missing file or bad YAML is a :class:`ConfigError` naming the file (and line)."""
    p = Path(path)
    try:
        return yaml.load(p.read_text(), Loader=_UniqueKeys)
    except OSError as e:
        raise ConfigError(f"{p}: cannot read {what}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: cannot read {what}: {e}") from None


@dataclass(frozen=True)
class ConfigFile:
    """A YAML config file, read once: its keys flattened (``flat``), and its ``train`` / ``model``
    sections when it is a saved config (``saved``; e.g. a run's config.yaml), else None."""

    path: str
    flat: dict[str, Any]
    saved: dict[str, Any] | None = None


def read_config_file(path: str | Path) -> ConfigFile:
    """Read a YAML config (``train:``/``model:`` sections or flat keys) once. A key given twice
    (repeated in one mapping, or in two sections) is an error naming the file and the key."""
    p = Path(path)
    doc = read_yaml(p, "config") or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: a config must be a mapping of keys to values")
    flat: dict[str, Any] = {}
    where: dict[str, str] = {}
    for k, v in doc.items():
        section = k in ("train", "model") and isinstance(v, dict)
        for name, value in (v.items() if section else [(k, v)]):
            here = f"under {k}:" if section else "at the top level"
            if name in flat:
                raise ConfigError(f"{p}: key {name!r} given twice ({where[name]} and {here}); give it once")
            flat[name], where[name] = value, here
    saved = doc if isinstance(doc.get("train"), dict) and isinstance(doc.get("model"), dict) else None
    return ConfigFile(str(p), flat, saved)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config's keys, flattened (:func:`read_config_file`)."""
    return read_config_file(path).flat


def parse_cli_overrides(tokens: list[str]) -> dict[str, str]:
    """``['--lr', '1e-3', '--flag', 'true']`` -> ``{'lr': '1e-3', 'flag': 'true'}``."""
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            raise ConfigError(f"unexpected argument {tok!r}: overrides are given as --key value")
        key = tok[2:]
        if "=" in key:
            key, val = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(tokens) or (tokens[i + 1].startswith("--") and not _is_number(tokens[i + 1])):
                raise ConfigError(f"--{key} needs a value")
            val = tokens[i + 1]
            i += 2
        out[key] = val
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def check_config(cfg: Config) -> Config:
    """Every key within what its field declares (:mod:`siger.keys`: a range, or choices), else a
    :class:`ConfigError` naming the key and what it allows."""
    for section in (cfg.train, cfg.model):
        bad = violations(section)
        if bad:
            name, msg = bad[0]
            raise ConfigError(f"--{name}: {msg}")
    t = cfg.train
    if any(k < 1 for k in t.topk):
        raise ConfigError(f"--topk: every K must be >= 1, got {t.topk}")
    metric, _, k = t.valid_metric.partition("@")
    if metric not in METRICS or not k.isdigit() or int(k) not in t.topk:
        raise ConfigError(f"--valid_metric: must be recall|ndcg|precision|map@K with K in --topk {t.topk}, "
                          f"got {t.valid_metric!r}")
    return cfg


def _preset(cls, name: str | None) -> dict[str, Any]:
    if name is None:
        return {}
    presets = getattr(cls, "PRESETS", {})
    if name not in presets:
        known = ", ".join(sorted(presets)) or "none"
        raise ConfigError(f"--preset: model {cls.name} has no preset {name!r} (presets: {known})")
    return dict(presets[name])


def build_config(
    model: str,
    dataset: str | None = None,
    overrides: dict[str, Any] | None = None,
    yaml_path: str | Path | ConfigFile | None = None,
) -> Config:
    """Defaults -> preset (``preset`` key) -> YAML -> overrides, for the model registered under
    ``model``; the result is checked (:func:`check_config`). ``yaml_path``: a file, or a
    :class:`ConfigFile` already read. A YAML file that is a saved config (``train:`` and
    ``model:`` sections, e.g. a run's config.yaml) means by a key it lacks what the key meant when
    it was saved (:func:`absent_values`), not today's default."""
    from siger.models import get_model_class  # models register their config dataclass

    flat: dict[str, Any] = {}
    saved: dict[str, Any] | None = None
    if yaml_path is not None:
        file = yaml_path if isinstance(yaml_path, ConfigFile) else read_config_file(yaml_path)
        flat.update(file.flat)
        saved = file.saved
    flat.update(overrides or {})
    name = flat.pop("model", model)
    cls = get_model_class(name)
    cfg = Config(train=TrainConfig(model=cls.name), model=cls.Config())
    if saved is not None:
        flat = {**predated_keys(cfg, saved), **flat}
    apply_overrides(cfg, dict(getattr(cls, "TRAIN_DEFAULTS", {})))  # the model's own training defaults
    if dataset is not None:
        cfg.train.dataset = dataset
    preset = flat.get("preset")
    if preset is not None and not (isinstance(preset, str) and preset.lower() in ("none", "null", "")):
        apply_overrides(cfg, _preset(cls, str(preset)))  # the preset first: YAML and --key values win
    return check_config(apply_overrides(cfg, flat))


def predated_keys(cfg: Config, doc: dict[str, Any]) -> dict[str, Any]:
    """The keys a saved config ``doc`` (``train`` / ``model`` sections) predates, with the value
    they had then (a field's ``metadata["absent"]``)."""
    return {f.name: f.metadata["absent"] for sec, part in ((cfg.train, "train"), (cfg.model, "model"))
            for f in dataclasses.fields(sec) if "absent" in f.metadata and f.name not in (doc.get(part) or {})}


def config_from_dict(doc: dict[str, Any]) -> Config:
    """Rebuild a :class:`Config` saved by :meth:`Config.save` (``train`` and ``model`` sections)."""
    from siger.models import get_model_class

    train = doc.get("train", {})
    cls = get_model_class(train.get("model", "SIGER"))
    cfg = Config(train=TrainConfig(model=cls.name), model=cls.Config())
    flat = predated_keys(cfg, doc)  # keys the saved config predates take the value they had then
    flat.update(train)
    flat.update(doc.get("model", {}))
    flat.pop("model", None)
    return check_config(apply_overrides(cfg, flat))


def split_grid(model: str, dataset: str | None, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Separate grid keys (several values for a scalar field: ``--knn_k 5,10`` or a YAML list)
    from the fixed overrides: ``(fixed, {key: [value, ...]})``."""
    base = build_config(model, dataset)
    types = {**field_types(base.train), **field_types(base.model)}
    fixed: dict[str, Any] = {}
    grid: dict[str, list[str]] = {}
    for name, raw in overrides.items():
        k = name.replace("-", "_")
        tp, _ = strip_optional(types.get(k, str))
        scalar = typing.get_origin(tp) is not list
        if scalar and k in types and isinstance(raw, (list, tuple)):
            grid[k] = [str(v) for v in raw]
        elif scalar and k in types and isinstance(raw, str) and "," in raw:
            grid[k] = [v.strip() for v in raw.split(",") if v.strip()]
        else:
            fixed[name] = raw
    for k, vals in grid.items():
        if len(vals) != len(set(vals)):
            raise ConfigError(f"--{k}: repeated values in the grid {vals}")
    return fixed, grid


def expand_grid(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination of a grid (``{key: [value, ...]}``, as :func:`split_grid` gives it), in
    order: the last key varies fastest."""
    import itertools

    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
