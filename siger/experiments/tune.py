"""`siger tune`: hyper-parameter search with Optuna, chosen on valid data only.

A study is a folder::

    study.db           Optuna's storage (SQLite): a killed study resumes, several processes share it
    space.yaml         the search space and fixed settings it ran with
    trials/NNNN/       one ordinary run folder per trial (config.yaml, log.jsonl, metrics.json, ...)
    study.md           trials sorted by valid metric; test columns are recorded, never used to choose
    study.json         the same, machine-readable
    best_config.yaml   the winning trial's full resolved config (``siger train --config`` takes it)
    history.png        valid metric per trial with the best so far
    importance.png     parameter importances (Optuna's fANOVA evaluator)

The objective is the trial's best valid ``valid_metric`` (Recall@20 by default). Each evaluation is
reported to the pruner, which may stop a hopeless trial early; early stopping and the pruner both
respect the ``warmup_epochs`` config key. A trial whose loss turns non-finite is marked pruned
(a diverging setting, not a crash). A trial left RUNNING by a killed process is found stale by
its heartbeat, failed and re-queued with the same parameters; the retry resumes the trial's
run folder from its last checkpoint.

Search space YAML: ``key: {low: L, high: H[, log: true][, step: S]}`` (float or int by the config
field's type) or ``key: [choice, ...]``, either at the top level or under ``params:``, with an
optional ``fixed:`` mapping of config keys every trial shares (e.g. ``warmup_epochs: 20``). A key
searched only under a condition on earlier keys adds ``if: {other_key: value}`` (a conditional
list is written ``{choices: [...], if: {...}}``); where the condition fails the key keeps its
config value, or takes the value of an optional ``else:`` (e.g. a switch that the other branch's
setting does not allow: ``beta_learn: {choices: [false, true], if: {infuse_at: graph}, else: false}``).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import shutil
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from siger.config import ConfigError, _field_types, _strip_optional, build_config, parse_value
from siger.artifacts import atomic_write, write_json

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "percentile", "hyperband", "sha", "none")
PRUNE_CURVES = ("best", "raw")
SPACES_DIR = Path(__file__).resolve().parents[1] / "models" / "spaces"


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
    types = {**_field_types(base.train), **_field_types(base.model)}
    params: dict[str, Param] = {}
    for key, spec in params_doc.items():
        k = str(key).replace("-", "_")
        at = f"{where}: key {k}"
        if k not in types:
            build_config(model, overrides={k: "0"})  # raises the usual unknown-key error with suggestions
        tp, _ = _strip_optional(types[k])
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
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: cannot read search space: {e}") from None
    return parse_space(doc, model, str(p))


def split_grid(model: str, dataset: str | None, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Separate grid keys (several values for a scalar field) from fixed overrides."""
    base = build_config(model, dataset)
    types = {**_field_types(base.train), **_field_types(base.model)}
    fixed: dict[str, Any] = {}
    grid: dict[str, list[str]] = {}
    for key, raw in overrides.items():
        k = key.replace("-", "_")
        tp, _ = _strip_optional(types.get(k, str))
        scalar = typing.get_origin(tp) is not list
        if scalar and k in types and isinstance(raw, (list, tuple)):
            grid[k] = [str(v) for v in raw]
        elif scalar and k in types and isinstance(raw, str) and "," in raw:
            grid[k] = [v.strip() for v in raw.split(",") if v.strip()]
        else:
            fixed[key] = raw
    for k, vals in grid.items():
        if len(vals) != len(set(vals)):
            raise ConfigError(f"--{k}: repeated values in the grid {vals}")
    return fixed, grid


def grid_space(grid: dict[str, list[str]], model: str) -> Space:
    """A grid of ``siger train``'s list values (``--knn_k 5,10``) as a space of choices."""
    return parse_space({k: list(v) for k, v in grid.items()}, model, "grid")


# -- options and Optuna objects ----------------------------------------------------------------
@dataclass
class TuneOptions:
    trials: int = 20  # finished (complete + pruned) trials to reach; a grid defaults to its size
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0  # sampler seed (worker w uses seed + w)
    jobs: int = 1  # worker processes sharing the study
    storage: str | None = None  # default: sqlite:///<out>/study.db
    study_name: str | None = None
    startup_trials: int = 10  # random trials before TPE models the space; also the median pruner's
    select_by: str = "valid"  # "test" = MMRec's choice by test metric (labelled as having seen test)
    heartbeat: int = 60  # seconds between a running trial's heartbeats; stale after 2x
    prune_percentile: float = 25.0  # the percentile pruner stops a trial in the bottom P % of the others (median: 50)
    enqueue: list[dict[str, Any]] = field(default_factory=list)  # trials to run first (e.g. the defaults)
    note: str | None = None  # a line kept with the study and printed in study.md (e.g. a change of pruner)
    trial_seeds: int = 1  # seeds per trial: the value is the mean over them (the pruner reads the first)
    prune_startup: int | None = None  # completed trials before median / percentile prune (None: min(startup_trials, 5))
    prune_curve: str = "best"  # median / percentile: compare with the others' best-so-far curves ("raw": Optuna's rule)

    def check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler must be one of {' | '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner must be one of {' | '.join(PRUNERS)}, got {self.pruner!r}")
        if self.prune_curve not in PRUNE_CURVES:
            raise ConfigError(f"--prune-curve must be one of {' | '.join(PRUNE_CURVES)}, got {self.prune_curve!r}")
        if self.select_by not in ("valid", "test"):
            raise ConfigError(f"--select-by must be valid or test, got {self.select_by!r}")
        for name, low in (("trials", 1), ("jobs", 1), ("heartbeat", 1), ("startup_trials", 0), ("trial_seeds", 1),
                          ("prune_startup", 1)):
            if getattr(self, name) is not None and getattr(self, name) < low:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(self, name)}")


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError("siger tune needs Optuna: pip install optuna (or pip install -e .)") from None
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # the heartbeat / retry API used to resume a killed study is marked experimental by Optuna
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def make_sampler(opts: TuneOptions, space: Space, worker: int = 0, resumed: int = 0):
    """The sampler of worker ``worker``; ``resumed``: the trials the study already holds (a
    resumed study's worker draws a fresh stream; the same seed would repeat its first draws)."""
    optuna = _optuna()
    seed = opts.seed + worker + 7919 * resumed
    if opts.sampler == "grid":
        return optuna.samplers.GridSampler({k: p.grid_values() for k, p in space.params.items()}, seed=seed)
    if opts.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    conditional = any(p.when for p in space.params.values())
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=opts.startup_trials, multivariate=True,
                                      group=conditional, constant_liar=True)


def make_pruner(opts: TuneOptions, warmup: int, max_epochs: int):
    """The pruner: never before epoch ``warmup`` (steps are 0-based epochs)."""
    optuna = _optuna()
    if opts.pruner == "none" or opts.sampler == "grid" and opts.pruner == "median":
        return optuna.pruners.NopPruner()
    if opts.pruner in ("median", "percentile"):
        # Optuna's percentile is the share kept (for maximisation, the top p %): keep the top 100 - P %;
        # the percentile pruner is gentler than the median: slow starters (a low learning rate) survive
        keep = 50.0 if opts.pruner == "median" else 100.0 - opts.prune_percentile
        startup = opts.prune_startup if opts.prune_startup is not None else max(1, min(opts.startup_trials, 5))
        inner = optuna.pruners.PercentilePruner(keep, n_startup_trials=startup, n_warmup_steps=warmup)
        return BestSoFarPruner(inner, max_epochs) if opts.prune_curve == "best" else inner
    if opts.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup), max_resource=max_epochs,
                                              reduction_factor=3)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup), reduction_factor=3)


def best_so_far(values: dict[int, float], horizon: int, maximize: bool = True) -> dict[int, float]:
    """A trial's curve ``{epoch: valid}`` as its best so far at every epoch from its first
    evaluation to ``horizon - 1`` (the epoch cap): between evaluations and after the trial
    stopped (early stopping: its best can no longer change) it keeps the last best."""
    pick = max if maximize else min
    out: dict[int, float] = {}
    best = None
    steps = sorted(s for s, v in values.items() if not math.isnan(v))
    if not steps:
        return out
    for step in range(steps[0], max(horizon, steps[-1] + 1)):
        if step in values and not math.isnan(values[step]):
            best = values[step] if best is None else pick(best, values[step])
        out[step] = best
    return out


class _BestSoFarView:
    """What Optuna's median / percentile pruner reads of a study (its direction and its trials),
    each trial's curve replaced by :func:`best_so_far`. The stored curves are not changed."""

    def __init__(self, study, horizon: int):
        self._study, self._horizon = study, horizon
        self.direction = study.direction
        self._maximize = study.direction == _optuna().study.StudyDirection.MAXIMIZE

    def get_trials(self, deepcopy: bool = True, states=None):
        out = []
        for t in self._study.get_trials(deepcopy=False, states=states):
            t = copy.copy(t)  # shallow: the stored trial keeps its raw curve
            t.intermediate_values = best_so_far(t.intermediate_values, self._horizon, self._maximize)
            out.append(t)
        return out


class BestSoFarPruner:
    """Optuna's percentile (or median) pruner, reading the other trials' curves as best so far.

    Optuna's rule compares a trial's best value so far with the others' values *at the same
    epoch*: a trial that runs past the epoch where every completed trial stopped (a slow learning
    rate; early stopping ended the others) is compared with nothing and can never be pruned, and a
    trial is compared with the others' values on their way down (the post-graph dip) rather than
    with what they had reached. Here each completed trial counts with its best valid by that epoch,
    held after it stopped; the trial judged keeps Optuna's own best so far. The rule is Optuna's
    (``inner`` decides); only the curves it reads change, so ``--prune-curve raw`` gives it back.
    Optuna calls a pruner only through ``prune(study, trial)``, so this needs no Optuna base class.
    """

    def __init__(self, inner, horizon: int):
        self.inner, self.horizon = inner, horizon

    def prune(self, study, trial) -> bool:
        return self.inner.prune(_BestSoFarView(study, self.horizon), trial)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    """WAL journal and normal sync: a trial reports every epoch, and a commit with a full fsync
    each time costs more than the 2 % a tuner may add; WAL also lets readers run beside a writer."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def pruner_name(opts: TuneOptions) -> str:
    name = f"percentile (bottom {opts.prune_percentile:g} %)" if opts.pruner == "percentile" else opts.pruner
    if opts.pruner in ("median", "percentile"):  # the options below are theirs only
        name += " against best-so-far curves" if opts.prune_curve == "best" else ""
        name += f", from {opts.prune_startup} completed trials" if opts.prune_startup is not None else ""
    return name


def _storage(url: str, heartbeat: int):
    optuna = _optuna()
    sqlite = url.startswith("sqlite")
    if sqlite:
        import sqlalchemy

        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", _sqlite_pragmas_if_sqlite)
    return optuna.storages.RDBStorage(
        url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
        engine_kwargs={"connect_args": {"timeout": 120}} if sqlite else None,
    )


def checkpoint_storage(spec: StudySpec) -> None:
    """Fold an SQLite study's write-ahead log into ``study.db`` (so the file alone holds the study,
    e.g. to commit it); safe while workers run. A no-op for other storages."""
    url = storage_url(spec.opts, Path(spec.out))
    if not url.startswith("sqlite:///"):
        return
    import sqlite3

    con = sqlite3.connect(url[len("sqlite:///"):], timeout=120)
    try:
        con.execute("PRAGMA wal_checkpoint(FULL)")
    finally:
        con.close()


def _sqlite_pragmas_if_sqlite(dbapi_conn, record) -> None:
    import sqlite3

    if isinstance(dbapi_conn, sqlite3.Connection):
        _sqlite_pragmas(dbapi_conn, record)


def storage_url(opts: TuneOptions, out: Path) -> str:
    return opts.storage or f"sqlite:///{(out / 'study.db').resolve()}"


# -- one study -------------------------------------------------------------------------------
@dataclass
class StudySpec:
    """Everything a worker needs to run trials of one study (picklable, for ``--jobs``)."""

    model: str
    dataset: str | None
    overrides: dict[str, Any]  # command-line overrides, applied after the space's fixed keys
    yaml_path: str | None
    space: Space
    out: str
    opts: TuneOptions

    def base_overrides(self) -> dict[str, Any]:
        return {**self.space.fixed, **self.overrides}

    def trial_config(self, params: dict[str, Any]):
        # the study's model and dataset win over the YAML's (a run folder's config.yaml names both)
        pinned = {"model": self.model, **({"dataset": self.dataset} if self.dataset is not None else {})}
        return build_config(self.model, self.dataset, {**self.base_overrides(), **pinned, **params}, self.yaml_path)


def _metric_name(spec: StudySpec) -> str:
    return spec.trial_config({}).train.valid_metric


def _open_study(spec: StudySpec, worker: int = 0):
    optuna = _optuna()
    out = Path(spec.out)
    base = spec.trial_config({})
    name = spec.opts.study_name or f"{base.train.model}-{base.train.dataset}"
    study = optuna.create_study(
        storage=_storage(storage_url(spec.opts, out), spec.opts.heartbeat), study_name=name,
        sampler=make_sampler(spec.opts, spec.space, worker),
        pruner=make_pruner(spec.opts, base.train.warmup_epochs, base.train.epochs),
        direction="maximize", load_if_exists=True)
    held = len(study.get_trials(deepcopy=False))
    if held:
        study.sampler = make_sampler(spec.opts, spec.space, worker, resumed=held)
    return study


def _identity(spec: StudySpec) -> dict[str, Any]:
    """What must not change when a study is resumed: model, data, space, fixed keys, selection."""
    base = spec.trial_config({})
    ident = {"model": base.train.model, "dataset": base.train.dataset, "space": spec.space.to_yaml()["params"],
             "fixed": {k: str(v) for k, v in sorted(spec.base_overrides().items())
                       if k not in ("num_threads", "progress", "device", "data_dir", "cache_dir")},
             "select_by": spec.opts.select_by, "metric": base.train.valid_metric}
    if spec.opts.trial_seeds > 1:  # absent at 1, so studies started before the option still resume
        ident["trial_seeds"] = spec.opts.trial_seeds
    return ident


def _check_identity(study, spec: StudySpec) -> None:
    want = json.loads(json.dumps(_identity(spec)))
    have = study.user_attrs.get("identity")
    if have is None:
        study.set_user_attr("identity", want)
        return
    diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if diff:
        detail = "; ".join(f"{k}: study has {have.get(k)!r}, now {want.get(k)!r}" for k in diff)
        raise ConfigError(f"{spec.out}: this study was started with other settings ({detail}); "
                          "use another --out or the same settings")


def _finished(study) -> int:
    optuna = _optuna()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


class InvalidTrial(Exception):
    """A trial whose sampled values the model refuses (e.g. a conditional key left at a config value
    that does not go with the other keys' values): the trial is FAIL, not counted toward
    ``--trials``, and the study goes on. Fix the space (a condition, ``if:`` / ``else:``) to stop drawing it."""


class _Objective:
    MAX_REFUSED = 20  # refused trials in a row that end the worker with the model's error

    def __init__(self, spec: StudySpec, log: Callable[[str], None]):
        self.spec, self.log = spec, log
        self._refused = 0
        self._data: dict[tuple, Any] = {}

    def data(self, cfg):
        """The dataset, read once per process (models copy the features they fine-tune, so a
        trial never starts from what an earlier trial of this process trained)."""
        from siger.train.trainer import load_data

        key = (cfg.train.dataset, cfg.train.data_dir, tuple(cfg.train.modalities or ()))
        if key not in self._data:
            self._data[key] = load_data(cfg)
        return self._data[key]

    def __call__(self, trial) -> float:
        optuna = _optuna()
        from siger.train.trainer import Trainer, TrainingError

        spec = self.spec
        params = spec.space.resolve(lambda p: p.suggest(trial))
        cfg = spec.trial_config(params)
        metric = cfg.train.valid_metric
        # a retried trial (re-queued after its process died) inherits the user attributes of the
        # original, so it finds the original's run folder and resumes it from its checkpoint
        retry_of = trial.user_attrs.get("run_dir")
        run = Path(spec.out) / (retry_of or f"trials/{trial.number:04d}")
        trial.set_user_attr("run_dir", str(run.relative_to(spec.out)))
        trial.set_user_attr("pruner", pruner_name(spec.opts))
        self.log(f"== trial {trial.number}" + (f" (retry: resumes {retry_of})" if retry_of else "") + f": {params}")

        warmup = cfg.train.warmup_epochs

        def on_eval(epoch: int, valid: dict, replay: bool) -> bool:
            trial.report(valid[metric], epoch)
            return not replay and epoch >= warmup and trial.should_prune()  # no pruner reads in the warm-up

        t0 = time.perf_counter()
        try:
            trainer = Trainer(cfg, self.data(cfg), run, log=self.log, on_eval=on_eval)
        except (ValueError, ConfigError) as e:  # the model refuses this combination of the space's values
            trial.set_user_attr("error", f"invalid: {e}")
            self._refused += 1
            if self._refused >= self.MAX_REFUSED:  # not a corner of the space: every draw is refused
                raise ConfigError(f"the last {self._refused} trials were all refused by the model: {e}") from None
            raise InvalidTrial(f"trial {trial.number}: the model refuses this config: {e} (to stop drawing "
                               "such trials, give the space a condition: 'if:', and 'else:' for the value "
                               "a conditional key takes where its condition fails)") from None
        self._refused = 0
        try:
            res = trainer.fit(resume=True)
        except TrainingError as e:  # a diverging setting: hopeless, not a crash
            trial.set_user_attr("error", str(e))
            raise optuna.TrialPruned(f"diverged: {e}") from None
        for k in ("best_epoch", "epochs_run", "seconds_per_epoch"):
            trial.set_user_attr(k, res[k])
        trial.set_user_attr("valid", res["valid"])
        trial.set_user_attr("test", res["test"])  # recorded for the table; never returned
        if res["pruned"]:
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
            raise optuna.TrialPruned(f"pruned at epoch {res['epochs_run'] - 1}")
        if res["valid"] is None:
            raise optuna.TrialPruned("no evaluation")
        if spec.opts.trial_seeds > 1:
            self._more_seeds(trial, cfg, run, res)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        return float(trial.user_attrs[spec.opts.select_by][metric])

    def _more_seeds(self, trial, cfg, run: Path, first: dict[str, Any]) -> None:
        """Train the trial's config with ``trial_seeds - 1`` more seeds (seed + 1, seed + 2, ...;
        run folders ``<run>-seed<S>``, resumed or reused if finished) after its first run passed
        the pruner; the trial's ``valid`` / ``test`` become the means over all its seeds and
        ``seeds`` keeps each seed's numbers."""
        from siger.config import apply_overrides
        from siger.experiments.ablate import train_or_load
        from siger.train.trainer import TrainingError

        optuna = _optuna()
        runs = [(cfg.train.seed, first)]
        for i in range(1, self.spec.opts.trial_seeds):
            seed = cfg.train.seed + i
            c = copy.deepcopy(cfg)
            apply_overrides(c, {"seed": seed})
            out = run.with_name(f"{run.name}-seed{seed}")
            self.log(f"== trial {trial.number}: seed {seed} ({i + 1} of {self.spec.opts.trial_seeds})")
            try:  # a finished seed (a resumed study) is reused if its config matches
                res = train_or_load(c, out, log=self.log, data=self.data(c))
            except TrainingError as e:  # the setting diverges on this seed: as hopeless as on the first
                trial.set_user_attr("error", f"seed {seed}: {e}")
                raise optuna.TrialPruned(f"diverged at seed {seed}: {e}") from None
            if res["valid"] is None:
                raise optuna.TrialPruned(f"seed {seed}: no evaluation")
            runs.append((seed, res))
        mean = {part: {m: float(np.mean([r[part][m] for _, r in runs])) for m in first[part]}
                for part in ("valid", "test")}
        trial.set_user_attr("seeds", [{"seed": sd, "valid": r["valid"], "test": r["test"],
                                       "best_epoch": r["best_epoch"]} for sd, r in runs])
        trial.set_user_attr("valid", mean["valid"])
        trial.set_user_attr("test", mean["test"])


def enqueued_params(spec: StudySpec, given: dict[str, Any]) -> dict[str, Any]:
    """A trial to run first: ``given`` values, every other searched key at its config value
    (``{}`` is the config's own defaults). Keys outside the space are an error."""
    extra = sorted(set(given) - set(spec.space.params))
    if extra:
        raise ConfigError(f"enqueued trial sets keys that are not searched: {extra}")
    cfg = spec.trial_config(dict(given))
    values = {**cfg.to_dict()["train"], **cfg.to_dict()["model"]}
    # only the sampled keys are enqueued (the else values follow from them when the trial runs)
    resolved = spec.space.resolve(lambda p: values[p.name])
    return {k: v for k, v in resolved.items() if spec.space.params[k].active(resolved)}


class _StopAt:
    """Stop a worker once finished + running trials reach ``n`` (so parallel workers do not each
    start one more trial at the end). Queued (WAITING) trials are not counted: a worker that goes
    on runs them first."""

    def __init__(self, n: int):
        self.n = n

    def count(self, study) -> int:
        optuna = _optuna()
        s = optuna.trial.TrialState
        return len(study.get_trials(deepcopy=False, states=(s.COMPLETE, s.PRUNED, s.RUNNING)))

    def __call__(self, study, trial) -> None:
        if _finished(study) >= self.n or self.count(study) >= self.n:
            study.stop()


def _worker(spec: StudySpec, worker: int, quiet: bool) -> None:
    """Run trials of the study until it has ``opts.trials`` finished ones."""
    optuna = _optuna()
    if "num_threads" not in {k.replace("-", "_") for k in spec.base_overrides()} and spec.opts.jobs > 1:
        spec = copy.deepcopy(spec)
        spec.overrides["num_threads"] = max(1, (os.cpu_count() or 1) // spec.opts.jobs)
    study = _open_study(spec, worker)
    stop = _StopAt(spec.opts.trials)
    if _finished(study) >= spec.opts.trials or (worker > 0 and stop.count(study) >= spec.opts.trials):
        return
    log = (lambda s: None) if quiet else print
    study.optimize(_Objective(spec, log), callbacks=[stop], catch=(InvalidTrial,))


def run_tune(spec: StudySpec, log: Callable[[str], None] = print, quiet_workers: bool = False) -> dict[str, Any]:
    """Create or resume the study in ``spec.out``, run it to ``opts.trials`` finished trials, write reports."""
    if spec.opts.sampler == "grid":
        size = math.prod(len(p.grid_values()) for p in spec.space.params.values())
        spec.opts.trials = min(spec.opts.trials, size) if spec.opts.trials else size
    spec.opts.check()
    optuna = _optuna()
    out = Path(spec.out)
    for p in spec.space.params.values():  # every choice and range end must make a valid config
        for v in (p.choices if p.kind == "categorical" else (p.low, p.high)):
            spec.trial_config({**p.when, p.name: v})
        if p.otherwise:
            spec.trial_config({p.name: p.otherwise[0]})
    if spec.opts.sampler == "grid" and any(p.when for p in spec.space.params.values()):
        raise ConfigError("a grid cannot have conditional keys ('if')")
    out.mkdir(parents=True, exist_ok=True)
    study = _open_study(spec)
    _check_identity(study, spec)
    atomic_write(out / "space.yaml", lambda p: Path(p).write_text(yaml.safe_dump(spec.space.to_yaml(), sort_keys=False)))
    if spec.opts.enqueue and not study.user_attrs.get("enqueued"):
        for given in spec.opts.enqueue:
            study.enqueue_trial(enqueued_params(spec, given), skip_if_exists=True)
        study.set_user_attr("enqueued", True)
    if spec.opts.note:
        study.set_user_attr("note", spec.opts.note)
    optuna.storages.fail_stale_trials(study)  # trials a killed process left RUNNING, once they are stale
    log(f"study {study.study_name}: {_finished(study)} of {spec.opts.trials} trials finished; "
        f"{spec.opts.sampler} sampler, {spec.opts.pruner} pruner, storage {storage_url(spec.opts, out)}")
    if spec.opts.jobs == 1:
        _worker(spec, 0, False)
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_worker, args=(spec, w, quiet_workers)) for w in range(spec.opts.jobs)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        bad = [p.exitcode for p in procs if p.exitcode]
        if bad:
            raise RuntimeError(f"{len(bad)} tune worker(s) failed (exit codes {bad}); rerun to resume the study")
    result = write_reports(spec, log)
    checkpoint_storage(spec)
    return result


# -- reports ---------------------------------------------------------------------------------
def _complete(spec: StudySpec, suggested: dict[str, Any]) -> dict[str, Any]:
    """A stored trial's values with the space's ``else`` values; a trial whose sampled keys do not
    fit the space (a space edited under a study, or an enqueued partial trial) is shown as stored."""
    try:
        return {**dict(suggested), **spec.space.complete(dict(suggested))}
    except KeyError:
        return dict(suggested)


def _rows(study, spec: StudySpec) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        rows.append({"number": t.number, "state": t.state.name, "params": _complete(spec, t.params),
                     "valid": ua.get("valid"), "test": ua.get("test"), "best_epoch": ua.get("best_epoch"),
                     "epochs_run": ua.get("epochs_run"), "seconds_per_epoch": ua.get("seconds_per_epoch"),
                     "run_dir": ua.get("run_dir"), "error": ua.get("error"), "value": t.value,
                     "seeds": ua.get("seeds")})
    return rows


def _fmt_param(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def write_reports(spec: StudySpec, log: Callable[[str], None] = print) -> dict[str, Any]:
    """study.md, study.json, best_config.yaml, history.png and importance.png from the study."""
    optuna = _optuna()
    out = Path(spec.out)
    study = _open_study(spec)
    metric = _metric_name(spec)
    rows = _rows(study, spec)
    done = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    if not done:
        raise RuntimeError(f"{out}: no trial of the study has completed")
    best = study.best_trial
    best_row = next(r for r in rows if r["number"] == best.number)
    confirmed = json.loads((out / "confirm.json").read_text()) if (out / "confirm.json").exists() else None
    src = out / (confirmed["best"]["run_dir"] if confirmed else best_row["run_dir"]) / "config.yaml"
    shutil.copyfile(src, out / "best_config.yaml")
    keys = list(spec.space.params)
    sel = spec.opts.select_by

    def vkey(r):
        return r["valid"][metric] if r["valid"] else -1.0

    ordered = sorted(rows, key=lambda r: (r["state"] not in ("COMPLETE", "PRUNED"), -vkey(r)))
    base = spec.trial_config({})
    n_pruned = sum(r["state"] == "PRUNED" for r in rows)
    pruners: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        name = t.user_attrs.get("pruner", "not recorded")
        pruners[name] = pruners.get(name, 0) + 1
    fixed = ", ".join(f"{k}={v}" for k, v in spec.base_overrides().items()
                      if k not in ("progress", "data_dir", "cache_dir")) or "none"
    lines = [
        f"# Study: {base.train.model} on {base.train.dataset}",
        "",
        f"{len(rows)} trials ({len(done)} complete, {n_pruned} pruned"
        + "".join(f", {sum(r['state'] == st for r in rows)} {st.lower()}" for st in ("FAIL", "RUNNING", "WAITING")
                  if any(r["state"] == st for r in rows))
        + f"); {spec.opts.sampler} sampler, pruner{'s' if len(pruners) > 1 else ''} "
        + ", ".join(f"{name} ({n} trials)" for name, n in pruners.items())
        + f" (warm-up {base.train.warmup_epochs} epochs), "
        + (f"seed {base.train.seed}, one seed per trial" if spec.opts.trial_seeds == 1 else
           f"{spec.opts.trial_seeds} seeds per trial ({base.train.seed}, {base.train.seed + 1}, ...; the pruner reads "
           f"the first, the value is the mean best-valid {metric} over them)")
        + f". Fixed: {fixed}."
        + (f" Note: {study.user_attrs['note']}" if study.user_attrs.get("note") else ""),
        "",
        (f"Chosen on **valid {metric}** (the trial's best-valid epoch). The test columns are recorded at that "
         "epoch for reference and were **not used** to choose." if sel == "valid" else
         f"Chosen on **test {metric}** (MMRec's behaviour): **this choice has seen the test set**."),
        f" Best: trial {best.number} (`best_config.yaml`). Space: `space.yaml`.",
        "",
        "| trial | state | " + " | ".join(keys) + f" | valid {metric} | test recall@20 | test ndcg@20 | "
        "best epoch (run) | s/epoch |" + (f" valid {metric} per seed |" if spec.opts.trial_seeds > 1 else ""),
        "|---:|---|" + "---|" * len(keys) + "---:|---:|---:|---:|---:|" + ("---|" if spec.opts.trial_seeds > 1 else ""),
    ]
    for r in ordered:
        state = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}.get(r["state"], r["state"].lower())
        if r["error"]:
            state += " (invalid config)" if str(r["error"]).startswith("invalid: ") else " (diverged)"
        mark = "**" if r["number"] == best.number else ""
        v = f"{mark}{r['valid'][metric]:.4f}{mark}" if r["valid"] else ""
        te = r["test"] or {}
        ep = f"{r['best_epoch']} ({r['epochs_run']})" if r["epochs_run"] is not None else ""
        spe = f"{r['seconds_per_epoch']:.2f}" if r["seconds_per_epoch"] else ""
        lines.append(f"| {r['number']} | {state} | " + " | ".join(_fmt_param(r["params"].get(k, "")) for k in keys)
                     + f" | {v} | {te.get('recall@20', float('nan')):.4f} | {te.get('ndcg@20', float('nan')):.4f} | "
                     f"{ep} | {spe} |"
                     + (" " + " / ".join(f"{x['valid'][metric]:.4f}" for x in r["seeds"] or []) + " |"
                        if spec.opts.trial_seeds > 1 else ""))
    if confirmed:
        cm = confirmed["metric"]
        lines += ["", f"## Confirmation: the top {len(confirmed['rows'])} trials over {confirmed['seeds']} seeds", "",
                  f"A single-seed valid score is noisy, so the best trials were trained again with other seeds "
                  f"(seeds {', '.join(map(str, confirmed['seed_list']))}) and the winner is the best **mean valid "
                  f"{cm}** (test still not used). `best_config.yaml` is trial {confirmed['best']['number']}'s."
                  + (f" Trials with {', '.join(f'{k}={v}' for k, v in confirmed['exclude'].items())} were left out."
                     if confirmed.get("exclude") else ""), "",
                  f"| trial | valid {cm} per seed | mean valid ± std | test recall@20 mean | test ndcg@20 mean |",
                  "|---:|---|---:|---:|---:|"]
        for r in confirmed["rows"]:
            mark = "**" if r["number"] == confirmed["best"]["number"] else ""
            lines.append(f"| {r['number']} | {' / '.join(f'{v:.4f}' for v in r['valid'])} | "
                         f"{mark}{r['valid_mean']:.4f} ± {r['valid_std']:.4f}{mark} | {r['test_recall@20']:.4f} | "
                         f"{r['test_ndcg@20']:.4f} |")
    importances = _importances(study)
    if importances:
        lines += ["", "Parameter importances (fANOVA over complete trials): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()) + "."]
    text = "\n".join(lines) + "\n"
    atomic_write(out / "study.md", lambda p: Path(p).write_text(text))
    write_json(out / "study.json", {"model": base.train.model, "dataset": base.train.dataset, "metric": metric,
                                    "select_by": sel, "sampler": spec.opts.sampler, "pruner": spec.opts.pruner,
                                    "space": spec.space.to_yaml(), "best": best_row, "importances": importances,
                                    "confirmed": confirmed, "trials": rows})
    _plot_history(rows, metric, out / "history.png", f"{base.train.model} on {base.train.dataset}")
    if importances:
        _plot_importance(importances, out / "importance.png")
    log(text)
    return {"best": best_row, "rows": rows, "importances": importances}


def _confirm_one(spec: StudySpec, params: dict[str, Any], seed: int, run: str, threads: int) -> dict[str, Any]:
    from siger.config import apply_overrides
    from siger.experiments.ablate import train_or_load

    cfg = spec.trial_config(params)
    apply_overrides(cfg, {"seed": seed, **({"num_threads": threads} if threads else {}), "progress": False})
    return train_or_load(cfg, Path(run), log=lambda s: None)


def confirm_top(spec: StudySpec, top: int, seeds: int, jobs: int = 1, log: Callable[[str], None] = print,
                exclude: dict[str, Any] | None = None) -> dict:
    """Train the ``top`` complete trials with ``seeds - 1`` more seeds each (the trial's own run
    is the first) and choose the best mean valid metric: a single-seed valid score is noisy and
    the best of many trials is the luckiest. Writes ``confirm.json`` and the reports (whose
    ``best_config.yaml`` is then the confirmed winner). Runs go to ``confirm/NNNN/seed<S>``;
    finished ones are reused, so a killed confirmation resumes. ``exclude`` (key -> value) leaves
    out trials with those values (e.g. a choice a model's definition rules out)."""
    optuna = _optuna()
    if top < 1 or seeds < 2:
        raise ConfigError("--confirm-top needs >= 1 trials and --confirm-seeds >= 2")
    if spec.opts.trial_seeds > 1:
        raise ConfigError("--confirm-top re-seeds one-seed trials; this study's trials already average "
                          f"{spec.opts.trial_seeds} seeds (--trial-seeds)")
    out = Path(spec.out)
    study = _open_study(spec)
    metric = _metric_name(spec)
    sel = spec.opts.select_by
    exclude = exclude or {}
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if t.value is not None and not any(str(t.params.get(k)) == str(v) for k, v in exclude.items())]
    chosen = sorted(complete, key=lambda t: -t.value)[:top]
    base_seed = spec.trial_config({}).train.seed
    seed_list = [base_seed + s for s in range(seeds)]
    jobs_list = [(t, s) for t in chosen for s in seed_list[1:]]
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0
    args = [(spec, _complete(spec, t.params), s, str(out / "confirm" / f"{t.number:04d}" / f"seed{s}"), threads)
            for t, s in jobs_list]
    log(f"confirming {len(chosen)} trials with seeds {seed_list[1:]}: {len(args)} runs, {jobs} at a time")
    if jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs) as pool:
            results = pool.starmap(_confirm_one, args)
    else:
        results = [_confirm_one(*a) for a in args]
    by = {(t.number, s): r for (t, s), r in zip(jobs_list, results)}
    rows = []
    for t in chosen:
        runs = [{"valid": t.user_attrs["valid"], "test": t.user_attrs["test"]}] + [by[(t.number, s)] for s in seed_list[1:]]
        vals = [float(r[sel][metric]) for r in runs]
        rows.append({"number": t.number, "params": _complete(spec, t.params), "run_dir": t.user_attrs["run_dir"], "valid": vals,
                     "valid_mean": float(np.mean(vals)), "valid_std": float(np.std(vals, ddof=1)),
                     "test_recall@20": float(np.mean([r["test"]["recall@20"] for r in runs])),
                     "test_ndcg@20": float(np.mean([r["test"]["ndcg@20"] for r in runs]))})
    best = max(rows, key=lambda r: r["valid_mean"])
    write_json(out / "confirm.json", {"metric": metric, "select_by": sel, "seeds": seeds, "seed_list": seed_list,
                                      "exclude": exclude, "rows": rows, "best": best})
    return write_reports(spec, log)


def _importances(study) -> dict[str, float]:
    optuna = _optuna()
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if len(complete) < 3:
        return {}
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)).items()}
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}


def _plot_history(rows, metric: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for state, style in (("COMPLETE", dict(color="C0", marker="o", label="complete")),
                         ("PRUNED", dict(color="C7", marker="x", label="pruned (best valid before pruning)"))):
        pts = [(r["number"], r["valid"][metric]) for r in rows if r["state"] == state and r["valid"]]
        if pts:
            ax.scatter(*zip(*pts), s=18, **style)
    best, xs, ys = -math.inf, [], []
    for r in sorted(rows, key=lambda r: r["number"]):
        if r["state"] == "COMPLETE" and r["value"] is not None and r["valid"]:
            best = max(best, r["valid"][metric])
        if best > -math.inf:
            xs.append(r["number"])
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"valid {metric}")
    ax.set_title(f"{title}: optimisation history")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)


def _plot_importance(imp: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(imp)[::-1]
    fig, ax = plt.subplots(figsize=(6, 1.6 + 0.3 * len(names)))
    ax.barh(names, [imp[n] for n in names], color="C0")
    ax.set_xlabel("importance (fANOVA, normalised)")
    ax.set_title("parameter importances")
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)


def grid_combos(space: Space) -> list[dict[str, Any]]:
    keys = list(space.params)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(space.params[k].grid_values() for k in keys))]


__all__ = ["Param", "Space", "StudySpec", "TuneOptions", "default_space_path", "grid_space", "load_space",
           "parse_space", "run_tune", "split_grid", "write_reports", "grid_combos"]
