"""Multi-dataset studies: one config trained on every listed dataset, scored against a reference.

``siger tune --datasets tiktok,baby,ml100k,...``: a trial trains the same sampled config on each
dataset in the order given (same seed) into ``trials/NNNN/<dataset>/``. Its score on a dataset is
relative: the trial's best valid metric divided by the **reference** run's on that dataset and
seed (default: MGCN at its own defaults, MMRec's values, with the study's training protocol),
trained once per dataset and seed into ``refs/<dataset>/seed<S>/`` before any trial. The trial's
value aggregates the relative scores: ``worst`` (the minimum over datasets, the default: a default
must hold on data nobody tuned it on, so it is chosen on its worst case) or ``mean``; both are
kept with the trial.

Pruning is per dataset: while a trial trains on a dataset, its best-so-far relative score is
compared with the completed trials' best-so-far curves on that dataset at the same epoch (held
after they stopped), and the trial dies when it falls in their bottom ``prune_percentile`` % (the
percentile pruner; 50 % for the median pruner; no other pruner prunes) after the warm-up, once
``prune_startup`` trials have completed: one hopeless dataset ends it. With the ``worst``
aggregate a dataset on which the trial's best so far already reaches the best complete trial's
value never prunes it (since 2026-12-06): that dataset cannot be why it loses to that trial, and
the completed trials are survivors, so their bottom quarter on a dataset that binds none of them
can lie above it (SIGER's study pruned its trial 52 at 1.017 of the reference on ml100k_thin,
against a bar of 1.020 there, while its best trial's worst case was 1.016).

With the ``worst`` aggregate a trial is also **bounded** (:func:`bounded`): once two of its finished
datasets score below the best complete trial's value, it stops. This loses nothing: its worst case
can only fall further, and with any one dataset left out it still has one below that value while the
best trial's worst over the rest is at least that value, so neither the study's choice nor any
leave-one-dataset-out choice could be this trial.
Put the cheapest datasets first: a trial pruned there costs little.

A trial whose config on a dataset is the reference's own (e.g. MGCN's study enqueueing MGCN's
defaults) is not trained again: the reference run is its run there (a link to ``refs/``), with the
same seed, so its relative score is 1 by construction.

Leave-one-dataset-out (:func:`leave_one_out`): for each dataset, the trial the study would choose
without it (the best aggregate over the others) and that trial's relative score on it: the honest
estimate of what a dataset the choice never saw gets.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from siger.config import PLACE_KEYS, Config, ConfigError, TrainConfig, build_config, config_mismatch
from siger.experiments.runs import train_or_load
from siger.experiments.tune.engine import best_so_far, optuna_module
from siger.experiments.tune.rescore import live_trials
from siger.experiments.tune.study import InvalidTrial, Objective, StudySpec

AGGREGATES = ("worst", "mean")


def parse_datasets(text: str, data_dir: str | None) -> list[tuple[str, str | None]]:
    """``"tiktok,DIR/baby,..."`` -> ``[(name, data_dir), ...]``: a bare name is read from
    ``data_dir`` (or the bundled copy), ``DIR/NAME`` from ``DIR``. At least two, each once."""
    out: list[tuple[str, str | None]] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if "/" in item:
            p = Path(item.rstrip("/"))
            out.append((p.name, str(p.parent)))
        else:
            out.append((item, data_dir))
    names = [n for n, _ in out]
    if len(names) < 2:
        raise ConfigError(f"--datasets: a multi-dataset study needs at least two datasets, got {names}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"--datasets: each dataset once, got {dup} twice")
    return out


def aggregate(rel: dict[str, float], how: str) -> float:
    """The trial's value from its relative scores per dataset: their minimum or their mean."""
    if how not in AGGREGATES:
        raise ConfigError(f"--aggregate must be one of {' | '.join(AGGREGATES)}, got {how!r}")
    vals = list(rel.values())
    return float(min(vals)) if how == "worst" else float(np.mean(vals))


def hopeless(mine: dict[int, float], others: list[dict[int, float]], epoch: int, horizon: int,
             percentile: float, startup: int, floor: float | None = None) -> bool:
    """Whether a trial's curve ``{epoch: score}`` is hopeless at ``epoch`` against ``others``
    (the completed trials' curves on the same dataset): its best so far is below the
    ``percentile``-th percentile of the others' best-so-far values at that epoch (each held after
    its run stopped). Never with fewer than ``startup`` others reaching that epoch, and never
    once its best so far reaches ``floor`` (with the ``worst`` aggregate: the best complete
    trial's value; a dataset on which the trial already scores that much cannot be why it loses
    to that trial, whatever the others' curves there)."""
    if len(others) < startup:
        return False
    seen = [v for e, v in mine.items() if e <= epoch and not math.isnan(v)]
    if not seen or (floor is not None and max(seen) >= floor):
        return False
    vals = []
    for o in others:
        held = best_so_far(o, horizon)
        if epoch in held:
            vals.append(held[epoch])
    if len(vals) < startup:
        return False
    return max(seen) < float(np.percentile(vals, percentile))


def bounded(rel: dict[str, float], best: float | None, how: str) -> list[str]:
    """The finished datasets that bound a trial out (see the module docstring): those whose
    relative score is below ``best`` (the best complete trial's value) when there are at least two
    of them and the aggregate is ``worst``; else ``[]``."""
    if how != "worst" or best is None:
        return []
    below = sorted(n for n, v in rel.items() if v < best)
    return below if len(below) >= 2 else []


def reference_config(spec: StudySpec, name: str, data_dir: str | None, seed: int) -> Config:
    """The reference model on one dataset: its own defaults (for MGCN: MMRec's values) under the
    study's training protocol (the training-section keys of the space's ``fixed`` and the
    command line, e.g. ``warmup_epochs``), at ``seed``."""
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    protocol = {k: v for k, v in spec.base_overrides().items() if k.replace("-", "_") in train_keys}
    protocol.update({"dataset": name, "data_dir": data_dir, "seed": seed})
    return build_config(spec.reference, name, protocol)


def reference_dir(spec: StudySpec, name: str, seed: int) -> Path:
    return Path(spec.out) / "refs" / name / f"seed{seed}"


def reference_run_if_same(spec: StudySpec, name: str, cfg: Config, run: Path) -> dict[str, Any] | None:
    """If ``cfg`` is the finished reference run's config on ``name`` (same model, keys and seed),
    link ``run`` to it and return ``{"metrics": ..., "curve": {epoch: valid metric}}``; else None."""
    import json

    import yaml

    ref = reference_dir(spec, name, cfg.train.seed)
    saved, done = ref / "config.yaml", ref / "metrics.json"
    if not (saved.exists() and done.exists()):
        return None
    if config_mismatch(yaml.safe_load(saved.read_text()) or {}, cfg, ignore=PLACE_KEYS):
        return None
    metrics = json.loads(done.read_text())
    if metrics.get("model") != cfg.train.model:
        return None
    metric = cfg.train.valid_metric
    curve = {}
    for line in (ref / "log.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("valid") and metric in row["valid"]:
            curve[int(row["epoch"])] = float(row["valid"][metric])
    run.parent.mkdir(parents=True, exist_ok=True)
    if run.is_dir() and not run.is_symlink():
        import shutil

        # a training of the same config and seed made in the trial's own folder (from before this
        # rule, or under an earlier stop rule): the reference run stands for it; left in place, a
        # stale record there would queue a re-scoring retry of this trial every time
        shutil.rmtree(run)
    if not run.exists() and not run.is_symlink():
        run.symlink_to(os.path.relpath(ref, run.parent), target_is_directory=True)  # the study folder can move
    return {"metrics": metrics, "curve": curve}


def train_references(spec: StudySpec, seeds: list[int], log: Callable[[str], None] = print) -> dict:
    """The reference run of every dataset and seed (trained once; finished runs are reused):
    ``{(dataset, seed): metrics}``."""
    out = {}
    for name, data_dir in spec.datasets:
        for seed in seeds:
            cfg = reference_config(spec, name, data_dir, seed)
            run = reference_dir(spec, name, seed)
            if not (run / "metrics.json").exists():
                log(f"== reference {spec.reference} on {name}, seed {seed}")
            out[(name, seed)] = train_or_load(cfg, run, log=log)
    return out


def moved_references(spec: StudySpec, refs: dict[tuple[str, int], dict[str, Any]]) -> Callable[[Any], list[str]]:
    """``why(trial)``: one line per dataset whose relative score the trial holds against another
    valid metric of the reference run than the one ``refs`` (:func:`train_references`) has now
    (a reference continued under a new stop rule): the trial's value is then on another scale
    than the trials scored after, and its retry scores it again from its finished runs."""
    import math

    base = spec.trial_config({}).train
    metric, seed = base.valid_metric, base.seed

    def why(trial) -> list[str]:
        out = []
        for name, v in (trial.user_attrs.get("datasets") or {}).items():
            ref = refs.get((name, seed))
            if ref is None or not v.get("valid") or "rel" not in v:
                continue
            now = v["valid"][metric] / ref["valid"][metric]
            if not math.isclose(now, v["rel"], rel_tol=1e-9):
                out.append(f"{name}: relative score {v['rel']:.5f} read against a reference that has moved "
                           f"since (against it now: {now:.5f})")
        return out

    return why


FLOOR_PRUNER = "and below the best complete trial's value"  # in a trial's pruner label: judged with the floor


def pruned_above_floor(spec: StudySpec, trials: list[Any]) -> Callable[[Any], list[str]]:
    """``why(trial)``: for a ``worst``-aggregate study, one line when the trial was pruned on a
    dataset (by the pruner, before the floor of :func:`hopeless` existed) where its best so far
    had reached the best value of the trials complete when it started: the pruner, as it is now,
    would have let it train on, so its retry resumes the pruned run under that rule. ``trials``:
    the study's trials (read once)."""
    if spec.aggregate != "worst":
        return lambda trial: []
    done = [(t.datetime_complete, t.value) for t in trials
            if t.state.name == "COMPLETE" and t.value is not None and t.datetime_complete is not None]

    def why(trial) -> list[str]:
        ua = trial.user_attrs
        if (trial.state.name != "PRUNED" or ua.get("bounded") or ua.get("error") or trial.datetime_start is None
                or FLOOR_PRUNER in (ua.get("pruner") or "")):
            return []
        per = ua.get("datasets") or {}
        name = next((n for n, v in per.items() if v.get("pruned")), None)
        curve = (ua.get("curves") or {}).get(name) or {}
        floor = max((v for when, v in done if when < trial.datetime_start), default=None)
        if name is None or not curve or floor is None or max(curve.values()) < floor:
            return []
        return [f"{name}: pruned at a best so far of {max(curve.values()):.4f}, at or above the best complete "
                f"trial's value then ({floor:.4f}), which no longer prunes: the run trains on"]

    return why


class MultiObjective(Objective):
    """A trial of a multi-dataset study (see the module docstring)."""

    def __call__(self, trial) -> float:
        optuna = optuna_module()
        from siger.train.trainer import Trainer, TrainingError

        spec = self.spec
        params = spec.space.resolve(lambda p: p.suggest(trial))
        retry_of = trial.user_attrs.get("run_dir")
        run = Path(spec.out) / (retry_of or f"trials/{trial.number:04d}")
        trial.set_user_attr("run_dir", str(run.relative_to(spec.out)))
        trial.set_user_attr("pruner", f"per dataset, bottom {self._percentile():g} % of completed trials"
                            + (f" {FLOOR_PRUNER}" if spec.aggregate == "worst" else "")
                            if self._percentile() is not None else "none")
        self.log(f"== trial {trial.number}" + (f" (retry: resumes {retry_of})" if retry_of else "") + f": {params}")
        t0 = time.perf_counter()
        per: dict[str, dict[str, Any]] = dict(trial.user_attrs.get("datasets") or {})
        curves: dict[str, dict[str, float]] = {}
        for name, data_dir in spec.datasets:
            cfg = spec.trial_config(params, on=(name, data_dir))
            metric, data = cfg.train.valid_metric, self.data(cfg)  # a load error is not a refused combination
            ref = train_or_load(reference_config(spec, name, data_dir, cfg.train.seed),
                                reference_dir(spec, name, cfg.train.seed), log=self.log)
            ref_valid, ref_test = ref["valid"][metric], ref["test"][metric]
            others = self._completed_curves(trial, name)
            curve: dict[int, float] = {}
            same = reference_run_if_same(spec, name, cfg, run / name)
            if same is not None:
                curves[name] = {str(e): v / ref_valid for e, v in same["curve"].items()}
                trial.set_user_attr("curves", curves)
                res = same["metrics"]
                per[name] = {"valid": res["valid"], "test": res["test"], "rel": 1.0, "rel_test": 1.0,
                             "best_epoch": res["best_epoch"], "epochs_run": res["epochs_run"],
                             "seconds_per_epoch": res["seconds_per_epoch"], "pruned": False, "reference": True}
                trial.set_user_attr("datasets", per)
                continue

            floor = self._best_complete(trial) if spec.aggregate == "worst" else None

            def on_eval(epoch: int, valid: dict, replay: bool, _curve=curve, _name=name, _ref=ref_valid,
                        _others=others, _cap=cfg.train.epochs, _floor=floor) -> bool:
                _curve[epoch] = valid[metric] / _ref
                curves[_name] = {str(e): v for e, v in _curve.items()}
                trial.set_user_attr("curves", curves)
                # the trainer ignores a True inside its warm-up
                return (not replay and self._percentile() is not None
                        and hopeless(_curve, _others, epoch, _cap, self._percentile(), self._startup(), _floor))

            try:
                trainer = Trainer(cfg, data, run / name, log=self.log, on_eval=on_eval)
            except (ValueError, ConfigError) as e:
                self.refuse(trial, e)
            self._refused = 0
            try:
                res = trainer.fit(resume=True)
            except TrainingError as e:
                trial.set_user_attr("error", f"{name}: {e}")
                raise optuna.TrialPruned(f"diverged on {name}: {e}") from None
            if res["valid"] is None:
                raise optuna.TrialPruned(f"no evaluation on {name}")
            per[name] = {"valid": res["valid"], "test": res["test"], "rel": res["valid"][metric] / ref_valid,
                         "rel_test": res["test"][metric] / ref_test, "best_epoch": res["best_epoch"],
                         "epochs_run": res["epochs_run"], "seconds_per_epoch": res["seconds_per_epoch"],
                         "pruned": bool(res["pruned"])}
            trial.set_user_attr("datasets", per)
            if res["pruned"]:
                trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
                raise optuna.TrialPruned(f"pruned on {name} at epoch {res['epochs_run'] - 1}")
            best = self._best_complete(trial)
            below = bounded({n: v["rel"] for n, v in per.items()}, best, spec.aggregate)
            if below and len(per) < len(spec.datasets):
                trial.set_user_attr("bounded", {"best": best, "below": below})
                trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
                raise optuna.TrialPruned(f"bounded: {', '.join(below)} below the best trial's {best:.4f}")
        rel = {n: per[n]["rel"] for n, _ in spec.datasets}
        for how in AGGREGATES:
            trial.set_user_attr(how, aggregate(rel, how))
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        return aggregate(rel, spec.aggregate)

    def _percentile(self) -> float | None:
        """The pruning percentile: --prune-percentile for the percentile pruner, 50 for the median,
        None (no pruning) for any other."""
        o = self.spec.opts
        return {"percentile": o.prune_percentile, "median": 50.0}.get(o.pruner)

    def _startup(self) -> int:
        o = self.spec.opts
        return o.prune_startup if o.prune_startup is not None else max(1, min(o.startup_trials, 5))

    def _best_complete(self, trial) -> float | None:
        """The best value of the study's complete trials (None before the first)."""
        optuna = optuna_module()
        vals = [t.value for t in live_trials(trial.study, (optuna.trial.TrialState.COMPLETE,))
                if t.value is not None]
        return max(vals) if vals else None

    def _completed_curves(self, trial, name: str) -> list[dict[int, float]]:
        """The relative-score curves on ``name`` of the study's completed trials."""
        optuna = optuna_module()
        study = trial.study
        out = []
        for t in live_trials(study, (optuna.trial.TrialState.COMPLETE,)):
            c = (t.user_attrs.get("curves") or {}).get(name)
            if c:
                out.append({int(e): float(v) for e, v in c.items()})
        return out


def leave_one_out(rows: list[dict[str, Any]], names: list[str], how: str) -> list[dict[str, Any]]:
    """For each dataset: the complete trial with the best ``how`` aggregate over the *other*
    datasets, and its relative score on the one left out (valid and test)."""
    done = [r for r in rows if r["state"] == "COMPLETE" and r.get("datasets") and r.get("superseded_by") is None
            and all(n in r["datasets"] for n in names)]
    out = []
    for left in names:
        rest = [n for n in names if n != left]
        if not done:
            break
        pick = max(done, key=lambda r: aggregate({n: r["datasets"][n]["rel"] for n in rest}, how))
        out.append({"left_out": left, "trial": pick["number"],
                    "chosen_on": aggregate({n: pick["datasets"][n]["rel"] for n in rest}, how),
                    "rel": pick["datasets"][left]["rel"], "rel_test": pick["datasets"][left]["rel_test"]})
    return out


__all__ = ["AGGREGATES", "InvalidTrial", "MultiObjective", "aggregate", "bounded", "hopeless", "leave_one_out",
           "parse_datasets", "reference_config", "train_references"]
