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

The package, one job a module: :mod:`~siger.experiments.tune.space` (the YAML search-space
language), :mod:`~siger.experiments.tune.engine` (Optuna's samplers, pruners and storage),
:mod:`~siger.experiments.tune.study` (a study's spec, identity and trial objective),
:mod:`~siger.experiments.tune.report` (its reports and plots),
:mod:`~siger.experiments.tune.rescore` (retrying finished trials whose runs a changed training
rule would have continued), :mod:`~siger.experiments.tune.drive` (running a study) and
:mod:`~siger.experiments.tune.confirm` (confirming its top trials over more seeds).
"""

from siger.experiments.tune.confirm import confirm_top
from siger.experiments.tune.drive import run_tune
from siger.experiments.tune.engine import TuneOptions, best_so_far, checkpoint_storage, make_pruner, pruner_name
from siger.experiments.tune.report import write_reports
from siger.experiments.tune.space import Param, Space, default_space_path, grid_space, load_space, parse_space
from siger.experiments.tune.study import StudySpec, open_study

__all__ = ["Param", "Space", "StudySpec", "TuneOptions", "best_so_far", "checkpoint_storage", "confirm_top",
           "default_space_path", "grid_space", "load_space", "make_pruner", "open_study", "parse_space",
           "pruner_name", "run_tune", "write_reports"]
