"""Running a study: create or resume it, run its workers to the trials asked, write its reports."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any, Callable

import yaml

from siger.artifacts import atomic_write
from siger.config import ConfigError
from siger.experiments.tune.engine import checkpoint_storage, optuna_module, storage_url
from siger.experiments.tune.multi import MultiObjective, moved_references, pruned_above_floor, train_references
from siger.experiments.tune.report import write_reports
from siger.experiments.tune.rescore import live_trials, requeue_stale
from siger.experiments.tune.study import (
    InvalidTrial,
    Objective,
    StudySpec,
    check_identity,
    enqueue_new,
    finished_count,
    open_study,
    params_as_run,
)


class _StopAt:
    """Stop a worker once finished + running trials reach ``n`` (so parallel workers do not each
    start one more trial at the end). Queued (WAITING) trials are not counted: a worker that goes
    on runs them first."""

    def __init__(self, n: int):
        self.n = n

    def count(self, study) -> int:
        optuna = optuna_module()
        s = optuna.trial.TrialState
        return len(live_trials(study, (s.COMPLETE, s.PRUNED, s.RUNNING)))

    def __call__(self, study, trial) -> None:
        if finished_count(study) >= self.n or self.count(study) >= self.n:
            study.stop()


def study_warmup(spec: StudySpec) -> Callable[[dict[str, Any]], int | None]:
    """``warmup_of(run record)``: the warm-up (epochs) the study's config gives that run's
    dataset now: its warm-up keys as the study fixes them (or as the run had them, where the
    space searches them) and the run's batch size; None for a dataset the study no longer has.
    Each dataset is loaded once, to count its training pairs."""
    from siger.train.stopping import effective_warmup
    from siger.train.trainer import load_data

    places = dict(spec.datasets) if spec.datasets else {str(spec.dataset): None}
    n_train: dict[str, int] = {}

    def warmup_of(rec: dict[str, Any]) -> int | None:
        name, t = rec.get("dataset"), rec["config"]["train"]
        if name not in places:
            return None
        cfg = spec.trial_config({}, on=(name, places[name])) if spec.datasets else spec.trial_config({})
        if name not in n_train:
            n_train[name] = int(load_data(cfg).train_matrix.nnz)
        keys = {k: (t.get(k, 0) if k in spec.space.params else getattr(cfg.train, k))
                for k in ("warmup_epochs", "warmup_steps")}
        return effective_warmup(keys["warmup_epochs"], keys["warmup_steps"], n_train[name],
                                t.get("batch_size", cfg.train.batch_size))

    return warmup_of


def _multi_reasons(spec: StudySpec, refs: dict, study) -> Callable[[Any], list[str]]:
    """Why a multi-dataset trial's value is stale besides its runs' stop rule: a reference run that
    has moved since it was scored, or a pruning that today's pruner would not make."""
    moved = moved_references(spec, refs)
    floor = pruned_above_floor(spec, study.get_trials(deepcopy=False))
    return lambda t: moved(t) + floor(t)


def run_worker(spec: StudySpec, worker: int, quiet: bool) -> None:
    """Run trials of the study until it has ``opts.trials`` finished ones."""
    if "num_threads" not in {k.replace("-", "_") for k in spec.base_overrides()} and spec.opts.jobs > 1:
        spec = copy.deepcopy(spec)
        spec.overrides["num_threads"] = max(1, (os.cpu_count() or 1) // spec.opts.jobs)
    study = open_study(spec, worker)
    stop = _StopAt(spec.opts.trials)
    if finished_count(study) >= spec.opts.trials or (worker > 0 and stop.count(study) >= spec.opts.trials):
        return
    log = (lambda s: None) if quiet else print
    objective = (MultiObjective if spec.datasets else Objective)(spec, log)
    study.optimize(objective, callbacks=[stop], catch=(InvalidTrial,))


def run_tune(spec: StudySpec, log: Callable[[str], None] = print, quiet_workers: bool = False) -> dict[str, Any]:
    """Create or resume the study in ``spec.out``, run it to ``opts.trials`` finished trials, write reports."""
    if spec.opts.sampler == "grid":
        size = math.prod(len(p.grid_values()) for p in spec.space.params.values())
        spec.opts.trials = min(spec.opts.trials, size) if spec.opts.trials else size
    spec.opts.check()
    optuna = optuna_module()
    out = Path(spec.out)
    for p in spec.space.params.values():  # every choice and range end must make a valid config
        for v in (p.choices if p.kind == "categorical" else (p.low, p.high)):
            spec.trial_config({**p.when, p.name: v})
        if p.otherwise:
            spec.trial_config({p.name: p.otherwise[0]})
    if spec.opts.sampler == "grid" and any(p.when for p in spec.space.params.values()):
        raise ConfigError("a grid cannot have conditional keys ('if')")
    if spec.datasets:
        if spec.opts.trial_seeds > 1 or spec.opts.select_by != "valid" or spec.opts.sampler == "grid":
            raise ConfigError("a multi-dataset study runs one seed per trial, chooses on valid and samples "
                              "(no --trial-seeds, --select-by test or grid)")
    out.mkdir(parents=True, exist_ok=True)
    study = open_study(spec)
    check_identity(study, spec)
    atomic_write(out / "space.yaml", lambda p: Path(p).write_text(yaml.safe_dump(spec.space.to_yaml(), sort_keys=False)))
    if spec.opts.enqueue:
        enqueue_new(study, spec)
    if spec.opts.note:
        study.set_user_attr("note", spec.opts.note)
    optuna.storages.fail_stale_trials(study)  # trials a killed process left RUNNING, once they are stale
    refs = {}
    if spec.datasets:  # every relative score needs its reference run first (continued if the rule moved)
        refs = train_references(spec, [spec.trial_config({}).train.seed], log)
    # finished trials whose runs the current training rules would have continued, or whose
    # relative scores read a reference run that has moved since: retried first
    requeue_stale(study, out, lambda t: params_as_run(study, t.number, t.params), log, warmup_of=study_warmup(spec),
                  also=_multi_reasons(spec, refs, study) if spec.datasets else None)
    log(f"study {study.study_name}: {finished_count(study)} of {spec.opts.trials} trials finished; "
        f"{spec.opts.sampler} sampler, {spec.opts.pruner} pruner, storage {storage_url(spec.opts, out)}")
    if spec.opts.jobs == 1:
        run_worker(spec, 0, False)
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=run_worker, args=(spec, w, quiet_workers)) for w in range(spec.opts.jobs)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        bad = [p.exitcode for p in procs if p.exitcode]
        if bad:
            raise RuntimeError(f"{len(bad)} tune worker(s) failed (exit codes {bad}); rerun to resume the study")
    result = write_reports(spec, log)
    checkpoint_storage(spec.opts, spec.out)
    return result
