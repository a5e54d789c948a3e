"""One study: its spec, its storage, its identity, and the objective its workers run.

A trial is an ordinary run folder (``trials/NNNN/``) trained with the sampled config; its value is
the best valid ``valid_metric``. Each evaluation is reported to the pruner. A trial whose loss
turns non-finite is pruned (a diverging setting, not a crash). A trial left RUNNING by a killed
process is found stale by its heartbeat, failed and re-queued with the same parameters; the retry
resumes the trial's run folder from its last checkpoint.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from siger.config import ConfigError, ConfigFile, build_config
from siger.experiments.runs import train_or_load
from siger.experiments.tune.engine import (
    TuneOptions,
    make_pruner,
    make_sampler,
    open_storage,
    optuna_module,
    pruner_name,
    storage_url,
)
from siger.experiments.tune.rescore import live_trials
from siger.experiments.tune.space import Space


# -- one study -------------------------------------------------------------------------------
@dataclass
class StudySpec:
    """Everything a worker needs to run trials of one study (picklable, for ``--jobs``)."""

    model: str
    dataset: str | None
    overrides: dict[str, Any]  # command-line overrides, applied after the space's fixed keys
    yaml_path: str | ConfigFile | None  # the --config file (read once)
    space: Space
    out: str
    opts: TuneOptions
    # a multi-dataset study (siger.experiments.tune.multi): (name, data_dir) of each dataset, in
    # training order, the reference model of the relative scores and how they are aggregated
    datasets: list[tuple[str, str | None]] = field(default_factory=list)
    reference: str = "MGCN"
    aggregate: str = "worst"

    def base_overrides(self) -> dict[str, Any]:
        return {**self.space.fixed, **self.overrides}

    def label(self) -> str:
        """The dataset(s) the study tunes on, for names and titles."""
        return "+".join(n for n, _ in self.datasets) if self.datasets else str(self.dataset)

    def trial_config(self, params: dict[str, Any], on: tuple[str, str | None] | None = None):
        """The resolved config of a trial with ``params``; in a multi-dataset study on the dataset
        ``on`` = (name, data_dir) (default: the first)."""
        if self.datasets and on is None:
            on = self.datasets[0]
        dataset = on[0] if on else self.dataset
        # the study's model and dataset win over the YAML's (a run folder's config.yaml names both)
        pinned = {"model": self.model, **({"dataset": dataset} if dataset is not None else {}),
                  **({"data_dir": on[1]} if on else {})}
        return build_config(self.model, dataset, {**self.base_overrides(), **pinned, **params}, self.yaml_path)


def metric_name(spec: StudySpec) -> str:
    return spec.trial_config({}).train.valid_metric


def open_study(spec: StudySpec, worker: int = 0):
    optuna = optuna_module()
    out = Path(spec.out)
    base = spec.trial_config({})
    name = spec.opts.study_name or f"{base.train.model}-{spec.label()}"
    study = optuna.create_study(
        storage=open_storage(storage_url(spec.opts, out), spec.opts.heartbeat), study_name=name,
        sampler=make_sampler(spec.opts, spec.space, worker),
        pruner=make_pruner(spec.opts, base.train.warmup_epochs, base.train.epochs),
        direction="maximize", load_if_exists=True)
    held = len(study.get_trials(deepcopy=False))
    if held:
        study.sampler = make_sampler(spec.opts, spec.space, worker, resumed=held)
    return study


def identity(spec: StudySpec) -> dict[str, Any]:
    """What must not change when a study is resumed: model, data, space, fixed keys, selection."""
    base = spec.trial_config({})
    ident = {"model": base.train.model, "dataset": base.train.dataset, "space": spec.space.to_yaml()["params"],
             "fixed": {k: str(v) for k, v in sorted(spec.base_overrides().items())
                       if k not in ("num_threads", "progress", "device", "data_dir", "cache_dir")},
             "select_by": spec.opts.select_by, "metric": base.train.valid_metric}
    if spec.opts.trial_seeds > 1:  # absent at 1, so studies started before the option still resume
        ident["trial_seeds"] = spec.opts.trial_seeds
    if spec.datasets:  # absent for one dataset, so earlier studies still resume
        ident.update(dataset=spec.label(), datasets=[n for n, _ in spec.datasets], reference=spec.reference,
                     aggregate=spec.aggregate)
    return ident


def check_identity(study, spec: StudySpec) -> None:
    want = json.loads(json.dumps(identity(spec)))
    have = study.user_attrs.get("identity")
    if have is None:
        study.set_user_attr("identity", want)
        return
    diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if diff == ["space"] and spec.opts.extend_space:
        extend_space(study, spec, have, want)
        return
    if diff:
        detail = "; ".join(f"{k}: study has {have.get(k)!r}, now {want.get(k)!r}" for k in diff)
        raise ConfigError(f"{spec.out}: this study was started with other settings ({detail}); "
                          "use another --out or the same settings")


def extend_space(study, spec: StudySpec, have: dict[str, Any], want: dict[str, Any]) -> None:
    """Resume a study with a space that adds keys to its own (``--extend-space``): every key it
    had must stay as it was. The trials so far ran each added key at its config value; the study
    remembers that (``space_extensions``: from which trial, which keys, at which values), its
    reports show those values for the earlier trials, and the identity becomes the wider space."""
    old, new = have["space"], want["space"]
    changed = sorted(k for k in old if new.get(k) != old[k])
    if changed:
        raise ConfigError(f"{spec.out}: --extend-space only adds keys; the space changes or drops {changed}")
    added = sorted(set(new) - set(old))
    base = spec.trial_config({})
    values = {**base.to_dict()["train"], **base.to_dict()["model"]}
    ext = list(study.user_attrs.get("space_extensions", []))
    ext.append({"from_trial": len(study.get_trials(deepcopy=False)), "added": added,
                "until_then": {k: values[k] for k in added}})
    study.set_user_attr("space_extensions", ext)
    study.set_user_attr("identity", want)


def params_as_run(study, number: int, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's values with the keys a later space extension added, at the values it ran them."""
    out = dict(params)
    for e in study.user_attrs.get("space_extensions", []):
        if number < e["from_trial"]:
            for k, v in e["until_then"].items():
                out.setdefault(k, v)
    return out


def enqueue_new(study, spec: StudySpec) -> list[dict[str, Any]]:
    """Queue the ``--enqueue`` entries this study has not queued before (remembered by content,
    so an entry added to a file later is queued when the study resumes); returns them. A study
    from before entries were remembered (one flag) counts the entries given now as queued."""
    key = lambda g: json.dumps(g, sort_keys=True, default=str)  # noqa: E731
    done = study.user_attrs.get("enqueued_entries")
    if done is None:
        done = [key(g) for g in spec.opts.enqueue] if study.user_attrs.get("enqueued") else []
    new = [g for g in spec.opts.enqueue if key(g) not in done]
    for g in new:
        study.enqueue_trial(enqueued_params(spec, g), skip_if_exists=True)
    study.set_user_attr("enqueued_entries", [*done, *(key(g) for g in new)])
    study.set_user_attr("enqueued", True)
    return new


def finished_count(study) -> int:
    """Finished trials (complete or pruned) that no retry replaces: a re-scored trial counts once."""
    optuna = optuna_module()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(live_trials(study, states))


# -- reports ---------------------------------------------------------------------------------
def complete_params(spec: StudySpec, suggested: dict[str, Any]) -> dict[str, Any]:
    """A stored trial's values with the space's ``else`` values; a trial whose sampled keys do not
    fit the space (a space edited under a study, or an enqueued partial trial) is shown as stored."""
    try:
        return {**dict(suggested), **spec.space.complete(dict(suggested))}
    except KeyError:
        return dict(suggested)


class InvalidTrial(Exception):
    """A trial whose sampled values the model refuses (e.g. a conditional key left at a config value
    that does not go with the other keys' values): the trial is FAIL, not counted toward
    ``--trials``, and the study goes on. Fix the space (a condition, ``if:`` / ``else:``) to stop drawing it."""


class Objective:
    """A trial of a one-dataset study (see the module docstring)."""

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
        optuna = optuna_module()
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

        def on_eval(epoch: int, valid: dict, replay: bool) -> bool:
            trial.report(valid[metric], epoch)
            return not replay and trial.should_prune()  # the trainer ignores it inside the warm-up

        t0 = time.perf_counter()
        data = self.data(cfg)  # outside the try: a dataset that fails to load is not a refused combination
        try:
            trainer = Trainer(cfg, data, run, log=self.log, on_eval=on_eval)
        except (ValueError, ConfigError) as e:  # the model refuses this combination of the space's values
            self.refuse(trial, e)
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

    def refuse(self, trial, e: Exception) -> None:
        """Mark a trial whose config the model refuses and raise :class:`InvalidTrial` (or, after
        ``MAX_REFUSED`` such trials in a row, a :class:`ConfigError`: every draw is refused)."""
        trial.set_user_attr("error", f"invalid: {e}")
        self._refused += 1
        if self._refused >= self.MAX_REFUSED:  # not a corner of the space: every draw is refused
            raise ConfigError(f"the last {self._refused} trials were all refused by the model: {e}") from None
        raise InvalidTrial(f"trial {trial.number}: the model refuses this config: {e} (to stop drawing "
                           "such trials, give the space a condition: 'if:', and 'else:' for the value "
                           "a conditional key takes where its condition fails)") from None

    def _more_seeds(self, trial, cfg, run: Path, first: dict[str, Any]) -> None:
        """Train the trial's config with ``trial_seeds - 1`` more seeds (seed + 1, seed + 2, ...;
        run folders ``<run>-seed<S>``, resumed or reused if finished) after its first run passed
        the pruner; the trial's ``valid`` / ``test`` become the means over all its seeds and
        ``seeds`` keeps each seed's numbers."""
        from siger.config import apply_overrides
        from siger.train.trainer import TrainingError

        optuna = optuna_module()
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
