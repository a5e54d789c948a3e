"""Confirming a study's top trials over more seeds (``siger tune ... --confirm-top K``).

A single-seed valid score is noisy and the best of many trials is the luckiest, so the ``K`` best
complete trials are trained again with ``seeds - 1`` more seeds (the trial's own run is the first)
and the winner is chosen on the seeds together; test is never read to choose. Runs go to
``confirm/NNNN/seed<S>/`` (one folder per dataset below it in a multi-dataset study); finished
ones are reused, so a killed confirmation resumes. Writes ``confirm.json`` and the reports, whose
``best_config.yaml`` is then the confirmed winner's.

- One dataset: the winner has the best mean valid metric over the seeds.
- Several datasets: every seed gets its own reference run on every dataset (trained once into
  ``refs/<dataset>/seed<S>/``, as the trial's seed was), so each (dataset, seed) has its relative
  score, a paired ratio. A trial's score on a dataset is the mean of its relative scores over the
  seeds (with a 95 % t interval), and the winner has the best aggregate (``worst`` or ``mean``,
  the study's) of those per-dataset means: the same rule as the study's, on seeds together.
  With ``worst``, a trial whose worst case is not below the best one's beyond the seeds' noise
  (:func:`choose_winner`) ties with it, and among tied trials the best mean over the datasets
  wins: the worst case guards against a dataset on which a setting fails, and the mean then
  decides between settings whose worst cases the seeds cannot tell apart (on the development
  datasets the binding one is ml100k, where the top trials' worst cases differ by 0.1-0.7 %
  with a seed spread near 1 %: maximin alone chose among them by noise).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from siger.artifacts import write_json
from siger.config import ConfigError, apply_overrides
from siger.experiments.runs import train_or_load
from siger.experiments.stats import mean_std, paired_diff
from siger.experiments.tune.engine import optuna_module
from siger.experiments.tune.multi import aggregate, reference_config, reference_dir, reference_run_if_same
from siger.experiments.tune.report import write_reports
from siger.experiments.tune.rescore import live_trials
from siger.experiments.tune.study import StudySpec, complete_params, metric_name, open_study, params_as_run


def _train(cfg, run: str) -> dict[str, Any]:
    """One run (a pool worker's job): the finished run's metrics, trained if needed."""
    return train_or_load(cfg, Path(run), log=lambda s: None)


def _run_all(jobs_list: list[tuple[Any, str]], jobs: int) -> list[dict[str, Any]]:
    """Train ``[(config, run folder), ...]``, ``jobs`` at a time, in order."""
    if jobs > 1 and len(jobs_list) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs) as pool:
            return pool.starmap(_train, jobs_list)
    return [_train(*a) for a in jobs_list]


def _seeded(cfg, seed: int, threads: int):
    apply_overrides(cfg, {"seed": seed, **({"num_threads": threads} if threads else {}), "progress": False})
    return cfg


def confirm_top(spec: StudySpec, top: int, seeds: int, jobs: int = 1, log: Callable[[str], None] = print,
                exclude: dict[str, Any] | None = None) -> dict:
    """Train the ``top`` complete trials (those a retry does not replace, less ``exclude``: key ->
    value, e.g. a choice a model's definition rules out) with ``seeds - 1`` more seeds each, choose
    the winner on the seeds together (see the module docstring) and write the reports."""
    optuna = optuna_module()
    if top < 1 or seeds < 2:
        raise ConfigError("--confirm-top needs >= 1 trials and --confirm-seeds >= 2")
    if spec.opts.trial_seeds > 1:
        raise ConfigError("--confirm-top re-seeds one-seed trials; this study's trials already average "
                          f"{spec.opts.trial_seeds} seeds (--trial-seeds)")
    out = Path(spec.out)
    study = open_study(spec)
    exclude = exclude or {}
    complete = [t for t in live_trials(study, (optuna.trial.TrialState.COMPLETE,))
                if t.value is not None and not any(str(t.params.get(k)) == str(v) for k, v in exclude.items())]
    chosen = sorted(complete, key=lambda t: -t.value)[:top]
    # each trial's values as it ran them (keys a later space extension added, at the values it had)
    params = {t.number: complete_params(spec, params_as_run(study, t.number, t.params)) for t in chosen}
    if not chosen:
        raise ConfigError(f"{out}: no complete trial to confirm")
    base_seed = spec.trial_config({}).train.seed
    seed_list = [base_seed + s for s in range(seeds)]
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0
    doc = {"metric": metric_name(spec), "select_by": spec.opts.select_by, "seeds": seeds, "seed_list": seed_list,
           "exclude": exclude}
    if spec.datasets:
        doc.update(_confirm_multi(spec, chosen, params, seed_list, jobs, threads, log))
    else:
        doc.update(_confirm_one_dataset(spec, chosen, params, seed_list, jobs, threads, log))
    write_json(out / "confirm.json", doc)
    return write_reports(spec, log)


def _confirm_one_dataset(spec, chosen, params, seed_list, jobs, threads, log) -> dict[str, Any]:
    out, metric, sel = Path(spec.out), metric_name(spec), spec.opts.select_by
    pairs = [(t, s) for t in chosen for s in seed_list[1:]]
    log(f"confirming {len(chosen)} trials with seeds {seed_list[1:]}: {len(pairs)} runs, {jobs} at a time")
    results = _run_all([(_seeded(spec.trial_config(params[t.number]), s, threads),
                         str(out / "confirm" / f"{t.number:04d}" / f"seed{s}")) for t, s in pairs], jobs)
    by = {(t.number, s): r for (t, s), r in zip(pairs, results)}
    rows = []
    for t in chosen:
        runs = [{"valid": t.user_attrs["valid"], "test": t.user_attrs["test"]}] + [by[(t.number, s)] for s in seed_list[1:]]
        vals = [float(r[sel][metric]) for r in runs]
        rows.append({"number": t.number, "params": params[t.number], "run_dir": t.user_attrs["run_dir"],
                     "valid": vals, "valid_mean": mean_std(vals)[0], "valid_std": mean_std(vals)[1],
                     "test_recall@20": float(np.mean([r["test"]["recall@20"] for r in runs])),
                     "test_ndcg@20": float(np.mean([r["test"]["ndcg@20"] for r in runs]))})
    return {"rows": rows, "best": max(rows, key=lambda r: r["valid_mean"])}


def _confirm_multi(spec, chosen, params, seed_list, jobs, threads, log) -> dict[str, Any]:
    out, metric = Path(spec.out), metric_name(spec)
    names = [n for n, _ in spec.datasets]
    extra = seed_list[1:]
    # every seed's reference runs first: a trial run with the reference's own config links to it
    ref_keys = [(name, d, s) for name, d in spec.datasets for s in seed_list]
    ref_jobs = [(_seeded(reference_config(spec, name, d, s), s, threads), str(reference_dir(spec, name, s)))
                for name, d, s in ref_keys]
    todo = sum(not (Path(run) / "metrics.json").exists() for _, run in ref_jobs)
    log(f"confirming {len(chosen)} trials on {len(names)} datasets with seeds {extra}: "
        f"{todo} reference runs to train first, {jobs} at a time")
    refs = {(name, s): r for (name, _, s), r in zip(ref_keys, _run_all(ref_jobs, jobs))}
    runs: dict[tuple[int, str, int], dict[str, Any]] = {}
    train_jobs = []
    for t in chosen:
        for s in extra:
            for name, d in spec.datasets:
                cfg = _seeded(spec.trial_config(params[t.number], on=(name, d)), s, threads)
                run = out / "confirm" / f"{t.number:04d}" / f"seed{s}" / name
                same = reference_run_if_same(spec, name, cfg, run)
                if same is not None:
                    runs[(t.number, name, s)] = same["metrics"]
                else:
                    train_jobs.append(((t.number, name, s), (cfg, str(run))))
    log(f"{len(train_jobs)} trial runs ({len(chosen)} trials x {len(extra)} seeds x {len(names)} datasets, "
        "less those that are the reference's own config)")
    runs.update(zip([k for k, _ in train_jobs], _run_all([j for _, j in train_jobs], jobs)))
    rows = []
    for t in chosen:
        per = t.user_attrs.get("datasets") or {}
        datasets = {}
        for name in names:
            rel = {seed_list[0]: float(per[name]["rel"])}
            rel_test = {seed_list[0]: float(per[name]["rel_test"])}
            for s in extra:
                r, ref = runs[(t.number, name, s)], refs[(name, s)]
                rel[s] = float(r["valid"][metric]) / float(ref["valid"][metric])
                rel_test[s] = float(r["test"][metric]) / float(ref["test"][metric])
            # the ratios' mean and t interval: their paired difference from a constant 1 (level with the reference)
            mean, lo, hi, _ = paired_diff(rel, dict.fromkeys(rel, 1.0))
            datasets[name] = {"rel": [rel[s] for s in seed_list], "rel_mean": 1.0 + mean,
                              "interval": [1.0 + lo, 1.0 + hi],
                              "rel_test": [rel_test[s] for s in seed_list],
                              "rel_test_mean": float(np.mean(list(rel_test.values())))}
        means = {n: v["rel_mean"] for n, v in datasets.items()}
        per_seed = [aggregate({n: datasets[n]["rel"][i] for n in names}, spec.aggregate) for i in range(len(seed_list))]
        rows.append({"number": t.number, "params": params[t.number], "run_dir": t.user_attrs["run_dir"],
                     "datasets": datasets, "value": aggregate(means, spec.aggregate), "value_per_seed": per_seed,
                     "value_test": aggregate({n: v["rel_test_mean"] for n, v in datasets.items()}, spec.aggregate)})
    return {"aggregate": spec.aggregate, "datasets": names, "rows": rows, **choose_winner(rows, spec.aggregate)}


def choose_winner(rows: list[dict[str, Any]], how: str) -> dict[str, Any]:
    """The confirmed winner among ``rows`` (each with ``value``, its aggregate of the per-dataset
    mean relative scores, ``value_per_seed``, the aggregate at each seed, and ``datasets``: name ->
    ``rel_mean``): ``{"best": row, "best_by_value": number, "tied": [...]}``.

    ``how == "mean"``: the best ``value``. ``how == "worst"``: let ``b`` have the best ``value``; a
    row ties with ``b`` when its per-seed worst case is not below ``b``'s beyond the seeds' noise
    (the paired difference over seeds of ``value_per_seed`` has a 95 % interval reaching zero);
    the winner is the tied row with the best mean of its per-dataset means. ``tied``: each tied
    row's number, mean over the datasets and paired difference from ``b`` (mean, low, high)."""
    top = max(rows, key=lambda r: r["value"])
    if how != "worst":
        return {"best": top, "best_by_value": top["number"], "tied": []}
    ref = dict(enumerate(top["value_per_seed"]))
    tied = []
    for r in rows:
        m, lo, hi, n = paired_diff(dict(enumerate(r["value_per_seed"])), ref)
        if r is top or (n > 1 and hi >= 0.0):
            mean = float(np.mean([d["rel_mean"] for d in r["datasets"].values()]))
            tied.append({"number": r["number"], "mean": mean, "diff": [m, lo, hi]})
    win = max(tied, key=lambda t: t["mean"])["number"]
    return {"best": next(r for r in rows if r["number"] == win), "best_by_value": top["number"], "tied": tied}


__all__ = ["choose_winner", "confirm_top"]
