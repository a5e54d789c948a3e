"""What `siger tune` takes from Optuna: options, samplers, pruners and the SQLite storage.

The pruners never act before the warm-up epoch. The median / percentile pruners read the other
trials' curves as best-so-far values held after they stopped (:class:`BestSoFarPruner`), so a
slow trial past every completed trial's last epoch can still be pruned; ``--prune-curve raw``
gives Optuna's own rule back.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siger.config import ConfigError
from siger.experiments.tune.rescore import live_trials
from siger.experiments.tune.space import Space

SAMPLERS = ("tpe", "random", "grid")


PRUNERS = ("median", "percentile", "hyperband", "sha", "none")


PRUNE_CURVES = ("best", "raw")


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
    extend_space: bool = False  # resume with a space that adds keys to the study's (the earlier trials ran them at their config values)

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


def optuna_module():
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
    optuna = optuna_module()
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
    optuna = optuna_module()
    if opts.pruner == "none" or opts.sampler == "grid" and opts.pruner == "median":
        return optuna.pruners.NopPruner()
    if opts.pruner in ("median", "percentile"):
        # Optuna's percentile is the share kept (for maximisation, the top p %): keep the top 100 - P %;
        # the percentile pruner is gentler than the median: slow starters (a low learning rate) survive
        keep = 50.0 if opts.pruner == "median" else 100.0 - opts.prune_percentile
        startup = opts.prune_startup if opts.prune_startup is not None else max(1, min(opts.startup_trials, 5))
        inner = optuna.pruners.PercentilePruner(keep, n_startup_trials=startup, n_warmup_steps=warmup)
        return BestSoFarPruner(inner, max_epochs, best=opts.prune_curve == "best")
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


class _PrunerView:
    """What Optuna's median / percentile pruner reads of a study (its direction and its trials):
    the trials no retry replaces (:func:`~siger.experiments.tune.rescore.superseded`), each curve
    replaced by :func:`best_so_far` when ``best`` is set. The stored curves are not changed."""

    def __init__(self, study, horizon: int, best: bool):
        self._study, self._horizon, self._best = study, horizon, best
        self.direction = study.direction
        self._maximize = study.direction == optuna_module().study.StudyDirection.MAXIMIZE

    def get_trials(self, deepcopy: bool = True, states=None):
        out = []
        for t in live_trials(self._study, states):
            if self._best:
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
    (``inner`` decides); only the curves it reads change, so ``best=False`` (``--prune-curve raw``)
    gives them back. Either way trials replaced by a retry are not read. Optuna calls a pruner only
    through ``prune(study, trial)``, so this needs no Optuna base class.
    """

    def __init__(self, inner, horizon: int, best: bool = True):
        self.inner, self.horizon, self.best = inner, horizon, best

    def prune(self, study, trial) -> bool:
        return self.inner.prune(_PrunerView(study, self.horizon, self.best), trial)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    """WAL journal and normal sync: a trial reports every epoch, and a commit with a full fsync
    each time costs more than the 2 % a tuner may add; WAL also lets readers run beside a writer."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_pragmas_if_sqlite(dbapi_conn, record) -> None:
    import sqlite3

    if isinstance(dbapi_conn, sqlite3.Connection):
        _sqlite_pragmas(dbapi_conn, record)


def pruner_name(opts: TuneOptions) -> str:
    name = f"percentile (bottom {opts.prune_percentile:g} %)" if opts.pruner == "percentile" else opts.pruner
    if opts.pruner in ("median", "percentile"):  # the options below are theirs only
        name += " against best-so-far curves" if opts.prune_curve == "best" else ""
        name += f", from {opts.prune_startup} completed trials" if opts.prune_startup is not None else ""
    return name


def open_storage(url: str, heartbeat: int):
    optuna = optuna_module()
    sqlite = url.startswith("sqlite")
    if sqlite:
        import sqlalchemy

        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", _sqlite_pragmas_if_sqlite)
    return optuna.storages.RDBStorage(
        url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
        engine_kwargs={"connect_args": {"timeout": 120}} if sqlite else None,
    )


def storage_url(opts: TuneOptions, out: Path) -> str:
    return opts.storage or f"sqlite:///{(out / 'study.db').resolve()}"


def checkpoint_storage(opts: TuneOptions, out: str | Path) -> None:
    """Fold an SQLite study's write-ahead log into ``study.db`` (so the file alone holds the study,
    e.g. to commit it); safe while workers run. A no-op for other storages."""
    url = storage_url(opts, Path(out))
    if not url.startswith("sqlite:///"):
        return
    import sqlite3

    con = sqlite3.connect(url[len("sqlite:///"):], timeout=120)
    try:
        con.execute("PRAGMA wal_checkpoint(FULL)")
    finally:
        con.close()
