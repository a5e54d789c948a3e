"""A study's reports: study.md, study.json, best_config.yaml, history.png and importance.png."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Callable

from siger.artifacts import atomic_write, write_json
from siger.experiments.tune.engine import optuna_module
from siger.experiments.tune.rescore import live_trials, superseded
from siger.experiments.tune.study import StudySpec, complete_params, metric_name, open_study, params_as_run


def _rows(study, spec: StudySpec) -> list[dict[str, Any]]:
    """One row per trial; a trial a retry replaces (:mod:`~siger.experiments.tune.rescore`) has
    ``superseded_by``, and its state reads so."""
    rows = []
    trials = study.get_trials(deepcopy=False)
    gone = superseded(trials)
    for t in trials:
        ua = t.user_attrs
        rows.append({"number": t.number, "state": t.state.name, "params": complete_params(spec, params_as_run(study, t.number, t.params)),
                     "valid": ua.get("valid"), "test": ua.get("test"), "best_epoch": ua.get("best_epoch"),
                     "epochs_run": ua.get("epochs_run"), "seconds_per_epoch": ua.get("seconds_per_epoch"),
                     "run_dir": ua.get("run_dir"), "error": ua.get("error"), "value": t.value,
                     "seeds": ua.get("seeds"), "datasets": ua.get("datasets"), "mean": ua.get("mean"),
                     "worst": ua.get("worst"), "bounded": ua.get("bounded"),
                     "superseded_by": gone.get(t.number), "retry_of": ua.get("retry_of")})
    return rows


def _fmt_param(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def trial_lines(ordered: list[dict[str, Any]], spec: StudySpec, best: int, metric: str,
                keys: list[str]) -> list[str]:
    """The per-trial table of a one-dataset study, best valid first."""
    lines = [
        "| trial | state | " + " | ".join(keys) + f" | valid {metric} | test recall@20 | test ndcg@20 | "
        "best epoch (run) | s/epoch |" + (f" valid {metric} per seed |" if spec.opts.trial_seeds > 1 else ""),
        "|---:|---|" + "---|" * len(keys) + "---:|---:|---:|---:|---:|" + ("---|" if spec.opts.trial_seeds > 1 else ""),
    ]
    for r in ordered:
        state = _state(r)
        mark = "**" if r["number"] == best else ""
        v = f"{mark}{r['valid'][metric]:.4f}{mark}" if r["valid"] else ""
        te = r["test"] or {}
        ep = f"{r['best_epoch']} ({r['epochs_run']})" if r["epochs_run"] is not None else ""
        spe = f"{r['seconds_per_epoch']:.2f}" if r["seconds_per_epoch"] else ""
        lines.append(f"| {r['number']} | {state} | " + " | ".join(_fmt_param(r["params"].get(k, "")) for k in keys)
                     + f" | {v} | {te.get('recall@20', float('nan')):.4f} | {te.get('ndcg@20', float('nan')):.4f} | "
                     f"{ep} | {spe} |"
                     + (" " + " / ".join(f"{x['valid'][metric]:.4f}" for x in r["seeds"] or []) + " |"
                        if spec.opts.trial_seeds > 1 else ""))
    return lines


def _state(r: dict[str, Any]) -> str:
    state = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}.get(r["state"], r["state"].lower())
    if r.get("superseded_by") is not None:
        return f"{state}, superseded by {r['superseded_by']}"
    if r.get("retry_of") and r["state"] != "FAIL":
        state += f" (re-scores {', '.join(map(str, r['retry_of']))})"
    if r["error"]:
        state += " (invalid config)" if str(r["error"]).startswith("invalid: ") else " (diverged)"
    elif r.get("bounded"):
        state += " (bounded)"
    return state


def multi_lines(ordered: list[dict[str, Any]], spec: StudySpec, best: int, metric: str,
                keys: list[str]) -> list[str]:
    """The per-trial table of a multi-dataset study (relative scores per dataset, their mean and
    worst case, best aggregate first) and the leave-one-dataset-out table."""
    from siger.experiments.tune.multi import leave_one_out

    names = [n for n, _ in spec.datasets]
    lines = [f"Each cell: valid {metric} relative to the reference ({spec.reference} at its defaults, same seed) "
             f"on that dataset; the trial's value is the **{spec.aggregate}** of them. A blank cell: the trial "
             "never reached that dataset (pruned before, or still running). *Bounded*: two finished "
             "datasets below the best complete trial's value, so neither the study nor any leave-one-out "
             "choice could pick it; it stops there.", "",
             "| trial | state | " + " | ".join(keys) + " | " + " | ".join(names) + " | mean | worst |",
             "|---:|---|" + "---|" * len(keys) + "---:|" * (len(names) + 2)]
    for r in ordered:
        ds = r.get("datasets") or {}
        mark = "**" if r["number"] == best else ""
        cells = [f"{ds[n]['rel']:.3f}" + (" (pruned)" if ds[n].get("pruned") else "") if n in ds else ""
                 for n in names]
        agg = [f"{mark}{r[h]:.3f}{mark}" if r.get(h) is not None else "" for h in ("mean", "worst")]
        lines.append(f"| {r['number']} | {_state(r)} | " + " | ".join(_fmt_param(r["params"].get(k, "")) for k in keys)
                     + " | " + " | ".join(cells + agg) + " |")
    lodo = leave_one_out(ordered, names, spec.aggregate)
    if lodo:
        lines += ["", "## Leave one dataset out", "",
                  f"For each dataset, the trial chosen on the {spec.aggregate} relative score over the *other* "
                  "datasets, and what it gets on the one left out (one seed; valid and test relative to the "
                  "reference): what a dataset the choice never saw can expect.", "",
                  "| left out | chosen trial | its score on the others | valid on the left-out | test on the left-out |",
                  "|---|---:|---:|---:|---:|"]
        for x in lodo:
            lines.append(f"| {x['left_out']} | {x['trial']} | {x['chosen_on']:.3f} | {x['rel']:.3f} | "
                         f"{x['rel_test']:.3f} |")
    return lines


def confirm_multi_lines(c: dict[str, Any]) -> list[str]:
    """The confirmation table of a multi-dataset study (``confirm.json`` of
    :func:`~siger.experiments.tune.confirm.confirm_top`)."""
    how, best = c["aggregate"], c["best"]["number"]
    rule = f"the winner has the best **{how}** of those means"
    if how == "worst" and "tied" in c:
        rule = ("the trial with the best **worst** of those means, and every trial whose worst case per seed is "
                "not below it beyond the seeds' noise (the paired difference's 95 % interval reaches zero), tie; "
                "the tied trial with the best **mean** over the datasets wins")
    lines = ["", f"## Confirmation: the top {len(c['rows'])} trials over {c['seeds']} seeds", "",
             f"The best trials were trained again with other seeds (seeds {', '.join(map(str, c['seed_list']))}), each "
             f"seed against its own reference run on every dataset (same seed: a paired ratio). Each cell: the mean "
             f"valid {c['metric']} relative to the reference over the seeds, with its 95 % interval; {rule} "
             f"(test still not used). `best_config.yaml` is trial {best}'s."
             + (f" Trials with {', '.join(f'{k}={v}' for k, v in c['exclude'].items())} were left out."
                if c.get("exclude") else ""), ""]
    return lines + confirm_multi_table(c)


def confirm_multi_table(c: dict[str, Any]) -> list[str]:
    """The rows of :func:`confirm_multi_lines`' table (also rendered into the docs from a study's
    record): each confirmed trial's per-dataset mean relative scores with their intervals, the
    aggregate, per seed, the tie columns and test; the winner's number in bold."""
    names, how, best = c["datasets"], c["aggregate"], c["best"]["number"]
    tied = {t["number"]: t for t in c.get("tied") or []}
    lines = ["| trial | " + " | ".join(names) + f" | {how} of the means | {how} per seed | "
             + ("worst per seed − the best worst case's (paired, 95 % CI) | mean over the datasets | " if tied else "")
             + f"test: {how} of the means |",
             "|---:|" + "---:|" * (len(names) + 3 + 2 * bool(tied))]
    for r in c["rows"]:
        mark = "**" if r["number"] == best else ""
        cells = []
        for n in names:
            d = r["datasets"][n]
            lo, hi = d["interval"]
            cells.append(f"{d['rel_mean']:.3f}" + ("" if lo != lo else f" [{lo:.3f}, {hi:.3f}]"))
        row = f"| {mark}{r['number']}{mark} | " + " | ".join(cells) + f" | {r['value']:.3f} | " + \
            " / ".join(f"{v:.3f}" for v in r["value_per_seed"]) + " | "
        if tied:
            t = tied.get(r["number"])
            if t is None:
                row += "below beyond the noise | — | "
            elif r["number"] == c["best_by_value"]:
                row += f"— (the best worst case) | {t['mean']:.3f} | "
            else:
                m, lo, hi = t["diff"]
                row += f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}] (tied) | {t['mean']:.3f} | "
        lines.append(row + f"{r['value_test']:.3f} |")
    return lines


def write_reports(spec: StudySpec, log: Callable[[str], None] = print) -> dict[str, Any]:
    """study.md, study.json, best_config.yaml, history.png and importance.png from the study."""
    out = Path(spec.out)
    study = open_study(spec)
    metric = metric_name(spec)
    rows = _rows(study, spec)
    done = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None and r["superseded_by"] is None]
    if not done:
        raise RuntimeError(f"{out}: no trial of the study has completed")
    best_row = max(done, key=lambda r: r["value"]) if study.direction.name == "MAXIMIZE" else \
        min(done, key=lambda r: r["value"])
    confirmed = json.loads((out / "confirm.json").read_text()) if (out / "confirm.json").exists() else None
    src = out / (confirmed["best"]["run_dir"] if confirmed else best_row["run_dir"])
    src = src / (spec.datasets[0][0] if spec.datasets else "") / "config.yaml"
    shutil.copyfile(src, out / "best_config.yaml")
    keys = list(spec.space.params)
    sel = spec.opts.select_by

    def vkey(r):
        if spec.datasets:
            return r[spec.aggregate] if r[spec.aggregate] is not None else -1.0
        return r["valid"][metric] if r["valid"] else -1.0

    ordered = sorted(rows, key=lambda r: (r["state"] not in ("COMPLETE", "PRUNED") or r["superseded_by"] is not None,
                                          -vkey(r)))
    base = spec.trial_config({})
    n_pruned = sum(r["state"] == "PRUNED" and r["superseded_by"] is None for r in rows)
    n_gone = sum(r["superseded_by"] is not None for r in rows)
    pruners: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        name = t.user_attrs.get("pruner", "not recorded")
        pruners[name] = pruners.get(name, 0) + 1
    fixed = ", ".join(f"{k}={v}" for k, v in spec.base_overrides().items()
                      if k not in ("progress", "data_dir", "cache_dir")) or "none"
    lines = [
        f"# Study: {base.train.model} on {spec.label()}",
        "",
        f"{len(rows)} trials ({len(done)} complete, {n_pruned} pruned"
        + (f", {n_gone} superseded by a re-scoring retry" if n_gone else "")
        + "".join(f", {sum(r['state'] == st for r in rows)} {st.lower()}" for st in ("FAIL", "RUNNING", "WAITING")
                  if any(r["state"] == st for r in rows))
        + f"); {spec.opts.sampler} sampler, pruner{'s' if len(pruners) > 1 else ''} "
        + ", ".join(f"{name} ({n} trials)" for name, n in pruners.items())
        + f" (warm-up {base.train.warmup_epochs} epochs"
        + (f", at least {base.train.warmup_steps} optimiser steps: more epochs on a dataset of fewer than "
           f"{-(-base.train.warmup_steps // max(1, base.train.warmup_epochs))} batches an epoch"
           if base.train.warmup_steps else "") + "), "
        + (f"seed {base.train.seed}, one seed per trial" if spec.opts.trial_seeds == 1 else
           f"{spec.opts.trial_seeds} seeds per trial ({base.train.seed}, {base.train.seed + 1}, ...; the pruner reads "
           f"the first, the value is the mean best-valid {metric} over them)")
        + f". Fixed: {fixed}."
        + (f" Note: {study.user_attrs['note']}" if study.user_attrs.get("note") else "")
        + "".join(f" Space extended at trial {e['from_trial']}: {', '.join(e['added'])} added (the trials before "
                  f"it ran {', '.join(f'{k}={v}' for k, v in e['until_then'].items())})."
                  for e in study.user_attrs.get("space_extensions", [])),
        "",
        (f"Chosen on **valid {metric}** (the trial's best-valid epoch). The test columns are recorded at that "
         "epoch for reference and were **not used** to choose." if sel == "valid" else
         f"Chosen on **test {metric}** (MMRec's behaviour): **this choice has seen the test set**."),
        f" Best: trial {best_row['number']} (`best_config.yaml`). Space: `space.yaml`.",
        "",
    ]
    if spec.datasets:
        lines += multi_lines(ordered, spec, best_row['number'], metric, keys)
    else:
        lines += trial_lines(ordered, spec, best_row['number'], metric, keys)
    if confirmed and confirmed.get("datasets"):
        lines += confirm_multi_lines(confirmed)
    elif confirmed:
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
    write_json(out / "study.json", {"model": base.train.model, "dataset": spec.label(), "metric": metric,
                                    **({"datasets": [n for n, _ in spec.datasets], "reference": spec.reference,
                                        "aggregate": spec.aggregate} if spec.datasets else {}),
                                    "select_by": sel, "sampler": spec.opts.sampler, "pruner": spec.opts.pruner,
                                    "space": spec.space.to_yaml(), "best": best_row, "importances": importances,
                                    "confirmed": confirmed, "trials": rows})
    _plot_history(rows, metric, out / "history.png", f"{base.train.model} on {spec.label()}", spec.aggregate
                  if spec.datasets else None)
    if importances:
        _plot_importance(importances, out / "importance.png")
    log(text)
    return {"best": best_row, "rows": rows, "importances": importances}


def _importances(study) -> dict[str, float]:
    """fANOVA importances over the complete trials no retry replaces (read from an in-memory copy)."""
    optuna = optuna_module()
    complete = live_trials(study, (optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 3:
        return {}
    live = optuna.create_study(direction=study.direction)
    live.add_trials(complete)
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(
            live, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)).items()}
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}


def _plot_history(rows, metric: str, path: Path, title: str, aggregate: str | None = None) -> None:
    """Each trial's value (valid metric, or a multi-dataset study's ``aggregate`` relative score)
    with the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def value(r):
        if aggregate:
            return r.get(aggregate)
        return r["valid"][metric] if r["valid"] else None

    fig, ax = plt.subplots(figsize=(7, 4))
    for state, style in (("COMPLETE", dict(color="C0", marker="o", label="complete")),
                         ("PRUNED", dict(color="C7", marker="x", label="pruned (best valid before pruning)"))):
        pts = [(r["number"], value(r)) for r in rows if r["state"] == state and value(r) is not None
               and r.get("superseded_by") is None]
        if pts:
            ax.scatter(*zip(*pts), s=18, **style)
    best, xs, ys = -math.inf, [], []
    for r in sorted(rows, key=lambda r: r["number"]):
        if r["state"] == "COMPLETE" and r["value"] is not None and value(r) is not None \
                and r.get("superseded_by") is None:
            best = max(best, value(r))
        if best > -math.inf:
            xs.append(r["number"])
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{aggregate} relative valid {metric}" if aggregate else f"valid {metric}")
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
