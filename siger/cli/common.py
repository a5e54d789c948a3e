"""What the commands share: the config arguments, resolving a command's config once, run folders."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from siger.config import Config, ConfigError, ConfigFile, build_config, parse_cli_overrides, read_config_file


def add_config_args(p: argparse.ArgumentParser) -> None:
    """--model, --dataset, --data-dir and --config (any config key follows as --key value)."""
    p.add_argument("--model", default=None,
                   help="model name (see `siger models`; default: the --config file's, else SIGER)")
    p.add_argument("--dataset", default=None,
                   help="dataset name (default: the --config file's, else the bundled tiktok)")
    p.add_argument("--data-dir", default=None, help="folder holding <dataset>/ in the MMRec layout")
    p.add_argument("--config", default=None, help="YAML file of config keys")


@dataclass
class Request:
    """A command's config inputs, each read once: the --config file, the resolved model and
    dataset (the command line's win over the file's; else SIGER on the bundled tiktok), and the
    command line's keys (with --data-dir, --model and --dataset pinned)."""

    model: str
    dataset: str
    file: ConfigFile | None
    overrides: dict[str, Any]

    def config(self, **more: Any) -> Config:
        """The resolved, checked config (``more``: keys over the command line's)."""
        return build_config(self.model, self.dataset, {**self.overrides, **more}, self.file)

    def flat(self) -> dict[str, Any]:
        """Every key given, the file's under the command line's (for grid expansion)."""
        return {**(self.file.flat if self.file else {}), **self.overrides}


def resolve(args: argparse.Namespace, extra: list[str]) -> Request:
    """Read the command's --config file (once) and parse its --key value overrides (once)."""
    file = read_config_file(args.config) if getattr(args, "config", None) else None
    doc = file.flat if file else {}
    model = getattr(args, "model", None) or doc.get("model") or "SIGER"
    dataset = args.dataset or doc.get("dataset") or "tiktok"
    overrides = parse_cli_overrides(extra)
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    return Request(model, dataset, file, {"model": model, "dataset": dataset, **overrides})


def no_extra(extra: list[str]) -> None:
    if extra:
        raise ConfigError(f"unrecognised arguments: {' '.join(extra)}")


# what a run folder holds (removed by --overwrite; nothing else in the folder is touched)
RUN_FILES = ("config.yaml", "log.jsonl", "metrics.json", "record.json", "curves.png", "model.pt", "checkpoint.pt")


def check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to train over a run folder unless told what to do with it."""
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite replaces it: give one")
    finished, started = (out / "metrics.json").exists(), (out / "checkpoint.pt").exists()
    if overwrite:
        for f in RUN_FILES:
            (out / f).unlink(missing_ok=True)
        return
    if resume:
        return
    if finished:
        raise ConfigError(f"{out} holds a finished run (metrics.json); use --overwrite to replace it, "
                          "or another --out")
    if started:
        raise ConfigError(f"{out} holds an unfinished run (checkpoint.pt); use --resume to continue it or "
                          "--overwrite to start again")
